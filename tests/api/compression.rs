//! Compression at the edge: a compressible answer the origin sent as it is
//! is stored once per coding (br, zstd, gzip, identity), each made once
//! and served as its own variant with exact length, weak validator,
//! ranges and 304s; `Accept-Encoding` selects at most four variants and
//! no value of it bypasses the cache or fails.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use caje::actors::cache_store::{GetCacheStats, Purge};
use caje::cache::encoding::Encoding;
use caje::cache::CacheKey;
use caje::codec;
use caje::config::{Compress, Origin};

use crate::helpers::{serve, spawn_app_for, TestApp, HOST};

/// What the site's origin was asked: requests per path, and the
/// `Accept-Encoding` of each.
#[derive(Default)]
struct Seen {
    requests: Mutex<HashMap<String, usize>>,
    accept_encoding: Mutex<Vec<String>>,
}

impl Seen {
    fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// A text page of `len` bytes that compresses well but not trivially.
fn page(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        let line = format!(
            "<p>line {i}: {} caje edge page</p>\n",
            i.wrapping_mul(2_654_435_761) % 9973
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

const PAGE_LEN: usize = 20_000;

/// The `/ver/` page the origin sends the `n`th time.
fn versioned(n: usize) -> Vec<u8> {
    [format!("version {n}\n").into_bytes(), page(PAGE_LEN)].concat()
}

/// | path | answer |
/// |---|---|
/// | `/page/...` | `text/html`, [`page`] of 20 000 bytes, `max-age=60`, `ETag: "p1"` |
/// | `/nc/...` | the same with `no-cache`; 304 when `If-None-Match` names `p1` |
/// | `/big/...` | `text/plain`, a 2 MB page |
/// | `/chunked/...` | the page, streamed without `Content-Length` |
/// | `/gz/...` | the page gzip-compressed by the origin, `Vary: Accept-Encoding` |
/// | `/small/...` | a 100-byte `text/html` page |
/// | `/png/...` | the page as `image/png` |
/// | `/no-transform/...` | the page with `no-transform` |
/// | `/vary-png/...` | the page as `image/png` with `Vary: Accept-Encoding` |
/// | `/ver/...` | the page with its request count `n` first, `ETag: "v{n}"`, conditionals ignored |
async fn site(req: HttpRequest, seen: web::Data<Seen>) -> HttpResponse {
    let path = req.path().to_owned();
    let n = {
        let mut requests = seen.requests.lock().expect("lock");
        let n = requests.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let ae = req
        .headers()
        .get_all("accept-encoding")
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    seen.accept_encoding.lock().expect("lock").push(ae);
    let kind = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let text = |cc: &str, content_type: &str, body: Vec<u8>| {
        HttpResponse::Ok()
            .insert_header(("cache-control", cc.to_owned()))
            .insert_header(("content-type", content_type.to_owned()))
            .insert_header(("etag", "\"p1\""))
            .body(body)
    };
    match kind {
        "page" => text("max-age=60", "text/html; charset=utf-8", page(PAGE_LEN)),
        "nc" => {
            let revalidating = req
                .headers()
                .get("if-none-match")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("\"p1\""));
            if revalidating {
                return HttpResponse::NotModified()
                    .insert_header(("cache-control", "no-cache"))
                    .insert_header(("etag", "\"p1\""))
                    .finish();
            }
            text("no-cache", "text/html", page(PAGE_LEN))
        }
        "big" => text("max-age=60", "text/plain", page(2_000_000)),
        "chunked" => {
            let body = Bytes::from(page(PAGE_LEN));
            let chunks: Vec<Result<Bytes, std::io::Error>> = body
                .chunks(4096)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            HttpResponse::Ok()
                .insert_header(("cache-control", "max-age=60"))
                .insert_header(("content-type", "text/html"))
                .streaming(futures_util::stream::iter(chunks))
        }
        "gz" => {
            let mut packed = Vec::new();
            codec::compress(Encoding::Gzip, &mut &page(PAGE_LEN)[..], &mut packed).expect("gzip");
            HttpResponse::Ok()
                .insert_header(("cache-control", "max-age=60"))
                .insert_header(("content-type", "text/html"))
                .insert_header(("content-encoding", "gzip"))
                .insert_header(("vary", "Accept-Encoding"))
                .insert_header(("etag", "\"gz1\""))
                .body(packed)
        }
        "small" => text("max-age=60", "text/html", page(100)),
        "png" => text("max-age=60", "image/png", page(PAGE_LEN)),
        "vary-png" => HttpResponse::Ok()
            .insert_header(("cache-control", "max-age=60"))
            .insert_header(("content-type", "image/png"))
            .insert_header(("vary", "Accept-Encoding"))
            .body(page(PAGE_LEN)),
        "no-transform" => text("max-age=60, no-transform", "text/html", page(PAGE_LEN)),
        "ver" => HttpResponse::Ok()
            .insert_header(("cache-control", "max-age=60"))
            .insert_header(("content-type", "text/html"))
            .insert_header(("etag", format!("\"v{n}\"")))
            .body(versioned(n)),
        _ => HttpResponse::NotFound().finish(),
    }
}

struct Site {
    app: TestApp,
    seen: web::Data<Seen>,
}

async fn spawn_site(compress: Compress) -> Site {
    let seen = web::Data::new(Seen::default());
    let port = serve(seen.clone(), site);
    let origin = Origin {
        host: HOST.to_owned(),
        upstream: format!("http://127.0.0.1:{port}"),
        timeout: Duration::from_secs(10),
        cache_set_cookie: false,
        heuristic: None,
        transport: Default::default(),
        compress,
    };
    let app = spawn_app_for(vec![origin], |_| {}).await;
    Site { app, seen }
}

/// A response with its body as bytes.
struct Raw {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// This node's own `Cache-Status` member (the last) says `hit`.
    fn hit(&self) -> bool {
        self.header("cache-status")
            .and_then(|s| s.rsplit(',').next())
            .is_some_and(|member| member.split(';').nth(1).map(str::trim) == Some("hit"))
    }

    fn varies_on_coding(&self) -> bool {
        self.headers
            .get_all("vary")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|n| n.trim().eq_ignore_ascii_case("accept-encoding"))
    }

    fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// The body decoded as its `Content-Encoding` says.
    fn decoded(&self) -> Vec<u8> {
        let coding = match self.header("content-encoding") {
            None => Encoding::Identity,
            Some("br") => Encoding::Brotli,
            Some("zstd") => Encoding::Zstd,
            Some("gzip") => Encoding::Gzip,
            Some(other) => panic!("unexpected coding {other}"),
        };
        codec::decompress(coding, &self.body).expect("decodes")
    }
}

async fn fetch(app: &TestApp, method: &str, path: &str, headers: &[(&str, &str)]) -> Raw {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = app
        .client
        .request(method, app.url(path))
        .insert_header(("host", HOST));
    for (name, value) in headers {
        req = req.append_header((*name, *value));
    }
    let mut res = req.send().await.expect("caje answers");
    let body = res.body().limit(8 << 20).await.expect("body");
    Raw {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body,
    }
}

async fn get(app: &TestApp, path: &str, accept_encoding: Option<&str>) -> Raw {
    let headers: Vec<(&str, &str)> = accept_encoding
        .map(|ae| ("accept-encoding", ae))
        .into_iter()
        .collect();
    fetch(app, "GET", path, &headers).await
}

async fn entries(app: &TestApp) -> u64 {
    app.cache.send(GetCacheStats).await.expect("store").entries
}

const BROWSER: &str = "gzip, deflate, br, zstd";

#[actix_web::test]
async fn a_text_page_is_stored_once_per_coding_and_decodes_to_the_origin_s_bytes() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let origin_bytes = page(PAGE_LEN);

    let first = get(app, "/page/a", Some(BROWSER)).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-encoding"), Some("br"));
    assert!(first.varies_on_coding());
    assert_eq!(first.content_length(), Some(first.body.len() as u64));
    assert!(
        first.body.len() * 3 < PAGE_LEN,
        "{} bytes",
        first.body.len()
    );
    assert_eq!(first.decoded(), origin_bytes);
    assert_eq!(first.header("etag"), Some("W/\"p1\""));

    // The second br request (any header string that means br) is a hit with the same bytes.
    for ae in [BROWSER, "br", "br;q=1.0, gzip;q=0.5", "*"] {
        let again = get(app, "/page/a", Some(ae)).await;
        assert!(again.hit(), "{ae}: {:?}", again.header("cache-status"));
        assert_eq!(again.header("content-encoding"), Some("br"));
        assert_eq!(again.body, first.body, "{ae}");
    }

    for (ae, token) in [
        ("zstd, gzip", "zstd"),
        ("gzip", "gzip"),
        ("x-gzip;q=0.5", "gzip"),
    ] {
        let made = get(app, "/page/a", Some(ae)).await;
        assert_eq!(made.header("content-encoding"), Some(token), "{ae}");
        assert_eq!(made.content_length(), Some(made.body.len() as u64));
        assert_eq!(made.decoded(), origin_bytes, "{ae}");
        assert_eq!(made.header("etag"), Some("W/\"p1\""));
        let again = get(app, "/page/a", Some(ae)).await;
        assert!(again.hit(), "{ae}");
        assert_eq!(again.body, made.body, "{ae}");
    }

    // Identity clients get the origin's bytes and validator as they were.
    let identity = get(app, "/page/a", None).await;
    assert!(identity.hit(), "{:?}", identity.header("cache-status"));
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.body, origin_bytes);
    assert_eq!(identity.header("etag"), Some("\"p1\""));
    assert!(identity.varies_on_coding());

