//! No open proxy: only a configured host reaches an upstream.

use std::time::Duration;

use crate::helpers::{spawn_app, spawn_app_with, spawn_origin, HOST};

#[actix_web::test]
async fn only_configured_hosts_reach_an_upstream() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let refused = [
        "elsewhere.test".to_owned(),
        "evil.site.test".to_owned(),
        "site.test.evil.test".to_owned(),
        "site.testx".to_owned(),
        "xsite.test".to_owned(),
        // config::normalize_host keeps a trailing dot: not the configured name.
        "site.test.".to_owned(),
        // The origin's own address, and caje's, are not configured hosts.
        format!("127.0.0.1:{}", origin.port),
        format!("localhost:{}", origin.port),
        "127.0.0.1".to_owned(),
        format!("127.0.0.1:{}", app.port),
        format!("[::1]:{}", origin.port),
    ];
    for host in &refused {
        for method in ["GET", "POST", "DELETE"] {
            let reply = app.request(method, host, "/cache/h", &[]).await;
            assert_eq!(reply.status, 421, "{method} for {host}: {}", reply.body);
        }
    }
    assert_eq!(origin.counter.total(), 0, "the origin was asked");
    // Case and port are ignored (config::normalize_host).
    for (n, host) in ["site.test", "SITE.TEST", "Site.Test:8443", "site.test:1"]
        .into_iter()
        .enumerate()
    {
        let reply = app
            .request("GET", host, &format!("/headers/ok{n}"), &[])
            .await;
        assert_eq!(reply.status, 200, "{host}: {}", reply.body);
    }
    assert_eq!(origin.counter.total(), 4);
}

#[actix_web::test]
async fn the_origins_own_address_is_a_host_only_when_configured() {
    let origin = spawn_origin().await;
    let app = spawn_app_with(vec![("127.0.0.1", origin.url(), Duration::from_secs(10))]).await;
    let own = format!("127.0.0.1:{}", origin.port);
    let reply = app.request("GET", &own, "/cache/own", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(origin.counter.get("/cache/own"), 1);
    let reply = app.request("GET", HOST, "/cache/own", &[]).await;
    assert_eq!(reply.status, 421, "{}", reply.body);
    assert_eq!(origin.counter.get("/cache/own"), 1);
}
