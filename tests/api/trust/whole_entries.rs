//! A stored entry holds a whole `GET` answer, or a part of one the origin
//! validated: a `HEAD` refreshes with `GET`, and a range on a miss is
//! stored as a part only with a validator.

use super::origin::spawn_trust_origin;
use super::{is_hit, node};
use crate::helpers::{eventually, HOST};

#[actix_web::test]
async fn a_head_within_stale_while_revalidate_refreshes_with_get() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    assert_eq!(app.get("/swr/page").await.body, "swr body #1");
    app.stored(1).await;
    // Poll with HEAD until one is answered stale and starts the refresh.
    eventually(|| async {
        let reply = app.request("HEAD", HOST, "/swr/page", &[]).await;
        reply
            .cache_status()
            .contains("stale-while-revalidate")
            .then_some(())
    })
    .await;
    app.stored(2).await;
    assert_eq!(origin.count("HEAD", "/swr/page"), 0, "refreshed with HEAD");
    let reply = app.get("/swr/page").await;
    assert_eq!(reply.body, "swr body #2", "{}", reply.cache_status());
}

#[actix_web::test]
async fn a_range_request_on_a_miss_stores_its_part_only_with_a_validator() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    // The range is asked of the origin (cache::partial), but its 206 has no
    // ETag or Last-Modified: a later part could not be told to be of the
    // same representation, so this one is relayed and not stored.
    let first = app.get_with("/range/a", &[("range", "bytes=0-3")]).await;
    assert_eq!((first.status, first.body.as_str()), (206, "0123"));
    assert!(
        !first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    // A whole GET is stored whole, and ranges are then cut from it.
    let whole = app.get("/range/a").await;
    assert!(
        whole.cache_status().contains("stored"),
        "{}",
        whole.cache_status()
    );
    app.stored(1).await;
    let part = app.get_with("/range/a", &[("range", "bytes=2-5")]).await;
    assert_eq!((part.status, part.body.as_str()), (206, "2345"));
    assert!(is_hit(part.cache_status()), "{}", part.cache_status());
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[0].head.contains("\nrange: bytes=0-3"),
        "{}",
        seen[0].head
    );
    assert!(!seen[1].head.contains("\nrange:"), "{}", seen[1].head);
}
