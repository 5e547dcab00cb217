//! HTTPS origins: certificates from a test CA on a real rustls server on
//! loopback, in front of a real caje node.

use caje::actors::cache_store::GetCacheStats;
use caje::config::{Origin, Settings};

use crate::helpers::{
    eventually, process_config, request, spawn_app_for, spawn_gated_tls_origin, spawn_tls_origin,
    CajeProcess, TestApp, TestCa, HOST,
};

/// The origin as the config file `[[origin]]` table with `extra` keys says.
fn origin(upstream: &str, extra: &str) -> Origin {
    let text = format!("[[origin]]\nhost = \"{HOST}\"\nupstream = \"{upstream}\"\n{extra}");
    Settings::parse("test.toml", &text)
        .expect("valid origin")
        .origins
        .remove(0)
}

fn ca_file(ca: &TestCa) -> String {
    format!("ca_file = {:?}\n", ca.pem_file())
}

fn tls_errors(app: &TestApp) -> u64 {
    app.metrics
        .proxy
        .origin_requests
        .with_label_values(&[HOST, "tls_error"])
        .get()
}

async fn stored(app: &TestApp) -> u64 {
    app.cache.send(GetCacheStats).await.expect("cache").stored
}

#[actix_web::test]
async fn an_https_origin_with_its_ca_file_is_cached_over_one_kept_alive_connection() {
    let ca = TestCa::new();
    let tls = spawn_tls_origin(&ca, "localhost").await;
    let app = spawn_app_for(vec![origin(&tls.url(), &ca_file(&ca))], |_| {}).await;

    let first = app.get("/a").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body, "hello");
    app.stored(1).await;
    let second = app.get("/a").await;
    assert_eq!(second.body, "hello");
    assert!(
        second.cache_status().contains("hit"),
        "{}",
        second.cache_status()
    );
    for path in ["/b", "/c"] {
        assert_eq!(app.get(path).await.status, 200);
    }
    assert_eq!(tls.heads().len(), 3, "the hit never reached the origin");
    assert_eq!(tls.connections(), 1, "one TLS connection, reused");
    // SNI names the upstream's host; by default so does `Host`.
    let sni = tls.sni.lock().expect("sni").clone();
    assert_eq!(sni, vec![Some("localhost".to_owned())]);
    let host = format!("host: localhost:{}", tls.port);
    assert!(
        tls.heads()
            .iter()
            .all(|h| h.to_ascii_lowercase().contains(&host)),
        "{:?}",
        tls.heads()
    );
    assert_eq!(tls_errors(&app), 0);
}

#[actix_web::test]
async fn an_untrusted_certificate_is_a_502_that_says_so_and_nothing_is_stored() {
    let ca = TestCa::new();
    let tls = spawn_tls_origin(&ca, "localhost").await;
    // No `ca_file`: the test CA is not among the web roots.
    let app = spawn_app_for(vec![origin(&tls.url(), "")], |_| {}).await;

    for n in 1..=2 {
        let reply = app.get("/a").await;
        assert_eq!(reply.status, 502);
        assert!(
            reply.body.contains("TLS failed") && reply.body.contains("UnknownIssuer"),
            "{}",
            reply.body
        );
        assert_eq!(tls_errors(&app), n);
    }
    assert!(
        tls.heads().is_empty(),
        "no request crossed an untrusted link"
    );
    assert_eq!(stored(&app).await, 0);
}

#[actix_web::test]
async fn a_certificate_for_another_name_is_refused() {
    let ca = TestCa::new();
    let tls = spawn_tls_origin(&ca, "other.test").await;
    let app = spawn_app_for(vec![origin(&tls.url(), &ca_file(&ca))], |_| {}).await;

    let reply = app.get("/a").await;
    assert_eq!(reply.status, 502);
    assert!(
        reply.body.contains("TLS failed") && reply.body.contains("not valid for name"),
        "{}",
        reply.body
    );
    assert_eq!(tls_errors(&app), 1);
    assert_eq!(
        tls.sni.lock().expect("sni")[0].as_deref(),
        Some("localhost")
    );
}

