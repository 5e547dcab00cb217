//! Unit tests of the config: parsing, line-numbered errors, defaults,
//! environment overrides and host normalisation.

use super::*;

const GOOD: &str = r#"
listen = "127.0.0.1:8080"
[[origin]]
host = "Slow.Example.com"
upstream = "http://127.0.0.1:3000/"
timeout = "5s"
"#;

#[test]
fn parses_a_good_file() {
    let s = Settings::parse("caje.toml", GOOD).expect("valid");
    assert_eq!(s.listen.port(), 8080);
    assert_eq!(s.origins[0].host, "slow.example.com");
    assert_eq!(s.origins[0].upstream, "http://127.0.0.1:3000");
    assert_eq!(s.origins[0].timeout, Duration::from_secs(5));
    assert_eq!(s.litefs, LiteFsMode::Auto);
    assert_eq!(s.manifest_batch_window, DEFAULT_BATCH_WINDOW);
    assert_eq!(s.halt_timeout, Duration::from_secs(10));
    let text = format!("manifest_batch_window = \"20ms\"\nhalt_timeout = \"2s\"\n{GOOD}");
    let s = Settings::parse("caje.toml", &text).expect("valid");
    assert_eq!(s.manifest_batch_window, Duration::from_millis(20));
    assert_eq!(s.halt_timeout, Duration::from_secs(2));
    let err = Settings::parse("c.toml", &format!("halt_timeout = \"0s\"\n{GOOD}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1: key `halt_timeout`"), "{err}");
    let sized = Settings::parse("c.toml", &format!("max_size = \"2 MiB\"\n{GOOD}")).expect("valid");
    assert_eq!(sized.max_size, Some(2 * 1024 * 1024));
    assert_eq!(
        Settings::parse("c.toml", GOOD).expect("valid").max_size,
        None
    );
    let err = Settings::parse("c.toml", &format!("max_size = \"lots\"\n{GOOD}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1: key `max_size`"), "{err}");
    let err = Settings::parse("c.toml", &format!("max_size = \"0\"\n{GOOD}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1: key `max_size`"), "{err}");
    let memory = Settings::parse(
        "c.toml",
        &format!("memory_cache_size = \"0\"\nmemory_cache_max_object = \"1 KiB\"\n{GOOD}"),
    )
    .expect("valid");
    assert_eq!(memory.memory_cache_size, 0);
    assert_eq!(memory.memory_cache_max_object, 1024);
    let err = Settings::parse("c.toml", &format!("\nmemory_cache_size = \"big\"\n{GOOD}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2: key `memory_cache_size`"), "{err}");
}

#[test]
fn admin_session_settings() {
    let parsed = |text: &str| Settings::parse("c.toml", &format!("{text}\n{GOOD}"));
    let s = parsed("").expect("valid");
    assert_eq!(s.admin_session_lifetime, Duration::from_secs(8 * 3600));
    assert_eq!(s.client_scheme_header, None);
    let s = parsed(
        "admin_session_lifetime = \"30m\"\nclient_scheme_header = \"Fly-Forwarded-Proto\"\nclient_ip_header = \"Fly-Client-IP\"",
    )
    .expect("valid");
    assert_eq!(s.admin_session_lifetime, Duration::from_secs(1800));
    assert_eq!(
        s.client_scheme_header.as_ref().map(|h| h.as_str()),
        Some("fly-forwarded-proto")
    );
    assert_eq!(
        s.client_ip_header.as_ref().map(|h| h.as_str()),
        Some("fly-client-ip")
    );
    for (bad, key) in [
        (
            "admin_session_lifetime = \"500ms\"",
            "admin_session_lifetime",
        ),
        ("client_ip_header = \"a:b\"", "client_ip_header"),
        (
            "client_scheme_header = \"not a header\"",
            "client_scheme_header",
        ),
    ] {
        let err = parsed(bad).expect_err(bad).to_string();
        assert!(err.contains(&format!("line 1: key `{key}`")), "{err}");
    }
}

#[test]
fn shutdown_timeout_defaults_to_10s_and_may_be_zero() {
    let parsed = |text: &str| Settings::parse("c.toml", &format!("{text}\n{GOOD}"));
    let default = parsed("").expect("valid").shutdown_timeout;
    assert_eq!(default, Duration::from_secs(10));
    let set = parsed("shutdown_timeout = \"2m\"").expect("valid");
    assert_eq!(set.shutdown_timeout, Duration::from_secs(120));
    let zero = parsed("shutdown_timeout = \"0s\"").expect("valid");
    assert_eq!(zero.shutdown_timeout, Duration::ZERO);
    let err = parsed("shutdown_timeout = \"soon\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1: key `shutdown_timeout`"), "{err}");
}

