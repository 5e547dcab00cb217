//! A bounded cache directory: least recently used entries go first, and the
//! size never exceeds the bound by more than the entry being added.

use std::sync::Arc;

use caje::actors::cache_store::GetCacheStats;

use crate::helpers::{spawn_app_in, spawn_origin, TestApp};

/// Each `/chunked/100?n` entry is a 100 KiB body plus a small head.
const ENTRY: u64 = 100 * 1024;
const BOUND: u64 = 3 * ENTRY + ENTRY / 2;

async fn cached(app: &TestApp, path: &str) -> bool {
    let reply = app
        .get_with(path, &[("cache-control", "only-if-cached")])
        .await;
    reply.status == 200
}

#[actix_web::test]
async fn the_least_recently_used_entries_are_evicted_to_stay_within_max_size() {
    let origin = spawn_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| s.max_size = Some(BOUND)).await;
    for (n, path) in ["/chunked/100?1", "/chunked/100?2", "/chunked/100?3"]
        .iter()
        .enumerate()
    {
        app.get(path).await;
        app.stored(n as u64 + 1).await;
    }
    // Use the first: the second is now the least recently used.
    assert!(cached(&app, "/chunked/100?1").await);
    app.get("/chunked/100?4").await;
    app.stored(4).await;

    let stats = app.cache.send(GetCacheStats).await.expect("stats");
    assert_eq!(stats.entries, 3);
    assert!(
        stats.bytes <= BOUND,
        "{} bytes for a bound of {BOUND}",
        stats.bytes
    );
    assert!(
        !cached(&app, "/chunked/100?2").await,
        "the least recently used went"
    );
    for kept in ["/chunked/100?1", "/chunked/100?3", "/chunked/100?4"] {
        assert!(cached(&app, kept).await, "{kept}");
    }
    let metrics = app.metrics.render().expect("metrics");
    assert!(
        metrics.contains("caje_cache_evictions_total 1"),
        "{metrics}"
    );

    // A restart with a smaller bound keeps the newest entries.
    let smaller = spawn_app_in(&origin, Arc::clone(&app.dir), |s| {
        s.max_size = Some(ENTRY + ENTRY / 2)
    })
    .await;
    let stats = smaller.cache.send(GetCacheStats).await.expect("stats");
    assert_eq!(stats.entries, 1);
    assert!(
        cached(&smaller, "/chunked/100?4").await,
        "the newest file is kept"
    );
}