#[actix_web::test]
async fn tls_verify_false_accepts_an_unknown_ca() {
    let ca = TestCa::new();
    let tls = spawn_tls_origin(&ca, "other.test").await;
    let app = spawn_app_for(vec![origin(&tls.url(), "tls_verify = false\n")], |_| {}).await;

    let reply = app.get("/a").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "hello");
    assert_eq!(tls_errors(&app), 0);
}

#[actix_web::test]
async fn host_header_client_sends_the_configured_host() {
    let ca = TestCa::new();
    let tls = spawn_tls_origin(&ca, "localhost").await;
    let extra = format!("{}host_header = \"client\"\n", ca_file(&ca));
    let app = spawn_app_for(vec![origin(&tls.url(), &extra)], |_| {}).await;

    // The client's own spelling (case, port) never reaches the origin.
    let reply = app.request("GET", "SITE.test:8080", "/a", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let heads = tls.heads();
    assert_eq!(heads.len(), 1);
    let hosts: Vec<&str> = heads[0]
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
        .collect();
    assert_eq!(hosts, vec![format!("host: {HOST}")], "{}", heads[0]);
    // SNI still names the upstream.
    assert_eq!(
        tls.sni.lock().expect("sni")[0].as_deref(),
        Some("localhost")
    );
}

#[actix_web::test]
async fn tls_verify_false_is_warned_about_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(dir.path(), "https://localhost:1", "");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("tls_verify = false\n");
    std::fs::write(&config, text).expect("config");
    let caje = CajeProcess::start(&config).await;
    let output = caje.logged("tls_verify = false").await;
    assert!(output.contains("WARN"), "{output}");
}

#[actix_web::test]
async fn tls_origin_connections_have_tcp_nodelay() {
    let ca = TestCa::new();
    let tls = spawn_tls_origin(&ca, "localhost").await;
    let app = spawn_app_for(vec![origin(&tls.url(), &ca_file(&ca))], |_| {}).await;
    assert_eq!(app.get("/a").await.status, 200);
    // awc keeps the connection to the origin for the next request.
    let to_origin = crate::keepalive::nodelay_of_sockets(|_, peer| peer == tls.port);
    assert!(!to_origin.is_empty(), "no connection to the origin is open");
    assert!(to_origin.iter().all(|on| *on), "{to_origin:?}");
}

/// Three misses at once over `max_connections` connections (one worker, so
/// one pool): the origin sees only as many connections as allowed.
async fn connections_for_three_concurrent_misses(max_connections: usize) -> usize {
    let ca = TestCa::new();
    let tls = spawn_gated_tls_origin(&ca, "localhost").await;
    let extra = format!("{}max_connections = {max_connections}\n", ca_file(&ca));
    let app = spawn_app_for(vec![origin(&tls.url(), &extra)], |s| s.workers = Some(1)).await;
    let (client, urls) = (app.client.clone(), ["/a", "/b", "/c"].map(|p| app.url(p)));
    let all = actix_web::rt::spawn(async move {
        let requests = urls
            .iter()
            .map(|url| request(&client, url, "GET", HOST, &[]));
        let replies = futures_util::future::join_all(requests).await;
        replies.iter().all(|r| r.status == 200)
    });
    // Every request that got a connection has reached the origin.
    let want = max_connections.min(3);
    eventually(|| async { (tls.heads().len() == want).then_some(()) }).await;
    let during = tls.connections();
    tls.gate.as_ref().expect("gated").add_permits(3);
    assert!(all.await.expect("requests"), "every request answered");
    assert_eq!(tls.heads().len(), 3);
    during
}

#[actix_web::test]
async fn max_connections_bounds_the_connections_to_an_origin() {
    assert_eq!(connections_for_three_concurrent_misses(1).await, 1);
    assert_eq!(connections_for_three_concurrent_misses(64).await, 3);
}
