//! Variants are keyed by the request the origin received, byte for byte.

use super::origin::spawn_trust_origin;
use super::{is_hit, node, raw};

#[actix_web::test]
async fn a_field_the_client_hides_with_connection_keys_no_variant() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    let hidden = b"GET /cors/a HTTP/1.1\r\nHost: site.test\r\nOrigin: https://app.example\r\nConnection: close, Origin\r\n\r\n";
    let answer = raw(&app, hidden).await;
    assert!(answer.contains("origin="), "{answer}");
    assert!(!answer
        .to_ascii_lowercase()
        .contains("access-control-allow-origin"));
    // A browser's request with that Origin gets the answer built for it.
    let reply = app
        .get_with("/cors/a", &[("origin", "https://app.example")])
        .await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example"),
        "{}",
        reply.cache_status()
    );
    assert_eq!(reply.body, "origin=https://app.example");
    // And the hidden request's answer is the one for no Origin at all.
    let plain = app.get("/cors/a").await;
    assert!(is_hit(plain.cache_status()), "{}", plain.cache_status());
    assert_eq!(plain.body, "origin=");
    assert_eq!(origin.count("GET", "/cors/a"), 2);
}

#[actix_web::test]
async fn vary_values_that_differ_in_any_byte_are_other_variants() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    let ask = |value: &'static [u8]| {
        let mut request = b"GET /user/x HTTP/1.1\r\nHost: site.test\r\nX-User: ".to_vec();
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        request
    };
    let ff = raw(&app, &ask(b"alice\xff")).await;
    assert!(ff.ends_with("user=616c696365ff"), "{ff}");
    let fe = raw(&app, &ask(b"alice\xfe")).await;
    assert!(fe.ends_with("user=616c696365fe"), "{fe}");
    let again = raw(&app, &ask(b"alice\xff")).await;
    assert!(again.ends_with("user=616c696365ff"), "{again}");
    assert!(again.contains("Cache-Status: caje; hit") || again.contains("cache-status: caje; hit"));
    assert_eq!(origin.count("GET", "/user/x"), 2);
}
