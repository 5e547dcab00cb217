//! The dashboard's session against the attacks a browser makes possible:
//! proxied pages share `/_caje/`'s origin, sibling subdomains share its
//! site. Each request below is what a browser would send for that attack;
//! each refusal must change nothing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_admin_app, spawn_app_in, spawn_origin, Reply, TestApp, HOST, TOKEN};

/// The CSRF token the dashboard's HTML carries.
pub fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"caje-csrf\" content=\"")
        .unwrap_or_else(|| panic!("no CSRF token in the page:\n{html}"))
        + "name=\"caje-csrf\" content=\"".len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A logged-in browser: its `Cookie` header, the login's `Set-Cookie`,
/// and the CSRF token from the dashboard it was shown.
struct Browser {
    cookie: String,
    set_cookie: String,
    csrf: String,
}

/// What a browser sends for a top-level navigation.
const NAVIGATE: [(&str, &str); 3] = [
    ("sec-fetch-dest", "document"),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-site", "same-origin"),
];

async fn log_in(app: &TestApp, headers: &[(&str, &str)]) -> Browser {
    let mut login = app.client.post(app.url("/_caje/login"));
    for header in headers {
        login = login.insert_header(*header);
    }
    let res = login.send_form(&[("token", TOKEN)]).await.expect("login");
    assert_eq!(res.status(), 303);
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
    let page = send(app, "GET", "/_caje/list", &cookie, &NAVIGATE, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = csrf_of(&page.body);
    Browser {
        cookie,
        set_cookie,
        csrf,
    }
}

/// A request with the session cookie, headers, and a form body.
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    cookie: &str,
    headers: &[(&str, &str)],
    form: Option<&[(&str, &str)]>,
) -> Reply {
    crate::helpers::request_with_form(
        &app.client,
        &app.url(path),
        method,
        &[&[("cookie", cookie)], headers].concat(),
        form,
    )
    .await
}

fn own_origin(app: &TestApp) -> String {
    format!("http://127.0.0.1:{}", app.port)
}

/// Two stored pages, one tagged: what the refused actions would change.
async fn with_stored_pages(app: &TestApp) {
    app.get("/cache/kept").await;
    app.get("/headers/tagged?cache-control=max-age%3D60&surrogate-key=t1")
        .await;
    app.stored(2).await;
}

async fn still_stored(app: &TestApp) {
    assert!(app.get("/cache/kept").await.cache_status().contains("hit"));
    let tagged = app
        .get("/headers/tagged?cache-control=max-age%3D60&surrogate-key=t1")
        .await;
    assert!(tagged.cache_status().contains("hit"));
}

/// Every action a refused write must leave undone, as a form would post it.
fn writes(csrf: &str) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let kept = format!("http://{HOST}/cache/kept");
    vec![
        (
            "/_caje/purge",
            vec![("url", kept), ("csrf", csrf.to_owned())],
        ),
        (
            "/_caje/purge",
            vec![("tag", "t1".to_owned()), ("csrf", csrf.to_owned())],
        ),
        ("/_caje/clear_fs", vec![("csrf", csrf.to_owned())]),
        ("/_caje/reload", vec![("csrf", csrf.to_owned())]),
    ]
}

async fn refused_writes(app: &TestApp, browser: &Browser, headers: &[(&str, &str)], csrf: &str) {
    for (path, form) in writes(csrf) {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = send(
            app,
            "POST",
            path,
            &browser.cookie,
            headers,
            Some(form.as_slice()),
        )
        .await;
        assert_eq!(reply.status, 403, "{path} {headers:?}: {}", reply.body);
        assert!(reply.body.starts_with("caje: refused"), "{}", reply.body);
    }
    still_stored(app).await;
}

