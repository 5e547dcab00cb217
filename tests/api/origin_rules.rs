//! Rules for origins that send no freshness, and cache keys users shape
//! (issue 13, items 3 and 4): `default_ttl` by status, path rules (`ttl`,
//! `bypass`, `ignore`), `ignore_query` and `sort_query`, against an origin
//! that answers like a plain nginx static site (validators, no
//! `Cache-Control`) and records every URL it is asked.

use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use std::time::Duration;

use caje::config::{Origin, PeerFetch, Settings};
use serde_json::json;

use crate::helpers::{eventually, serve, spawn_app_for, Reply, TestApp, HOST, TOKEN};

/// Every URL (path and query) the origin was asked, in order.
#[derive(Clone, Default)]
struct Asked(Arc<Mutex<Vec<String>>>);

impl Asked {
    fn urls(&self) -> Vec<String> {
        self.0.lock().expect("asked lock").clone()
    }

    fn count(&self, url: &str) -> usize {
        self.urls().iter().filter(|u| *u == url).count()
    }
}

/// An nginx-like origin: 200 with `ETag: "v1"` and `Last-Modified`, no
/// `Cache-Control`, and a 304 for `If-None-Match: "v1"`; the body is the
/// URL asked and how many times it was. Query pairs shape the answer:
/// `cc` is a `Cache-Control`, `cookie` a `Set-Cookie`, `status` the status.
async fn nginx_like(req: HttpRequest, asked: web::Data<Asked>) -> HttpResponse {
    let url = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let n = {
        let mut urls = asked.0.lock().expect("asked lock");
        urls.push(url.clone());
        urls.iter().filter(|u| **u == url).count()
    };
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let revalidation = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == b"\"v1\"");
    let status = get("status")
        .and_then(|s| s.parse().ok())
        .and_then(|s| actix_web::http::StatusCode::from_u16(s).ok())
        .unwrap_or(actix_web::http::StatusCode::OK);
    let mut response = if revalidation && status.is_success() {
        HttpResponse::NotModified()
    } else {
        HttpResponse::build(status)
    };
    response
        .insert_header((header::ETAG, "\"v1\""))
        .insert_header((header::LAST_MODIFIED, "Mon, 01 Jan 2024 00:00:00 GMT"));
    if let Some(cc) = get("cc") {
        response.insert_header((header::CACHE_CONTROL, cc));
    }
    if let Some(cookie) = get("cookie") {
        response.insert_header((header::SET_COOKIE, cookie));
    }
    if revalidation && status.is_success() {
        return response.finish();
    }
    response.body(format!("{url} #{n}"))
}

/// An nginx-like origin on a loopback port, and what it is asked.
fn spawn_nginx_like() -> (u16, Asked) {
    let asked = Asked::default();
    let port = serve(web::Data::new(asked.clone()), nginx_like);
    (port, asked)
}

/// The origin at `port` as an `[[origin]]` table with the keys `extra`.
fn origins(port: u16, extra: &str) -> Vec<Origin> {
    let text =
        format!("[[origin]]\nhost = \"{HOST}\"\nupstream = \"http://127.0.0.1:{port}\"\n{extra}");
    Settings::parse("test.toml", &text)
        .expect("valid config")
        .origins
}

/// caje (admin token [`TOKEN`]) in front of an nginx-like origin, with the
/// `[[origin]]` keys `extra` as the config file would give them.
async fn spawn(extra: &str) -> (TestApp, Asked) {
    let (port, asked) = spawn_nginx_like();
    let app = spawn_app_for(origins(port, extra), |s| {
        s.admin_token = Some(TOKEN.to_owned())
    })
    .await;
    (app, asked)
}

fn stored(reply: &Reply) -> bool {
    reply.cache_status().contains("; stored")
}

fn hit(reply: &Reply) -> bool {
    reply.cache_status().starts_with("caje; hit")
}

