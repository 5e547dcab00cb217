//! Security promises, each against a real origin and a real caje: never an
//! open proxy; no cache poisoning through a client's forwarding or override
//! headers; one user's cookies and authorised answers never handed to
//! another; admin endpoints that refuse (and do nothing) without the token,
//! are never forwarded to an origin, and never write the token to the logs.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use caje::actors::manifest::{LastPurgeId, ListPages, PageVisit, WriteBatch};
use caje::actors::populator::GetStatus;
use caje::cache::CacheKey;
use serde_json::json;

use crate::helpers::{
    eventually, process_config, request, spawn_admin_app, spawn_app, spawn_app_in, spawn_app_with,
    spawn_origin, test_client, CajeProcess, TestApp, TestOrigin, HOST, TOKEN,
};

/// An origin that believes every forwarding and override header, as IIS
/// (`X-Original-URL`), Symfony (`X-Forwarded-Host`, `X-HTTP-Method-Override`)
/// or Rails (`X-Forwarded-Proto`) can be set up to: its cacheable answer
/// names the method, URL and client it thinks it served. `/etag-cookie`
/// has an `ETag` and answers a revalidation with a 304 that sets a cookie.
/// It keeps every request head it receives.
struct GullibleOrigin {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl GullibleOrigin {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads lock").clone()
    }
}

