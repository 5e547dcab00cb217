//! RFC 9111 to the letter (issue 17), item 9: partial content. A `206` from
//! the origin is stored (§3.3) and the ranges it covers are served from it;
//! a request past its end asks the origin for the missing part only, with
//! `If-Range`, and the parts are joined only when they are of the same
//! representation (§3.4).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::helpers::{serve, spawn_app_with, Reply, TestApp, HOST};

/// A representation the test can replace, and the `Range` / `If-Range`
/// of every request the origin got.
struct Representation {
    current: Mutex<(String, Vec<u8>)>,
    /// Off: a sloppy origin that sends the range whatever `If-Range` says.
    honours_if_range: AtomicBool,
    asked: Mutex<Vec<(Option<String>, Option<String>)>>,
}

impl Representation {
    fn asked(&self) -> Vec<(Option<String>, Option<String>)> {
        self.asked.lock().expect("lock").clone()
    }

    fn replace(&self, etag: &str, body: Vec<u8>) {
        *self.current.lock().expect("lock") = (etag.to_owned(), body);
    }
}

/// 300 bytes, each telling its own offset apart from its neighbours'.
fn body(seed: u8) -> Vec<u8> {
    (0..300u32).map(|i| seed + (i % 26) as u8).collect()
}

/// An origin that honours one `bytes` range and `If-Range` (by its strong
/// `ETag`), as RFC 9110 §14 asks of a server.
async fn ranged(req: HttpRequest, data: web::Data<Representation>) -> HttpResponse {
    let text = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &actix_web::http::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let (range, if_range) = (text("range"), text("if-range"));
    data.asked
        .lock()
        .expect("lock")
        .push((range.clone(), if_range.clone()));
    let (etag, bytes) = data.current.lock().expect("lock").clone();
    let mut ok = HttpResponse::Ok();
    ok.insert_header(("cache-control", "max-age=600"))
        .insert_header(("etag", etag.clone()));
    let part = range
        .filter(|_| {
            !data.honours_if_range.load(Ordering::SeqCst)
                || if_range.as_deref().is_none_or(|v| v == etag)
        })
        .and_then(|r| {
            let spec = r.strip_prefix("bytes=")?.to_owned();
            let (first, last) = spec.split_once('-')?;
            let end = bytes.len() - 1;
            Some(
                match (first.parse::<usize>().ok(), last.parse::<usize>().ok()) {
                    (Some(first), Some(last)) => (first, last.min(end)),
                    (Some(first), None) => (first, end),
                    (None, Some(suffix)) => (bytes.len() - suffix, end),
                    (None, None) => return None,
                },
            )
        });
    match part {
        Some((first, last)) => HttpResponse::PartialContent()
            .insert_header(("cache-control", "max-age=600"))
            .insert_header(("etag", etag))
            .insert_header((
                "content-range",
                format!("bytes {first}-{last}/{}", bytes.len()),
            ))
            .body(bytes[first..=last].to_vec()),
        None => ok.body(bytes),
    }
}

async fn setup() -> (TestApp, web::Data<Representation>) {
    let data = web::Data::new(Representation {
        current: Mutex::new(("\"v1\"".to_owned(), body(b'a'))),
        honours_if_range: AtomicBool::new(true),
        asked: Mutex::new(Vec::new()),
    });
    let port = serve(data.clone(), ranged);
    let app = spawn_app_with(vec![(
        HOST,
        format!("http://127.0.0.1:{port}"),
        Duration::from_secs(10),
    )])
    .await;
    (app, data)
}

fn is_hit(reply: &Reply) -> bool {
    reply.cache_status().starts_with("caje; hit")
}

/// Asks for `range` once the store has committed `stored` entries in all:
/// it must be a hit.
async fn hit(app: &TestApp, stored: u64, path: &str, range: &str) -> Reply {
    app.stored(stored).await;
    let reply = app.get_with(path, &[("range", range)]).await;
    assert!(is_hit(&reply), "{range}: {}", reply.cache_status());
    reply
}

