//! Admin actions with a missing or wrong token (or none configured) are
//! refused and change nothing.

use caje::actors::manifest::{ListPages, PageVisit, WriteBatch};
use caje::actors::populator::GetStatus;
use caje::cache::CacheKey;
use serde_json::json;

use crate::helpers::{spawn_admin_app, spawn_app, spawn_origin, TestApp, TestOrigin, HOST, TOKEN};

/// What the admin actions would change, as it stands now.
#[derive(Debug, PartialEq)]
struct AdminVisibleState {
    origin_asked: usize,
    manifest_pages: usize,
    last_purge: i64,
    populator_runs: u64,
    hits: Vec<bool>,
}

async fn admin_visible_state(app: &TestApp, origin: &TestOrigin) -> AdminVisibleState {
    let manifest_pages = match app.manifest.send(ListPages::all()).await {
        Ok(Ok(list)) => list.pages.len(),
        other => panic!("manifest: {other:?}"),
    };
    let last_purge = crate::helpers::last_purge_id(&app.dir.path().join("manifest.db"));
    let populator_runs = app.populator.send(GetStatus).await.expect("populator").runs;
    let mut hits = Vec::new();
    for path in [
        "/cache/kept",
        "/headers/tagged?cache-control=max-age%3D60&surrogate-key=t1",
    ] {
        hits.push(app.get(path).await.cache_status().contains("hit"));
    }
    AdminVisibleState {
        // Read last: the hits above must not have asked the origin either.
        origin_asked: origin.counter.total(),
        manifest_pages,
        last_purge,
        populator_runs,
        hits,
    }
}

/// Every way of not presenting the token that caje must refuse.
fn wrong_credentials(port: u16) -> Vec<Vec<(&'static str, String)>> {
    let last = TOKEN.chars().last().expect("a token");
    let same_length = format!(
        "{}{}",
        &TOKEN[..TOKEN.len() - 1],
        if last == 'x' { 'y' } else { 'x' }
    );
    let cookie = |value: &str| vec![("cookie", format!("caje_session_{port}={value}"))];
    vec![
        vec![],
        vec![("authorization", "Bearer wrong".to_owned())],
        vec![("authorization", format!("Bearer {same_length}"))],
        vec![("authorization", format!("Bearer {}", &TOKEN[1..]))],
        vec![("authorization", format!("Bearer {TOKEN}x"))],
        vec![("authorization", "Bearer ".to_owned())],
        vec![("authorization", format!("Basic {TOKEN}"))],
        vec![("authorization", TOKEN.to_owned())],
        // The session cookie holds a keyed hash, never the token itself.
        cookie(TOKEN),
        cookie("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
        vec![("cookie", format!("token={TOKEN}"))],
        vec![("x-caje-token", TOKEN.to_owned())],
    ]
}

/// Tries every mutating admin action with every wrong credential and checks
/// each is refused with `status` and changes nothing.
async fn refused_and_unchanged(app: &TestApp, origin: &TestOrigin, status: u16) {
    app.get("/cache/kept").await;
    app.get("/headers/tagged?cache-control=max-age%3D60&surrogate-key=t1")
        .await;
    app.stored(2).await;
    // A page the populator would fetch: in the manifest, not in this cache.
    let lacking = CacheKey::new("GET", HOST, "/cache/lacking");
    app.manifest
        .do_send(WriteBatch(vec![PageVisit::now(lacking)]));
    app.pages(3).await;
    let before = admin_visible_state(app, origin).await;
    assert_eq!(before.hits, [true, true]);
    assert_eq!(before.manifest_pages, 3);

    let actions = [
        ("POST", "/_caje/clear_fs".to_owned(), None),
        ("POST", "/_caje/clear_db".to_owned(), None),
        ("POST", "/_caje/populate".to_owned(), None),
        (
            "POST",
            "/_caje/purge".to_owned(),
            Some(json!({ "url": format!("http://{HOST}/cache/kept") })),
        ),
        (
            "POST",
            "/_caje/purge".to_owned(),
            Some(json!({ "tag": "t1" })),
        ),
        (
            "POST",
            "/_caje/purge".to_owned(),
            Some(json!({ "tag": "t1", "soft": true })),
        ),
        ("POST", format!("/_caje/clear_fs?token={TOKEN}"), None),
        ("PURGE", "/cache/kept".to_owned(), None),
    ];
    for credentials in wrong_credentials(app.port) {
        for (method, path, body) in &actions {
            let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
            let mut req = app
                .client
                .request(method.clone(), app.url(path))
                .insert_header(("host", HOST))
                .insert_header(("accept", "application/json"));
            for (name, value) in &credentials {
                req = req.insert_header((*name, value.as_str()));
            }
            let res = match body {
                Some(json) => req.send_json(json).await,
                None => req.send().await,
            }
            .expect("an answer");
            assert_eq!(
                res.status().as_u16(),
                status,
                "{method} {path} with {credentials:?}"
            );
        }
    }
    assert_eq!(admin_visible_state(app, origin).await, before);
    assert_eq!(origin.counter.get("/cache/lacking"), 0);
}

#[actix_web::test]
async fn admin_actions_with_a_missing_or_wrong_token_change_nothing() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    refused_and_unchanged(&app, &origin, 401).await;
}

#[actix_web::test]
async fn admin_actions_without_a_configured_token_change_nothing() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    refused_and_unchanged(&app, &origin, 403).await;
}
