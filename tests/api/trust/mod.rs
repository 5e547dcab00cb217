//! One client never changes what another gets: no unkeyed part of a request
//! reaches the origin, request directives never evict or switch off
//! coalescing, stale serving obeys the response, and a purge wins over
//! every store or rewrite that began before it. Each test is the regression
//! test of one finding of the trust review (README, "Reliability and
//! security").

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::http::Method;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use caje::actors::cache_store::{
    GetCacheStats, Lookup, LookupResult, Purge, SoftPurge, UpdateHead,
};
use caje::cache::CacheKey;
use serde_json::json;

use crate::helpers::{
    eventually, raw_request, spawn_admin_app, spawn_app, spawn_app_in, spawn_origin, Counter,
    TestApp, TestOrigin, HOST, TOKEN,
};

/// One request as the trust origin received it.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    head: String,
    body: Bytes,
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
struct TrustOrigin {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TrustOrigin {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method.as_str() == method && s.path == path)
            .count()
    }

    /// What `spawn_app_in` takes: this origin's port.
    fn as_test_origin(&self) -> TestOrigin {
        TestOrigin {
            port: self.port,
            counter: Counter::default(),
        }
    }
}

async fn spawn_trust_origin() -> TrustOrigin {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let port = listener.local_addr().expect("origin addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shared = web::Data::from(seen.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .default_service(web::to(trust_origin))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen origin")
    .run();
    actix_web::rt::spawn(server);
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
        _ => HttpResponse::NotFound().finish(),
    }
}

/// caje in front of the trust origin for [`HOST`], with the admin token.
async fn node(origin: &TrustOrigin) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(&origin.as_test_origin(), dir, |s| {
        s.admin_token = Some(TOKEN.to_owned())
    })
    .await
}

/// GETs `path` for [`HOST`]; its `Cache-Status` and body length (bodies
/// here are too large for [`TestApp::get`]).
async fn get_len(app: &TestApp, path: &str) -> (String, usize) {
    let mut res = app
        .client
        .get(app.url(path))
        .insert_header(("host", HOST))
        .send()
        .await
        .expect("request");
    let body = res.body().limit(64 << 20).await.expect("body");
    let status = res
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, body.len())
}

/// Sends a raw request (it must close the connection) and returns the answer.
async fn raw(app: &TestApp, request: &[u8]) -> String {
    raw_request(app.port, request).await
}

fn is_hit(cache_status: &str) -> bool {
    cache_status.starts_with("caje; hit")
}

#[actix_web::test]
async fn the_origin_is_told_the_configured_host_whatever_the_client_wrote() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    let spellings: [&[u8]; 5] = [
        b"GET /host/1 HTTP/1.1\r\nHost: site.test:6666\r\nConnection: close\r\n\r\n",
        b"GET /host/2 HTTP/1.1\r\nHost: SITE.TEST\r\nConnection: close\r\n\r\n",
        b"GET /host/3 HTTP/1.1\r\nHost: site.test:\r\nConnection: close\r\n\r\n",
        b"GET http://site.test:31337/host/4 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
        b"GET http://Site.Test./host/5 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    ];
    for request in spellings {
        raw(&app, request).await;
    }
    for n in 1..=4 {
        let reply = app.get(&format!("/host/{n}")).await;
        assert_eq!(reply.body, "x-forwarded-host=site.test", "/host/{n}");
        assert!(is_hit(reply.cache_status()), "{}", reply.cache_status());
    }
    for seen in origin.seen() {
        assert!(
            seen.head.contains("\nx-forwarded-host: site.test\n"),
            "{}",
            seen.head
        );
    }
    // The trailing-dot name is another host: refused, never forwarded.
    assert_eq!(origin.count("GET", "/host/5"), 0);
}

#[actix_web::test]
async fn client_ip_and_rewriting_fields_never_reach_the_origin() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    let fields = [
        ("x-forwarded-host", "evil.test"),
        ("x-forwarded", "for=203.0.113.1"),
        ("x-proxy-host", "proxy.evil.test"),
        ("x-original-uri", "/original-uri"),
        ("x-override-url", "/override"),
        ("x-envoy-original-path", "/envoy"),
        ("x-original-method", "DELETE"),
        ("x-client-ip", "203.0.113.2"),
        ("client-ip", "203.0.113.3"),
        ("true-client-ip", "203.0.113.4"),
        ("x-cluster-client-ip", "203.0.113.5"),
        ("cf-connecting-ip", "203.0.113.6"),
        ("fastly-client-ip", "203.0.113.7"),
        ("fly-client-ip", "203.0.113.8"),
        ("x-originating-ip", "203.0.113.9"),
        ("x-remote-ip", "203.0.113.10"),
        ("x-remote-addr", "203.0.113.11"),
        ("x-scheme", "scheme-https"),
        ("front-end-https", "front-end-on"),
        ("x-arr-ssl", "arr-ssl-on"),
    ];
    let reply = app.get_with("/host/fields", &fields).await;
    assert_eq!(reply.body, "x-forwarded-host=site.test");
    let head = &origin.seen()[0].head;
    for (name, value) in fields {
        assert!(
            !head.contains(value),
            "the origin saw {name}: {value}\n{head}"
        );
    }
}

