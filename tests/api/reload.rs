//! Reloading the config without a restart: `SIGHUP`, `POST /_caje/reload`
//! and `caje admin reload` read the file again; new origins and limits
//! apply to new requests, a bad file is refused with its line and key and
//! the running config stays, and what only a restart changes is named.

use std::path::Path;

use crate::admin_cli::caje_admin;
use crate::helpers::{
    admin_request, eventually, process_config, request, spawn_origin, spawn_tls_origin,
    store_page_as_another_node, test_client, CajeProcess, TestCa, HOST, TOKEN,
};

/// The second site a reload adds.
const OTHER: &str = "other.test";

/// `config` with one more `[[origin]]` table, written as `extra` lines.
fn append(config: &Path, extra: &str) {
    let mut text = std::fs::read_to_string(config).expect("read config");
    text.push_str(extra);
    std::fs::write(config, text).expect("write config");
}

fn other_origin(upstream: &str) -> String {
    format!("\n[[origin]]\nhost = \"{OTHER}\"\nupstream = \"{upstream}\"\n")
}

async fn start(config: &Path) -> CajeProcess {
    CajeProcess::start_with("caje", config, &[("CAJE_ADMIN_TOKEN", TOKEN)]).await
}

async fn get(caje: &CajeProcess, host: &str, path: &str) -> crate::helpers::Reply {
    request(&test_client(), &caje.url(path), "GET", host, &[]).await
}

/// The 1-based line of `config` that starts with `prefix`, the last such.
fn line_of(config: &Path, prefix: &str) -> usize {
    let text = std::fs::read_to_string(config).expect("read config");
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with(prefix))
        .map(|(i, _)| i + 1)
        .last()
        .expect("line in config")
}

#[actix_web::test]
async fn sighup_adds_an_origin_without_a_restart() {
    let (site, other) = (spawn_origin().await, spawn_origin().await);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(dir.path(), &site.url(), "");
    let mut caje = start(&config).await;
    assert_eq!(get(&caje, OTHER, "/cache/new").await.status, 421);

    append(&config, &other_origin(&other.url()));
    caje.signal(libc::SIGHUP);
    let reply = eventually(|| async {
        let reply = get(&caje, OTHER, "/cache/new").await;
        (reply.status != 421).then_some(reply)
    })
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "/cache/new #1");
    assert_eq!(other.counter.get("/cache/new"), 1);
    // The same process, still serving the first site.
    assert!(caje.child.try_wait().expect("try_wait").is_none());
    assert_eq!(get(&caje, HOST, "/cache/old").await.body, "/cache/old #1");
    assert_eq!(site.counter.get("/cache/new"), 0);
    let log = caje.logged("config reloaded").await;
    assert!(log.contains("SIGHUP"), "{log}");
}

#[actix_web::test]
async fn sighup_with_a_bad_file_keeps_the_running_config_and_names_the_key_and_line() {
    let (site, other) = (spawn_origin().await, spawn_origin().await);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(dir.path(), &site.url(), "");
    let mut caje = start(&config).await;

    append(
        &config,
        &format!("{}timeout = \"soon\"\n", other_origin(&other.url())),
    );
    let line = line_of(&config, "timeout = \"soon\"");
    caje.signal(libc::SIGHUP);
    let refusal = eventually(|| async {
        let log = caje.log();
        log.lines()
            .find(|l| l.contains("config reload refused"))
            .map(str::to_owned)
    })
    .await;
    assert!(
        refusal.contains(&format!("line {line}")) && refusal.contains("origin[1].timeout"),
        "{refusal}"
    );
    assert!(refusal.contains(&config.display().to_string()), "{refusal}");
    // Still running, with the old origins only.
    assert!(caje.child.try_wait().expect("try_wait").is_none());
    assert_eq!(get(&caje, HOST, "/cache/a").await.status, 200);
    assert_eq!(get(&caje, OTHER, "/cache/a").await.status, 421);
    assert_eq!(other.counter.total(), 0);
}