    // One origin request, asked with the one coding caje normalised to.
    assert_eq!(site.seen.count("/page/a"), 1);
    assert_eq!(*site.seen.accept_encoding.lock().expect("lock"), ["br"]);
    assert_eq!(entries(app).await, 4, "identity, br, zstd, gzip");

    // A purge of the URL removes every coding.
    app.cache
        .send(Purge(CacheKey::new("GET", HOST, "/page/a")))
        .await
        .expect("purge");
    assert_eq!(entries(app).await, 0);
}

#[actix_web::test]
async fn any_accept_encoding_is_one_of_four_variants_and_never_a_bypass() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let long = "gzip;q=0.5, ".repeat(600);
    let hostile = [
        "identity",
        "",
        "br;q=0, gzip;q=0, zstd;q=0",
        "x;;;q=abc,,,",
        "*;q=0",
        "br;q=2",
        "compress, deflate",
        long.as_str(),
        "GZIP",
        "zstd;q=0.9, br;q=0.1",
    ];
    for ae in hostile {
        let reply = get(app, "/page/h", Some(ae)).await;
        assert_eq!(reply.status, 200, "{ae:?}");
        assert_eq!(reply.decoded(), page(PAGE_LEN), "{ae:?}");
    }
    let none = get(app, "/page/h", None).await;
    assert_eq!(none.header("content-encoding"), None);
    assert!(none.hit());
    assert_eq!(
        site.seen.count("/page/h"),
        1,
        "every value was served from the cache"
    );
    assert_eq!(entries(app).await, 3, "identity, gzip and zstd");
    let seen = site.seen.accept_encoding.lock().expect("lock").clone();
    assert_eq!(seen, ["identity"]);
}