fn slice(seed: u8, first: usize, last: usize) -> String {
    String::from_utf8(body(seed)[first..=last].to_vec()).expect("ascii")
}

#[actix_web::test]
async fn a_206_is_stored_and_the_ranges_it_covers_are_served_from_it() {
    let (app, origin) = setup().await;
    let first = app.get_with("/video", &[("range", "bytes=100-299")]).await;
    assert_eq!(first.status, 206);
    assert_eq!(first.header("content-range"), Some("bytes 100-299/300"));
    assert_eq!(first.body, slice(b'a', 100, 299));
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    for (range, first, last) in [
        ("bytes=150-199", 150, 199),
        ("bytes=250-", 250, 299),
        ("bytes=-50", 250, 299),
        ("bytes=100-299", 100, 299),
    ] {
        let reply = hit(&app, 1, "/video", range).await;
        assert_eq!(reply.status, 206, "{range}");
        let content_range = format!("bytes {first}-{last}/300");
        assert_eq!(reply.header("content-range"), Some(content_range.as_str()));
        assert_eq!(reply.body, slice(b'a', first, last), "{range}");
    }
    let beyond = hit(&app, 1, "/video", "bytes=400-").await;
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */300"));
    assert_eq!(origin.asked().len(), 1, "{:?}", origin.asked());
    // A range apart from the part is asked of the origin as on a miss,
    // never answered from the part.
    let apart = app.get_with("/video", &[("range", "bytes=0-49")]).await;
    assert_eq!(
        (apart.status, apart.body.clone()),
        (206, slice(b'a', 0, 49))
    );
    assert!(!is_hit(&apart), "{}", apart.cache_status());
    assert_eq!(origin.asked()[1], (Some("bytes=0-49".to_owned()), None));
}

#[actix_web::test]
async fn a_request_beyond_the_stored_part_asks_only_for_the_missing_part_and_joins_it() {
    let (app, origin) = setup().await;
    let first = app.get_with("/film", &[("range", "bytes=0-99")]).await;
    assert_eq!((first.status, first.body.len()), (206, 100));
    hit(&app, 1, "/film", "bytes=0-9").await;
    // Reaching past the part: only bytes 100-199 are asked, of "v1".
    let more = app.get_with("/film", &[("range", "bytes=50-199")]).await;
    assert_eq!(more.status, 206, "{}", more.body);
    assert_eq!(more.header("content-range"), Some("bytes 50-199/300"));
    assert_eq!(more.body, slice(b'a', 50, 199));
    assert!(
        more.cache_status().contains("fwd=partial"),
        "{}",
        more.cache_status()
    );
    let want = |range: &str| (Some(range.to_owned()), Some("\"v1\"".to_owned()));
    assert_eq!(origin.asked()[1], want("bytes=100-199"));
    // The parts joined: 0-199 is served whole from the cache.
    let joined = hit(&app, 2, "/film", "bytes=0-199").await;
    assert_eq!(joined.body, slice(b'a', 0, 199));
    // A whole GET asks for the rest only, and completes the entry.
    let whole = app.get("/film").await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, slice(b'a', 0, 299));
    assert!(whole.header("content-range").is_none());
    assert_eq!(origin.asked()[2], want("bytes=200-299"));
    app.stored(3).await;
    let complete = app.get("/film").await;
    assert!(is_hit(&complete), "{}", complete.cache_status());
    assert_eq!(complete.status, 200);
    assert_eq!(complete.body, slice(b'a', 0, 299));
    assert_eq!(origin.asked().len(), 3, "{:?}", origin.asked());
}