#[actix_web::test]
async fn post_reload_needs_the_token_refuses_a_bad_file_and_applies_a_good_one() {
    let (site, other) = (spawn_origin().await, spawn_origin().await);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(dir.path(), &site.url(), "max_request_body = \"1MiB\"");
    let caje = start(&config).await;
    let client = test_client();
    let url = caje.url("/_caje/reload");

    let refused = admin_request(&client, &url, "POST", None, None).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let refused = admin_request(&client, &url, "POST", Some("not-the-token"), None).await;
    assert_eq!(refused.status, 401, "{}", refused.body);

    // A bad file: 422 with the file, line and key; nothing changes.
    let good = std::fs::read_to_string(&config).expect("read config");
    append(
        &config,
        "\n[[origin]]\nhost = \"bad host\"\nupstream = \"http://127.0.0.1:1\"\n",
    );
    let line = line_of(&config, "host = \"bad host\"");
    let bad = admin_request(&client, &url, "POST", Some(TOKEN), None).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    let error = bad.json()["error"].as_str().expect("error").to_owned();
    assert!(
        error.contains(&format!("line {line}")) && error.contains("key `origin[1].host`"),
        "{error}"
    );
    assert!(error.starts_with(&config.display().to_string()), "{error}");

    // A good one: a new origin, a smaller limit, and a listen address that
    // only a restart changes (named, and kept).
    let body = "x".repeat(2048);
    let post = |host: &'static str| {
        let (client, url, body) = (client.clone(), caje.url("/echo"), body.clone());
        async move {
            client
                .post(url)
                .insert_header(("host", host))
                .send_body(body)
                .await
                .expect("post")
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(HOST).await, 200);
    std::fs::write(
        &config,
        good.replace("max_request_body = \"1MiB\"", "max_request_body = \"1KiB\"")
            .replace("127.0.0.1:0", "127.0.0.1:1")
            + &other_origin(&other.url()),
    )
    .expect("write config");
    let done = admin_request(&client, &url, "POST", Some(TOKEN), None).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let report = done.json();
    assert_eq!(report["origins"], 2);
    assert_eq!(report["restart_needed"], serde_json::json!(["listen"]));
    assert_eq!(post(HOST).await, 413);
    assert_eq!(get(&caje, OTHER, "/cache/b").await.body, "/cache/b #1");
    let log = caje.logged("only with a restart").await;
    assert!(
        log.lines()
            .any(|l| l.contains("only with a restart") && l.contains("listen")),
        "{log}"
    );
}

#[actix_web::test]
async fn caje_admin_reload_reports_the_reload_or_the_refusal() {
    let (site, other) = (spawn_origin().await, spawn_origin().await);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(dir.path(), &site.url(), "");
    let caje = start(&config).await;
    let node = caje.url("");

    append(&config, &other_origin(&other.url()));
    let out = caje_admin(&["reload", "--node", &node], Some(TOKEN)).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text,
        format!(
            "reloaded {}: 2 origin(s); new requests use it\n",
            config.display()
        )
    );
    assert_eq!(get(&caje, OTHER, "/cache/c").await.status, 200);

    append(&config, "workers = \"many\"\n");
    let out = caje_admin(&["reload", "--node", &node], Some(TOKEN)).await;
    let error = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{error}");
    assert!(error.contains("workers"), "{error}");
    assert_eq!(get(&caje, OTHER, "/cache/c").await.status, 200);
}

#[actix_web::test]
async fn a_reload_that_changes_how_an_origin_is_reached_reconnects_with_it() {
    let ca = TestCa::new();
    let tls = spawn_tls_origin(&ca, "localhost").await;
    let dir = tempfile::tempdir().expect("temp dir");
    // The test CA is not among the web roots: refused until `ca_file` names
    // it. One worker: one pool to the origin.
    let config = process_config(dir.path(), &tls.url(), "workers = 1");
    let caje = start(&config).await;
    let refused = get(&caje, HOST, "/a").await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(refused.body.contains("UnknownIssuer"), "{}", refused.body);

    append(&config, &format!("ca_file = {:?}\n", ca.pem_file()));
    let url = caje.url("/_caje/reload");
    let done = admin_request(&test_client(), &url, "POST", Some(TOKEN), None).await;
    assert_eq!(done.status, 200, "{}", done.body);
    // The worker builds the origin's client again, with the new CA.
    for _ in 0..3 {
        let reply = get(&caje, HOST, "/b").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let connections = tls.connections();

    // A reload that leaves the origin as it was keeps its pool.
    let other = spawn_origin().await;
    append(&config, &other_origin(&other.url()));
    let done = admin_request(&test_client(), &url, "POST", Some(TOKEN), None).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(get(&caje, HOST, "/c").await.status, 200);
    assert_eq!(
        tls.connections(),
        connections,
        "a new connection after the reload"
    );
}

#[actix_web::test]
async fn the_populator_fetches_the_pages_of_a_reloaded_origin() {
    let (site, other) = (spawn_origin().await, spawn_origin().await);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(dir.path(), &site.url(), "");
    let caje = start(&config).await;
    let (client, populate) = (test_client(), caje.url("/_caje/populate"));
    // Another region stored a page of a site this node does not proxy yet.
    store_page_as_another_node(&dir.path().join("manifest.db"), OTHER, "/cache/p", "sin");
    let queued = admin_request(&client, &populate, "POST", Some(TOKEN), None).await;
    assert_eq!(queued.json()["queued"].as_array().map(Vec::len), Some(1));
    let failed = eventually(|| async {
        let log = caje.log();
        log.contains("populator could not store a page")
            .then_some(log)
    })
    .await;
    assert!(
        failed.contains("no origin is configured for other.test"),
        "{failed}"
    );

    append(&config, &other_origin(&other.url()));
    let url = caje.url("/_caje/reload");
    let done = admin_request(&client, &url, "POST", Some(TOKEN), None).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let queued = admin_request(&client, &populate, "POST", Some(TOKEN), None).await;
    assert_eq!(
        queued.json()["queued"].as_array().map(Vec::len),
        Some(1),
        "{}",
        queued.body
    );
    eventually(|| async { (other.counter.get("/cache/p") == 1).then_some(()) }).await;
    assert_eq!(site.counter.total(), 0);
}