#[actix_web::test]
async fn what_is_not_compressible_is_passed_as_it_is() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;

    // The origin's own compression: its bytes and validator, untouched.
    let gz = get(app, "/gz/a", Some("gzip")).await;
    let mut origin_gz = Vec::new();
    codec::compress(Encoding::Gzip, &mut &page(PAGE_LEN)[..], &mut origin_gz).expect("gzip");
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.body, origin_gz);
    assert_eq!(gz.header("etag"), Some("\"gz1\""));
    let again = get(app, "/gz/a", Some("gzip")).await;
    assert!(again.hit());
    assert_eq!(again.body, origin_gz);
    assert_eq!(again.header("etag"), Some("\"gz1\""));

    for path in ["/small/a", "/png/a", "/no-transform/a"] {
        let first = get(app, path, Some(BROWSER)).await;
        assert_eq!(first.header("content-encoding"), None, "{path}");
        let second = get(app, path, Some(BROWSER)).await;
        assert!(second.hit(), "{path}");
        assert_eq!(second.header("content-encoding"), None, "{path}");
        assert_eq!(second.body, first.body, "{path}");
        assert_eq!(site.seen.count(path), 1, "{path}");
    }
    assert!(!get(app, "/png/a", None).await.varies_on_coding());
}

#[actix_web::test]
async fn ranges_and_head_are_answered_from_the_variant_they_ask_for() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let br = get(app, "/page/r", Some("br")).await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    let len = br.body.len();

    let part = fetch(
        app,
        "GET",
        "/page/r",
        &[("accept-encoding", "br"), ("range", "bytes=10-49")],
    )
    .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-encoding"), Some("br"));
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-49/{len}").as_str())
    );
    assert_eq!(part.body, br.body.slice(10..50));

    // A weak validator never satisfies If-Range: the whole variant.
    let if_range = fetch(
        app,
        "GET",
        "/page/r",
        &[
            ("accept-encoding", "br"),
            ("range", "bytes=10-49"),
            ("if-range", "W/\"p1\""),
        ],
    )
    .await;
    assert_eq!(if_range.status, 200);
    assert_eq!(if_range.body, br.body);

    let plain = fetch(app, "GET", "/page/r", &[("range", "bytes=0-9")]).await;
    assert_eq!(plain.status, 206);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(&plain.body[..], &page(PAGE_LEN)[..10]);

    let head = fetch(app, "HEAD", "/page/r", &[("accept-encoding", "br")]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-encoding"), Some("br"));
    assert_eq!(head.content_length(), Some(len as u64));
    assert!(head.body.is_empty());
    assert_eq!(site.seen.count("/page/r"), 1);
}

