//! Purging by URL and by tag, hard and soft, and one purge reaching every
//! node through the purge log in the shared manifest.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{eventually, spawn_app_in, spawn_origin, TestApp, TestOrigin, HOST, TOKEN};

async fn node(origin: &TestOrigin, database: &std::path::Path) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let database = database.to_owned();
    spawn_app_in(origin, dir, move |s| {
        s.admin_token = Some(TOKEN.to_owned());
        s.database = database;
        s.purge_poll_interval = Duration::from_millis(50);
    })
    .await
}

async fn purge(app: &TestApp, body: serde_json::Value) -> serde_json::Value {
    let reply = app
        .admin("POST", "/_caje/purge", Some(TOKEN), Some(body))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn hit(reply: &crate::helpers::Reply) -> bool {
    reply.cache_status().starts_with("caje; hit")
}

#[actix_web::test]
async fn a_tag_purges_every_response_carrying_it() {
    let origin = spawn_origin().await;
    let shared = tempfile::tempdir().expect("temp dir");
    let app = node(&origin, &shared.path().join("manifest.db")).await;
    let paths = [
        "/headers/t1?cache-control=max-age%3D60&surrogate-key=product-1%20list",
        "/headers/t2?cache-control=max-age%3D60&cache-tag=other%2C%20product-1",
        "/headers/t3?cache-control=max-age%3D60&surrogate-key=other",
    ];
    for path in paths {
        app.get(path).await;
    }
    app.stored(3).await;
    let answer = purge(&app, json!({ "tag": "product-1" })).await;
    assert_eq!(
        answer,
        json!({ "tag": "product-1", "soft": false, "purged": 2, "logged": true })
    );
    assert!(!hit(&app.get(paths[0]).await));
    assert!(!hit(&app.get(paths[1]).await));
    assert!(hit(&app.get(paths[2]).await));
}

#[actix_web::test]
async fn a_soft_purge_makes_the_next_use_revalidate() {
    let origin = spawn_origin().await;
    let shared = tempfile::tempdir().expect("temp dir");
    let app = node(&origin, &shared.path().join("manifest.db")).await;
    let path = "/etag/60/soft";
    app.get(path).await;
    app.stored(1).await;
    let url = format!("http://{HOST}{path}");
    let answer = purge(&app, json!({ "url": url, "soft": true })).await;
    assert_eq!(answer["purged"], 1);

    // Soft-purged: the stored copy is validated before use (a 304 here).
    let reply = eventually(|| async {
        let reply = app.get(path).await;
        (!hit(&reply)).then_some(reply)
    })
    .await;
    assert!(
        reply
            .cache_status()
            .starts_with("caje; fwd=stale; fwd-status=304"),
        "{}",
        reply.cache_status()
    );
    assert_eq!(reply.body, "/etag/60/soft #1");
    let after = eventually(|| async {
        let reply = app.get(path).await;
        hit(&reply).then_some(reply)
    })
    .await;
    assert_eq!(after.body, "/etag/60/soft #1");
}

#[actix_web::test]
async fn a_purge_on_one_node_reaches_every_node() {
    let origin = spawn_origin().await;
    let shared = tempfile::tempdir().expect("temp dir");
    let database = shared.path().join("manifest.db");
    let a = node(&origin, &database).await;
    let b = node(&origin, &database).await;
    let tagged = "/headers/tagged?cache-control=max-age%3D60&surrogate-key=news";
    for app in [&a, &b] {
        app.get("/cache/shared").await;
        app.get(tagged).await;
        app.stored(2).await;
    }

    purge(&a, json!({ "url": format!("http://{HOST}/cache/shared") })).await;
    purge(&a, json!({ "tag": "news" })).await;
    // Polled with only-if-cached, so polling never fetches it again.
    for path in ["/cache/shared", tagged] {
        eventually(|| async {
            let reply = b
                .get_with(path, &[("cache-control", "only-if-cached")])
                .await;
            (reply.status == 504).then_some(())
        })
        .await;
    }
    // The PURGE method goes everywhere too.
    b.get("/cache/by-method").await;
    a.get("/cache/by-method").await;
    a.stored(3).await;
    b.stored(3).await;
    let bearer = format!("Bearer {TOKEN}");
    let reply = a
        .request(
            "PURGE",
            HOST,
            "/cache/by-method",
            &[("authorization", bearer.as_str())],
        )
        .await;
    assert_eq!(reply.status, 200);
    eventually(|| async {
        let reply = b
            .get_with("/cache/by-method", &[("cache-control", "only-if-cached")])
            .await;
        (reply.status == 504).then_some(())
    })
    .await;
}