async fn spawn_gullible_origin() -> GullibleOrigin {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let port = listener.local_addr().expect("origin addr").port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let shared = web::Data::from(heads.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .default_service(web::to(gullible))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen origin")
    .run();
    actix_web::rt::spawn(server);
    GullibleOrigin { port, heads }
}

async fn gullible(req: HttpRequest, heads: web::Data<Mutex<Vec<String>>>) -> HttpResponse {
    let mut head = format!("{} {}\n", req.method(), req.uri());
    for (name, value) in req.headers() {
        head.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    heads.lock().expect("heads lock").push(head);
    let field = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if req.path() == "/etag-cookie" {
        let revalidating = field("if-none-match").is_some_and(|v| v.contains("\"v1\""));
        let mut response = if revalidating {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        response
            .insert_header(("cache-control", "max-age=60"))
            .insert_header(("etag", "\"v1\""));
        // `public`: the cookie alone must keep it out of the stored copy.
        return if revalidating {
            response
                .insert_header(("cache-control", "public, max-age=60"))
                .insert_header(("set-cookie", "session=revalidating-client"))
                .finish()
        } else {
            response.body("etag-cookie body")
        };
    }
    let forwarded = field("forwarded").unwrap_or_default();
    let forwarded_param = |key: &str| {
        forwarded
            .split([';', ','])
            .find_map(|part| part.trim().strip_prefix(key))
            .map(str::to_owned)
    };
    let method = field("x-http-method-override")
        .or_else(|| field("x-http-method"))
        .or_else(|| field("x-method-override"))
        .unwrap_or_else(|| req.method().to_string());
    let scheme = field("x-forwarded-proto")
        .or_else(|| field("x-forwarded-scheme"))
        .or_else(|| field("x-url-scheme"))
        .or_else(|| forwarded_param("proto="))
        .unwrap_or_else(|| "http".to_owned());
    let host = field("x-forwarded-host")
        .or_else(|| field("x-host"))
        .or_else(|| field("x-original-host"))
        .or_else(|| forwarded_param("host="))
        .or_else(|| field("host"))
        .unwrap_or_default();
    let port = field("x-forwarded-port")
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let prefix = field("x-forwarded-prefix").unwrap_or_default();
    let path = field("x-original-url")
        .or_else(|| field("x-rewrite-url"))
        .unwrap_or_else(|| req.path().to_owned());
    let client = field("x-real-ip")
        .or_else(|| forwarded_param("for="))
        .or_else(|| field("x-forwarded-for"))
        .unwrap_or_default();
    HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .body(format!(
            "{method} {scheme}://{host}{port}{prefix}{path} for {client}"
        ))
}

#[actix_web::test]
async fn only_configured_hosts_reach_an_upstream() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let refused = [
        "elsewhere.test".to_owned(),
        "evil.site.test".to_owned(),
        "site.test.evil.test".to_owned(),
        "site.testx".to_owned(),
        "xsite.test".to_owned(),
        // config::normalize_host keeps a trailing dot: not the configured name.
        "site.test.".to_owned(),
        // The origin's own address, and caje's, are not configured hosts.
        format!("127.0.0.1:{}", origin.port),
        format!("localhost:{}", origin.port),
        "127.0.0.1".to_owned(),
        format!("127.0.0.1:{}", app.port),
        format!("[::1]:{}", origin.port),
    ];
    for host in &refused {
        for method in ["GET", "POST", "DELETE"] {
            let reply = app.request(method, host, "/cache/h", &[]).await;
            assert_eq!(reply.status, 421, "{method} for {host}: {}", reply.body);
        }
    }
    assert_eq!(origin.counter.total(), 0, "the origin was asked");
    // Case and port are ignored (config::normalize_host).
    for (n, host) in ["site.test", "SITE.TEST", "Site.Test:8443", "site.test:1"]
        .into_iter()
        .enumerate()
    {
        let reply = app
            .request("GET", host, &format!("/headers/ok{n}"), &[])
            .await;
        assert_eq!(reply.status, 200, "{host}: {}", reply.body);
    }
    assert_eq!(origin.counter.total(), 4);
}

#[actix_web::test]
async fn the_origins_own_address_is_a_host_only_when_configured() {
    let origin = spawn_origin().await;
    let app = spawn_app_with(vec![("127.0.0.1", origin.url(), Duration::from_secs(10))]).await;
    let own = format!("127.0.0.1:{}", origin.port);
    let reply = app.request("GET", &own, "/cache/own", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(origin.counter.get("/cache/own"), 1);
    let reply = app.request("GET", HOST, "/cache/own", &[]).await;
    assert_eq!(reply.status, 421, "{}", reply.body);
    assert_eq!(origin.counter.get("/cache/own"), 1);
}

#[actix_web::test]
async fn forwarding_and_override_headers_never_poison_the_cache() {
    let origin = spawn_gullible_origin().await;
    let app = spawn_app_with(vec![(HOST, origin.url(), Duration::from_secs(10))]).await;
    let poison = [
        ("x-forwarded-host", "evil.test"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-scheme", "gopher"),
        ("x-forwarded-port", "4443"),
        ("x-forwarded-prefix", "/prefixed"),
        ("x-forwarded-for", "203.0.113.66"),
        ("x-forwarded-server", "server.evil.test"),
        ("forwarded", "for=203.0.113.67;host=fwd.evil.test;proto=wss"),
        ("x-original-url", "/original-url"),
        ("x-rewrite-url", "/rewrite-url"),
        ("x-original-host", "original.evil.test"),
        ("x-host", "xhost.evil.test"),
        ("x-http-method-override", "DELETE"),
        ("x-http-method", "PATCH"),
        ("x-method-override", "PUT"),
        ("x-real-ip", "203.0.113.68"),
        ("x-url-scheme", "ftp"),
    ];
    let clean = format!("GET http://{HOST}/page for 127.0.0.1");
    let poisoned = app.get_with("/page", &poison).await;
    assert_eq!(poisoned.body, clean);
    assert!(
        poisoned.cache_status().contains("stored"),
        "{}",
        poisoned.cache_status()
    );
    app.stored(1).await;
    assert!(app.entry_path("/page").exists(), "not under the plain key");
    let after = app.get("/page").await;
    assert!(
        after.cache_status().contains("hit"),
        "{}",
        after.cache_status()
    );
    assert_eq!(after.body, clean);
    let heads = origin.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    for (name, value) in poison {
        assert!(
            !heads[0].contains(value),
            "the origin saw the client's {name}: {value}\n{}",
            heads[0]
        );
    }
}

/// `Set-Cookie: session=alice` with the given `Cache-Control`, from the
/// test origin's `/headers/` route.
fn with_cookie(name: &str, cache_control: &str) -> String {
    let query = serde_urlencoded::to_string([
        ("cache-control", cache_control),
        ("set-cookie", "session=alice"),
    ])
    .expect("query");
    format!("/headers/{name}?{query}")
}

#[actix_web::test]
async fn responses_with_set_cookie_are_not_stored_unless_the_site_allows_it() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    for (name, cache_control) in [("public", "public, max-age=60"), ("shared", "s-maxage=60")] {
        let path = with_cookie(name, cache_control);
        for n in 1..=2 {
            let reply = app.get(&path).await;
            assert_eq!(reply.body, format!("/headers/{name} #{n}"));
            assert_eq!(reply.header("set-cookie"), Some("session=alice"));
            assert!(
                !reply.cache_status().contains("stored"),
                "{name}: {}",
                reply.cache_status()
            );
        }
    }
}

async fn spawn_cookie_app(origin: &TestOrigin) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(origin, dir, |s| s.origins[0].cache_set_cookie = true).await
}

#[actix_web::test]
async fn with_cache_set_cookie_a_public_response_is_shared_without_its_cookie() {
    let origin = spawn_origin().await;
    let app = spawn_cookie_app(&origin).await;
    // Not marked public by the origin: never stored, whatever the setting.
    for n in 1..=2 {
        let reply = app.get("/cookie").await;
        assert_eq!(reply.body, format!("/cookie #{n}"));
        assert_eq!(reply.header("set-cookie"), Some("session=abc"));
    }
    for (stored, (name, cache_control)) in
        [("public", "public, max-age=60"), ("shared", "s-maxage=60")]
            .into_iter()
            .enumerate()
    {
        let path = with_cookie(name, cache_control);
        let first = app.get(&path).await;
        assert!(
            first.cache_status().contains("stored"),
            "{name}: {}",
            first.cache_status()
        );
        assert_eq!(
            first.header("set-cookie"),
            Some("session=alice"),
            "the client whose request fetched it gets its cookie"
        );
        app.stored(stored as u64 + 1).await;
        let second = app.get(&path).await;
        assert!(
            second.cache_status().contains("hit"),
            "{name}: {}",
            second.cache_status()
        );
        assert_eq!(second.body, first.body);
        assert_eq!(second.header("set-cookie"), None, "{name}: shared a cookie");
        let file = std::fs::read(app.entry_path(&path)).expect("entry file");
        assert!(
            !file.windows(13).any(|w| w == b"session=alice"),
            "{name}: the cookie was written to the cache"
        );
    }
}

#[actix_web::test]
async fn a_cookie_on_a_304_goes_only_to_the_client_that_revalidated() {
    let origin = spawn_gullible_origin().await;
    let app = spawn_app_with(vec![(HOST, origin.url(), Duration::from_secs(10))]).await;
    app.get("/etag-cookie").await;
    app.stored(1).await;
    let entry = app.entry_path("/etag-cookie");
    let before = std::fs::read(&entry).expect("entry file");
    // The client asks for validation: the origin's 304 sets a cookie.
    let validated = app
        .get_with("/etag-cookie", &[("cache-control", "no-cache")])
        .await;
    assert!(
        validated.cache_status().contains("fwd-status=304"),
        "{}",
        validated.cache_status()
    );
    assert_eq!(validated.body, "etag-cookie body");
    assert_eq!(
        validated.header("set-cookie"),
        Some("session=revalidating-client")
    );
    // The 304 restarts freshness: the head is rewritten.
    let after = eventually(|| async {
        let now = std::fs::read(&entry).ok()?;
        (now != before).then_some(now)
    })
    .await;
    assert!(
        !after.windows(11).any(|w| w == b"revalidatin"),
        "the 304's cookie was stored"
    );
    let next = app.get("/etag-cookie").await;
    assert!(
        next.cache_status().contains("hit"),
        "{}",
        next.cache_status()
    );
    assert_eq!(next.header("set-cookie"), None, "another client got it");
}

#[actix_web::test]
async fn an_answer_to_an_authorized_request_reaches_others_only_when_the_origin_allows() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let alice = [("authorization", "Bearer alice")];
    let bob = [("authorization", "Bearer bob")];
    // RFC 9111 §3.5: public, s-maxage or must-revalidate allow sharing.
    let cases = [
        ("max-age=60", false),
        ("private, max-age=60", false),
        ("public, max-age=60", true),
        ("s-maxage=60", true),
        ("must-revalidate, max-age=60", true),
    ];
    let mut shared_so_far = 0;
    for (i, (cache_control, shared)) in cases.into_iter().enumerate() {
        let query = serde_urlencoded::to_string([("cache-control", cache_control)]).expect("q");
        let path = format!("/headers/auth{i}?{query}");
        let first = app.get_with(&path, &alice).await;
        assert_eq!(first.status, 200);
        if shared {
            shared_so_far += 1;
            app.stored(shared_so_far).await;
        }
        for other in [&bob[..], &[]] {
            let reply = app.get_with(&path, other).await;
            assert_eq!(
                reply.body == first.body,
                shared,
                "{cache_control} for {other:?}: {} ({})",
                reply.body,
                reply.cache_status()
            );
        }
        let asked = origin.counter.get(&format!("/headers/auth{i}"));
        assert_eq!(asked, if shared { 1 } else { 3 }, "{cache_control}");
    }
}

/// What the admin actions would change, as it stands now.
#[derive(Debug, PartialEq)]
struct AdminVisibleState {
    origin_asked: usize,
    manifest_pages: usize,
    last_purge: i64,
    populator_runs: u64,
    hits: Vec<bool>,
}

async fn admin_visible_state(app: &TestApp, origin: &TestOrigin) -> AdminVisibleState {
    let manifest_pages = match app.manifest.send(ListPages::all()).await {
        Ok(Ok(list)) => list.pages.len(),
        other => panic!("manifest: {other:?}"),
    };
    let last_purge = match app.manifest.send(LastPurgeId).await {
        Ok(Ok(id)) => id,
        other => panic!("manifest: {other:?}"),
    };
    let populator_runs = app.populator.send(GetStatus).await.expect("populator").runs;
    let mut hits = Vec::new();
    for path in [
        "/cache/kept",
        "/headers/tagged?cache-control=max-age%3D60&surrogate-key=t1",
    ] {
        hits.push(app.get(path).await.cache_status().contains("hit"));
    }
    AdminVisibleState {
        // Read last: the hits above must not have asked the origin either.
        origin_asked: origin.counter.total(),
        manifest_pages,
        last_purge,
        populator_runs,
        hits,
    }
}

/// Every way of not presenting the token that caje must refuse.
fn wrong_credentials(port: u16) -> Vec<Vec<(&'static str, String)>> {
    let last = TOKEN.chars().last().expect("a token");
    let same_length = format!(
        "{}{}",
        &TOKEN[..TOKEN.len() - 1],
        if last == 'x' { 'y' } else { 'x' }
    );
    let cookie = |value: &str| vec![("cookie", format!("caje_session_{port}={value}"))];
    vec![
        vec![],
        vec![("authorization", "Bearer wrong".to_owned())],
        vec![("authorization", format!("Bearer {same_length}"))],
        vec![("authorization", format!("Bearer {}", &TOKEN[1..]))],
        vec![("authorization", format!("Bearer {TOKEN}x"))],
        vec![("authorization", "Bearer ".to_owned())],
        vec![("authorization", format!("Basic {TOKEN}"))],
        vec![("authorization", TOKEN.to_owned())],
        // The session cookie holds a keyed hash, never the token itself.
        cookie(TOKEN),
        cookie("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
        vec![("cookie", format!("token={TOKEN}"))],
        vec![("x-caje-token", TOKEN.to_owned())],
    ]
}

/// Tries every mutating admin action with every wrong credential and checks
/// each is refused with `status` and changes nothing.
async fn refused_and_unchanged(app: &TestApp, origin: &TestOrigin, status: u16) {
    app.get("/cache/kept").await;
    app.get("/headers/tagged?cache-control=max-age%3D60&surrogate-key=t1")
        .await;
    app.stored(2).await;
    // A page the populator would fetch: in the manifest, not in this cache.
    let lacking = CacheKey::new("GET", HOST, "/cache/lacking");
    app.manifest
        .do_send(WriteBatch(vec![PageVisit::now(lacking)]));
    app.pages(3).await;
    let before = admin_visible_state(app, origin).await;
    assert_eq!(before.hits, [true, true]);
    assert_eq!(before.manifest_pages, 3);

    let actions = [
        ("POST", "/_caje/clear_fs".to_owned(), None),
        ("POST", "/_caje/clear_db".to_owned(), None),
        ("POST", "/_caje/populate".to_owned(), None),
        (
            "POST",
            "/_caje/purge".to_owned(),
            Some(json!({ "url": format!("http://{HOST}/cache/kept") })),
        ),
        (
            "POST",
            "/_caje/purge".to_owned(),
            Some(json!({ "tag": "t1" })),
        ),
        (
            "POST",
            "/_caje/purge".to_owned(),
            Some(json!({ "tag": "t1", "soft": true })),
        ),
        ("POST", format!("/_caje/clear_fs?token={TOKEN}"), None),
        ("PURGE", "/cache/kept".to_owned(), None),
    ];
    for credentials in wrong_credentials(app.port) {
        for (method, path, body) in &actions {
            let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
            let mut req = app
                .client
                .request(method.clone(), app.url(path))
                .insert_header(("host", HOST))
                .insert_header(("accept", "application/json"));
            for (name, value) in &credentials {
                req = req.insert_header((*name, value.as_str()));
            }
            let res = match body {
                Some(json) => req.send_json(json).await,
                None => req.send().await,
            }
            .expect("an answer");
            assert_eq!(
                res.status().as_u16(),
                status,
                "{method} {path} with {credentials:?}"
            );
        }
    }
    assert_eq!(admin_visible_state(app, origin).await, before);
    assert_eq!(origin.counter.get("/cache/lacking"), 0);
}

#[actix_web::test]
async fn admin_actions_with_a_missing_or_wrong_token_change_nothing() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    refused_and_unchanged(&app, &origin, 401).await;
}

#[actix_web::test]
async fn admin_actions_without_a_configured_token_change_nothing() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    refused_and_unchanged(&app, &origin, 403).await;
}

