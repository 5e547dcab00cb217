//! One user's cookies and authorised answers are never handed to another.

use std::sync::Arc;
use std::time::Duration;

use super::origin::spawn_gullible_origin;
use crate::helpers::{
    eventually, spawn_app, spawn_app_in, spawn_app_with, spawn_origin, TestApp, TestOrigin, HOST,
};

/// `Set-Cookie: session=alice` with the given `Cache-Control`, from the
/// test origin's `/headers/` route.
fn with_cookie(name: &str, cache_control: &str) -> String {
    let query = serde_urlencoded::to_string([
        ("cache-control", cache_control),
        ("set-cookie", "session=alice"),
    ])
    .expect("query");
    format!("/headers/{name}?{query}")
}

#[actix_web::test]
async fn responses_with_set_cookie_are_not_stored_unless_the_site_allows_it() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    for (name, cache_control) in [("public", "public, max-age=60"), ("shared", "s-maxage=60")] {
        let path = with_cookie(name, cache_control);
        for n in 1..=2 {
            let reply = app.get(&path).await;
            assert_eq!(reply.body, format!("/headers/{name} #{n}"));
            assert_eq!(reply.header("set-cookie"), Some("session=alice"));
            assert!(
                !reply.cache_status().contains("stored"),
                "{name}: {}",
                reply.cache_status()
            );
        }
    }
}

async fn spawn_cookie_app(origin: &TestOrigin) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(origin, dir, |s| s.origins[0].cache_set_cookie = true).await
}

#[actix_web::test]
async fn with_cache_set_cookie_a_public_response_is_shared_without_its_cookie() {
    let origin = spawn_origin().await;
    let app = spawn_cookie_app(&origin).await;
    // Not marked public by the origin: never stored, whatever the setting.
    for n in 1..=2 {
        let reply = app.get("/cookie").await;
        assert_eq!(reply.body, format!("/cookie #{n}"));
        assert_eq!(reply.header("set-cookie"), Some("session=abc"));
    }
    for (stored, (name, cache_control)) in
        [("public", "public, max-age=60"), ("shared", "s-maxage=60")]
            .into_iter()
            .enumerate()
    {
        let path = with_cookie(name, cache_control);
        let first = app.get(&path).await;
        assert!(
            first.cache_status().contains("stored"),
            "{name}: {}",
            first.cache_status()
        );
        assert_eq!(
            first.header("set-cookie"),
            Some("session=alice"),
            "the client whose request fetched it gets its cookie"
        );
        app.stored(stored as u64 + 1).await;
        let second = app.get(&path).await;
        assert!(
            second.cache_status().contains("hit"),
            "{name}: {}",
            second.cache_status()
        );
        assert_eq!(second.body, first.body);
        assert_eq!(second.header("set-cookie"), None, "{name}: shared a cookie");
        let file = std::fs::read(app.entry_path(&path)).expect("entry file");
        assert!(
            !file.windows(13).any(|w| w == b"session=alice"),
            "{name}: the cookie was written to the cache"
        );
    }
}

#[actix_web::test]
async fn a_cookie_on_a_304_goes_only_to_the_client_that_revalidated() {
    let origin = spawn_gullible_origin().await;
    let app = spawn_app_with(vec![(HOST, origin.url(), Duration::from_secs(10))]).await;
    app.get("/etag-cookie").await;
    app.stored(1).await;
    let entry = app.entry_path("/etag-cookie");
    let before = std::fs::read(&entry).expect("entry file");
    // The client asks for validation: the origin's 304 sets a cookie.
    let validated = app
        .get_with("/etag-cookie", &[("cache-control", "no-cache")])
        .await;
    assert!(
        validated.cache_status().contains("fwd-status=304"),
        "{}",
        validated.cache_status()
    );
    assert_eq!(validated.body, "etag-cookie body");
    assert_eq!(
        validated.header("set-cookie"),
        Some("session=revalidating-client")
    );
    // The 304 restarts freshness: the head is rewritten.
    let after = eventually(|| async {
        let now = std::fs::read(&entry).ok()?;
        (now != before).then_some(now)
    })
    .await;
    assert!(
        !after.windows(11).any(|w| w == b"revalidatin"),
        "the 304's cookie was stored"
    );
    let next = app.get("/etag-cookie").await;
    assert!(
        next.cache_status().contains("hit"),
        "{}",
        next.cache_status()
    );
    assert_eq!(next.header("set-cookie"), None, "another client got it");
}

#[actix_web::test]
async fn an_answer_to_an_authorized_request_reaches_others_only_when_the_origin_allows() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let alice = [("authorization", "Bearer alice")];
    let bob = [("authorization", "Bearer bob")];
    // RFC 9111 §3.5: public, s-maxage or must-revalidate allow sharing.
    let cases = [
        ("max-age=60", false),
        ("private, max-age=60", false),
        ("public, max-age=60", true),
        ("s-maxage=60", true),
        ("must-revalidate, max-age=60", true),
    ];
    let mut shared_so_far = 0;
    for (i, (cache_control, shared)) in cases.into_iter().enumerate() {
        let query = serde_urlencoded::to_string([("cache-control", cache_control)]).expect("q");
        let path = format!("/headers/auth{i}?{query}");
        let first = app.get_with(&path, &alice).await;
        assert_eq!(first.status, 200);
        if shared {
            shared_so_far += 1;
            app.stored(shared_so_far).await;
        }
        for other in [&bob[..], &[]] {
            let reply = app.get_with(&path, other).await;
            assert_eq!(
                reply.body == first.body,
                shared,
                "{cache_control} for {other:?}: {} ({})",
                reply.body,
                reply.cache_status()
            );
        }
        let asked = origin.counter.get(&format!("/headers/auth{i}"));
        assert_eq!(asked, if shared { 1 } else { 3 }, "{cache_control}");
    }
}
