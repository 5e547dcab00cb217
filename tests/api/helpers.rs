//! Real parts for every test: an origin server on a loopback port that counts
//! what it is asked, and a caje node on port 0 with its own temp directory.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use caje::actors::cache_store::{CacheStore, GetCacheStats};
use caje::actors::manifest::{ListPages, Manifest, Page};
use caje::actors::populator::Populator;
use caje::actors::Mailbox;
use caje::config::{Origin, Settings};
use caje::startup::Application;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Logs go to the terminal only when `TEST_LOG` is set.
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            caje::telemetry::init(caje::telemetry::LogFormat::Text);
        }
    });
}

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

/// The test origin. Paths say what it answers:
/// - `/cache/...`: `max-age=60`; `/max-age/{n}/...`: `max-age=n`
/// - `/no-store`, `/private`, `/plain` (no freshness), `/no-cache`
/// - `/age`: `Age: 30` with `max-age=60`
/// - `/vary`: varies on `Accept-Language`
/// - `/cookie`: `max-age=60` with `Set-Cookie`
/// - `/sleep/{ms}`: answers after `ms`
/// - `/big/{mib}`: a cacheable body of `mib` MiB, streamed
/// - `/chunked/{kib}`: a cacheable body of `kib` KiB without `Content-Length`
/// - `/echo`: the request's method, headers and body, not cacheable
/// - `/status/{code}`: that status, cacheable
/// - `/etag/{secs}/...`: `ETag: "v1"`, `max-age=secs`; 304 (with `max-age=60`
///   and `X-Revalidated: <n>`) to `If-None-Match: "v1"`
/// - `/weak/...`: like `/etag/60/...` with `ETag: W/"w1"`
/// - `/lastmod/{secs}/...`: a fixed `Last-Modified`; 304 to `If-Modified-Since` at or after it
/// - `/changing/{secs}/...`: `ETag: "v<n>"`, a new one every time: never 304
/// - `/headers/...?name=value&…`: 200 with those response header fields
///   (after `x-delay-ms` milliseconds when that is one of them)
/// - `/flaky/...?cc=…`: first a 200 with `Cache-Control: <cc>`, then 500s
/// - `/etag-nc/...`: like `/etag/`, with `Cache-Control: no-cache`
/// - `/write?status=&location=&content_location=`: that status (200 by
///   default) with those `Location` / `Content-Location` fields
/// - `/det/{kib}/{chunk_ms}/...`: `max-age=3600`, the body
///   [`deterministic_body`] gives for the path, in 64 KiB chunks
///   `chunk_ms` apart
pub async fn spawn_origin() -> TestOrigin {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let port = listener.local_addr().expect("origin addr").port();
    let counter = Counter::default();
    let shared = web::Data::new(counter.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .default_service(web::to(origin_handler))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen origin")
    .run();
    actix_web::rt::spawn(server);
    TestOrigin { port, counter }
}

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
            let mut response = HttpResponse::Ok();
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

/// An origin that answers every connection with fixed bytes and keeps the
/// request heads it received, for checking exactly what crosses the wire.
pub struct RawOrigin {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<String>>>,
}

pub async fn spawn_raw_origin(response: &'static [u8]) -> RawOrigin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind raw origin");
    let port = listener.local_addr().expect("raw origin addr").port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    actix_web::rt::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let head = read_head(&mut socket).await;
            seen.lock().expect("requests lock").push(head);
            let _ = socket.write_all(response).await;
            let _ = socket.shutdown().await;
        }
    });
    RawOrigin { port, requests }
}

/// How a [`spawn_faulty_origin`] ends each answer after its fixed bytes.
#[derive(Clone)]
pub enum Ending {
    /// Keeps the connection open and never sends another byte.
    Hang,
    /// Resets the connection (`SO_LINGER` 0, so an RST rather than a FIN)
    /// once the test notifies: the test first sees the prefix arrive.
    ResetWhen(Arc<tokio::sync::Notify>),
}

