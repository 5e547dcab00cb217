//! The trust origin: it keeps every request it receives.

use std::sync::{Arc, Mutex};

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use bytes::Bytes;

use crate::helpers::{serve, Counter, TestOrigin};

/// One request as the trust origin received it.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) head: String,
    pub(super) body: Bytes,
}

/// An origin that keeps every request it receives. Paths:
/// - `/host/...`: `max-age=60`, names the host it believes it serves
/// - `/body/...`: `max-age=60`, names the request body it received
/// - `/cors/...`: `Vary: Origin`, `Access-Control-Allow-Origin` when asked
/// - `/user/...`: `Vary: X-User`, the `X-User` bytes in hex
/// - `/swr/...`: `max-age=1, stale-while-revalidate=60`; a `HEAD` is
///   answered without a body or `Content-Length`
/// - `/bigtag/{mib}/...`: `ETag: "b1"`, `max-age=60`, 304 to `If-None-Match`
/// - `/range/...`: `max-age=60`, `0123456789`; a 206 of its first four
///   bytes to any `Range`
/// - `/slowtag/...`: after 300 ms, `ETag: "s1"`, `max-age=60`; 304 to
///   `If-None-Match: "s1"`
pub(super) struct TrustOrigin {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TrustOrigin {
    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    pub(super) fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method.as_str() == method && s.path == path)
            .count()
    }

    /// What `spawn_app_in` takes: this origin's port.
    pub(super) fn as_test_origin(&self) -> TestOrigin {
        TestOrigin {
            port: self.port,
            counter: Counter::default(),
        }
    }
}

pub(super) async fn spawn_trust_origin() -> TrustOrigin {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = serve(web::Data::from(seen.clone()), trust_origin);
    TrustOrigin { port, seen }
}

async fn trust_origin(
    req: HttpRequest,
    body: Bytes,
    seen: web::Data<Mutex<Vec<Seen>>>,
) -> HttpResponse {
    let mut head = format!("{} {}\n", req.method(), req.uri());
    for (name, value) in req.headers() {
        head.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let path = req.path().to_owned();
    let n = {
        let mut seen = seen.lock().expect("seen lock");
        seen.push(Seen {
            method: req.method().clone(),
            path: path.clone(),
            head,
            body: body.clone(),
        });
        seen.iter()
            .filter(|s| s.path == path && s.method == Method::GET)
            .count()
    };
    let field = |name: &str| req.headers().get(name).map(|v| v.as_bytes().to_vec());
    let text = |v: Option<Vec<u8>>| String::from_utf8_lossy(&v.unwrap_or_default()).into_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut ok = HttpResponse::Ok();
    ok.insert_header(("cache-control", "max-age=60"));
    match segments.as_slice() {
        ["host", ..] => ok.body(format!(
            "x-forwarded-host={}",
            text(field("x-forwarded-host"))
        )),
        ["body", ..] => ok.body(format!("body={}", String::from_utf8_lossy(&body))),
        ["cors", ..] => {
            ok.insert_header(("vary", "Origin"));
            if let Some(origin) = req.headers().get("origin") {
                ok.insert_header(("access-control-allow-origin", origin.clone()));
            }
            ok.body(format!("origin={}", text(field("origin"))))
        }
        ["user", ..] => {
            let user = field("x-user").unwrap_or_default();
            let hex: String = user.iter().map(|b| format!("{b:02x}")).collect();
            ok.insert_header(("vary", "X-User"))
                .body(format!("user={hex}"))
        }
        ["swr", ..] => {
            let mut swr = HttpResponse::Ok();
            swr.insert_header(("cache-control", "max-age=1, stale-while-revalidate=60"));
            if req.method() == Method::HEAD {
                return swr
                    .streaming(futures_util::stream::empty::<Result<Bytes, std::io::Error>>());
            }
            swr.body(format!("swr body #{n}"))
        }
        ["bigtag", mib, ..] => {
            ok.insert_header(("etag", "\"b1\""));
            if text(field("if-none-match")).contains("\"b1\"") {
                return HttpResponse::NotModified()
                    .insert_header(("cache-control", "max-age=60"))
                    .insert_header(("etag", "\"b1\""))
                    .finish();
            }
            let mib: usize = mib.parse().unwrap_or(1);
            ok.body(vec![b'b'; mib << 20])
        }
        ["range", ..] if req.headers().contains_key("range") => HttpResponse::PartialContent()
            .insert_header(("cache-control", "max-age=60"))
            .insert_header(("content-range", "bytes 0-3/10"))
            .body("0123"),
        ["range", ..] => ok.body("0123456789"),
        ["slowtag", ..] => {
            actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
            if text(field("if-none-match")).contains("\"s1\"") {
                return HttpResponse::NotModified()
                    .insert_header(("cache-control", "max-age=60"))
                    .insert_header(("etag", "\"s1\""))
                    .finish();
            }
            ok.insert_header(("etag", "\"s1\"")).body("slowtag")
        }
        _ => HttpResponse::NotFound().finish(),
    }
}