#[actix_web::test]
async fn nothing_like_an_admin_path_is_ever_forwarded() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let bearer = format!("Bearer {TOKEN}");
    let paths = [
        "/_caje",
        "/_caje/nope",
        "/_caje/nope?x=1",
        "/_caje/../x",
        "/_caje/./list",
        "/./_caje/list",
        "/x/../_caje/list",
        "/%5Fcaje/list",
        "/%5fcaje/purge",
        "/%5F%63%61%6A%65/list",
        "/%255Fcaje/list",
        "/_caje%2Flist",
        "//_caje/list",
        "///_caje/clear_fs",
        "/_CAJE/list",
        "/_Caje/purge",
        "/%5FCAJE/clear_db",
        "/_caje;jsessionid=1/list",
        "/_caje/",
    ];
    for path in paths {
        for method in ["GET", "POST", "PURGE", "DELETE"] {
            for headers in [vec![], vec![("authorization", bearer.as_str())]] {
                let reply = app.request(method, HOST, path, &headers).await;
                // Answered by caje itself: the admin scope (even 200 for an
                // authorised `/%5Fcaje/list`, which actix-web decodes), 404
                // for a lookalike, or 400 for a dot segment.
                assert!(
                    reply.status < 500,
                    "{method} {path}: {} {}",
                    reply.status,
                    reply.body
                );
            }
        }
        assert_eq!(origin.counter.total(), 0, "{path} was forwarded");
    }
    // Not a lookalike: an origin path that merely contains the name.
    let reply = app.get("/cache/_caje").await;
    assert_eq!(reply.status, 200);
    assert_eq!(origin.counter.total(), 1);
}