#[actix_web::test]
async fn a_304_carries_the_variant_s_validator() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let br = get(app, "/page/v", Some("br")).await;
    assert_eq!(br.header("etag"), Some("W/\"p1\""));
    let not_modified = fetch(
        app,
        "GET",
        "/page/v",
        &[("accept-encoding", "br"), ("if-none-match", "W/\"p1\"")],
    )
    .await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some("W/\"p1\""));
    assert!(not_modified.varies_on_coding());

    // Revalidated with the origin (no-cache): its 304 keeps the variant's
    // validator weak, and the stored compressed bytes are served.
    let first = get(app, "/nc/v", Some("br")).await;
    assert_eq!(first.header("content-encoding"), Some("br"));
    for _ in 0..2 {
        let again = get(app, "/nc/v", Some("br")).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.header("content-encoding"), Some("br"));
        assert_eq!(again.header("etag"), Some("W/\"p1\""));
        assert_eq!(again.body, first.body);
        assert!(
            again
                .header("cache-status")
                .is_some_and(|s| s.contains("fwd-status=304")),
            "{:?}",
            again.header("cache-status")
        );
    }
    let identity = get(app, "/nc/v", None).await;
    assert_eq!(identity.header("etag"), Some("\"p1\""));
    assert_eq!(identity.body, page(PAGE_LEN));
}

#[actix_web::test]
async fn a_compressed_hit_is_a_memory_tier_hit() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let made = get(app, "/page/m", Some("br")).await;
    // The first hit reads it from disk into the memory tier.
    get(app, "/page/m", Some("br")).await;
    let before = app.metrics.cache.memory_hits.get();
    let hot = get(app, "/page/m", Some("br")).await;
    assert!(hot.hit());
    assert_eq!(hot.body, made.body);
    assert_eq!(app.metrics.cache.memory_hits.get(), before + 1);
}

#[actix_web::test]
async fn concurrent_requests_compress_a_variant_once() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    // Stored as identity first, by a client that takes nothing else.
    let identity = get(app, "/big/c", None).await;
    assert_eq!(identity.body.len(), 2_000_000);
    app.stored(1).await;
    let replies =
        futures_util::future::join_all((0..8).map(|_| get(app, "/big/c", Some("br")))).await;
    let first = &replies[0];
    assert_eq!(first.header("content-encoding"), Some("br"));
    for reply in &replies {
        assert_eq!(reply.body, first.body);
    }
    assert_eq!(first.decoded(), identity.body);
    let stats = app.cache.send(GetCacheStats).await.expect("store");
    assert_eq!(stats.stored, 2, "the identity entry and one br variant");
    assert_eq!(site.seen.count("/big/c"), 1);
}

#[actix_web::test]
async fn a_chunked_answer_is_compressed_from_the_second_request() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let first = get(app, "/chunked/a", Some("br")).await;
    assert_eq!(first.header("content-encoding"), None);
    assert!(first.varies_on_coding());
    assert_eq!(first.body, page(PAGE_LEN));
    app.stored(1).await;
    let second = get(app, "/chunked/a", Some("br")).await;
    assert_eq!(second.header("content-encoding"), Some("br"));
    assert_eq!(second.decoded(), page(PAGE_LEN));
    assert_eq!(site.seen.count("/chunked/a"), 1);
}

