//! Request and response cache directives, as a shared cache must honour
//! them (RFC 9111 §5.2, RFC 9213).

use crate::helpers::{eventually, spawn_app, spawn_origin, Reply, TestApp};

fn hit(reply: &Reply) -> bool {
    reply.cache_status().starts_with("caje; hit")
}

/// Stores `path` and waits until it is stored.
async fn stored(app: &TestApp, path: &str, count: u64) {
    let reply = app.get(path).await;
    assert!(
        reply.cache_status().contains("stored"),
        "{path}: {}",
        reply.cache_status()
    );
    app.stored(count).await;
}

/// Waits until the stored `path` is stale: only-if-cached then answers 504,
/// and never refreshes it.
async fn stale(app: &TestApp, path: &str) {
    eventually(|| async {
        let reply = app
            .get_with(path, &[("cache-control", "only-if-cached")])
            .await;
        (reply.status == 504).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn only_if_cached_never_asks_the_origin() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let miss = app
        .get_with("/cache/oic", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(miss.status, 504);
    assert_eq!(miss.cache_status(), "caje; detail=only-if-cached");
    assert_eq!(origin.counter.get("/cache/oic"), 0);

    stored(&app, "/cache/oic", 1).await;
    let cached = app
        .get_with("/cache/oic", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(cached.status, 200);
    assert!(hit(&cached));
    assert_eq!(origin.counter.get("/cache/oic"), 1);
}

#[actix_web::test]
async fn request_freshness_directives_are_honoured() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    stored(&app, "/age", 1).await; // Age 30 of max-age 60.

    let too_old = app
        .get_with("/age", &[("cache-control", "max-age=10")])
        .await;
    assert!(
        too_old.cache_status().starts_with("caje; fwd=request"),
        "{}",
        too_old.cache_status()
    );
    app.stored(2).await;
    let young_enough = app
        .get_with("/age", &[("cache-control", "max-age=40")])
        .await;
    assert!(hit(&young_enough), "{}", young_enough.cache_status());
    let wants_more = app
        .get_with("/age", &[("cache-control", "min-fresh=45")])
        .await;
    assert!(!hit(&wants_more), "{}", wants_more.cache_status());
    let enough_left = app
        .get_with("/age", &[("cache-control", "min-fresh=5")])
        .await;
    assert!(hit(&enough_left), "{}", enough_left.cache_status());
}

#[actix_web::test]
async fn max_stale_accepts_a_stale_entry_unless_it_must_be_revalidated() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let plain = "/max-age/1/ms";
    let strict = "/headers/strict?cache-control=max-age%3D1%2C%20must-revalidate";
    let proxy = "/headers/proxy?cache-control=max-age%3D1%2C%20proxy-revalidate";
    let shared = "/headers/shared?cache-control=s-maxage%3D1";
    stored(&app, plain, 1).await;
    stored(&app, strict, 2).await;
    stored(&app, proxy, 3).await;
    stored(&app, shared, 4).await;
    for path in [plain, strict, proxy, shared] {
        stale(&app, path).await;
    }
    // proxy-revalidate (and s-maxage, which implies it) bind a shared cache
    // like must-revalidate.
    for path in [proxy, shared] {
        let refused = app.get_with(path, &[("cache-control", "max-stale")]).await;
        assert!(!hit(&refused), "{path}: {}", refused.cache_status());
    }

    let accepted = app
        .get_with(plain, &[("cache-control", "max-stale=3600")])
        .await;
    assert!(hit(&accepted), "{}", accepted.cache_status());
    assert_eq!(accepted.body, "/max-age/1/ms #1");
    let refused = app
        .get_with(strict, &[("cache-control", "max-stale")])
        .await;
    assert!(!hit(&refused), "{}", refused.cache_status());
    assert_eq!(refused.body, "/headers/strict #2");
}

#[actix_web::test]
async fn pragma_no_cache_counts_only_without_cache_control() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    stored(&app, "/cache/pragma", 1).await;
    let forced = app
        .get_with("/cache/pragma", &[("pragma", "no-cache")])
        .await;
    assert!(
        forced.cache_status().starts_with("caje; fwd=request"),
        "{}",
        forced.cache_status()
    );
    app.stored(2).await;
    let ignored = app
        .get_with(
            "/cache/pragma",
            &[("pragma", "no-cache"), ("cache-control", "max-stale=0")],
        )
        .await;
    assert!(hit(&ignored), "{}", ignored.cache_status());
}

#[actix_web::test]
async fn a_request_no_store_stores_nothing() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let reply = app
        .get_with("/cache/ns", &[("cache-control", "no-store")])
        .await;
    assert!(
        !reply.cache_status().contains("stored"),
        "{}",
        reply.cache_status()
    );
    let again = app.get("/cache/ns").await;
    assert!(again.cache_status().contains("fwd=uri-miss"));
}

