//! The deployment files agree with each other and with caje's config, so the
//! README's Fly.io steps give a node whose paths and ports line up.

use std::path::Path;

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The quoted value of `key:` in the YAML block that starts at `block:`.
fn yaml_value(text: &str, block: &str, key: &str) -> String {
    let start = text
        .lines()
        .position(|l| l.trim_end() == format!("{block}:"))
        .unwrap_or_else(|| panic!("litefs.yml has no {block}: block"));
    text.lines()
        .skip(start + 1)
        .take_while(|l| l.starts_with(' ') || l.trim().is_empty() || l.starts_with('#'))
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("litefs.yml {block}: has no {key}"))
}

#[test]
fn fly_litefs_docker_and_caje_config_agree() {
    let caje = caje::config::Settings::parse("deploy/caje.toml", &read("deploy/caje.toml"))
        .expect("deploy/caje.toml is valid");
    let fly: toml::Value = toml::from_str(&read("fly.toml")).expect("fly.toml parses");
    let litefs = read("litefs.yml");
    let dockerfile = read("Dockerfile");

    let service = &fly["http_service"];
    assert_eq!(
        service["internal_port"].as_integer(),
        Some(i64::from(caje.listen.port()))
    );
    assert_eq!(service["checks"][0]["path"].as_str(), Some("/_caje/health"));
    assert_eq!(service["auto_stop_machines"].as_bool(), Some(false));

    // Fly's Prometheus scrapes the private metrics listener, which no
    // service exposes publicly.
    let metrics_listen = caje
        .metrics_listen
        .expect("deploy/caje.toml sets metrics_listen");
    assert!(
        metrics_listen.ip().is_unspecified() && metrics_listen.is_ipv6(),
        "[::] so that 6PN (IPv6) reaches it: {metrics_listen}"
    );
    assert_eq!(
        fly["metrics"]["port"].as_integer(),
        Some(i64::from(metrics_listen.port()))
    );
    assert_eq!(fly["metrics"]["path"].as_str(), Some("/_caje/metrics"));
    assert_ne!(metrics_listen.port(), caje.listen.port());
    let exposed: Vec<i64> = fly
        .get("services")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("internal_port").and_then(|p| p.as_integer()))
        .chain(service["internal_port"].as_integer())
        .collect();
    assert!(
        !exposed.contains(&i64::from(metrics_listen.port())),
        "no service exposes the metrics port: {exposed:?}"
    );

    let volume = fly["mounts"]["destination"].as_str().expect("a volume");
    assert!(caje.cache_dir.starts_with(volume), "cache on the volume");
    assert!(yaml_value(&litefs, "data", "dir").starts_with(volume));

    let mount = yaml_value(&litefs, "fuse", "dir");
    assert_eq!(
        caje.database.parent(),
        Some(Path::new(&mount)),
        "the database sits directly in the LiteFS mount"
    );
    assert_eq!(caje.litefs, caje::config::LiteFsMode::Auto);

    assert!(litefs.contains("caje --config /etc/caje/caje.toml"));
    assert!(dockerfile.contains("COPY deploy/caje.toml /etc/caje/caje.toml"));
    assert!(dockerfile.contains("COPY litefs.yml /etc/litefs.yml"));
    assert!(dockerfile.contains("ENTRYPOINT [\"litefs\", \"mount\"]"));
    assert_eq!(
        fly["env"]["PRIMARY_REGION"].as_str(),
        fly["primary_region"].as_str()
    );
}