#[test]
fn change_driven_sync_is_on_every_50ms_and_the_polls_are_slow() {
    let parsed = |extra: &str| Settings::parse("c.toml", &format!("{extra}\n{GOOD}"));
    let default = parsed("").expect("valid");
    assert_eq!(default.sync_interval, Duration::from_millis(50));
    assert_eq!(default.populate_interval, Duration::from_secs(600));
    assert_eq!(default.purge_poll_interval, Duration::from_secs(30));
    assert_eq!(default.manifest_page_size, 500);
    let set = parsed("sync_interval = \"200ms\"").expect("valid");
    assert_eq!(set.sync_interval, Duration::from_millis(200));
    let off = parsed("sync_interval = \"0s\"").expect("valid");
    assert_eq!(off.sync_interval, Duration::ZERO);
    let err = parsed("sync_interval = \"often\"").unwrap_err().to_string();
    assert!(err.contains("line 1: key `sync_interval`"), "{err}");
}

#[test]
fn unknown_key_names_line_and_key() {
    let text = "listen = \"127.0.0.1:1\"\n[[origin]]\nhost = \"a\"\nupstream = \"http://b\"\ntimeot = \"1s\"\n";
    let err = Settings::parse("c.toml", text).unwrap_err().to_string();
    assert!(err.starts_with("c.toml: line 5"), "{err}");
    assert!(err.contains("timeot"), "{err}");
}

#[test]
fn bad_value_names_key_path() {
    let text = "[[origin]]\nhost = \"a\"\nupstream = \"http://b\"\ntimeout = \"soon\"\n";
    let err = Settings::parse("c.toml", text).unwrap_err().to_string();
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("origin[0].timeout"), "{err}");
}

#[test]
fn duplicate_host_and_bad_upstream_are_refused() {
    let dup = "[[origin]]\nhost = \"a\"\nupstream = \"http://b\"\n[[origin]]\nhost = \"A\"\nupstream = \"http://c\"\n";
    let err = Settings::parse("c.toml", dup).unwrap_err().to_string();
    assert!(
        err.contains("line 5") && err.contains("origin[1].host"),
        "{err}"
    );
    let https = "[[origin]]\nhost = \"a\"\nupstream = \"ftp://b\"\n";
    let err = Settings::parse("c.toml", https).unwrap_err().to_string();
    assert!(
        err.contains("line 3") && err.contains("origin[0].upstream"),
        "{err}"
    );
}

#[test]
fn env_overrides_and_token() {
    let mut s = Settings::parse("caje.toml", GOOD).expect("valid");
    s.apply_env(|k| match k {
        "CAJE_LISTEN" => Some("0.0.0.0:9000".into()),
        "CAJE_LITEFS" => Some("off".into()),
        "CAJE_ADMIN_TOKEN" => Some("sekrit".into()),
        _ => None,
    })
    .expect("valid env");
    assert_eq!(s.listen.port(), 9000);
    assert_eq!(s.litefs, LiteFsMode::Off);
    assert_eq!(s.admin_token.as_deref(), Some("sekrit"));
    let err = s
        .apply_env(|k| (k == "CAJE_LITEFS").then(|| "maybe".into()))
        .unwrap_err();
    assert!(err.to_string().contains("CAJE_LITEFS"));
}

#[test]
fn cache_set_cookie_is_off_unless_set_per_origin() {
    assert!(!Settings::parse("c.toml", GOOD).expect("valid").origins[0].cache_set_cookie);
    let on = format!("{GOOD}cache_set_cookie = true\n");
    assert!(Settings::parse("c.toml", &on).expect("valid").origins[0].cache_set_cookie);
    let bad = format!("{GOOD}cache_set_cookie = \"yes\"\n");
    let err = Settings::parse("c.toml", &bad).unwrap_err().to_string();
    assert!(
        err.contains("line 7") && err.contains("origin[0].cache_set_cookie"),
        "{err}"
    );
}