/// An origin that answers every connection with `prefix` (which may be
/// empty), then hangs or resets as `ending` says; it keeps the request
/// heads it received.
pub async fn spawn_faulty_origin(prefix: &'static [u8], ending: Ending) -> RawOrigin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind faulty origin");
    let port = listener.local_addr().expect("faulty origin addr").port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    actix_web::rt::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            let ending = ending.clone();
            actix_web::rt::spawn(async move {
                let head = read_head(&mut socket).await;
                seen.lock().expect("requests lock").push(head);
                let _ = socket.write_all(prefix).await;
                match ending {
                    // Held until the test's runtime ends.
                    Ending::Hang => std::future::pending::<()>().await,
                    Ending::ResetWhen(go) => {
                        go.notified().await;
                        let _ = socket.set_zero_linger();
                        drop(socket);
                    }
                }
            });
        }
    });
    RawOrigin { port, requests }
}

/// Reads an HTTP message head (up to the blank line) from a socket.
pub async fn read_head(socket: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match socket.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends raw bytes to a server and returns everything it answers until it closes.
pub async fn raw_request(port: u16, request: &[u8]) -> String {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    socket.write_all(request).await.expect("write request");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A caje node on port 0, with its own cache directory and database.
pub struct TestApp {
    pub port: u16,
    /// Shared with any node restarted over the same directory.
    pub dir: Arc<TempDir>,
    origins: Vec<Origin>,
    pub cache: Mailbox<CacheStore>,
    pub manifest: Mailbox<Manifest>,
    pub populator: Mailbox<Populator>,
    pub metrics: Arc<caje::metrics::Metrics>,
    pub client: awc::Client,
}

/// The host name tests use for the main test origin.
pub const HOST: &str = "site.test";

/// caje in front of `origin` for [`HOST`].
pub async fn spawn_app(origin: &TestOrigin) -> TestApp {
    spawn_app_with(vec![(HOST, origin.url(), Duration::from_secs(10))]).await
}

/// caje with the given (host, upstream, timeout) origins.
pub async fn spawn_app_with(origins: Vec<(&str, String, Duration)>) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let origins = origins
        .into_iter()
        .map(|(host, upstream, timeout)| Origin {
            host: host.to_owned(),
            upstream,
            timeout,
            cache_set_cookie: false,
        })
        .collect();
    spawn_node(origins, dir, |_| {}).await
}

/// caje in front of `origin` for [`HOST`], over a directory prepared by the
/// test, with settings adjusted by `adjust`.
pub async fn spawn_app_in(
    origin: &TestOrigin,
    dir: Arc<TempDir>,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let origins = vec![Origin {
        host: HOST.to_owned(),
        upstream: origin.url(),
        timeout: Duration::from_secs(10),
        cache_set_cookie: false,
    }];
    spawn_node(origins, dir, adjust).await
}

async fn spawn_node(
    origins: Vec<Origin>,
    dir: Arc<TempDir>,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    init_logging();
    let mut settings = Settings::with_origins(origins.clone());
    settings.listen = "127.0.0.1:0".parse().expect("addr");
    settings.cache_dir = dir.path().join("cache");
    settings.database = dir.path().join("manifest.db");
    settings.litefs = caje::config::LiteFsMode::Off;
    settings.workers = Some(2);
    // The populator runs only when a test asks: a run at a random moment
    // would fetch pages behind the test's back.
    settings.populate_interval = Duration::from_secs(3600);
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("caje starts");
    let port = app.port();
    let cache = app.cache();
    let manifest = app.manifest();
    let populator = app.populator();
    let metrics = app.metrics();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        port,
        dir,
        origins,
        cache,
        manifest,
        populator,
        metrics,
        client: test_client(),
    }
}

/// The admin token of nodes started by [`spawn_admin_app`].
pub const TOKEN: &str = "test-admin-token-0123456789";

