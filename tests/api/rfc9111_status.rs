//! RFC 9111 to the letter (issue 17), item 6: any final status with
//! explicit freshness is stored (§3), with the statuses one client's
//! malformed request provokes kept out by default, and `must-understand`.

use std::sync::Arc;

use crate::helpers::{eventually, spawn_app, spawn_app_in, spawn_origin, TestApp, TestOrigin};

fn stored(app_reply: &crate::helpers::Reply) -> bool {
    app_reply.cache_status().contains("stored")
}

fn hit(reply: &crate::helpers::Reply) -> bool {
    reply.cache_status().starts_with("caje; hit")
}

/// `/headers/` answering `status` with `Cache-Control: {cc}` (encoded).
fn path(name: &str, status: u16, cc: &str) -> String {
    let cc = serde_urlencoded::to_string([("cache-control", cc)]).expect("encodes");
    format!("/headers/{name}?x-status={status}&{cc}")
}

/// Asks for `path` until it is a hit (once stored) or twice: whether
/// the origin's answer was stored and then served from the cache.
async fn reused(app: &TestApp, origin: &TestOrigin, path: &str, status: u16) -> bool {
    let name = path.split('?').next().unwrap_or(path);
    let first = app.get(path).await;
    assert_eq!(first.status, status, "{path}");
    if stored(&first) {
        // Stored once the body is written: polled, never timed.
        eventually(|| async {
            let again = app.get(path).await;
            assert_eq!(again.status, status, "{path}");
            hit(&again).then_some(())
        })
        .await;
        assert_eq!(origin.counter.get(name), 1, "{path}");
        return true;
    }
    let second = app.get(path).await;
    assert_eq!(second.status, status, "{path}");
    assert!(!hit(&second), "{path}: {}", second.cache_status());
    assert_eq!(origin.counter.get(name), 2, "{path}");
    false
}

#[actix_web::test]
async fn any_final_status_with_explicit_freshness_is_stored() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    for status in [
        200, 204, 299, 404, 405, 410, 499, 500, 501, 502, 503, 504, 599,
    ] {
        let path = path(&format!("s{status}"), status, "max-age=60");
        assert!(reused(&app, &origin, &path, status).await, "{status}");
    }
    // Without explicit freshness a status that is not heuristically
    // cacheable is not stored, `public` or not.
    for status in [299, 500, 503] {
        let path = path(&format!("p{status}"), status, "public");
        assert!(!reused(&app, &origin, &path, status).await, "{status}");
    }
}

#[actix_web::test]
async fn a_stale_stored_error_is_never_reused_without_validation() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = path("stale503", 503, "max-age=1");
    assert!(stored(&app.get(&path).await));
    app.stored(1).await;
    // Hits while fresh; once stale, the origin is asked again.
    eventually(|| async {
        let reply = app.get(&path).await;
        (!hit(&reply)).then_some(())
    })
    .await;
    assert_eq!(origin.counter.get("/headers/stale503"), 2);
}

#[actix_web::test]
async fn client_error_statuses_are_stored_only_when_the_origin_allows() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    for status in [400, 413, 414, 431] {
        let path = path(&format!("c{status}"), status, "max-age=60");
        assert!(!reused(&app, &origin, &path, status).await, "{status}");
    }
    // Answers to one request's preconditions or range never are.
    for status in [412, 416] {
        let path = path(&format!("c{status}"), status, "max-age=60");
        assert!(!reused(&app, &origin, &path, status).await, "{status}");
    }
    let allowing = spawn_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&allowing, dir, |s| s.origins[0].cache_client_errors = true).await;
    for status in [400, 413, 414, 431] {
        let path = path(&format!("c{status}"), status, "max-age=60");
        assert!(reused(&app, &allowing, &path, status).await, "{status}");
    }
    let path = path("c412", 412, "max-age=60");
    assert!(!reused(&app, &allowing, &path, 412).await);
}

#[actix_web::test]
async fn no_store_with_must_understand_is_stored_for_an_understood_status() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let both = "no-store, must-understand, max-age=60";
    for status in [200, 404, 503] {
        let path = path(&format!("m{status}"), status, both);
        assert!(reused(&app, &origin, &path, status).await, "{status}");
    }
    // A status caje does not know: must-understand forbids storing it,
    // no-store or not.
    for (n, cc) in [both, "must-understand, max-age=60"].iter().enumerate() {
        let path = path(&format!("u{n}"), 299, cc);
        assert!(!reused(&app, &origin, &path, 299).await, "{cc}");
    }
    // no-store alone still means no-store.
    let path = path("plain", 200, "no-store, max-age=60");
    assert!(!reused(&app, &origin, &path, 200).await);
}

/// 400 to a request with `x-malformed`, else after 300 ms a page fresh for
/// a minute; counts the requests.
async fn malformed_or_slow(
    req: actix_web::HttpRequest,
    count: actix_web::web::Data<std::sync::atomic::AtomicUsize>,
) -> actix_web::HttpResponse {
    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if req.headers().contains_key("x-malformed") {
        return actix_web::HttpResponse::BadRequest()
            .insert_header(("cache-control", "max-age=60"))
            .body("bad request");
    }
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    actix_web::HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .body("page")
}

#[actix_web::test]
async fn one_client_s_malformed_request_does_not_switch_off_coalescing() {
    let count = actix_web::web::Data::new(std::sync::atomic::AtomicUsize::new(0));
    let port = crate::helpers::serve(count.clone(), malformed_or_slow);
    let app = crate::helpers::spawn_app_with(vec![(
        crate::helpers::HOST,
        format!("http://127.0.0.1:{port}"),
        std::time::Duration::from_secs(10),
    )])
    .await;
    let bad = app.get_with("/page", &[("x-malformed", "1")]).await;
    assert_eq!(bad.status, 400);
    assert!(!stored(&bad), "{}", bad.cache_status());
    // Its 400 says nothing of the page: the next misses still make one request.
    let replies = futures_util::future::join_all((0..5).map(|_| app.get("/page"))).await;
    let collapsed = replies
        .iter()
        .filter(|r| r.cache_status().contains("collapsed"))
        .count();
    assert_eq!(collapsed, 4);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
}
