//! Routing by host, header forwarding rules, and origin failures.

use std::time::Duration;

use crate::helpers::{
    closed_port, raw_request, spawn_app, spawn_app_with, spawn_origin, spawn_raw_origin, HOST,
};

#[actix_web::test]
async fn unknown_host_is_misdirected() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let reply = app.request("GET", "elsewhere.test", "/cache/x", &[]).await;
    assert_eq!(reply.status, 421);
    assert_eq!(
        reply.body,
        "caje: no origin is configured for host \"elsewhere.test\"\n"
    );
    assert_eq!(origin.counter.get("/cache/x"), 0);
}

#[actix_web::test]
async fn a_request_without_host_is_refused() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let answer = raw_request(app.port, b"GET /cache/x HTTP/1.0\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.0 400") || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert_eq!(origin.counter.get("/cache/x"), 0);
}

#[actix_web::test]
async fn hosts_route_to_their_own_origins_and_ports_are_ignored() {
    let a = spawn_origin().await;
    let b = spawn_origin().await;
    let app = spawn_app_with(vec![
        ("a.test", a.url(), Duration::from_secs(5)),
        ("b.test", b.url(), Duration::from_secs(5)),
    ])
    .await;
    let from_a = app.request("GET", "A.test:8080", "/cache/same", &[]).await;
    let from_b = app.request("GET", "b.test", "/cache/same", &[]).await;
    assert_eq!(from_a.body, "/cache/same #1");
    assert_eq!(from_b.body, "/cache/same #1");
    assert_eq!(
        (a.counter.get("/cache/same"), b.counter.get("/cache/same")),
        (1, 1)
    );
    app.stored(2).await;
    // Each host has its own entry.
    let again_b = app.request("GET", "b.test:1", "/cache/same", &[]).await;
    assert!(again_b.cache_status().contains("hit"));
    assert_eq!(b.counter.get("/cache/same"), 1);
}

#[actix_web::test]
async fn hop_by_hop_headers_are_removed_on_the_way_in() {
    let origin =
        spawn_raw_origin(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await;
    let app = spawn_app_with(vec![(
        HOST,
        format!("http://127.0.0.1:{}", origin.port),
        Duration::from_secs(5),
    )])
    .await;
    let request = format!(
        "GET /in?q=1 HTTP/1.1\r\nHost: {HOST}\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Authorization: Basic eA==\r\nX-Kept: yes\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
    );
    let answer = raw_request(app.port, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = origin
        .requests
        .lock()
        .expect("lock")
        .join("")
        .to_ascii_lowercase();
    assert!(seen.starts_with("get /in?q=1 http/1.1\r\n"), "{seen}");
    for gone in [
        "\r\nx-hop:",
        "\r\nkeep-alive:",
        "\r\nte:",
        "\r\nupgrade:",
        "\r\nproxy-authorization:",
        "evil.test",
        "https",
    ] {
        assert!(!seen.contains(gone), "{gone} reached the origin:\n{seen}");
    }
    assert!(seen.contains("x-kept: yes"), "{seen}");
    assert!(seen.contains("via: 1.1 caje"), "{seen}");
    assert!(seen.contains("x-forwarded-for: 127.0.0.1\r\n"), "{seen}");
    assert!(
        seen.contains(&format!("x-forwarded-host: {HOST}")),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: http\r\n"), "{seen}");
}

#[actix_web::test]
async fn hop_by_hop_headers_are_removed_on_the_way_out() {
    let origin = spawn_raw_origin(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close, x-hop\r\nx-hop: secret\r\nkeep-alive: timeout=5\r\nproxy-authenticate: Basic\r\ntrailer: x-t\r\nupgrade: h2c\r\nx-end: kept\r\nvia: 1.1 upstream\r\n\r\nok",
    )
    .await;
    let app = spawn_app_with(vec![(
        HOST,
        format!("http://127.0.0.1:{}", origin.port),
        Duration::from_secs(5),
    )])
    .await;
    let reply = app.get("/out").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ok");
    for gone in [
        "x-hop",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
        "upgrade",
    ] {
        assert!(reply.header(gone).is_none(), "{gone} reached the client");
    }
    assert_eq!(reply.header("x-end"), Some("kept"));
    let via: Vec<&str> = reply
        .headers
        .get_all("via")
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(via, ["1.1 upstream", "1.1 caje"]);
}

#[actix_web::test]
async fn request_bodies_are_forwarded() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let mut res = app
        .client
        .post(app.url("/echo"))
        .insert_header(("host", HOST))
        .send_body("hello origin")
        .await
        .expect("answer");
    let body = res.body().await.expect("body");
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("POST /echo"), "{body}");
    assert!(body.ends_with("\nhello origin"), "{body}");
    assert!(body.contains("content-length: 12"), "{body}");
}

#[actix_web::test]
async fn unreachable_origin_is_a_bad_gateway() {
    let port = closed_port();
    let app = spawn_app_with(vec![(
        HOST,
        format!("http://127.0.0.1:{port}"),
        Duration::from_secs(5),
    )])
    .await;
    let reply = app.get("/anything").await;
    assert_eq!(reply.status, 502);
    assert!(
        reply.body.starts_with(&format!(
            "caje: origin http://127.0.0.1:{port} for {HOST} could not be reached"
        )),
        "{}",
        reply.body
    );
}

#[actix_web::test]
async fn slow_origin_is_a_gateway_timeout() {
    let origin = spawn_origin().await;
    let app = spawn_app_with(vec![(HOST, origin.url(), Duration::from_millis(300))]).await;
    let started = std::time::Instant::now();
    let reply = app.get("/sleep/3000").await;
    assert_eq!(reply.status, 504);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        reply.body,
        format!(
            "caje: origin {} for {HOST} did not answer within 300ms\n",
            origin.url()
        )
    );
    // Other requests are still served.
    assert_eq!(app.get("/cache/fine").await.status, 200);
}
