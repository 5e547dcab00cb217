//! Heuristic freshness (issue 17, item 10): an origin that sets
//! `heuristic_freshness` has responses with `Last-Modified` and no
//! explicit freshness stored for a fraction of their age, capped, only for
//! heuristically cacheable statuses, and `Cache-Status` says so.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use caje::cache::policy::Heuristic;

use crate::helpers::{spawn_app, spawn_app_in, spawn_origin, Reply, TestApp, TestOrigin};

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn spawn_heuristic_app(origin: &TestOrigin) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(origin, dir, |s| {
        s.origins[0].heuristic = Some(Heuristic {
            fraction: 0.1,
            max: DAY,
        })
    })
    .await
}

/// `/headers/{name}` answering with `Date` now, `Last-Modified` `age`
/// before it, and the `extra` query pairs.
fn path(name: &str, age: Duration, extra: &str) -> String {
    let now = SystemTime::now();
    let fields = [
        ("date", httpdate::fmt_http_date(now)),
        ("last-modified", httpdate::fmt_http_date(now - age)),
    ];
    let query = serde_urlencoded::to_string(fields).expect("encodes");
    format!("/headers/{name}?{query}{extra}")
}

/// The `ttl` parameter of the reply's `Cache-Status`.
fn ttl(reply: &Reply) -> Option<i64> {
    reply
        .cache_status()
        .split(';')
        .find_map(|p| p.trim().strip_prefix("ttl="))
        .and_then(|t| t.parse().ok())
}

fn heuristic(reply: &Reply) -> bool {
    reply.cache_status().contains("detail=heuristic")
}

#[actix_web::test]
async fn a_response_with_last_modified_is_fresh_for_a_tenth_of_its_age() {
    let origin = spawn_origin().await;
    let app = spawn_heuristic_app(&origin).await;
    let path = path("day", DAY, "");
    let first = app.get(&path).await;
    let status = first.cache_status();
    assert!(status.contains("stored") && heuristic(&first), "{status}");
    let ttl_first = ttl(&first).expect("ttl");
    assert!((8630..=8640).contains(&ttl_first), "{status}");
    app.stored(1).await;
    let hit = app.get(&path).await;
    let status = hit.cache_status();
    assert!(
        status.starts_with("caje; hit") && heuristic(&hit),
        "{status}"
    );
    assert!((8620..=8640).contains(&ttl(&hit).expect("ttl")), "{status}");
    assert_eq!(hit.body, first.body, "answered from the cache");
    // Explicit freshness is the origin's, not a heuristic.
    let explicit = format!("{path}&cache-control=max-age%3D60");
    let explicit = app.get(&explicit.replace("/day?", "/explicit?")).await;
    assert!(
        explicit.cache_status().contains("stored") && !heuristic(&explicit),
        "{}",
        explicit.cache_status()
    );
    assert_eq!(ttl(&explicit), Some(60));
}

#[actix_web::test]
async fn the_heuristic_lifetime_is_capped() {
    let origin = spawn_origin().await;
    let app = spawn_heuristic_app(&origin).await;
    let path = path("years", 3 * 365 * DAY, "");
    let first = app.get(&path).await;
    let status = first.cache_status();
    assert!(status.contains("stored") && heuristic(&first), "{status}");
    let ttl = ttl(&first).expect("ttl");
    assert!((86_390..=86_400).contains(&ttl), "{status}");
}

#[actix_web::test]
async fn no_cache_and_private_still_rule_heuristic_freshness_out() {
    let origin = spawn_origin().await;
    let app = spawn_heuristic_app(&origin).await;
    // no-cache with a validator: stored, but revalidated before every use.
    let no_cache = path("no-cache", DAY, "&cache-control=no-cache");
    let first = app.get(&no_cache).await;
    assert!(!heuristic(&first), "{}", first.cache_status());
    for n in 2..=3 {
        let again = app.get(&no_cache).await;
        assert!(
            !again.cache_status().starts_with("caje; hit"),
            "{}",
            again.cache_status()
        );
        assert!(again.body.ends_with(&format!(" #{n}")), "{}", again.body);
    }
    // private: never stored by a shared cache.
    let private = path("private", DAY, "&cache-control=private");
    for n in 1..=2 {
        let reply = app.get(&private).await;
        assert!(
            !reply.cache_status().contains("stored"),
            "{}",
            reply.cache_status()
        );
        assert!(reply.body.ends_with(&format!(" #{n}")), "{}", reply.body);
    }
}

#[actix_web::test]
async fn only_heuristically_cacheable_statuses_are_stored() {
    let origin = spawn_origin().await;
    let app = spawn_heuristic_app(&origin).await;
    // `public` would let the library store any status it understands (a
    // 302 among them) with a heuristic lifetime: RFC 9110 §15.1's list decides.
    for status in [500, 302, 307, 503] {
        let extra = format!("&x-status={status}&cache-control=public");
        let path = path(&format!("s{status}"), DAY, &extra);
        let reply = app.get(&path).await;
        assert_eq!(reply.status, status);
        assert!(
            !reply.cache_status().contains("stored"),
            "{status}: {}",
            reply.cache_status()
        );
    }
    let path = path("s404", DAY, "&x-status=404");
    let reply = app.get(&path).await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.cache_status().contains("stored") && heuristic(&reply),
        "{}",
        reply.cache_status()
    );
}

#[actix_web::test]
async fn without_the_option_last_modified_alone_is_not_stored() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = path("off", DAY, "");
    for n in 1..=2 {
        let reply = app.get(&path).await;
        assert!(
            !reply.cache_status().contains("stored") && !heuristic(&reply),
            "{}",
            reply.cache_status()
        );
        assert!(reply.body.ends_with(&format!(" #{n}")), "{}", reply.body);
    }
}
