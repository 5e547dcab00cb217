//! The scripted test origin: an HTTP server on a loopback port whose paths
//! say what it answers, counting every request it gets.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;

/// Counts origin requests: GETs by path, other methods as "METHOD path".
#[derive(Clone, Default)]
pub struct Counter(Arc<Mutex<HashMap<String, usize>>>);

impl Counter {
    fn hit(&self, path: &str) -> usize {
        let mut map = self.0.lock().expect("counter lock");
        let n = map.entry(path.to_owned()).or_default();
        *n += 1;
        *n
    }

    /// Requests of any method for any path.
    pub fn total(&self) -> usize {
        self.0.lock().expect("counter lock").values().sum()
    }

    pub fn get(&self, path: &str) -> usize {
        self.0
            .lock()
            .expect("counter lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

pub struct TestOrigin {
    pub port: u16,
    pub counter: Counter,
}

impl TestOrigin {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];
/// The test origin. The first path segments choose the answer (the query
/// string never does, except where shown); a route written without `/...`
/// matches only that exact path, and anything else is a 404.
///
/// Unless a route says otherwise, the status is 200 and the body is
/// `"{path} #{n}"`: the path (without query) and how many requests for that
/// path and method the origin has had, this one included (the [`Counter`]
/// the test reads). Routes that use `n` use the same count.
///
/// | path | answer |
/// |---|---|
/// | `/cache/...` | `Cache-Control: max-age=60` |
/// | `/max-age/{secs}/...` | `max-age={secs}` |
/// | `/no-store` | `no-store, max-age=60` |
/// | `/private` | `private, max-age=60` |
/// | `/no-cache` | `no-cache` |
/// | `/plain` | no `Cache-Control`, no validators |
/// | `/age` | `max-age=60` with `Age: 30` |
/// | `/vary` | `max-age=60`, `Vary: Accept-Language`; the body ends ` lang={value}` (`none` when absent) |
/// | `/cookie` | `max-age=60` with `Set-Cookie: session=abc` |
/// | `/sleep/{ms}` | `max-age=60`, after `ms` milliseconds |
/// | `/big/{mib}` | `max-age=60`, `mib` MiB (1 if not a number) of `x` with `Content-Length`, streamed in 64 KiB chunks |
/// | `/chunked/{kib}` | `max-age=60`, `kib` KiB (1 if not a number) of `x` in 1 KiB chunks, no `Content-Length` |
/// | `/endless` | `max-age=60`, 1 KiB of `x` every millisecond, no `Content-Length`, never ending; when caje stops reading it (the stream is dropped) the counter gets `ended /endless` |
/// | `/echo` | not cacheable; the body is the request line (`METHOD uri`), its `name: value` header lines, an empty line, then the request body |
/// | `/headers/...?name=value&…` | every query pair appended as a response field, after `x-delay-ms` milliseconds when that is one of them (it is sent too); status 200, or `x-status` when that is one of them and a valid code (it is sent too) |
/// | `/flaky/...?cc=…` | the first request: 200 with `Cache-Control: {cc}` (empty without `cc`); every later one: 500 |
/// | `/etag-nc/...` | `Cache-Control: no-cache`, `ETag: "v1"`; 304 without a body when `If-None-Match` contains `"v1"` |
/// | `/etag/{secs}/...` | `max-age={secs}`, `ETag: "v1"`, `X-Revalidated: no`; when `If-None-Match` contains `"v1"`: 304 with `max-age=60`, the `ETag` and `X-Revalidated: {n}` |
/// | `/weak/{secs}/...` | the same as `/etag/` with `ETag: W/"w1"` (matched by `"w1"`) |
/// | `/lastmod/{secs}/...` | `max-age={secs}`, `Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT`; when `If-Modified-Since` is a date at or after it: 304 with `max-age=60` and `X-Revalidated: {n}` |
/// | `/changing/{secs}/...` | `max-age={secs}`, `ETag: "v{n}"`: a new tag every time, conditionals ignored, never 304 |
/// | `/write?status=&location=&content_location=` | not cacheable; that status (200 when absent or invalid) with those `Location` / `Content-Location` fields |
/// | `/det/{kib}/{chunk_ms}/...` | `max-age=3600`, the body [`deterministic_body`] gives for the path (empty if `kib` is not a number), with `Content-Length`, in 64 KiB chunks `chunk_ms` apart |
/// | `/status/{code}` | that status (500 if not a valid code), `max-age=60` |
/// | anything else | 404, not cacheable |
pub async fn spawn_origin() -> TestOrigin {
    let counter = Counter::default();
    let port = serve(web::Data::new(counter.clone()), origin_handler);
    TestOrigin { port, counter }
}

/// Serves `handler` for every path on a loopback port, with `data` shared
/// by its requests; answers the port. For origins a test writes itself.
pub fn serve<T, F, Args>(data: web::Data<T>, handler: F) -> u16
where
    T: Send + Sync + 'static,
    F: actix_web::Handler<Args> + Clone + Send + 'static,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let port = listener.local_addr().expect("origin addr").port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(handler.clone()))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen origin")
    .run();
    actix_web::rt::spawn(server);
    port
}

// Each arm is a row of the table on `spawn_origin`: tests read the table, so
// an arm changed or added there is changed or added here too.
async fn origin_handler(
    req: HttpRequest,
    body: Bytes,
    counter: web::Data<Counter>,
) -> HttpResponse {
    let path = req.path().to_owned();
    let n = if req.method() == actix_web::http::Method::GET {
        counter.hit(&path)
    } else {
        counter.hit(&format!("{} {path}", req.method()))
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let text = format!("{path} #{n}");
    let ok_cached = |cc: &str| {
        HttpResponse::Ok()
            .insert_header(("cache-control", cc.to_owned()))
            .body(text.clone())
    };
    match segments.as_slice() {
        ["cache", ..] => ok_cached("max-age=60"),
        ["max-age", secs, ..] => ok_cached(&format!("max-age={secs}")),
        ["no-store"] => ok_cached("no-store, max-age=60"),
        ["private"] => ok_cached("private, max-age=60"),
        ["no-cache"] => ok_cached("no-cache"),
        ["plain"] => HttpResponse::Ok().body(text),
        ["age"] => HttpResponse::Ok()
            .insert_header(("cache-control", "max-age=60"))
            .insert_header(("age", "30"))
            .body(text),
        ["vary"] => {
            let lang = req
                .headers()
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            HttpResponse::Ok()
                .insert_header(("cache-control", "max-age=60"))
                .insert_header(("vary", "Accept-Language"))
                .body(format!("{text} lang={lang}"))
        }
        ["cookie"] => HttpResponse::Ok()
            .insert_header(("cache-control", "max-age=60"))
            .insert_header(("set-cookie", "session=abc"))
            .body(text),
        ["sleep", ms] => {
            let ms = ms.parse().unwrap_or(0);
            actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
            ok_cached("max-age=60")
        }
        ["big", mib] => {
            let total: u64 = mib.parse::<u64>().unwrap_or(1) * 1024 * 1024;
            let chunks = total / CHUNK.len() as u64;
            let stream = futures_util::stream::iter(
                (0..chunks).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(&CHUNK))),
            );
            HttpResponse::Ok()
                .insert_header(("cache-control", "max-age=60"))
                .body(SizedStream::new(total, stream))
        }
        ["chunked", kib] => {
            let kib: usize = kib.parse().unwrap_or(1);
            let stream = futures_util::stream::iter(
                (0..kib).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(&CHUNK[..1024]))),
            );
            HttpResponse::Ok()
                .insert_header(("cache-control", "max-age=60"))
                .streaming(stream)
        }
        ["endless"] => {
            /// Counts the stream's end, which only a reader going away brings.
            struct Ended(Counter);
            impl Drop for Ended {
                fn drop(&mut self) {
                    self.0.hit("ended /endless");
                }
            }
            let ended = Ended(counter.get_ref().clone());
            let stream = futures_util::stream::unfold(ended, |ended| async move {
                actix_web::rt::time::sleep(Duration::from_millis(1)).await;
                let chunk = Bytes::from_static(&CHUNK[..1024]);
                Some((Ok::<_, std::io::Error>(chunk), ended))
            });
            HttpResponse::Ok()
                .insert_header(("cache-control", "max-age=60"))
                .streaming(stream)
        }
        ["echo"] => {
            let mut lines = vec![format!("{} {}", req.method(), req.uri())];
            for (name, value) in req.headers() {
                lines.push(format!("{}: {}", name, value.to_str().unwrap_or("?")));
            }
            lines.push(String::new());
            lines.push(String::from_utf8_lossy(&body).into_owned());
            HttpResponse::Ok().body(lines.join("\n"))
        }
        ["headers", ..] => {
            let query: Vec<(String, String)> =
                serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
            let delay = query
                .iter()
                .find(|(name, _)| name == "x-delay-ms")
                .and_then(|(_, ms)| ms.parse().ok())
                .unwrap_or(0);
            actix_web::rt::time::sleep(Duration::from_millis(delay)).await;
            let status = query
                .iter()
                .find(|(name, _)| name == "x-status")
                .and_then(|(_, code)| code.parse().ok())
                .and_then(|code| actix_web::http::StatusCode::from_u16(code).ok())
                .unwrap_or(actix_web::http::StatusCode::OK);
            let mut response = HttpResponse::build(status);
            for (name, value) in query {
                response.append_header((name, value));
            }
            response.body(text)
        }
        ["flaky", ..] if n == 1 => {
            let query: HashMap<String, String> =
                serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
            HttpResponse::Ok()
                .insert_header((
                    "cache-control",
                    query.get("cc").cloned().unwrap_or_default(),
                ))
                .body(text)
        }
        ["flaky", ..] => HttpResponse::InternalServerError().body(text),
        ["etag-nc", ..] => {
            let asked = req
                .headers()
                .get("if-none-match")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("\"v1\""));
            let mut response = if asked {
                HttpResponse::NotModified()
            } else {
                HttpResponse::Ok()
            };
            response
                .insert_header(("cache-control", "no-cache"))
                .insert_header(("etag", "\"v1\""));
            if asked {
                response.finish()
            } else {
                response.body(text)
            }
        }
        ["etag", secs, ..] | ["weak", secs, ..] => {
            let tag = if segments[0] == "weak" {
                "W/\"w1\""
            } else {
                "\"v1\""
            };
            let asked = req
                .headers()
                .get("if-none-match")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains(tag.trim_start_matches("W/")));
            if asked {
                HttpResponse::NotModified()
                    .insert_header(("cache-control", "max-age=60"))
                    .insert_header(("etag", tag))
                    .insert_header(("x-revalidated", n.to_string()))
                    .finish()
            } else {
                HttpResponse::Ok()
                    .insert_header(("cache-control", format!("max-age={secs}")))
                    .insert_header(("etag", tag))
                    .insert_header(("x-revalidated", "no"))
                    .body(text)
            }
        }
        ["lastmod", secs, ..] => {
            const MODIFIED: &str = "Mon, 01 Jan 2024 00:00:00 GMT";
            let since = req
                .headers()
                .get("if-modified-since")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok());
            let modified = httpdate::parse_http_date(MODIFIED).ok();
            if since.is_some() && since >= modified {
                HttpResponse::NotModified()
                    .insert_header(("cache-control", "max-age=60"))
                    .insert_header(("x-revalidated", n.to_string()))
                    .finish()
            } else {
                HttpResponse::Ok()
                    .insert_header(("cache-control", format!("max-age={secs}")))
                    .insert_header(("last-modified", MODIFIED))
                    .body(text)
            }
        }
        ["changing", secs, ..] => HttpResponse::Ok()
            .insert_header(("cache-control", format!("max-age={secs}")))
            .insert_header(("etag", format!("\"v{n}\"")))
            .body(text),
        ["write"] => {
            let query: HashMap<String, String> =
                serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
            let status = query
                .get("status")
                .and_then(|s| s.parse().ok())
                .and_then(|s| actix_web::http::StatusCode::from_u16(s).ok())
                .unwrap_or(actix_web::http::StatusCode::OK);
            let mut response = HttpResponse::build(status);
            if let Some(location) = query.get("location") {
                response.insert_header(("location", location.as_str()));
            }
            if let Some(location) = query.get("content_location") {
                response.insert_header(("content-location", location.as_str()));
            }
            response.body(text)
        }
        ["det", _, chunk_ms, ..] => {
            let body = Bytes::from(deterministic_body(&path).unwrap_or_default());
            let pause = Duration::from_millis(chunk_ms.parse().unwrap_or(0));
            let total = body.len() as u64;
            let chunks = futures_util::stream::unfold(0usize, move |at| {
                let body = body.clone();
                async move {
                    if at >= body.len() {
                        return None;
                    }
                    if at > 0 && !pause.is_zero() {
                        actix_web::rt::time::sleep(pause).await;
                    }
                    let end = (at + CHUNK.len()).min(body.len());
                    Some((Ok::<_, std::io::Error>(body.slice(at..end)), end))
                }
            });
            HttpResponse::Ok()
                .insert_header(("cache-control", "max-age=3600"))
                .body(SizedStream::new(total, chunks))
        }
        ["status", code] => {
            let code = code.parse().unwrap_or(500);
            HttpResponse::build(
                actix_web::http::StatusCode::from_u16(code)
                    .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
            )
            .insert_header(("cache-control", "max-age=60"))
            .body(text)
        }
        _ => HttpResponse::NotFound().body(text),
    }
}

/// The body the origin serves for `/det/{kib}/...`: `kib` KiB that depend
/// on the whole path and on each byte's offset, so a body cut short, shifted
/// or belonging to another path never matches. `None` for other paths.
pub fn deterministic_body(path: &str) -> Option<Vec<u8>> {
    let kib: usize = path
        .strip_prefix("/det/")?
        .split('/')
        .next()?
        .parse()
        .ok()?;
    // FNV-1a of the path seeds an xorshift generator.
    let mut state = path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let mut body = Vec::with_capacity(kib * 1024);
    while body.len() < kib * 1024 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        body.extend_from_slice(&state.to_le_bytes());
    }
    Some(body)
}