fn ttl(reply: &Reply) -> Option<i64> {
    reply
        .cache_status()
        .split(';')
        .find_map(|p| p.trim().strip_prefix("ttl="))
        .and_then(|t| t.parse().ok())
}

fn detail(reply: &Reply) -> Option<&str> {
    reply
        .cache_status()
        .split("; ")
        .find_map(|p| p.strip_prefix("detail="))
}

#[actix_web::test]
async fn ignored_and_sorted_parameters_make_one_entry_and_the_origin_sees_what_the_client_sent() {
    let (app, asked) =
        spawn("ignore_query = [\"utm_*\", \"fbclid\"]\nsort_query = true\ndefault_ttl = \"10m\"\n")
            .await;
    let first = app.get("/p?utm_source=x&id=1").await;
    assert!(stored(&first), "{}", first.cache_status());
    assert_eq!(asked.urls(), ["/p?utm_source=x&id=1"], "the client's URL");
    app.stored(1).await;
    for same in [
        "/p?id=1",
        "/p?fbclid=z&id=1&utm_medium=y",
        "/p?id=1&utm_source=",
    ] {
        let reply = app.get(same).await;
        assert!(hit(&reply), "{same}: {}", reply.cache_status());
        assert_eq!(reply.body, "/p?utm_source=x&id=1 #1", "{same}");
    }
    assert_eq!(asked.urls().len(), 1);
    // Other parameters, and the same ones in another order, are keyed as written...
    assert!(!hit(&app.get("/p?id=2").await));
    let b_a = app.get("/p?b=2&a=1").await;
    assert!(stored(&b_a), "{}", b_a.cache_status());
    app.stored(3).await;
    assert!(hit(&app.get("/p?a=1&b=2&utm_id=3").await), "sorted");
    // ...and never decoded: one parameter holding "&b=2" is another URL.
    let encoded = app.get("/p?a=1%26b=2").await;
    assert!(!hit(&encoded), "{}", encoded.cache_status());
    assert_eq!(asked.count("/p?a=1%26b=2"), 1);

    // A purge by URL finds the entry whatever spelling it is given.
    let purge = app
        .admin(
            "POST",
            "/_caje/purge",
            Some(TOKEN),
            Some(json!({ "url": format!("http://{HOST}/p?utm_campaign=q&id=1") })),
        )
        .await;
    assert_eq!(purge.json()["purged"], 1, "{}", purge.body);
    let again = app.get("/p?id=1").await;
    assert!(!hit(&again), "{}", again.cache_status());
    assert_eq!(asked.urls().last().map(String::as_str), Some("/p?id=1"));
    // So does the PURGE method.
    app.stored(5).await;
    let bearer = format!("Bearer {TOKEN}");
    let purge = app
        .request(
            "PURGE",
            HOST,
            "/p?utm_term=z&id=1",
            &[("authorization", bearer.as_str())],
        )
        .await;
    assert_eq!(purge.status, 200, "{}", purge.body);
    let only_cached = app
        .get_with("/p?id=1", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(only_cached.status, 504, "purged");
}

#[actix_web::test]
async fn the_populator_warms_the_entry_requests_find() {
    let (app, asked) = spawn("ignore_query = [\"utm_*\"]\ndefault_ttl = \"10m\"\n").await;
    app.get("/warm?utm_source=x&id=1").await;
    let pages = app.pages(1).await;
    assert_eq!(
        pages[0].path_and_query, "/warm?id=1",
        "the manifest holds the key"
    );
    app.admin("POST", "/_caje/clear_fs", Some(TOKEN), None)
        .await;
    app.admin("POST", "/_caje/populate", Some(TOKEN), None)
        .await;
    eventually(|| async { (asked.count("/warm?id=1") == 1).then_some(()) }).await;
    app.stored(2).await;
    let reply = app.get("/warm?id=1&utm_medium=y").await;
    assert!(hit(&reply), "{}", reply.cache_status());
    assert_eq!(reply.body, "/warm?id=1 #1", "the populator's copy");
}

#[actix_web::test]
async fn a_peer_serves_the_entry_by_its_normalised_key_and_the_asker_gives_it_the_same_ttl() {
    let (port, asked) = spawn_nginx_like();
    let shared = tempfile::tempdir().expect("temp dir");
    let database = shared.path().join("manifest.db");
    let node = |name: &'static str| {
        let database = database.clone();
        spawn_app_for(
            origins(
                port,
                "ignore_query = [\"utm_*\", \"fbclid\"]\ndefault_ttl = \"10m\"\n",
            ),
            move |s| {
                s.database = database;
                s.node_name = Some(name.to_owned());
                s.peer_url = Some("http://127.0.0.1:0".to_owned());
                s.peer_fetch = PeerFetch::All;
                s.manifest_batch_window = Duration::from_millis(10);
            },
        )
    };
    let a = node("a").await;
    let b = node("b").await;
    assert!(stored(&a.get("/shared?utm_source=a&id=1").await));
    let pages = b.pages(1).await;
    assert_eq!(pages[0].path_and_query, "/shared?id=1");
    let reply = b.get("/shared?id=1&fbclid=x").await;
    let status = reply.cache_status();
    assert!(status.starts_with("caje-a; hit;"), "{status}");
    assert!(
        status.contains("caje-b; fwd=uri-miss; fwd-status=200; stored"),
        "{status}"
    );
    assert!(status.ends_with("detail=default-ttl"), "{status}");
    // b judged a's copy by its own default_ttl, less the copy's Age.
    let b_member = status.rsplit(", ").next().unwrap_or_default();
    let b_ttl: i64 = b_member
        .split("; ")
        .find_map(|p| p.strip_prefix("ttl="))
        .and_then(|t| t.parse().ok())
        .expect("ttl");
    assert!((590..=600).contains(&b_ttl), "{status}");
    assert_eq!(reply.body, "/shared?utm_source=a&id=1 #1", "a's copy");
    assert_eq!(asked.urls().len(), 1, "one origin fetch in all");
}