#[test]
fn cache_client_errors_is_off_unless_set_per_origin() {
    let origin = |text: &str| Settings::parse("c.toml", text).map(|s| s.origins[0].clone());
    assert!(!origin(GOOD).expect("valid").cache_client_errors);
    let on = origin(&format!("{GOOD}cache_client_errors = true\n")).expect("valid");
    assert!(on.cache_client_errors && on.admit_rules().cache_client_errors);
    let err = origin(&format!("{GOOD}cache_client_errors = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("origin[0].cache_client_errors"), "{err}");
}

#[test]
fn heuristic_freshness_is_off_unless_set_per_origin() {
    use crate::cache::policy::Heuristic;
    let origin = |extra: &str| Settings::parse("c.toml", &format!("{GOOD}{extra}"));
    assert_eq!(origin("").expect("valid").origins[0].heuristic, None);
    assert_eq!(
        origin("heuristic_fraction = 0.5\n").expect("valid").origins[0].heuristic,
        None,
        "a fraction alone does not turn it on"
    );
    assert_eq!(
        origin("heuristic_freshness = true\n")
            .expect("valid")
            .origins[0]
            .heuristic,
        Some(Heuristic {
            fraction: 0.1,
            max: Duration::from_secs(24 * 3600)
        })
    );
    let set = "heuristic_freshness = true\nheuristic_fraction = 1\nheuristic_max = \"1h\"\n";
    assert_eq!(
        origin(set).expect("valid").origins[0].heuristic,
        Some(Heuristic {
            fraction: 1.0,
            max: Duration::from_secs(3600)
        })
    );
    assert!(origin("heuristic_freshness = true\nheuristic_fraction = 0.05\n").is_ok());
}

#[test]
fn bad_heuristic_settings_are_line_numbered_errors() {
    let err = |extra: &str| {
        Settings::parse(
            "c.toml",
            &format!("{GOOD}heuristic_freshness = true\n{extra}"),
        )
        .unwrap_err()
        .to_string()
    };
    for (extra, key) in [
        ("heuristic_fraction = 0\n", "heuristic_fraction"),
        ("heuristic_fraction = -0.1\n", "heuristic_fraction"),
        ("heuristic_fraction = 1.5\n", "heuristic_fraction"),
        ("heuristic_fraction = nan\n", "heuristic_fraction"),
        ("heuristic_fraction = \"10%\"\n", "heuristic_fraction"),
        ("heuristic_max = \"soon\"\n", "heuristic_max"),
        ("heuristic_max = \"0s\"\n", "heuristic_max"),
    ] {
        let err = err(extra);
        assert!(
            err.contains("line 8") && err.contains(&format!("origin[0].{key}")),
            "{extra}: {err}"
        );
    }
    let err = Settings::parse("c.toml", &format!("{GOOD}heuristic_freshness = \"yes\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 7") && err.contains("origin[0].heuristic_freshness"),
        "{err}"
    );
}

#[test]
fn host_normalization() {
    assert_eq!(normalize_host("LocalHost:3001"), "localhost");
    assert_eq!(normalize_host("[::1]:80"), "[::1]");
    assert_eq!(normalize_host("example.com"), "example.com");
}

#[test]
fn request_limits() {
    let s = Settings::parse("c.toml", GOOD).expect("valid");
    assert_eq!(s.max_request_body, 10 * 1024 * 1024);
    assert_eq!(s.client_request_timeout, Duration::from_secs(5));
    let text = format!("max_request_body = \"1 KiB\"\nclient_request_timeout = \"2s\"\n{GOOD}");
    let s = Settings::parse("c.toml", &text).expect("valid");
    assert_eq!(s.max_request_body, 1024);
    assert_eq!(s.client_request_timeout, Duration::from_secs(2));
    for (text, key) in [
        ("max_request_body = \"huge\"", "max_request_body"),
        ("client_request_timeout = \"0s\"", "client_request_timeout"),
    ] {
        let err = Settings::parse("c.toml", &format!("{text}\n{GOOD}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("line 1: key `{key}`")), "{err}");
    }
}

#[test]
fn metrics_listen_is_off_unless_set() {
    let parsed = |text: &str| Settings::parse("c.toml", &format!("{text}\n{GOOD}"));
    assert_eq!(parsed("").expect("valid").metrics_listen, None);
    let set = parsed("metrics_listen = \"[::]:9091\"").expect("valid");
    assert_eq!(set.metrics_listen, Some("[::]:9091".parse().expect("addr")));
    let v4 = parsed("metrics_listen = \"127.0.0.1:0\"").expect("valid");
    assert_eq!(
        v4.metrics_listen,
        Some("127.0.0.1:0".parse().expect("addr"))
    );
    for bad in [
        "\nmetrics_listen = \"9091\"",
        "\nmetrics_listen = \"localhost:9091\"",
        "\nmetrics_listen = \"[fdaa::1]\"",
        "\nmetrics_listen = \"\"",
    ] {
        let err = parsed(bad).expect_err(bad).to_string();
        assert!(err.contains("line 2: key `metrics_listen`"), "{err}");
        assert!(err.contains("address and port"), "{err}");
    }
    let err = parsed("metrics_listen = 9091").unwrap_err().to_string();
    assert!(
        err.contains("line 1") && err.contains("metrics_listen"),
        "{err}"
    );
}

#[test]
fn metrics_listen_from_the_environment() {
    let mut s = Settings::parse("c.toml", &format!("metrics_listen = \"[::]:9091\"\n{GOOD}"))
        .expect("valid");
    s.apply_env(|k| (k == "CAJE_METRICS_LISTEN").then(|| "127.0.0.1:9100".into()))
        .expect("valid env");
    assert_eq!(
        s.metrics_listen,
        Some("127.0.0.1:9100".parse().expect("addr"))
    );
    s.apply_env(|k| (k == "CAJE_METRICS_LISTEN").then(String::new))
        .expect("empty turns it off");
    assert_eq!(s.metrics_listen, None);
    let err = s
        .apply_env(|k| (k == "CAJE_METRICS_LISTEN").then(|| "nowhere".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("CAJE_METRICS_LISTEN"), "{err}");
}

fn origin_with(upstream: &str, extra: &str) -> String {
    format!("[[origin]]\nhost = \"a\"\nupstream = \"{upstream}\"\n{extra}")
}

#[test]
fn https_upstreams_and_their_transport_keys() {
    let s = Settings::parse("c.toml", &origin_with("https://b:8443/", "")).expect("valid");
    let o = &s.origins[0];
    assert_eq!(o.upstream, "https://b:8443");
    assert!(o.transport.tls_verify);
    assert_eq!(o.transport.ca_file, None);
    assert_eq!(o.transport.max_connections, 64);
    assert_eq!(o.transport.host_header, HostHeader::Upstream);
    for scheme in ["ftp", "ws", "wss"] {
        let err = Settings::parse("c.toml", &origin_with(&format!("{scheme}://b"), ""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3") && err.contains("origin[0].upstream"),
            "{err}"
        );
    }

    let s = Settings::parse(
        "c.toml",
        &origin_with(
            "https://b",
            "tls_verify = false\nmax_connections = 8\nhost_header = \"client\"\n",
        ),
    )
    .expect("valid");
    let t = &s.origins[0].transport;
    assert!(!t.tls_verify);
    assert_eq!(t.max_connections, 8);
    assert_eq!(t.host_header, HostHeader::Client);

    let refused = |extra: &str, line: &str, key: &str| {
        let err = Settings::parse("c.toml", &origin_with("https://b", extra))
            .unwrap_err()
            .to_string();
        assert!(err.contains(line) && err.contains(key), "{extra:?}: {err}");
    };
    refused("tls_verify = \"no\"\n", "line 4", "tls_verify");
    refused("tls_verify = 0\n", "line 4", "tls_verify");
    refused("max_connections = 0\n", "line 4", "max_connections");
    refused("\nmax_connections = -3\n", "line 5", "max_connections");
    refused("host_header = \"x-host\"\n", "line 4", "host_header");
    refused(
        "ca_file = \"/nonexistent/ca.pem\"\n",
        "line 4",
        "origin[0].ca_file",
    );
    // TLS keys on a plain upstream are a mistake, not silently ignored.
    let err = Settings::parse("c.toml", &origin_with("http://b", "tls_verify = false\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 4") && err.contains("https"), "{err}");
}

#[test]
fn ca_file_must_hold_pem_certificates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "hello\n").expect("write");
    let text = origin_with("https://b", &format!("ca_file = {:?}\n", not_pem));
    let err = Settings::parse("c.toml", &text).unwrap_err().to_string();
    assert!(
        err.contains("line 4") && err.contains("no PEM certificate"),
        "{err}"
    );
    let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).expect("cert");
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, ca.cert.pem()).expect("write");
    let text = origin_with("https://b", &format!("ca_file = {:?}\n", pem));
    let s = Settings::parse("c.toml", &text).expect("valid");
    assert_eq!(
        s.origins[0].transport.ca_file.as_deref(),
        Some(pem.as_path())
    );
    assert_eq!(s.origins[0].transport.ca_certs.len(), 1);
}

#[test]
fn compression_is_on_by_default_with_a_minimum_size() {
    let origin = |extra: &str| Settings::parse("c.toml", &format!("{GOOD}{extra}"));
    let default = origin("").expect("valid").origins[0].compress;
    assert_eq!(default, Compress::default());
    assert!(default.enabled);
    assert_eq!(default.min_size, origin::DEFAULT_COMPRESS_MIN_SIZE);
    let set = origin("compress = false\ncompress_min_size = 200\n").expect("valid");
    let compress = set.origins[0].compress;
    assert_eq!((compress.enabled, compress.min_size), (false, 200));
    assert_eq!(set.origins[0].admit_rules().compress_from, None);
    assert_eq!(
        origin("").expect("valid").origins[0]
            .admit_rules()
            .compress_from,
        Some(origin::DEFAULT_COMPRESS_MIN_SIZE)
    );
    for bad in ["compress_min_size = -1\n", "compress = \"yes\"\n"] {
        let err = origin(bad).unwrap_err().to_string();
        assert!(
            err.contains("line 7") && err.contains("origin[0].compress"),
            "{bad}: {err}"
        );
    }
}