#[actix_web::test]
async fn a_cross_site_form_post_with_the_session_cookie_is_refused() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    with_stored_pages(&app).await;
    let browser = log_in(&app, &[]).await;
    let cross_site = [
        ("origin", "http://evil.test"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
    ];
    // Even with the right token (which another site cannot read anyway).
    refused_writes(&app, &browser, &cross_site, &browser.csrf).await;
    refused_writes(&app, &browser, &cross_site, "").await;
    // An older browser: Origin alone.
    refused_writes(
        &app,
        &browser,
        &[("origin", "http://evil.test")],
        &browser.csrf,
    )
    .await;
    // A sandboxed frame's `Origin: null`, the site still named.
    let sandboxed = [("origin", "null"), ("sec-fetch-site", "cross-site")];
    refused_writes(&app, &browser, &sandboxed, &browser.csrf).await;
}

#[actix_web::test]
async fn a_same_site_form_post_from_a_sibling_subdomain_is_refused() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    with_stored_pages(&app).await;
    let browser = log_in(&app, &[]).await;
    let sibling = format!("http://blog.127.0.0.1:{}", app.port);
    let same_site = [
        ("origin", sibling.as_str()),
        ("sec-fetch-site", "same-site"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
    ];
    refused_writes(&app, &browser, &same_site, &browser.csrf).await;
}

#[actix_web::test]
async fn a_same_origin_fetch_post_without_the_csrf_token_is_refused() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    with_stored_pages(&app).await;
    let browser = log_in(&app, &[]).await;
    // A proxied page's script: same origin, so Sec-Fetch-Site and Origin
    // are those of the dashboard; only the token it cannot read is missing.
    let own = own_origin(&app);
    let fetch = [
        ("origin", own.as_str()),
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-dest", "empty"),
    ];
    refused_writes(&app, &browser, &fetch, "").await;
    refused_writes(&app, &browser, &fetch, "0123456789abcdef").await;
    let wrong = [fetch.as_slice(), &[("x-caje-csrf", "not-the-token")]].concat();
    refused_writes(&app, &browser, &wrong, "").await;
    // Another session's token is no better.
    let other = log_in(&app, &[]).await;
    refused_writes(&app, &browser, &fetch, &other.csrf).await;
    // PURGE on a proxied URL, should a browser ever send the cookie there.
    let site = format!("http://{HOST}");
    let on_site = [
        ("host", HOST),
        ("origin", site.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    let purge = send(
        &app,
        "PURGE",
        "/cache/kept",
        &browser.cookie,
        &on_site,
        None,
    )
    .await;
    assert_eq!(purge.status, 403, "{}", purge.body);
    still_stored(&app).await;
}

#[actix_web::test]
async fn a_same_origin_fetch_of_admin_data_is_refused() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    with_stored_pages(&app).await;
    let browser = log_in(&app, &[]).await;
    let own = own_origin(&app);
    for (dest, mode) in [
        ("empty", "cors"),
        ("empty", "same-origin"),
        ("iframe", "navigate"),
        ("script", "no-cors"),
    ] {
        for path in [
            "/_caje/list",
            "/_caje/list?per_page=500",
            "/_caje/metrics",
            "/_caje/",
        ] {
            let headers = [
                ("origin", own.as_str()),
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-mode", mode),
                ("sec-fetch-dest", dest),
                ("accept", "application/json"),
            ];
            let reply = send(&app, "GET", path, &browser.cookie, &headers, None).await;
            assert_eq!(reply.status, 403, "{path} {dest}/{mode}: {}", reply.body);
            assert!(reply.body.starts_with("caje: refused"), "{}", reply.body);
            assert!(!reply.body.contains("/cache/kept"));
        }
    }
}

#[actix_web::test]
async fn admin_pages_refuse_framing_openers_caching_and_inline_scripts() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let browser = log_in(&app, &[]).await;
    let dashboard = send(&app, "GET", "/_caje/list", &browser.cookie, &NAVIGATE, None).await;
    let login = app.request("GET", HOST, "/_caje/login", &[]).await;
    let data = app.admin("GET", "/_caje/list", Some(TOKEN), None).await;
    for (what, reply) in [
        ("dashboard", &dashboard),
        ("login", &login),
        ("json", &data),
    ] {
        assert_eq!(reply.status, 200, "{what}");
        assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
        let csp = reply.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(!csp.contains("unsafe"), "{what}: {csp}");
        assert_eq!(
            reply.header("cross-origin-opener-policy"),
            Some("same-origin"),
            "{what}"
        );
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(
            reply.header("referrer-policy"),
            Some("no-referrer"),
            "{what}"
        );
    }
    // The page's script is the one its CSP names; no handler is inline.
    let csp = dashboard
        .header("content-security-policy")
        .unwrap_or_default();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|n| n.split('\'').next())
        .expect("a nonce");
    assert!(dashboard
        .body
        .contains(&format!("<script nonce=\"{nonce}\">")));
    assert!(!dashboard.body.contains("onclick"), "{}", dashboard.body);
}