/// caje in front of `origin` with the admin token [`TOKEN`] set.
pub async fn spawn_admin_app(origin: &TestOrigin) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(origin, dir, |s| s.admin_token = Some(TOKEN.to_owned())).await
}

/// A response read whole (test bodies are small).
pub struct Reply {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Another node started over this node's cache directory and database,
    /// as after a restart.
    pub async fn restarted(&self) -> TestApp {
        spawn_node(self.origins.clone(), self.dir.clone(), |_| {}).await
    }

    /// Where the entry for `path` on [`HOST`] (no `Vary`) lives.
    pub fn entry_path(&self, path: &str) -> PathBuf {
        let key = caje::cache::CacheKey::new("GET", HOST, path);
        let name = caje::cache::VariantKey::new(&key, &vec![]).file_name();
        self.cache_dir().join(&name[..2]).join(name)
    }

    /// GET `path` for [`HOST`] with extra headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request("GET", HOST, path, headers).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[]).await
    }

    /// An admin request: `token` as a bearer token, `json` as the body.
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        json: Option<serde_json::Value>,
    ) -> Reply {
        admin_request(&self.client, &self.url(path), method, token, json).await
    }

    pub async fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        request(&self.client, &self.url(path), method, host, headers).await
    }

    /// Waits until the store has committed `n` entries in all.
    pub async fn stored(&self, n: u64) {
        eventually(|| async {
            let stats = self.cache.send(GetCacheStats).await.expect("cache store");
            (stats.stored >= n).then_some(())
        })
        .await
    }

    /// Waits until the manifest holds `n` pages, and returns them.
    pub async fn pages(&self, n: usize) -> Vec<Page> {
        eventually(|| async {
            match self.manifest.send(ListPages::all()).await {
                Ok(Ok(list)) if list.pages.len() >= n => Some(list.pages),
                _ => None,
            }
        })
        .await
    }
}

/// A request to `url` for `host` with extra headers, read whole.
pub async fn request(
    client: &awc::Client,
    url: &str,
    method: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, url).insert_header(("host", host));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    read(req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"))).await
}

/// A request to `url` with the given headers and, if any, a form body, read whole.
pub async fn request_with_form(
    client: &awc::Client,
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    form: Option<&[(&str, &str)]>,
) -> Reply {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let sent = match form {
        Some(form) => req.send_form(&form).await,
        None => req.send().await,
    };
    read(sent.unwrap_or_else(|e| panic!("{url}: {e}"))).await
}

/// An admin request asking for JSON: `token` as a bearer token, `json` as the body.
pub async fn admin_request(
    client: &awc::Client,
    url: &str,
    method: &str,
    token: Option<&str>,
    json: Option<serde_json::Value>,
) -> Reply {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client
        .request(method, url)
        .insert_header(("accept", "application/json"));
    if let Some(token) = token {
        req = req.insert_header(("authorization", format!("Bearer {token}")));
    }
    let sent = match json {
        Some(json) => req.send_json(&json).await,
        None => req.send().await,
    };
    read(sent.unwrap_or_else(|e| panic!("{url}: {e}"))).await
}

async fn read(mut res: awc::ClientResponse) -> Reply {
    let body = res.body().limit(1 << 20).await.expect("body");
    Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A client for tests: no redirects followed, generous timeout.
pub fn test_client() -> awc::Client {
    awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(30))
        .finish()
}

/// Polls `check` every 20 ms until it yields a value; fails the test after 10 s.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A caje process started from the built binary, for what only a real
/// process shows (peak memory, exit codes, nodes sharing a database). Its
/// stderr goes to `<config>.log`, printed if the test fails. Killed when dropped.
pub struct CajeProcess {
    pub name: String,
    pub child: std::process::Child,
    pub port: u16,
    log: PathBuf,
    /// Everything it printed on stdout so far.
    stdout: Arc<Mutex<String>>,
}

impl CajeProcess {
    /// Starts `caje --config <file>` and waits for its "listening" line.
    pub async fn start(config: &Path) -> CajeProcess {
        Self::start_with("caje", config, &[]).await
    }

