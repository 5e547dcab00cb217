//! What the request paths skip, seen from outside: a miss on a URL the
//! store does not hold sends the `CacheStore` no message, and the answers
//! stay what they were (a purged URL is a miss again, not a hit from
//! memory).

use serde_json::json;

use crate::helpers::{spawn_admin_app, spawn_origin, TestApp, HOST, TOKEN};

/// `Lookup` messages the node's `CacheStore` has handled.
fn lookups(app: &TestApp) -> u64 {
    let text = app.metrics.render().expect("metrics");
    text.lines()
        .find(|l| {
            l.starts_with("caje_actor_messages_total{actor=\"cache_store\",message=\"lookup\"}")
        })
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |n| n.parse().expect("a count"))
}

#[actix_web::test]
async fn a_miss_on_a_url_the_store_does_not_hold_asks_it_nothing() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let first = app.get("/cache/fast").await;
    assert!(
        first.cache_status().contains("fwd=uri-miss"),
        "{}",
        first.cache_status()
    );
    assert_eq!(lookups(&app), 0, "a URL never stored needs no lookup");
    app.stored(1).await;

    // The first hit reads the entry from disk (one lookup), the next from memory.
    for _ in 0..2 {
        let hit = app.get("/cache/fast").await;
        assert!(
            hit.cache_status().starts_with("caje; hit"),
            "{}",
            hit.cache_status()
        );
    }
    assert_eq!(lookups(&app), 1);

    let purged = app
        .admin(
            "POST",
            "/_caje/purge",
            Some(TOKEN),
            Some(json!({ "url": format!("http://{HOST}/cache/fast") })),
        )
        .await;
    assert_eq!(purged.status, 200, "{}", purged.body);
    let again = app.get("/cache/fast").await;
    assert!(
        again.cache_status().contains("fwd=uri-miss"),
        "{}",
        again.cache_status()
    );
    assert_eq!(lookups(&app), 1, "a purged URL is known to be gone");
}
