//! A purge wins over every store or rewrite that began before it, and a soft
//! purge applies to the very next request.

use caje::actors::cache_store::{
    GetCacheStats, Lookup, LookupResult, Purge, SoftPurge, UpdateHead,
};
use caje::cache::CacheKey;
use serde_json::json;

use super::origin::spawn_trust_origin;
use super::{is_hit, node};
use crate::helpers::{
    eventually, spawn_admin_app, spawn_app_in, spawn_origin, TestApp, HOST, TOKEN,
};

/// GETs `path` for [`HOST`]; its `Cache-Status` and body length (bodies
/// here are too large for [`TestApp::get`]).
async fn get_len(app: &TestApp, path: &str) -> (String, usize) {
    let mut res = app
        .client
        .get(app.url(path))
        .insert_header(("host", HOST))
        .send()
        .await
        .expect("request");
    let body = res.body().limit(64 << 20).await.expect("body");
    let status = res
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, body.len())
}

/// The stored head of `path` on [`HOST`] (no `Vary`).
async fn stored_head(app: &TestApp, path: &str) -> caje::cache::EntryHead {
    let key = CacheKey::new("GET", HOST, path);
    let found = app
        .cache
        .send(Lookup {
            key,
            request_headers: Default::default(),
            compress_from: None,
        })
        .await
        .expect("cache store");
    let LookupResult::Found(hit) = found else {
        panic!("{path} is not stored")
    };
    (*hit.head).clone()
}

/// Waits until no store or head rewrite is under way.
async fn writes_done(app: &TestApp) {
    eventually(|| async {
        let stats = app.cache.send(GetCacheStats).await.expect("cache store");
        (stats.writes_in_flight == 0).then_some(())
    })
    .await
}

async fn writes_cancelled(app: &TestApp, n: u64) {
    eventually(|| async {
        let stats = app.cache.send(GetCacheStats).await.expect("cache store");
        (stats.writes_cancelled >= n).then_some(())
    })
    .await
}

#[actix_web::test]
async fn a_purge_wins_over_a_head_rewrite_under_way() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    for (n, soft_first) in [false, true].into_iter().enumerate() {
        let path = format!("/bigtag/32/{n}");
        get_len(&app, &path).await;
        app.stored(n as u64 + 1).await;
        let head = stored_head(&app, &path).await;
        let key = head.key.clone();
        // The rewrite copies 32 MiB on the blocking pool; the purge comes
        // while it does (or, rarely, just after: either way it must win).
        if soft_first {
            app.cache.send(SoftPurge(key.clone())).await.expect("store");
        } else {
            app.cache.send(UpdateHead(head)).await.expect("store");
        }
        assert_eq!(app.cache.send(Purge(key)).await.expect("store"), 1);
        writes_done(&app).await;
        assert!(!app.entry_path(&path).exists(), "the purge was undone");
        let (status, len) = get_len(&app, &path).await;
        assert!(!is_hit(&status), "{status}");
        assert_eq!(len, 32 << 20);
        assert_eq!(origin.count("GET", &path), 2);
    }
}

#[actix_web::test]
async fn a_purge_during_the_first_fetch_wins() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    // 256 KiB in four chunks 300 ms apart.
    let path = "/det/256/300/purged";
    let fetch = {
        let (client, url) = (app.client.clone(), app.url(path));
        actix_web::rt::spawn(async move {
            let mut res = client
                .get(url)
                .insert_header(("host", HOST))
                .send()
                .await
                .expect("fetch");
            res.body().limit(1 << 20).await.expect("body").len()
        })
    };
    // The store is under way once the store registered it; the origin
    // seeing the request is earlier, and a loaded machine can purge between.
    eventually(|| async {
        let stats = app.cache.send(GetCacheStats).await.expect("cache store");
        (stats.writes_in_flight == 1).then_some(())
    })
    .await;
    let url = format!("http://{HOST}{path}");
    let answer = app
        .admin(
            "POST",
            "/_caje/purge",
            Some(TOKEN),
            Some(json!({ "url": url })),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["purged"], 1, "{}", answer.body);
    assert_eq!(
        fetch.await.expect("fetch task"),
        256 * 1024,
        "the client still gets it all"
    );
    writes_cancelled(&app, 1).await;
    let after = app.get(path).await;
    assert!(!is_hit(after.cache_status()), "{}", after.cache_status());
    assert_eq!(origin.counter.get(path), 2);
}

#[actix_web::test]
async fn a_soft_purge_applies_to_the_very_next_request() {
    let origin = spawn_trust_origin().await;
    let first = node(&origin).await;
    let path = "/bigtag/32/soft";
    get_len(&first, path).await;
    first.stored(1).await;
    // Restarted: the index knows the entry only by name, not its head.
    let app = spawn_app_in(&origin.as_test_origin(), first.dir.clone(), |s| {
        s.admin_token = Some(TOKEN.to_owned())
    })
    .await;
    let url = format!("http://{HOST}{path}");
    let answer = app
        .admin(
            "POST",
            "/_caje/purge",
            Some(TOKEN),
            Some(json!({ "url": url, "soft": true })),
        )
        .await;
    assert_eq!(answer.json()["purged"], 1, "{}", answer.body);
    let (status, len) = get_len(&app, path).await;
    assert!(status.contains("fwd=stale; fwd-status=304"), "{status}");
    assert_eq!(len, 32 << 20);
}
