//! Serving stale responses: stale-while-revalidate refreshes in the
//! background once, stale-if-error (or the configured default) stands in
//! for a failing origin, and must-revalidate forbids both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::helpers::{closed_port, eventually, spawn_app, spawn_app_in, spawn_origin};

/// Whether a Cache-Status reports an expired entry: `ttl` of 0 or less.
fn expired(cache_status: &str) -> bool {
    cache_status
        .split("; ")
        .find_map(|p| p.strip_prefix("ttl="))
        .and_then(|t| t.parse::<i64>().ok())
        .is_some_and(|t| t <= 0)
}

#[actix_web::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path =
        "/headers/swr?cache-control=max-age%3D1%2C%20stale-while-revalidate%3D60&x-delay-ms=400";
    app.get(path).await;
    app.stored(1).await;

    // The first stale request is answered from cache without waiting for
    // the origin (which takes 400 ms), and starts the refresh.
    let stale = eventually(|| async {
        let started = Instant::now();
        let reply = app.get(path).await;
        let status = reply.cache_status().to_owned();
        status
            .contains("detail=stale-while-revalidate")
            .then_some((reply, started.elapsed()))
    })
    .await;
    let (reply, took) = stale;
    assert_eq!(reply.body, "/headers/swr #1");
    assert!(
        reply.cache_status().starts_with("caje; hit; ttl="),
        "{}",
        reply.cache_status()
    );
    assert!(expired(reply.cache_status()), "{}", reply.cache_status());
    assert!(
        took < Duration::from_millis(300),
        "waited {took:?} for the origin"
    );

    // More stale requests while the refresh runs: all from cache, no new refresh.
    let replies = join_all((0..5).map(|_| app.get(path))).await;
    assert!(replies
        .iter()
        .all(|r| r.cache_status().starts_with("caje; hit")));

    let refreshed = eventually(|| async {
        let reply = app.get(path).await;
        (reply.body == "/headers/swr #2").then_some(reply)
    })
    .await;
    assert!(
        refreshed.cache_status().starts_with("caje; hit"),
        "{}",
        refreshed.cache_status()
    );
    assert_eq!(
        origin.counter.get("/headers/swr"),
        2,
        "one background refresh"
    );
}

#[actix_web::test]
async fn must_revalidate_forbids_serving_stale() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/headers/strict?cache-control=max-age%3D1%2C%20must-revalidate%2C%20stale-while-revalidate%3D60%2C%20stale-if-error%3D60";
    app.get(path).await;
    app.stored(1).await;
    let reply = eventually(|| async {
        let reply = app.get(path).await;
        (reply.body != "/headers/strict #1").then_some(reply)
    })
    .await;
    assert!(
        reply.cache_status().starts_with("caje; fwd=stale"),
        "{}",
        reply.cache_status()
    );

    let flaky = "/flaky/strict?cc=max-age%3D1%2C%20must-revalidate%2C%20stale-if-error%3D600";
    app.get(flaky).await;
    app.stored(3).await;
    let failed = eventually(|| async {
        let reply = app.get(flaky).await;
        (reply.status == 500).then_some(reply)
    })
    .await;
    assert_eq!(failed.body, "/flaky/strict #2");
}

#[actix_web::test]
async fn stale_if_error_stands_in_for_a_failing_origin() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/flaky/sie?cc=max-age%3D1%2C%20stale-if-error%3D600";
    app.get(path).await;
    app.stored(1).await;
    let reply = eventually(|| async {
        let reply = app.get(path).await;
        reply
            .cache_status()
            .contains("stale-if-error")
            .then_some(reply)
    })
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "/flaky/sie #1");
    assert!(
        reply
            .cache_status()
            .starts_with("caje; fwd=stale; fwd-status=500; ttl=")
            && expired(reply.cache_status()),
        "{}",
        reply.cache_status()
    );
    assert!(reply.cache_status().ends_with("detail=stale-if-error"));
}

#[actix_web::test]
async fn an_unreachable_origin_uses_the_configured_default_window() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/max-age/1/down";
    app.get(path).await;
    app.stored(1).await;
    let dead = format!("http://127.0.0.1:{}", closed_port());

    // Without a default window, a stale copy is not served for a dead origin.
    let strict = spawn_app_in(&origin, Arc::clone(&app.dir), |s| {
        s.origins[0].upstream = dead.clone();
    })
    .await;
    let reply = eventually(|| async {
        let reply = strict.get(path).await;
        (reply.status != 200).then_some(reply)
    })
    .await;
    assert_eq!(reply.status, 502);

    let forgiving = spawn_app_in(&origin, Arc::clone(&app.dir), |s| {
        s.origins[0].upstream = dead.clone();
        s.stale_if_error = Duration::from_secs(600);
    })
    .await;
    let reply = forgiving.get(path).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "/max-age/1/down #1");
    assert!(
        reply.cache_status().starts_with("caje; fwd=stale; ttl=") && expired(reply.cache_status()),
        "{}",
        reply.cache_status()
    );
}