#[actix_web::test]
async fn a_get_or_head_body_never_reaches_the_origin() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    let fat = b"GET /body/fat HTTP/1.1\r\nHost: site.test\r\nContent-Length: 6\r\nConnection: close\r\n\r\npoison";
    let answer = raw(&app, fat).await;
    assert!(answer.ends_with("body="), "{answer}");
    let reply = app.get("/body/fat").await;
    assert_eq!(reply.body, "body=");
    assert!(is_hit(reply.cache_status()), "{}", reply.cache_status());
    let chunked = b"HEAD /body/head HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n6\r\npoison\r\n0\r\n\r\n";
    raw(&app, chunked).await;
    // A body that looks like a request is read as a body, never as a
    // second request.
    let body = b"GET /body/smuggled HTTP/1.1\r\nHost: site.test\r\n\r\n";
    let mut smuggle = format!(
        "GET /body/outer HTTP/1.1\r\nHost: site.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    smuggle.extend_from_slice(body);
    smuggle.extend_from_slice(
        b"GET /body/after HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    );
    let answer = raw(&app, &smuggle).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    let seen = origin.seen();
    assert!(seen.iter().all(|s| s.body.is_empty()), "{seen:?}");
    assert!(seen.iter().all(|s| s.path != "/body/smuggled"), "{seen:?}");
    for s in &seen {
        let head = s.head.to_ascii_lowercase();
        assert!(!head.contains("content-length: 6"), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
    }
}

#[actix_web::test]
async fn a_field_the_client_hides_with_connection_keys_no_variant() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    let hidden = b"GET /cors/a HTTP/1.1\r\nHost: site.test\r\nOrigin: https://app.example\r\nConnection: close, Origin\r\n\r\n";
    let answer = raw(&app, hidden).await;
    assert!(answer.contains("origin="), "{answer}");
    assert!(!answer
        .to_ascii_lowercase()
        .contains("access-control-allow-origin"));
    // A browser's request with that Origin gets the answer built for it.
    let reply = app
        .get_with("/cors/a", &[("origin", "https://app.example")])
        .await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example"),
        "{}",
        reply.cache_status()
    );
    assert_eq!(reply.body, "origin=https://app.example");
    // And the hidden request's answer is the one for no Origin at all.
    let plain = app.get("/cors/a").await;
    assert!(is_hit(plain.cache_status()), "{}", plain.cache_status());
    assert_eq!(plain.body, "origin=");
    assert_eq!(origin.count("GET", "/cors/a"), 2);
}

#[actix_web::test]
async fn vary_values_that_differ_in_any_byte_are_other_variants() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    let ask = |value: &'static [u8]| {
        let mut request = b"GET /user/x HTTP/1.1\r\nHost: site.test\r\nX-User: ".to_vec();
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        request
    };
    let ff = raw(&app, &ask(b"alice\xff")).await;
    assert!(ff.ends_with("user=616c696365ff"), "{ff}");
    let fe = raw(&app, &ask(b"alice\xfe")).await;
    assert!(fe.ends_with("user=616c696365fe"), "{fe}");
    let again = raw(&app, &ask(b"alice\xff")).await;
    assert!(again.ends_with("user=616c696365ff"), "{again}");
    assert!(again.contains("Cache-Status: caje; hit") || again.contains("cache-status: caje; hit"));
    assert_eq!(origin.count("GET", "/user/x"), 2);
}

#[actix_web::test]
async fn a_head_within_stale_while_revalidate_refreshes_with_get() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    assert_eq!(app.get("/swr/page").await.body, "swr body #1");
    app.stored(1).await;
    // Poll with HEAD until one is answered stale and starts the refresh.
    eventually(|| async {
        let reply = app.request("HEAD", HOST, "/swr/page", &[]).await;
        reply
            .cache_status()
            .contains("stale-while-revalidate")
            .then_some(())
    })
    .await;
    app.stored(2).await;
    assert_eq!(origin.count("HEAD", "/swr/page"), 0, "refreshed with HEAD");
    let reply = app.get("/swr/page").await;
    assert_eq!(reply.body, "swr body #2", "{}", reply.cache_status());
}

