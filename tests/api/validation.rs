//! Validation (RFC 9111 §4.3, RFC 9110 §13): stale entries are revalidated
//! with the stored validators, a 304 refreshes the stored head and keeps the
//! body, and clients' own conditional requests get a 304 from the cache.

use crate::helpers::{eventually, spawn_app, spawn_origin, TestApp};

/// Waits until `path` is answered stale-then-revalidated, and returns that answer.
async fn revalidated(app: &TestApp, path: &str) -> crate::helpers::Reply {
    eventually(|| async {
        let reply = app.get(path).await;
        reply.cache_status().contains("fwd=stale").then_some(reply)
    })
    .await
}

#[actix_web::test]
async fn a_stale_entry_is_revalidated_with_its_etag_and_the_304_refreshes_it() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/etag/1/a";
    let first = app.get(path).await;
    assert_eq!(first.header("x-revalidated"), Some("no"));
    app.stored(1).await;

    let reply = revalidated(&app, path).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "/etag/1/a #1", "the stored body is kept");
    assert!(
        reply
            .cache_status()
            .starts_with("caje; fwd=stale; fwd-status=304; stored; ttl="),
        "{}",
        reply.cache_status()
    );
    assert_eq!(
        reply.header("x-revalidated"),
        Some("2"),
        "the 304's fields win"
    );
    assert_eq!(reply.header("etag"), Some("\"v1\""));
    assert_eq!(reply.header("cache-control"), Some("max-age=60"));

    // The refreshed head is stored: once it is, answers are fresh hits with
    // it (a request racing the store may revalidate once more).
    let hit = eventually(|| async {
        let reply = app.get(path).await;
        reply
            .cache_status()
            .starts_with("caje; hit")
            .then_some(reply)
    })
    .await;
    let revalidations: usize = hit
        .header("x-revalidated")
        .and_then(|n| n.parse().ok())
        .expect("a hit carries the 304's fields");
    assert!(revalidations >= 2);
    assert_eq!(hit.body, "/etag/1/a #1");
    assert_eq!(origin.counter.get(path), revalidations);
}

#[actix_web::test]
async fn last_modified_is_a_validator_too() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/lastmod/1/b";
    app.get(path).await;
    app.stored(1).await;
    let reply = revalidated(&app, path).await;
    assert_eq!(reply.body, "/lastmod/1/b #1");
    assert!(
        reply.cache_status().contains("fwd-status=304"),
        "{}",
        reply.cache_status()
    );
    assert_eq!(reply.header("x-revalidated"), Some("2"));
}

#[actix_web::test]
async fn a_changed_response_replaces_the_entry() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/changing/1/c";
    app.get(path).await;
    app.stored(1).await;
    let reply = revalidated(&app, path).await;
    assert_eq!(reply.body, "/changing/1/c #2");
    assert_eq!(reply.header("etag"), Some("\"v2\""));
    assert!(
        reply.cache_status().contains("fwd-status=200; stored"),
        "{}",
        reply.cache_status()
    );
}

#[actix_web::test]
async fn a_request_asking_for_validation_revalidates_a_fresh_entry() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/etag/60/d";
    app.get(path).await;
    app.stored(1).await;
    let reply = app.get_with(path, &[("cache-control", "no-cache")]).await;
    assert_eq!(reply.body, "/etag/60/d #1");
    assert!(
        reply
            .cache_status()
            .starts_with("caje; fwd=request; fwd-status=304"),
        "{}",
        reply.cache_status()
    );
}

#[actix_web::test]
async fn a_clients_validators_get_a_304_from_the_cache() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    for path in ["/etag/60/e", "/weak/60/e", "/lastmod/60/e"] {
        app.get(path).await;
    }
    app.stored(3).await;

    let strong = app
        .get_with("/etag/60/e", &[("if-none-match", "\"x\", \"v1\"")])
        .await;
    assert_eq!(strong.status, 304);
    assert!(
        strong.cache_status().starts_with("caje; hit"),
        "{}",
        strong.cache_status()
    );
    assert_eq!(strong.header("etag"), Some("\"v1\""));
    assert_eq!(strong.header("cache-control"), Some("max-age=60"));
    assert_eq!(strong.body, "");
    // Weak comparison: a weak stored tag matches the same opaque tag.
    let weak = app
        .get_with("/weak/60/e", &[("if-none-match", "\"w1\"")])
        .await;
    assert_eq!(weak.status, 304);
    let other = app
        .get_with("/etag/60/e", &[("if-none-match", "\"v2\"")])
        .await;
    assert_eq!((other.status, other.body.as_str()), (200, "/etag/60/e #1"));

    let since = app
        .get_with(
            "/lastmod/60/e",
            &[("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT")],
        )
        .await;
    assert_eq!(since.status, 304);
    let before = app
        .get_with(
            "/lastmod/60/e",
            &[("if-modified-since", "Sun, 31 Dec 2023 00:00:00 GMT")],
        )
        .await;
    assert_eq!(before.status, 200);
    for path in ["/etag/60/e", "/weak/60/e", "/lastmod/60/e"] {
        assert_eq!(
            origin.counter.get(path),
            1,
            "{path} was answered by the cache"
        );
    }
}