    /// The same, named `name` in messages, with extra environment variables.
    pub async fn start_with(name: &str, config: &Path, env: &[(&str, &str)]) -> CajeProcess {
        use std::io::BufRead;
        let log = config.with_extension("log");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_caje"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "caje=info")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("caje binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let printed = Arc::new(Mutex::new(String::new()));
        let kept = printed.clone();
        // Reads the announcement, then keeps draining stdout until caje exits.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(mut kept) = kept.lock() {
                    kept.push_str(&line);
                    kept.push('\n');
                }
                if let Some(port) = line.strip_prefix("caje listening on port ") {
                    if let (Some(tx), Ok(port)) = (tx.take(), port.trim().parse::<u16>()) {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let mut process = CajeProcess {
            name: name.to_owned(),
            child,
            port: 0,
            log,
            stdout: printed,
        };
        process.port = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("{name} did not announce its port within 30 s"))
            .unwrap_or_else(|_| panic!("{name} exited before listening"));
        process
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the process wrote so far: its stdout, then its stderr log.
    pub fn output(&self) -> String {
        let stdout = self.stdout.lock().expect("stdout lock").clone();
        let stderr = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("{stdout}{stderr}")
    }

    /// Peak resident memory so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }
}

impl Drop for CajeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- log of {} ----\n{log}", self.name);
        }
    }
}

/// Process control for fault and load tests: signals, exit status, logs,
/// memory and CPU time.
impl CajeProcess {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits in pid_t")
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        let sent = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(
            sent,
            0,
            "kill({}, {signal}): {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// Waits for the process to exit, polling; fails the test after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} still runs {within:?} after being told to stop",
                self.name
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// CPU time (user and system) it has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time_of(&self.child.id().to_string())
    }
}

/// CPU time (user and system) used by process `pid` (`self` for this one).
pub fn cpu_time_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th of the whole line.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// Writes `<dir>/caje.toml` for a [`CajeProcess`] in front of `upstream`
/// for [`HOST`]: cache and manifest in `dir`, port 0, no LiteFS, the
/// populator only on demand; `extra` adds top-level keys.
pub fn process_config(dir: &Path, upstream: &str, extra: &str) -> PathBuf {
    let config = dir.join("caje.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ncache_dir = \"{0}/cache\"\ndatabase = \"{0}/manifest.db\"\n\
             litefs = \"off\"\npopulate_interval = \"1h\"\n{extra}\n\
             [[origin]]\nhost = \"{HOST}\"\nupstream = \"{upstream}\"\n",
            dir.display()
        ),
    )
    .expect("write config");
    config
}

#[derive(diesel::QueryableByName)]
struct IntegrityRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

#[derive(diesel::QueryableByName)]
struct PathRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    path_and_query: String,
}

/// Opens a SQLite database from outside caje, as an operator would.
fn open_db(db: &Path) -> diesel::SqliteConnection {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(&db.display().to_string())
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    diesel::sql_query("PRAGMA busy_timeout = 5000")
        .execute(&mut conn)
        .expect("busy_timeout");
    conn
}

/// SQLite's `PRAGMA integrity_check` of a database: `"ok"` when sound.
pub fn integrity_check(db: &Path) -> String {
    use diesel::RunQueryDsl;
    let rows: Vec<IntegrityRow> = diesel::sql_query("PRAGMA integrity_check")
        .load(&mut open_db(db))
        .expect("integrity_check runs");
    rows.into_iter()
        .map(|r| r.integrity_check)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The paths (with query) of every page of a manifest database.
pub fn manifest_paths(db: &Path) -> std::collections::HashSet<String> {
    use diesel::RunQueryDsl;
    let rows: Vec<PathRow> = diesel::sql_query("SELECT path_and_query FROM pages")
        .load(&mut open_db(db))
        .expect("pages readable");
    rows.into_iter().map(|r| r.path_and_query).collect()
}
