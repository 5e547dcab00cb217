//! No unkeyed part of a request reaches the origin: the host, the client's
//! address, rewriting fields and `GET`/`HEAD` bodies are caje's to set.

use std::sync::Arc;

use super::origin::spawn_trust_origin;
use super::{is_hit, node, raw};
use crate::helpers::spawn_app_in;

#[actix_web::test]
async fn the_origin_is_told_the_configured_host_whatever_the_client_wrote() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    let spellings: [&[u8]; 5] = [
        b"GET /host/1 HTTP/1.1\r\nHost: site.test:6666\r\nConnection: close\r\n\r\n",
        b"GET /host/2 HTTP/1.1\r\nHost: SITE.TEST\r\nConnection: close\r\n\r\n",
        b"GET /host/3 HTTP/1.1\r\nHost: site.test:\r\nConnection: close\r\n\r\n",
        b"GET http://site.test:31337/host/4 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
        b"GET http://Site.Test./host/5 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    ];
    for request in spellings {
        raw(&app, request).await;
    }
    for n in 1..=4 {
        let reply = app.get(&format!("/host/{n}")).await;
        assert_eq!(reply.body, "x-forwarded-host=site.test", "/host/{n}");
        assert!(is_hit(reply.cache_status()), "{}", reply.cache_status());
    }
    for seen in origin.seen() {
        assert!(
            seen.head.contains("\nx-forwarded-host: site.test\n"),
            "{}",
            seen.head
        );
    }
    // The trailing-dot name is another host: refused, never forwarded.
    assert_eq!(origin.count("GET", "/host/5"), 0);
}

#[actix_web::test]
async fn client_ip_and_rewriting_fields_never_reach_the_origin() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    let fields = [
        ("x-forwarded-host", "evil.test"),
        ("x-forwarded", "for=203.0.113.1"),
        ("x-proxy-host", "proxy.evil.test"),
        ("x-original-uri", "/original-uri"),
        ("x-override-url", "/override"),
        ("x-envoy-original-path", "/envoy"),
        ("x-original-method", "DELETE"),
        ("x-client-ip", "203.0.113.2"),
        ("client-ip", "203.0.113.3"),
        ("true-client-ip", "203.0.113.4"),
        ("x-cluster-client-ip", "203.0.113.5"),
        ("cf-connecting-ip", "203.0.113.6"),
        ("fastly-client-ip", "203.0.113.7"),
        ("fly-client-ip", "203.0.113.8"),
        ("x-originating-ip", "203.0.113.9"),
        ("x-remote-ip", "203.0.113.10"),
        ("x-remote-addr", "203.0.113.11"),
        ("x-scheme", "scheme-https"),
        ("front-end-https", "front-end-on"),
        ("x-arr-ssl", "arr-ssl-on"),
    ];
    let reply = app.get_with("/host/fields", &fields).await;
    assert_eq!(reply.body, "x-forwarded-host=site.test");
    let head = &origin.seen()[0].head;
    for (name, value) in fields {
        assert!(
            !head.contains(value),
            "the origin saw {name}: {value}\n{head}"
        );
    }
}

#[actix_web::test]
async fn a_get_or_head_body_never_reaches_the_origin() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    let fat = b"GET /body/fat HTTP/1.1\r\nHost: site.test\r\nContent-Length: 6\r\nConnection: close\r\n\r\npoison";
    let answer = raw(&app, fat).await;
    assert!(answer.ends_with("body="), "{answer}");
    let reply = app.get("/body/fat").await;
    assert_eq!(reply.body, "body=");
    assert!(is_hit(reply.cache_status()), "{}", reply.cache_status());
    let chunked = b"HEAD /body/head HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n6\r\npoison\r\n0\r\n\r\n";
    raw(&app, chunked).await;
    // A body that looks like a request is read as a body, never as a
    // second request.
    let body = b"GET /body/smuggled HTTP/1.1\r\nHost: site.test\r\n\r\n";
    let mut smuggle = format!(
        "GET /body/outer HTTP/1.1\r\nHost: site.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    smuggle.extend_from_slice(body);
    smuggle.extend_from_slice(
        b"GET /body/after HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    );
    let answer = raw(&app, &smuggle).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    let seen = origin.seen();
    assert!(seen.iter().all(|s| s.body.is_empty()), "{seen:?}");
    assert!(seen.iter().all(|s| s.path != "/body/smuggled"), "{seen:?}");
    for s in &seen {
        let head = s.head.to_ascii_lowercase();
        assert!(!head.contains("content-length: 6"), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
    }
}

#[actix_web::test]
async fn the_client_address_comes_from_the_configured_proxy_header_only() {
    let origin = spawn_trust_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin.as_test_origin(), dir, |s| {
        s.client_ip_header = Some(actix_web::http::header::HeaderName::from_static(
            "fly-client-ip",
        ))
    })
    .await;
    let fields = [
        ("fly-client-ip", "203.0.113.50"),
        ("x-real-ip", "203.0.113.51"),
    ];
    app.get_with("/host/ip", &fields).await;
    app.get_with("/host/not-an-ip", &[("fly-client-ip", "nonsense")])
        .await;
    let seen = origin.seen();
    assert!(
        seen[0].head.contains("\nx-forwarded-for: 203.0.113.50\n"),
        "{}",
        seen[0].head
    );
    assert!(!seen[0].head.contains("fly-client-ip"), "{}", seen[0].head);
    assert!(!seen[0].head.contains("203.0.113.51"), "{}", seen[0].head);
    assert!(
        seen[1].head.contains("\nx-forwarded-for: 127.0.0.1\n"),
        "{}",
        seen[1].head
    );
}

#[actix_web::test]
async fn a_configured_client_ip_header_never_reaches_the_origin_itself() {
    let origin = spawn_trust_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    // A name no list of forwarding fields holds: only the setting hides it.
    let app = spawn_app_in(&origin.as_test_origin(), dir, |s| {
        s.client_ip_header = Some(actix_web::http::header::HeaderName::from_static(
            "x-edge-client",
        ))
    })
    .await;
    app.get_with("/host/edge", &[("x-edge-client", "203.0.113.60")])
        .await;
    let head = &origin.seen()[0].head;
    assert!(head.contains("\nx-forwarded-for: 203.0.113.60\n"), "{head}");
    assert!(!head.contains("x-edge-client"), "{head}");
}