#[actix_web::test]
async fn request_directives_never_remove_what_is_stored() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let asks: [&[(&str, &str)]; 3] = [
        &[("cache-control", "no-cache, no-store")],
        &[("cache-control", "no-cache"), ("authorization", "Bearer x")],
        &[("cache-control", "no-store, max-age=0")],
    ];
    for (n, headers) in asks.into_iter().enumerate() {
        let path = format!("/etag/60/keep{n}");
        app.get(&path).await;
        app.stored(n as u64 + 1).await;
        let validated = app.get_with(&path, headers).await;
        assert!(
            validated.cache_status().contains("fwd-status=304"),
            "{headers:?}: {}",
            validated.cache_status()
        );
        let after = app.get(&path).await;
        assert!(
            is_hit(after.cache_status()),
            "{headers:?} removed the stored copy: {}",
            after.cache_status()
        );
        assert_eq!(origin.counter.get(&path), 2, "{headers:?}");
    }
}

#[actix_web::test]
async fn max_stale_never_beats_a_response_that_forbids_serving_stale() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let headers = |cc: &str| {
        serde_urlencoded::to_string([("cache-control", cc), ("etag", "\"e\"")]).expect("query")
    };
    let paths = [
        "/etag-nc/a".to_owned(),
        format!("/headers/b?{}", headers("no-cache, max-age=1")),
        format!(
            "/headers/c?{}",
            headers("no-cache=\"Set-Cookie\", max-age=60")
        ),
    ];
    for (n, path) in paths.iter().enumerate() {
        app.get(path).await;
        app.stored(n as u64 + 1).await;
        let counted = path.split('?').next().unwrap_or(path);
        for asked in ["max-stale", "max-stale=3600"] {
            let before = origin.counter.get(counted);
            let reply = app.get_with(path, &[("cache-control", asked)]).await;
            assert!(
                reply.cache_status().contains("fwd=stale"),
                "{path} with {asked}: {}",
                reply.cache_status()
            );
            assert_eq!(
                origin.counter.get(counted),
                before + 1,
                "{path} with {asked}"
            );
        }
    }
    // must-revalidate's siblings for a shared cache, once stale.
    for (n, cc) in ["s-maxage=1", "max-age=1, proxy-revalidate"]
        .into_iter()
        .enumerate()
    {
        let path = format!("/headers/strict{n}?{}", headers(cc));
        app.get(&path).await;
        app.stored(paths.len() as u64 + n as u64 + 1).await;
        let counted = format!("/headers/strict{n}");
        eventually(|| async {
            app.get_with(&path, &[("cache-control", "max-stale=3600")])
                .await;
            (origin.counter.get(&counted) > 1).then_some(())
        })
        .await;
    }
}

#[actix_web::test]
async fn one_no_store_request_does_not_switch_off_coalescing() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let asks: [&[(&str, &str)]; 2] = [
        &[("cache-control", "no-store")],
        &[("authorization", "Bearer x")],
    ];
    for (n, headers) in asks.into_iter().enumerate() {
        let counted = format!("/headers/slow{n}");
        let path = format!("{counted}?cache-control=max-age%3D60&x-delay-ms=300");
        let first = app.get_with(&path, headers).await;
        assert!(
            !first.cache_status().contains("stored"),
            "{}",
            first.cache_status()
        );
        let burst = (0..5).map(|_| app.get(&path));
        let replies = futures_util::future::join_all(burst).await;
        let collapsed = replies
            .iter()
            .filter(|r| r.cache_status().contains("collapsed"))
            .count();
        assert_eq!(collapsed, 4, "{headers:?}");
        assert_eq!(origin.counter.get(&counted), 2, "{headers:?}");
    }
}

/// The stored head of `path` on [`HOST`] (no `Vary`).
async fn stored_head(app: &TestApp, path: &str) -> caje::cache::EntryHead {
    let key = CacheKey::new("GET", HOST, path);
    let found = app
        .cache
        .send(Lookup {
            key,
            request_headers: Default::default(),
        })
        .await
        .expect("cache store");
    let LookupResult::Found(hit) = found else {
        panic!("{path} is not stored")
    };
    (*hit.head).clone()
}

async fn writes_cancelled(app: &TestApp, n: u64) {
    eventually(|| async {
        let stats = app.cache.send(GetCacheStats).await.expect("cache store");
        (stats.writes_cancelled >= n).then_some(())
    })
    .await
}

