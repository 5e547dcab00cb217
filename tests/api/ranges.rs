//! Range requests answered from stored bodies (RFC 9110 §14).

use crate::helpers::{spawn_app, spawn_origin};

#[actix_web::test]
async fn ranges_of_a_stored_body() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/etag/60/r"; // body "/etag/60/r #1", ETag "v1"
    let full = app.get(path).await;
    assert_eq!(full.body, "/etag/60/r #1");
    app.stored(1).await;
    assert_eq!(app.get(path).await.header("accept-ranges"), Some("bytes"));

    let part = app.get_with(path, &[("range", "bytes=1-4")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, "etag");
    assert_eq!(part.header("content-range"), Some("bytes 1-4/13"));
    assert_eq!(part.header("content-length"), Some("4"));
    assert!(part.cache_status().starts_with("caje; hit"));

    let suffix = app.get_with(path, &[("range", "bytes=-2")]).await;
    assert_eq!((suffix.status, suffix.body.as_str()), (206, "#1"));
    let open = app.get_with(path, &[("range", "bytes=11-")]).await;
    assert_eq!((open.status, open.body.as_str()), (206, "#1"));
    let clamped = app.get_with(path, &[("range", "bytes=10-99")]).await;
    assert_eq!(clamped.header("content-range"), Some("bytes 10-12/13"));

    let beyond = app.get_with(path, &[("range", "bytes=50-60")]).await;
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */13"));
    assert_eq!(beyond.body, "");

    for ignored in ["bytes=5-1", "items=0-1", "bytes=0-1,5-6"] {
        let reply = app.get_with(path, &[("range", ignored)]).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "/etag/60/r #1"),
            "{ignored}"
        );
    }

    // If-Range: a strong match sends the part, anything else the whole.
    let matching = app
        .get_with(path, &[("range", "bytes=0-0"), ("if-range", "\"v1\"")])
        .await;
    assert_eq!((matching.status, matching.body.as_str()), (206, "/"));
    for other in ["\"v2\"", "W/\"v1\""] {
        let reply = app
            .get_with(path, &[("range", "bytes=0-0"), ("if-range", other)])
            .await;
        assert_eq!(reply.status, 200, "{other}");
    }
    assert_eq!(origin.counter.get(path), 1, "all answered by the cache");
}

#[actix_web::test]
async fn a_range_request_on_a_miss_stores_the_whole_response() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/cache/range-miss";
    // The origin ignores Range (it answers 200): caje passes that on and stores it whole.
    let first = app.get_with(path, &[("range", "bytes=0-3")]).await;
    assert_eq!(first.status, 200);
    assert!(first.cache_status().contains("stored"));
    app.stored(1).await;
    let part = app.get_with(path, &[("range", "bytes=0-5")]).await;
    assert_eq!((part.status, part.body.as_str()), (206, "/cache"));
}
