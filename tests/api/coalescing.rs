//! Request coalescing: concurrent misses for one URL make one origin
//! request; the others are answered from its stored response.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use crate::helpers::{spawn_app, spawn_app_in, spawn_origin};

#[actix_web::test]
async fn concurrent_misses_make_one_origin_request() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let replies = join_all((0..20).map(|_| app.get("/sleep/300"))).await;

    assert_eq!(origin.counter.get("/sleep/300"), 1);
    assert!(replies
        .iter()
        .all(|r| r.status == 200 && r.body == "/sleep/300 #1"));
    let leaders: Vec<&str> = replies
        .iter()
        .map(|r| r.cache_status())
        .filter(|s| s.contains("stored"))
        .collect();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    let collapsed = replies
        .iter()
        .filter(|r| {
            r.cache_status()
                .starts_with("caje; fwd=uri-miss; fwd-status=200; collapsed; ttl=")
        })
        .count();
    assert_eq!(collapsed, 19);
}

#[actix_web::test]
async fn when_the_response_is_not_storable_everyone_asks_the_origin() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/headers/private?x-delay-ms=200&cache-control=private";
    let replies = join_all((0..8).map(|_| app.get(path))).await;
    let mut bodies: Vec<String> = replies.iter().map(|r| r.body.clone()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 8, "each got its own answer: {bodies:?}");
    assert!(replies
        .iter()
        .all(|r| !r.cache_status().contains("collapsed")));
    assert_eq!(origin.counter.get("/headers/private"), 8);
}

#[actix_web::test]
async fn a_follower_waits_only_so_long() {
    let origin = spawn_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| {
        s.coalesce_timeout = Duration::from_millis(100)
    })
    .await;
    let replies = join_all((0..4).map(|_| app.get("/sleep/1500"))).await;
    assert!(replies.iter().all(|r| r.status == 200));
    // The followers gave up on the slow leader and asked themselves.
    assert_eq!(origin.counter.get("/sleep/1500"), 4);
    assert!(replies
        .iter()
        .all(|r| !r.cache_status().contains("collapsed")));
}