#[actix_web::test]
async fn a_purge_wins_over_a_head_rewrite_under_way() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    for (n, soft_first) in [false, true].into_iter().enumerate() {
        let path = format!("/bigtag/16/{n}");
        get_len(&app, &path).await;
        app.stored(n as u64 + 1).await;
        let head = stored_head(&app, &path).await;
        let key = head.key.clone();
        // The rewrite copies 16 MiB on the blocking pool; the purge comes
        // while it does.
        if soft_first {
            app.cache.send(SoftPurge(key.clone())).await.expect("store");
        } else {
            app.cache.send(UpdateHead(head)).await.expect("store");
        }
        assert_eq!(app.cache.send(Purge(key)).await.expect("store"), 1);
        writes_cancelled(&app, n as u64 + 1).await;
        assert!(!app.entry_path(&path).exists(), "the purge was undone");
        let (status, len) = get_len(&app, &path).await;
        assert!(!is_hit(&status), "{status}");
        assert_eq!(len, 16 << 20);
        assert_eq!(origin.count("GET", &path), 2);
    }
}

#[actix_web::test]
async fn a_purge_during_the_first_fetch_wins() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    // 256 KiB in four chunks 300 ms apart.
    let path = "/det/256/300/purged";
    let fetch = {
        let (client, url) = (app.client.clone(), app.url(path));
        actix_web::rt::spawn(async move {
            let mut res = client
                .get(url)
                .insert_header(("host", HOST))
                .send()
                .await
                .expect("fetch");
            res.body().limit(1 << 20).await.expect("body").len()
        })
    };
    eventually(|| async { (origin.counter.get(path) == 1).then_some(()) }).await;
    let url = format!("http://{HOST}{path}");
    let answer = app
        .admin(
            "POST",
            "/_caje/purge",
            Some(TOKEN),
            Some(json!({ "url": url })),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["purged"], 1, "{}", answer.body);
    assert_eq!(
        fetch.await.expect("fetch task"),
        256 * 1024,
        "the client still gets it all"
    );
    writes_cancelled(&app, 1).await;
    let after = app.get(path).await;
    assert!(!is_hit(after.cache_status()), "{}", after.cache_status());
    assert_eq!(origin.counter.get(path), 2);
}

#[actix_web::test]
async fn a_soft_purge_applies_to_the_very_next_request() {
    let origin = spawn_trust_origin().await;
    let first = node(&origin).await;
    let path = "/bigtag/32/soft";
    get_len(&first, path).await;
    first.stored(1).await;
    // Restarted: the index knows the entry only by name, not its head.
    let app = spawn_app_in(&origin.as_test_origin(), first.dir.clone(), |s| {
        s.admin_token = Some(TOKEN.to_owned())
    })
    .await;
    let url = format!("http://{HOST}{path}");
    let answer = app
        .admin(
            "POST",
            "/_caje/purge",
            Some(TOKEN),
            Some(json!({ "url": url, "soft": true })),
        )
        .await;
    assert_eq!(answer.json()["purged"], 1, "{}", answer.body);
    let (status, len) = get_len(&app, path).await;
    assert!(status.contains("fwd=stale; fwd-status=304"), "{status}");
    assert_eq!(len, 32 << 20);
}

#[actix_web::test]
async fn a_range_request_on_a_miss_fetches_and_stores_the_whole_response() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    let first = app.get_with("/range/a", &[("range", "bytes=0-3")]).await;
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    app.stored(1).await;
    let part = app.get_with("/range/a", &[("range", "bytes=2-5")]).await;
    assert_eq!((part.status, part.body.as_str()), (206, "2345"));
    assert!(is_hit(part.cache_status()), "{}", part.cache_status());
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].head.contains("\nrange:"), "{}", seen[0].head);
}

#[actix_web::test]
async fn the_client_address_comes_from_the_configured_proxy_header_only() {
    let origin = spawn_trust_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin.as_test_origin(), dir, |s| {
        s.client_ip_header = Some(actix_web::http::header::HeaderName::from_static(
            "fly-client-ip",
        ))
    })
    .await;
    let fields = [
        ("fly-client-ip", "203.0.113.50"),
        ("x-real-ip", "203.0.113.51"),
    ];
    app.get_with("/host/ip", &fields).await;
    app.get_with("/host/not-an-ip", &[("fly-client-ip", "nonsense")])
        .await;
    let seen = origin.seen();
    assert!(
        seen[0].head.contains("\nx-forwarded-for: 203.0.113.50\n"),
        "{}",
        seen[0].head
    );
    assert!(!seen[0].head.contains("fly-client-ip"), "{}", seen[0].head);
    assert!(!seen[0].head.contains("203.0.113.51"), "{}", seen[0].head);
    assert!(
        seen[1].head.contains("\nx-forwarded-for: 127.0.0.1\n"),
        "{}",
        seen[1].head
    );
}
