//! `metrics_listen`: a second, private listener that serves only
//! `GET /_caje/metrics`, without the token, from the node's one registry
//! (Fly's Prometheus scrapes it over the private network). Every other path
//! on it is 404 and never reaches an origin; the public port is unchanged.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{
    closed_port, process_config, spawn_admin_app, spawn_app_in, spawn_origin, test_client,
    CajeProcess, TestApp, HOST, TOKEN,
};

/// A node with the admin token set and `metrics_listen = 127.0.0.1:0`.
async fn spawn_with_metrics_listener(origin: &crate::helpers::TestOrigin) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(origin, dir, |s| {
        s.admin_token = Some(TOKEN.to_owned());
        s.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await
}

/// `method path` on the metrics listener, for [`HOST`], with `headers`.
async fn on_metrics_port(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> crate::helpers::Reply {
    let port = app.metrics_port.expect("a metrics listener");
    let url = format!("http://127.0.0.1:{port}{path}");
    crate::helpers::request(&app.client, &url, method, HOST, headers).await
}

/// `promtool check metrics` accepts `text` (skipped, said so, when promtool
/// is not installed; `.ci/run` installs it).
pub fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("promtool not run ({e}); .ci/run installs it");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[actix_web::test]
async fn the_metrics_listener_serves_the_nodes_metrics_without_a_token() {
    let origin = spawn_origin().await;
    let app = spawn_with_metrics_listener(&origin).await;
    assert_ne!(app.metrics_port, Some(app.port));
    app.get("/cache/scraped").await;
    app.stored(1).await;
    app.get("/cache/scraped").await;

    let reply = on_metrics_port(&app, "GET", "/_caje/metrics", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    // The same registry as the public endpoint: the proxy's figures are there.
    assert!(
        reply
            .body
            .contains("caje_requests_total{cache_status=\"hit\"} 1"),
        "{}",
        reply.body
    );
    assert!(reply
        .body
        .contains("caje_requests_total{cache_status=\"uri-miss\"} 1"));
    assert!(reply.body.contains("# TYPE caje_origin_seconds histogram"));
    promtool_check(&reply.body);

    // A token, right or wrong, changes nothing there.
    let bearer = format!("Bearer {TOKEN}");
    for auth in ["Bearer wrong", bearer.as_str()] {
        let with = on_metrics_port(&app, "GET", "/_caje/metrics", &[("authorization", auth)]).await;
        assert_eq!(with.status, 200);
    }

    // The public endpoint still wants the token.
    let public = app.admin("GET", "/_caje/metrics", None, None).await;
    assert_eq!(public.status, 401);
    let public = app.admin("GET", "/_caje/metrics", Some(TOKEN), None).await;
    assert_eq!(public.status, 200);
    assert!(public
        .body
        .contains("caje_requests_total{cache_status=\"hit\"} 1"));
}

#[actix_web::test]
async fn the_metrics_listener_serves_nothing_else() {
    let origin = spawn_origin().await;
    let app = spawn_with_metrics_listener(&origin).await;
    let bearer = format!("Bearer {TOKEN}");
    let token = [("authorization", bearer.as_str())];
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/cache/elsewhere"),
        ("GET", "/_caje/list"),
        ("GET", "/_caje/health"),
        ("GET", "/_caje/login"),
        ("POST", "/_caje/purge"),
        ("POST", "/_caje/clear_fs"),
        ("PURGE", "/cache/elsewhere"),
        ("GET", "/_caje/metrics/"),
        ("GET", "/_CAJE/metrics"),
        ("GET", "/metrics"),
    ] {
        for headers in [&[][..], &token[..]] {
            let reply = on_metrics_port(&app, method, path, headers).await;
            assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
            assert!(
                reply.body.contains("only GET /_caje/metrics"),
                "{}",
                reply.body
            );
        }
    }
    // Only GET: other methods on the metrics path do nothing either.
    let post = on_metrics_port(&app, "POST", "/_caje/metrics", &[]).await;
    assert!(post.status >= 400, "POST /_caje/metrics: {}", post.status);
    assert_eq!(origin.counter.get("/"), 0);
    assert_eq!(origin.counter.get("/cache/elsewhere"), 0);
    assert_eq!(origin.counter.get("/metrics"), 0);
    // Nothing was purged or cleared: the public admin still lists its entry.
    app.get("/cache/kept").await;
    app.stored(1).await;
    let purge = on_metrics_port(&app, "PURGE", "/cache/kept", &token).await;
    assert_eq!(purge.status, 404);
    assert!(app.get("/cache/kept").await.cache_status().contains("hit"));
}

#[actix_web::test]
async fn without_metrics_listen_there_is_no_metrics_listener() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    assert_eq!(app.metrics_port, None);
}

#[actix_web::test]
async fn a_metrics_address_that_cannot_be_bound_stops_the_start() {
    let origin = spawn_origin().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = caje::config::Settings::with_origins(vec![caje::config::Origin {
        timeout: Duration::from_secs(10),
        ..caje::config::Origin::new(HOST, origin.url())
    }]);
    settings.listen = "127.0.0.1:0".parse().expect("addr");
    settings.cache_dir = dir.path().join("cache");
    settings.database = dir.path().join("manifest.db");
    settings.litefs = caje::config::LiteFsMode::Off;
    settings.metrics_listen = Some(addr);
    let err = match caje::startup::Application::build(settings).await {
        Ok(_) => panic!("caje started with {addr} taken"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

/// The binary with `metrics_listen` set stops on SIGTERM as before, and
/// frees the metrics port too.
#[actix_web::test]
async fn a_node_with_a_metrics_listener_stops_on_sigterm_and_frees_it() {
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let metrics_port = closed_port();
    let extra = format!("metrics_listen = \"127.0.0.1:{metrics_port}\"");
    let config = process_config(dir.path(), &origin.url(), &extra);
    let mut node = CajeProcess::start(&config).await;
    let client = test_client();
    let url = format!("http://127.0.0.1:{metrics_port}/_caje/metrics");
    let mut scraped = client.get(&url).send().await.expect("the metrics listener");
    assert_eq!(scraped.status(), 200);
    let body = scraped.body().await.expect("body");
    assert!(String::from_utf8_lossy(&body).contains("caje_actor_mailbox_depth"));

    node.signal(libc::SIGTERM);
    let status = node.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", node.output());
    for port in [node.port, metrics_port] {
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            panic!("port {port} is still taken after the exit: {e}");
        }
    }
}
