//! The caching decision, freshness, `Age` and `Cache-Status`.

use crate::helpers::{eventually, spawn_app, spawn_origin};

#[actix_web::test]
async fn miss_then_hit_asks_the_origin_once() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;

    let first = app.get("/cache/a?x=1").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, "/cache/a #1");
    assert_eq!(
        first.cache_status(),
        "caje; fwd=uri-miss; fwd-status=200; stored; ttl=60"
    );
    app.stored(1).await;

    let second = app.get("/cache/a?x=1").await;
    assert_eq!(second.body, "/cache/a #1");
    assert!(
        second.cache_status().starts_with("caje; hit; ttl="),
        "{}",
        second.cache_status()
    );
    assert_eq!(second.header("age"), Some("0"));
    assert_eq!(origin.counter.get("/cache/a"), 1);

    // The query is part of the key.
    let other = app.get("/cache/a?x=2").await;
    assert_eq!(other.body, "/cache/a #2");
}

#[actix_web::test]
async fn uncacheable_responses_are_not_stored() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    for path in ["/no-store", "/private", "/plain", "/no-cache", "/cookie"] {
        let first = app.get(path).await;
        assert_eq!(first.status, 200, "{path}");
        assert_eq!(
            first.cache_status(),
            "caje; fwd=uri-miss; fwd-status=200",
            "{path}"
        );
        let second = app.get(path).await;
        assert_eq!(
            second.body,
            format!("{path} #2"),
            "{path} was served from cache"
        );
        assert_eq!(origin.counter.get(path), 2, "{path}");
    }
}

#[actix_web::test]
async fn head_is_answered_from_a_stored_get() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let get = app.get("/cache/head").await;
    app.stored(1).await;

    let head = app
        .request("HEAD", crate::helpers::HOST, "/cache/head", &[])
        .await;
    assert_eq!(head.status, 200);
    assert!(
        head.cache_status().contains("hit"),
        "{}",
        head.cache_status()
    );
    let len = get.body.len().to_string();
    assert_eq!(head.header("content-length"), Some(len.as_str()));
    assert_eq!(head.body, "");
    assert_eq!(origin.counter.get("/cache/head"), 1);

    // A HEAD miss goes to the origin as a HEAD and stores nothing.
    let miss = app
        .request("HEAD", crate::helpers::HOST, "/cache/other", &[])
        .await;
    assert!(miss.cache_status().contains("fwd=uri-miss"));
    assert!(!miss.cache_status().contains("stored"));
}

#[actix_web::test]
async fn other_methods_always_go_to_the_origin() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    app.get("/cache/post").await;
    app.stored(1).await;
    let post = app
        .request("POST", crate::helpers::HOST, "/cache/post", &[])
        .await;
    assert_eq!(post.body, "/cache/post #1");
    assert_eq!(post.cache_status(), "caje; fwd=method; fwd-status=200");
    assert_eq!(origin.counter.get("POST /cache/post"), 1);
}

#[actix_web::test]
async fn entries_expire_with_max_age() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    app.get("/max-age/1/e").await;
    app.stored(1).await;
    let hit = app.get("/max-age/1/e").await;
    assert!(hit.cache_status().contains("hit"), "{}", hit.cache_status());

    // Once the second has passed, the stale entry is refetched and replaced.
    let refreshed = eventually(|| async {
        let reply = app.get("/max-age/1/e").await;
        reply.cache_status().contains("fwd=stale").then_some(reply)
    })
    .await;
    assert_eq!(refreshed.body, "/max-age/1/e #2");
    assert!(refreshed.cache_status().contains("stored"));
    assert_eq!(origin.counter.get("/max-age/1/e"), 2);
}

#[actix_web::test]
async fn age_counts_the_origins_age_and_the_time_stored() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let miss = app.get("/age").await;
    assert_eq!(
        miss.header("age"),
        Some("30"),
        "the origin's Age passes through"
    );
    assert!(
        miss.cache_status().ends_with("ttl=30"),
        "{}",
        miss.cache_status()
    );
    app.stored(1).await;
    let hit = app.get("/age").await;
    let age: u64 = hit.header("age").and_then(|a| a.parse().ok()).expect("Age");
    assert!((30..35).contains(&age), "age {age}");
    let ttl: u64 = hit
        .cache_status()
        .rsplit("ttl=")
        .next()
        .and_then(|t| t.parse().ok())
        .expect("ttl");
    assert!(ttl <= 30, "ttl {ttl}");
}

#[actix_web::test]
async fn request_no_cache_goes_forward_and_refreshes() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    app.get("/cache/nc").await;
    app.stored(1).await;
    let forced = app
        .get_with("/cache/nc", &[("cache-control", "no-cache")])
        .await;
    assert_eq!(forced.body, "/cache/nc #2");
    assert!(
        forced.cache_status().starts_with("caje; fwd=request"),
        "{}",
        forced.cache_status()
    );
}

#[actix_web::test]
async fn variants_are_selected_by_vary() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let en = app.get_with("/vary", &[("accept-language", "en")]).await;
    assert_eq!(en.body, "/vary #1 lang=en");
    app.stored(1).await;

    let fr = app.get_with("/vary", &[("accept-language", "fr")]).await;
    assert_eq!(fr.body, "/vary #2 lang=fr");
    assert!(
        fr.cache_status().contains("fwd=vary-miss"),
        "{}",
        fr.cache_status()
    );
    app.stored(2).await;

    let en_again = app.get_with("/vary", &[("accept-language", "en")]).await;
    assert_eq!(en_again.body, "/vary #1 lang=en");
    assert!(en_again.cache_status().contains("hit"));
    let fr_again = app.get_with("/vary", &[("accept-language", "fr")]).await;
    assert_eq!(fr_again.body, "/vary #2 lang=fr");
    assert_eq!(origin.counter.get("/vary"), 2);
}