#[actix_web::test]
async fn default_ttl_stores_responses_without_freshness_by_status() {
    let (app, asked) = spawn("default_ttl = { 200 = \"10m\", 404 = \"1m\" }\n").await;
    let first = app.get("/page").await;
    assert!(stored(&first), "{}", first.cache_status());
    assert_eq!(ttl(&first), Some(600));
    assert_eq!(detail(&first), Some("default-ttl"));
    // The client gets the origin's own fields, never caje's TTL.
    assert_eq!(first.header("cache-control"), None);
    app.stored(1).await;
    let second = app.get("/page").await;
    assert!(
        hit(&second) && detail(&second) == Some("default-ttl"),
        "{}",
        second.cache_status()
    );
    assert!((598..=600).contains(&ttl(&second).expect("ttl")));

    let missing = app.get("/missing?status=404").await;
    assert_eq!(missing.status, 404);
    assert_eq!(ttl(&missing), Some(60), "{}", missing.cache_status());
    // No TTL for a status the table does not name.
    let gone = app.get("/gone?status=410").await;
    assert!(!stored(&gone), "{}", gone.cache_status());

    // The origin's explicit freshness wins.
    let explicit = app.get("/explicit?cc=max-age%3D5").await;
    assert_eq!(ttl(&explicit), Some(5), "{}", explicit.cache_status());
    assert_eq!(detail(&explicit), None);

    // no-store, private and Set-Cookie still win.
    for url in ["/x?cc=no-store", "/x?cc=private", "/x?cookie=s%3D1"] {
        for _ in 0..2 {
            let reply = app.get(url).await;
            assert!(
                !stored(&reply) && !hit(&reply),
                "{url}: {}",
                reply.cache_status()
            );
        }
        assert_eq!(asked.count(url), 2, "{url}");
    }
}