#[actix_web::test]
async fn the_session_cookie_is_scoped_unreadable_strict_and_expires() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let over_http = log_in(&app, &[("x-forwarded-proto", "https")]).await;
    let attributes: Vec<&str> = over_http.set_cookie.split(';').map(str::trim).collect();
    for wanted in [
        "Path=/_caje",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=28800",
    ] {
        assert!(
            attributes.contains(&wanted),
            "{wanted}: {}",
            over_http.set_cookie
        );
    }
    // caje was not told to trust any header for the scheme: plain http.
    assert!(!attributes.contains(&"Secure"), "{}", over_http.set_cookie);

    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let behind_tls = spawn_app_in(&origin, dir, |s| {
        s.admin_token = Some(TOKEN.to_owned());
        s.client_scheme_header = Some(actix_web::http::header::HeaderName::from_static(
            "fly-forwarded-proto",
        ));
    })
    .await;
    let https = [("fly-forwarded-proto", "https")];
    let res = behind_tls
        .client
        .post(behind_tls.url("/_caje/login"))
        .insert_header(https[0])
        .send_form(&[("token", TOKEN)])
        .await
        .expect("login");
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        set_cookie.split(';').any(|a| a.trim() == "Secure"),
        "{set_cookie}"
    );
    // Behind TLS, the dashboard's requests come from the https origin.
    let cookie = set_cookie.split(';').next().unwrap_or_default();
    let page = [NAVIGATE.as_slice(), &https].concat();
    let html = send(&behind_tls, "GET", "/_caje/list", cookie, &page, None).await;
    let csrf = csrf_of(&html.body);
    let https_origin = format!("https://127.0.0.1:{}", behind_tls.port);
    let http_origin = own_origin(&behind_tls);
    for (origin, status) in [(https_origin.as_str(), 200), (http_origin.as_str(), 403)] {
        let headers = [
            ("origin", origin),
            ("sec-fetch-site", "same-origin"),
            ("x-caje-csrf", csrf.as_str()),
            https[0],
        ];
        let reply = send(
            &behind_tls,
            "POST",
            "/_caje/populate",
            cookie,
            &headers,
            None,
        )
        .await;
        assert_eq!(reply.status, status, "{origin}: {}", reply.body);
    }
    // Without the proxy's header, the same node sees plain http.
    let direct = behind_tls
        .client
        .post(behind_tls.url("/_caje/login"))
        .send_form(&[("token", TOKEN)])
        .await
        .expect("login");
    let direct = direct
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(!direct.split(';').any(|a| a.trim() == "Secure"), "{direct}");
}

#[actix_web::test]
async fn an_expired_session_is_refused() {
    let origin = spawn_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| {
        s.admin_token = Some(TOKEN.to_owned());
        s.admin_session_lifetime = Duration::from_secs(1);
    })
    .await;
    let res = app
        .client
        .post(app.url("/_caje/login"))
        .send_form(&[("token", TOKEN)])
        .await
        .expect("login");
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(set_cookie.contains("Max-Age=1"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap_or_default();
    // Past the lifetime (whole seconds): the server refuses the cookie even
    // though a client kept sending it.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let page = send(
        &app,
        "GET",
        "/_caje/list",
        cookie,
        &[("accept", "application/json")],
        None,
    )
    .await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("expired"), "{}", page.body);
    let browser = [NAVIGATE.as_slice(), &[("accept", "text/html")]].concat();
    let page = send(&app, "GET", "/_caje/list", cookie, &browser, None).await;
    assert_eq!(
        (page.status, page.header("location")),
        (303, Some("/_caje/login"))
    );
}