#[actix_web::test]
async fn the_admin_token_never_reaches_the_logs() {
    const WRONG: &str = "wrong-admin-token-9876543210";
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(dir.path(), &origin.url(), "workers = 1");
    let caje = CajeProcess::start_with(
        "caje",
        &config,
        &[("CAJE_ADMIN_TOKEN", TOKEN), ("RUST_LOG", "trace")],
    )
    .await;
    let client = test_client();
    let (bearer, wrong) = (format!("Bearer {TOKEN}"), format!("Bearer {WRONG}"));
    let (bearer, wrong) = (bearer.as_str(), wrong.as_str());
    let session = format!("caje_session_{}={TOKEN}", caje.port);
    let session = session.as_str();
    let cookies = format!("token={TOKEN}; other={WRONG}");
    let cookies = cookies.as_str();
    let requests = vec![
        ("GET", "/_caje/list".into(), vec![("authorization", bearer)]),
        ("GET", "/_caje/list".into(), vec![("authorization", wrong)]),
        ("GET", "/_caje/metrics".into(), vec![("cookie", session)]),
        ("GET", format!("/_caje/list?token={TOKEN}"), vec![]),
        ("GET", format!("/_caje/list?token={WRONG}"), vec![]),
        ("GET", format!("/_caje/nope?token={TOKEN}"), vec![]),
        (
            "POST",
            format!("/_caje/populate?t={TOKEN}"),
            vec![("authorization", bearer)],
        ),
        (
            "POST",
            "/_caje/clear_fs".into(),
            vec![("authorization", wrong), ("cookie", cookies)],
        ),
        (
            "GET",
            "/cache/logged".into(),
            vec![("authorization", bearer), ("cookie", cookies)],
        ),
        (
            "GET",
            "/echo".into(),
            vec![("authorization", wrong), ("cookie", session)],
        ),
        (
            "PURGE",
            "/cache/logged".into(),
            vec![("authorization", wrong)],
        ),
        (
            "PURGE",
            "/cache/logged".into(),
            vec![("authorization", bearer)],
        ),
        (
            "PURGE",
            format!("/cache/other?token={TOKEN}"),
            vec![("cookie", session)],
        ),
    ];
    let mut answered = 0;
    for (method, path, headers) in &requests {
        let reply = request(&client, &caje.url(path), method, HOST, headers).await;
        assert!(reply.status < 500, "{method} {path}: {}", reply.status);
        answered += 1;
    }
    for token in [TOKEN, WRONG] {
        let res = client
            .post(caje.url("/_caje/login"))
            .send_form(&[("token", token)])
            .await
            .expect("login answers");
        assert!(res.status().as_u16() < 500);
        answered += 1;
    }
    // Every request has been logged (at trace, with its spans and headers'
    // neighbours) before the output is searched.
    let output = eventually(|| async {
        let output = caje.output();
        (output.matches("request done").count() >= answered).then_some(output)
    })
    .await;
    assert!(output.contains("TRACE"), "not logging at trace:\n{output}");
    for secret in [TOKEN, WRONG] {
        assert!(
            !output.contains(secret),
            "{secret} is in the output:\n{}",
            output
                .lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