#[actix_web::test]
async fn a_stored_part_is_joined_only_with_the_same_representation() {
    let (app, origin) = setup().await;
    app.get_with("/doc", &[("range", "bytes=0-99")]).await;
    hit(&app, 1, "/doc", "bytes=0-9").await;
    origin.replace("\"v2\"", body(b'A'));
    // If-Range "v1" no longer matches: the origin sends the new whole
    // representation, which the client gets (never v1 and v2 bytes mixed).
    let reply = app.get_with("/doc", &[("range", "bytes=50-149")]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, slice(b'A', 0, 299));
    let part = hit(&app, 2, "/doc", "bytes=0-9").await;
    assert_eq!(part.body, slice(b'A', 0, 9));
    assert_eq!(part.header("etag"), Some("\"v2\""));
}

#[actix_web::test]
async fn a_part_of_another_representation_is_never_joined() {
    let (app, origin) = setup().await;
    app.get_with("/sloppy", &[("range", "bytes=0-99")]).await;
    hit(&app, 1, "/sloppy", "bytes=0-9").await;
    origin.replace("\"v2\"", body(b'A'));
    origin.honours_if_range.store(false, Ordering::SeqCst);
    // The origin answers the missing part of "v2" despite If-Range "v1":
    // its ETag tells, the part is not joined, and the client's own range
    // is asked again.
    let reply = app.get_with("/sloppy", &[("range", "bytes=50-149")]).await;
    assert_eq!(reply.status, 206);
    assert_eq!(reply.body, slice(b'A', 50, 149));
    assert_eq!(reply.header("etag"), Some("\"v2\""));
    let asked = origin.asked();
    assert_eq!(asked[1].0.as_deref(), Some("bytes=100-149"));
    assert_eq!(asked[2], (Some("bytes=50-149".to_owned()), None));
    let part = hit(&app, 2, "/sloppy", "bytes=60-69").await;
    assert_eq!(part.body, slice(b'A', 60, 69));
}

#[actix_web::test]
async fn only_if_cached_never_asks_for_a_missing_part() {
    let (app, origin) = setup().await;
    app.get_with("/cached-only", &[("range", "bytes=0-99")])
        .await;
    hit(&app, 1, "/cached-only", "bytes=0-9").await;
    let headers = [
        ("range", "bytes=50-199"),
        ("cache-control", "only-if-cached"),
    ];
    let reply = app.get_with("/cached-only", &headers).await;
    assert_eq!(reply.status, 504, "{}", reply.cache_status());
    assert_eq!(origin.asked().len(), 1, "{:?}", origin.asked());
}

#[actix_web::test]
async fn a_part_missing_before_a_stored_suffix_is_asked_alone_and_joined() {
    let (app, origin) = setup().await;
    let suffix = app.get_with("/track", &[("range", "bytes=-100")]).await;
    assert_eq!(suffix.header("content-range"), Some("bytes 200-299/300"));
    hit(&app, 1, "/track", "bytes=250-").await;
    // Reaching before the part: only bytes 150-199 are asked.
    let more = app.get_with("/track", &[("range", "bytes=150-249")]).await;
    assert_eq!(more.status, 206);
    assert_eq!(more.header("content-range"), Some("bytes 150-249/300"));
    assert_eq!(more.body, slice(b'a', 150, 249));
    let want = |range: &str| (Some(range.to_owned()), Some("\"v1\"".to_owned()));
    assert_eq!(origin.asked()[1], want("bytes=150-199"));
    let joined = hit(&app, 2, "/track", "bytes=150-299").await;
    assert_eq!(joined.body, slice(b'a', 150, 299));
    // The whole GET asks for the rest only and completes the entry.
    let whole = app.get("/track").await;
    assert_eq!(
        (whole.status, whole.body.clone()),
        (200, slice(b'a', 0, 299))
    );
    assert_eq!(origin.asked()[2], want("bytes=0-149"));
    app.stored(3).await;
    let complete = app.get("/track").await;
    assert!(is_hit(&complete), "{}", complete.cache_status());
    assert_eq!(complete.body, slice(b'a', 0, 299));
    assert_eq!(origin.asked().len(), 3, "{:?}", origin.asked());
}