#[actix_web::test]
async fn response_directives_decide_what_is_stored() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let later =
        httpdate::fmt_http_date(std::time::SystemTime::now() + std::time::Duration::from_secs(600));
    let cases: Vec<(String, bool, Option<&str>)> = vec![
        // CDN-Cache-Control wins over Cache-Control.
        (
            "/headers/a?cache-control=no-store&cdn-cache-control=max-age%3D60".into(),
            true,
            Some("ttl=60"),
        ),
        (
            "/headers/b?cache-control=max-age%3D60&cdn-cache-control=no-store".into(),
            false,
            None,
        ),
        // s-maxage is the shared cache's max-age.
        (
            "/headers/c?cache-control=max-age%3D1%2C%20s-maxage%3D90".into(),
            true,
            Some("ttl=90"),
        ),
        (
            "/headers/d?cache-control=Max-Age%3D60".into(),
            true,
            Some("ttl=60"),
        ),
        (
            format!(
                "/headers/e?expires={}",
                later.replace(' ', "%20").replace(',', "%2C")
            ),
            true,
            None,
        ),
        ("/headers/f?expires=0".into(), false, None),
        (
            "/headers/g?cache-control=max-age%3D60&vary=*".into(),
            false,
            None,
        ),
        ("/headers/h?cache-control=public".into(), false, None),
        // An invalid value gives no freshness; of duplicates the first counts.
        (
            "/headers/i?cache-control=max-age%3Dsoon".into(),
            false,
            None,
        ),
        (
            "/headers/j?cache-control=max-age%3D60%2C%20max-age%3D5".into(),
            true,
            Some("ttl=60"),
        ),
    ];
    for (path, storable, ttl) in &cases {
        let reply = app.get(path).await;
        assert_eq!(
            reply.cache_status().contains("stored"),
            *storable,
            "{path}: {}",
            reply.cache_status()
        );
        if let Some(ttl) = ttl {
            assert!(
                reply.cache_status().ends_with(ttl),
                "{path}: {}",
                reply.cache_status()
            );
        }
    }
}

#[actix_web::test]
async fn a_no_cache_response_is_stored_and_revalidated_on_every_use() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/etag-nc/x";
    stored(&app, path, 1).await;
    for n in 2..4 {
        let reply = app.get(path).await;
        assert_eq!(reply.body, "/etag-nc/x #1", "the stored body is sent");
        assert!(
            reply.cache_status().contains("fwd-status=304"),
            "{}",
            reply.cache_status()
        );
        assert_eq!(origin.counter.get(path), n, "each use asked the origin");
    }
}

#[actix_web::test]
async fn responses_to_authorized_requests_are_stored_only_when_the_origin_allows() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let auth = [("authorization", "Bearer secret")];
    let cases = [
        ("/headers/auth1?cache-control=max-age%3D60", false),
        (
            "/headers/auth2?cache-control=public%2C%20max-age%3D60",
            true,
        ),
        ("/headers/auth3?cache-control=s-maxage%3D60", true),
        (
            "/headers/auth4?cache-control=must-revalidate%2C%20max-age%3D60",
            true,
        ),
    ];
    for (path, storable) in cases {
        let reply = app.get_with(path, &auth).await;
        assert_eq!(
            reply.cache_status().contains("stored"),
            storable,
            "{path}: {}",
            reply.cache_status()
        );
    }
}