#[actix_web::test]
async fn a_given_ttl_expires_and_a_304_starts_it_again() {
    let (app, asked) = spawn("default_ttl = \"1s\"\n").await;
    assert_eq!(ttl(&app.get("/short").await), Some(1));
    app.stored(1).await;
    // Hits until it is a second old; then revalidated with its ETag.
    let revalidated = eventually(|| async {
        let reply = app.get("/short").await;
        reply.cache_status().contains("fwd=stale").then_some(reply)
    })
    .await;
    let status = revalidated.cache_status();
    assert!(
        status.contains("fwd-status=304") && status.contains("stored"),
        "{status}"
    );
    assert_eq!(ttl(&revalidated), Some(1), "{status}");
    assert_eq!(detail(&revalidated), Some("default-ttl"), "{status}");
    assert_eq!(revalidated.body, "/short #1", "the stored body");
    assert_eq!(asked.count("/short"), 2);
}

const RULES: &str = "default_ttl = \"10m\"\n\
    [[origin.rule]]\npath = \"/api/*\"\nbypass = true\n\
    [[origin.rule]]\npath = \"/static/*\"\nttl = \"1h\"\n\
    [[origin.rule]]\npath = \"/me/*\"\nttl = \"1m\"\nignore = [\"private\", \"set-cookie\"]\n";

#[actix_web::test]
async fn path_rules_set_their_own_ttl_or_bypass_the_cache() {
    let (app, asked) = spawn(RULES).await;
    let css = app.get("/static/a.css").await;
    assert_eq!(ttl(&css), Some(3600), "{}", css.cache_status());
    assert_eq!(detail(&css), Some("\"rule /static/*\""));
    let other = app.get("/index.html").await;
    assert_eq!(ttl(&other), Some(600), "{}", other.cache_status());
    app.stored(2).await;
    let hit_css = app.get("/static/a.css").await;
    assert!(
        hit(&hit_css) && detail(&hit_css) == Some("\"rule /static/*\""),
        "{}",
        hit_css.cache_status()
    );

    // Matched as the origin reads the path: `%61` is `a` (dot segments
    // never get this far: caje refuses them). Never stored, even when the
    // origin gives freshness.
    let fresh = "/api/fresh?cc=max-age%3D60";
    for url in ["/api/me", "/api/me", "/%61pi/me", fresh, fresh] {
        let reply = app.get(url).await;
        assert_eq!(
            reply.cache_status(),
            "caje; fwd=bypass; fwd-status=200; detail=\"rule /api/*\"",
            "{url}"
        );
    }
    assert_eq!(asked.count("/api/me"), 2);
    assert_eq!(asked.count(fresh), 2);
}

#[actix_web::test]
async fn only_a_rule_naming_them_overrides_private_and_set_cookie() {
    let (app, asked) = spawn(RULES).await;
    let url = "/me/avatar?cc=private&cookie=s%3D1";
    let first = app.get(url).await;
    assert!(stored(&first), "{}", first.cache_status());
    assert_eq!(ttl(&first), Some(60));
    assert_eq!(
        first.header("set-cookie"),
        Some("s=1"),
        "the asker's own cookie"
    );
    app.stored(1).await;
    let second = app.get(url).await;
    assert!(hit(&second), "{}", second.cache_status());
    assert_eq!(
        second.header("set-cookie"),
        None,
        "never another client's cookie"
    );
    assert_eq!(
        second.header("cache-control"),
        Some("private"),
        "browsers keep it private"
    );

    // What the rule does not name still wins there; elsewhere all of it does.
    for url in [
        "/me/x?cc=no-store",
        "/page?cc=private",
        "/page?cookie=s%3D1",
    ] {
        app.get(url).await;
        let reply = app.get(url).await;
        assert!(!hit(&reply), "{url}: {}", reply.cache_status());
        assert_eq!(asked.count(url), 2, "{url}");
    }
}
