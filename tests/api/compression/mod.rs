//! Compression at the edge: a compressible answer the origin sent as it is
//! is stored once per coding (br, zstd, gzip, identity), each made once
//! and served as its own variant with exact length, weak validator,
//! ranges and 304s; `Accept-Encoding` selects at most four variants and
//! no value of it bypasses the cache or fails.

//!
//! `mod.rs` holds the site (its origin and what a test fetches);
//! `codings.rs` the variants and what they answer, `consistency.rs` how
//! they stay right as pages change and move between nodes.

mod codings;
mod consistency;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use caje::actors::cache_store::GetCacheStats;
use caje::cache::encoding::Encoding;
use caje::codec;
use caje::config::{Compress, Origin};

use crate::helpers::{serve, spawn_app_for, TestApp, HOST};

/// What the site's origin was asked: requests per path, and the
/// `Accept-Encoding` of each.
#[derive(Default)]
pub(super) struct Seen {
    requests: Mutex<HashMap<String, usize>>,
    pub(super) accept_encoding: Mutex<Vec<String>>,
}

impl Seen {
    pub(super) fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// A text page of `len` bytes that compresses well but not trivially.
pub(super) fn page(len: usize) -> Vec<u8> {
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

pub(super) const PAGE_LEN: usize = 20_000;

/// The `/ver/` page the origin sends the `n`th time.
pub(super) fn versioned(n: usize) -> Vec<u8> {
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
pub(super) async fn site(req: HttpRequest, seen: web::Data<Seen>) -> HttpResponse {
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

pub(super) struct Site {
    pub(super) app: TestApp,
    pub(super) seen: web::Data<Seen>,
}

pub(super) async fn spawn_site(compress: Compress) -> Site {
    let seen = web::Data::new(Seen::default());
    let port = serve(seen.clone(), site);
    let origin = Origin {
        timeout: Duration::from_secs(10),
        compress,
        ..Origin::new(HOST, format!("http://127.0.0.1:{port}"))
    };
    let app = spawn_app_for(vec![origin], |_| {}).await;
    Site { app, seen }
}

/// A response with its body as bytes.
pub(super) struct Raw {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Raw {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// This node's own `Cache-Status` member (the last) says `hit`.
    pub(super) fn hit(&self) -> bool {
        self.header("cache-status")
            .and_then(|s| s.rsplit(',').next())
            .is_some_and(|member| member.split(';').nth(1).map(str::trim) == Some("hit"))
    }

    pub(super) fn varies_on_coding(&self) -> bool {
        self.headers
            .get_all("vary")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|n| n.trim().eq_ignore_ascii_case("accept-encoding"))
    }

    pub(super) fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// The body decoded as its `Content-Encoding` says.
    pub(super) fn decoded(&self) -> Vec<u8> {
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

pub(super) async fn fetch(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Raw {
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

pub(super) async fn get(app: &TestApp, path: &str, accept_encoding: Option<&str>) -> Raw {
    let headers: Vec<(&str, &str)> = accept_encoding
        .map(|ae| ("accept-encoding", ae))
        .into_iter()
        .collect();
    fetch(app, "GET", path, &headers).await
}

pub(super) async fn entries(app: &TestApp) -> u64 {
    app.cache.send(GetCacheStats).await.expect("store").entries
}

pub(super) const BROWSER: &str = "gzip, deflate, br, zstd";