#[actix_web::test]
async fn compression_off_sends_identity_to_everyone() {
    let off = Compress {
        enabled: false,
        ..Compress::default()
    };
    let site = spawn_site(off).await;
    let app = &site.app;
    let first = get(app, "/page/o", Some(BROWSER)).await;
    assert_eq!(first.header("content-encoding"), None);
    assert!(!first.varies_on_coding());
    let second = get(app, "/page/o", Some(BROWSER)).await;
    assert!(second.hit());
    assert_eq!(second.body, page(PAGE_LEN));
    assert_eq!(entries(app).await, 1);
}

#[actix_web::test]
async fn a_new_identity_body_replaces_the_codings_made_from_the_old_one() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let old = get(app, "/ver/a", Some("br")).await;
    assert_eq!(old.decoded(), versioned(1));
    // A client's own `no-cache` fetches (and stores) a newer identity body.
    let newer = fetch(app, "GET", "/ver/a", &[("cache-control", "no-cache")]).await;
    assert_eq!(newer.body, versioned(2));
    app.stored(3).await;
    let br = get(app, "/ver/a", Some("br")).await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(br.decoded(), versioned(2), "compressed from the new body");
    assert_eq!(br.header("etag"), Some("W/\"v2\""));
    assert_eq!(site.seen.count("/ver/a"), 2);
}

/// How many `Compress` messages the store has handled.
fn compress_messages(app: &TestApp) -> u64 {
    let text = app.metrics.render().expect("metrics");
    text.lines()
        .find(|l| {
            l.starts_with("caje_actor_messages_total")
                && l.contains("actor=\"cache_store\"")
                && l.contains("message=\"compress\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn an_identity_variant_found_not_compressible_is_served_without_trying_again() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    // The origin varies on the coding itself, for an image it never compresses.
    let identity = get(app, "/vary-png/a", None).await;
    assert!(identity.varies_on_coding());
    app.stored(1).await;
    for _ in 0..3 {
        let br = get(app, "/vary-png/a", Some("br")).await;
        assert!(br.hit(), "{:?}", br.header("cache-status"));
        assert_eq!(br.header("content-encoding"), None);
        assert_eq!(br.body, identity.body);
    }
    assert_eq!(compress_messages(app), 1, "tried once");
    assert_eq!(site.seen.count("/vary-png/a"), 1);
}

#[actix_web::test]
async fn peers_and_the_populator_move_pages_and_each_node_makes_its_own_codings() {
    use caje::config::PeerFetch;

    use crate::helpers::{Counter, TestOrigin};
    use crate::peers::{node, warm};

    let seen = web::Data::new(Seen::default());
    let origin = TestOrigin {
        port: serve(seen.clone(), site),
        counter: Counter::default(),
    };
    let shared = tempfile::tempdir().expect("temp dir");
    let database = shared.path().join("manifest.db");
    let a = node(&origin, &database, "a", |_| {}).await;
    let b = node(&origin, &database, "b", |s| s.peer_fetch = PeerFetch::All).await;
    let c = node(&origin, &database, "c", |_| {}).await;
    let identity = page(PAGE_LEN);

    let on_a = get(&a, "/page/p", Some(BROWSER)).await;
    assert_eq!(on_a.header("content-encoding"), Some("br"));
    b.pages(1).await;

    // b's br client: a's br variant, stored on b as it is.
    let on_b = get(&b, "/page/p", Some(BROWSER)).await;
    let status = on_b.header("cache-status").unwrap_or("");
    assert!(status.starts_with("caje-a; hit, caje-b; fwd="), "{status}");
    assert_eq!(on_b.body, on_a.body);
    b.stored(1).await;
    let again = get(&b, "/page/p", Some("br")).await;
    assert!(again.hit(), "{:?}", again.header("cache-status"));
    assert_eq!(again.body, on_a.body);
    // b's identity client: a's identity variant, never the br one.
    let plain = get(&b, "/page/p", None).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, identity);

    // c's populator warms the page by URL: the identity variant, from which
    // c makes its codings itself.
    warm(&c, 1).await;
    let on_c = get(&c, "/page/p", Some("gzip")).await;
    assert!(on_c.hit(), "{:?}", on_c.header("cache-status"));
    assert_eq!(on_c.header("content-encoding"), Some("gzip"));
    assert_eq!(on_c.decoded(), identity);
    assert_eq!(seen.count("/page/p"), 1, "one origin fetch in all");
}