#[actix_web::test]
async fn logout_ends_the_session_on_the_server() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let browser = log_in(&app, &[]).await;
    let other = log_in(&app, &[]).await;
    let own = own_origin(&app);
    let form_post = [("origin", own.as_str()), ("sec-fetch-site", "same-origin")];
    // Logging out is a write too: not without the token.
    let refused = send(
        &app,
        "POST",
        "/_caje/logout",
        &browser.cookie,
        &form_post,
        Some(&[]),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let csrf = [("csrf", browser.csrf.as_str())];
    let out = send(
        &app,
        "POST",
        "/_caje/logout",
        &browser.cookie,
        &form_post,
        Some(&csrf),
    )
    .await;
    assert_eq!(
        (out.status, out.header("location")),
        (303, Some("/_caje/login"))
    );
    let cleared = out.header("set-cookie").unwrap_or_default();
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("Path=/_caje"),
        "{cleared}"
    );
    // The old cookie, replayed, is refused; another session lives on.
    let after = send(&app, "GET", "/_caje/list", &browser.cookie, &NAVIGATE, None).await;
    assert_eq!(after.status, 401, "{}", after.body);
    let headers = [
        ("x-caje-csrf", browser.csrf.as_str()),
        form_post[0],
        form_post[1],
    ];
    let write = send(
        &app,
        "POST",
        "/_caje/populate",
        &browser.cookie,
        &headers,
        None,
    )
    .await;
    assert_eq!(write.status, 401, "{}", write.body);
    let still = send(&app, "GET", "/_caje/list", &other.cookie, &NAVIGATE, None).await;
    assert_eq!(still.status, 200);
}

#[actix_web::test]
async fn the_dashboards_own_requests_and_the_bearer_api_still_work() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    with_stored_pages(&app).await;
    let browser = log_in(&app, &[]).await;
    let own = own_origin(&app);
    // The dashboard's buttons: fetch with the token in a header.
    let fetch = [
        ("origin", own.as_str()),
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-dest", "empty"),
        ("x-caje-csrf", browser.csrf.as_str()),
    ];
    let populate = send(
        &app,
        "POST",
        "/_caje/populate",
        &browser.cookie,
        &fetch,
        None,
    )
    .await;
    assert_eq!(populate.status, 200, "{}", populate.body);
    // A form posting the token as a field, as the logout form does.
    let url = format!("http://{HOST}/cache/kept");
    let form = [("url", url.as_str()), ("csrf", browser.csrf.as_str())];
    let navigate = [
        ("origin", own.as_str()),
        NAVIGATE[0],
        NAVIGATE[1],
        NAVIGATE[2],
    ];
    let purged = send(
        &app,
        "POST",
        "/_caje/purge",
        &browser.cookie,
        &navigate,
        Some(&form),
    )
    .await;
    assert_eq!(purged.status, 200, "{}", purged.body);
    assert_eq!(purged.json()["purged"], 1);
    // A browser without fetch metadata: the token alone suffices.
    let old = send(
        &app,
        "POST",
        "/_caje/populate",
        &browser.cookie,
        &fetch[4..],
        None,
    )
    .await;
    assert_eq!(old.status, 200, "{}", old.body);

    // A Bearer token needs no CSRF token, whatever the request's headers say.
    let bearer = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("origin", "http://evil.test"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-dest", "empty"),
        ("accept", "application/json"),
    ];
    let list = app.request("GET", HOST, "/_caje/list", &headers).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let tagged = crate::helpers::request_with_form(
        &app.client,
        &app.url("/_caje/purge"),
        "POST",
        &headers,
        Some(&[("tag", "t1")]),
    )
    .await;
    assert_eq!(tagged.status, 200, "{}", tagged.body);
    assert_eq!(
        tagged.json(),
        json!({ "tag": "t1", "soft": false, "purged": 1, "logged": true })
    );
}
