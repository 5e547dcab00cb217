//! The `/_caje/` endpoints: auth, each action's effect, JSON shape, HTML.
//! `session` covers the dashboard's session and what it refuses,
//! `overview` the charts' samples and the regions view.

mod overview;
mod session;

use serde_json::json;

use crate::helpers::{spawn_admin_app, spawn_app, spawn_origin, HOST, TOKEN};

const MUTATING: [(&str, &str); 8] = [
    ("POST", "/_caje/clear_fs"),
    ("POST", "/_caje/clear_db"),
    ("POST", "/_caje/populate"),
    ("POST", "/_caje/purge"),
    ("POST", "/_caje/reload"),
    ("GET", "/_caje/list"),
    ("GET", "/_caje/"),
    ("GET", "/_caje/metrics"),
];

#[actix_web::test]
async fn without_a_configured_token_admin_is_off() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    for (method, path) in MUTATING {
        let reply = app.admin(method, path, Some("anything"), None).await;
        assert_eq!(reply.status, 403, "{method} {path}");
        assert!(reply.body.contains("CAJE_ADMIN_TOKEN"), "{}", reply.body);
    }
}

#[actix_web::test]
async fn a_missing_or_wrong_token_is_refused() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let almost = &TOKEN[..TOKEN.len() - 1];
    for (method, path) in MUTATING {
        for token in [None, Some("wrong"), Some(almost), Some("")] {
            let reply = app.admin(method, path, token, None).await;
            assert_eq!(reply.status, 401, "{method} {path} {token:?}");
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Bearer realm=\"caje\"")
            );
        }
    }
    // PURGE on a proxied URL needs the token too.
    app.get("/cache/kept").await;
    app.stored(1).await;
    let purge = app.request("PURGE", HOST, "/cache/kept", &[]).await;
    assert_eq!(purge.status, 401);
    assert!(app.get("/cache/kept").await.cache_status().contains("hit"));
}

#[actix_web::test]
async fn health_answers_for_any_host_without_a_token() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let reply = app
        .request("GET", "unknown.test", "/_caje/health", &[])
        .await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["role"], "standalone");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime_seconds"].is_u64());
    assert_eq!(body["not_answering"], json!([]));
}

#[actix_web::test]
async fn admin_paths_are_never_forwarded() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let reply = app.get("/_caje/secret").await;
    assert_eq!(reply.status, 404);
    assert_eq!(origin.counter.get("/_caje/secret"), 0);
}

#[actix_web::test]
async fn clear_fs_empties_this_nodes_cache() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    app.get("/cache/c1").await;
    app.get("/cache/c2").await;
    app.stored(2).await;
    let reply = app
        .admin("POST", "/_caje/clear_fs", Some(TOKEN), None)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({ "removed_entries": 2 }));
    assert!(app
        .get("/cache/c1")
        .await
        .cache_status()
        .contains("fwd=uri-miss"));
    assert_eq!(origin.counter.get("/cache/c1"), 2);
}

#[actix_web::test]
async fn clear_db_empties_the_manifest() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    app.get("/cache/d1").await;
    app.pages(1).await;
    let reply = app
        .admin("POST", "/_caje/clear_db", Some(TOKEN), None)
        .await;
    assert_eq!(reply.json(), json!({ "removed_pages": 1 }));
    let list = app
        .admin("GET", "/_caje/list", Some(TOKEN), None)
        .await
        .json();
    assert_eq!(list["manifest"]["total"], 0);
    // The file cache is untouched.
    assert_eq!(list["cache"]["total"], 1);
}

#[actix_web::test]
async fn purge_by_url_and_by_method() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    for path in ["/cache/p1", "/cache/p2?q=1"] {
        app.get(path).await;
    }
    app.stored(2).await;

    let url = format!("http://{HOST}/cache/p2?q=1");
    let reply = app
        .admin(
            "POST",
            "/_caje/purge",
            Some(TOKEN),
            Some(json!({ "url": url })),
        )
        .await;
    assert_eq!(
        reply.json(),
        json!({ "url": url, "purged": 1, "soft": false, "logged": true })
    );
    assert!(app
        .get("/cache/p2?q=1")
        .await
        .cache_status()
        .contains("fwd=uri-miss"));
    assert!(app.get("/cache/p1").await.cache_status().contains("hit"));

    let bearer = format!("Bearer {TOKEN}");
    let purge = app
        .request(
            "PURGE",
            HOST,
            "/cache/p1",
            &[("authorization", bearer.as_str())],
        )
        .await;
    assert_eq!(purge.status, 200, "{}", purge.body);
    assert!(app
        .get("/cache/p1")
        .await
        .cache_status()
        .contains("fwd=uri-miss"));
    let nothing = app
        .request(
            "PURGE",
            HOST,
            "/cache/none",
            &[("authorization", bearer.as_str())],
        )
        .await;
    assert_eq!(nothing.status, 404);

    let elsewhere = app
        .admin(
            "POST",
            "/_caje/purge",
            Some(TOKEN),
            Some(json!({ "url": "http://other.test/x" })),
        )
        .await;
    assert_eq!(elsewhere.status, 400);
    assert!(elsewhere.body.contains("other.test"));
}

#[actix_web::test]
async fn list_json_shows_cache_beside_manifest_with_pages() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    for path in ["/cache/l1", "/cache/l2", "/cache/l3"] {
        app.get(path).await;
    }
    app.pages(3).await;
    // One page leaves this node's cache: the manifest shows it missing here.
    let url = format!("http://{HOST}/cache/l2");
    app.admin(
        "POST",
        "/_caje/purge",
        Some(TOKEN),
        Some(json!({ "url": url })),
    )
    .await;

    let list = app
        .admin("GET", "/_caje/list", Some(TOKEN), None)
        .await
        .json();
    assert_eq!(list["node"]["role"], "standalone");
    assert_eq!(list["cache"]["total"], 2);
    let entry = &list["cache"]["entries"][0];
    assert_eq!(entry["host"], HOST);
    assert!(entry["size"].as_u64().unwrap_or(0) > 0);
    assert_eq!(entry["fresh"], true);
    assert!(entry["ttl"].as_u64().is_some_and(|t| t <= 60));
    assert!(entry["stored_at"]
        .as_str()
        .is_some_and(|s| s.ends_with("GMT")));
    assert_eq!(list["manifest"]["total"], 3);
    let here: Vec<(String, bool)> = list["manifest"]["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap_or("").to_owned(),
                p["here"] == true,
            )
        })
        .collect();
    let mut here = here;
    here.sort();
    assert_eq!(
        here,
        [
            ("/cache/l1".to_owned(), true),
            ("/cache/l2".to_owned(), false),
            ("/cache/l3".to_owned(), true)
        ]
    );
    assert!(list["populator"]["runs"].is_u64());

    let second = app
        .admin("GET", "/_caje/list?page=2&per_page=2", Some(TOKEN), None)
        .await
        .json();
    assert_eq!(
        (second["page"].as_u64(), second["per_page"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(second["cache"]["entries"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        second["manifest"]["pages"].as_array().map(Vec::len),
        Some(1)
    );
}

#[actix_web::test]
async fn a_browser_logs_in_once_and_sees_the_dashboard() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    app.get("/cache/page?a=1&b='x'").await;
    app.pages(1).await;

    // Not logged in: a browser is sent to the form (a script gets 401, above).
    let res = app
        .client
        .get(app.url("/_caje/list"))
        .insert_header(("accept", "text/html,application/xhtml+xml"))
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/_caje/login")
    );

    let wrong = app
        .client
        .post(app.url("/_caje/login"))
        .send_form(&[("token", "nope")])
        .await
        .expect("answer");
    assert_eq!(wrong.status(), 401);

    let res = app
        .client
        .post(app.url("/_caje/login"))
        .send_form(&[("token", TOKEN)])
        .await
        .expect("answer");
    assert_eq!(res.status(), 303);
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(
        !set_cookie.contains(TOKEN),
        "the cookie must not hold the token"
    );
    let cookie = set_cookie.split(';').next().expect("name=value");

    let mut page = app
        .client
        .get(app.url("/_caje/list"))
        .insert_header(("cookie", cookie))
        .insert_header(("sec-fetch-dest", "document"))
        .insert_header(("sec-fetch-mode", "navigate"))
        .send()
        .await
        .expect("answer");
    assert_eq!(page.status(), 200);
    let html = String::from_utf8_lossy(&page.body().await.expect("body")).into_owned();
    assert!(html.contains("id=\"entries\"") && html.contains("id=\"pages\""));
    assert!(html.contains("id=\"populate\"") && html.contains("id=\"logout\""));
    assert!(
        html.contains("/cache/page?a=1&amp;b='x'"),
        "paths are escaped:\n{html}"
    );

    // The cookie with the page's CSRF token authorises the dashboard's buttons.
    let csrf = session::csrf_of(&html);
    let populate = app
        .client
        .post(app.url("/_caje/populate"))
        .insert_header(("cookie", cookie))
        .insert_header(("x-caje-csrf", csrf.as_str()))
        .send()
        .await
        .expect("answer");
    assert_eq!(populate.status(), 200);
}

#[actix_web::test]
async fn metrics_cover_every_actor_and_the_proxy() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    app.get("/cache/m").await;
    app.stored(1).await;
    app.get("/cache/m").await;
    app.pages(1).await;
    let reply = app.admin("GET", "/_caje/metrics", Some(TOKEN), None).await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    let text = reply.body;
    for actor in ["cache_store", "manifest", "manifest_batcher"] {
        assert!(
            text.contains(&format!("caje_actor_messages_total{{actor=\"{actor}\"")),
            "{actor} missing:\n{text}"
        );
        assert!(text.contains(&format!("caje_actor_mailbox_depth{{actor=\"{actor}\"}}")));
    }
    assert!(text.contains("caje_requests_total{cache_status=\"hit\"} 1"));
    assert!(text.contains("caje_requests_total{cache_status=\"uri-miss\"} 1"));
    assert!(text.contains(&format!(
        "caje_origin_requests_total{{origin=\"{HOST}\",status=\"200\"}} 1"
    )));
    assert!(text.contains("caje_body_bytes_total{source=\"cache\"}"));
    assert!(text.contains("caje_body_bytes_total{source=\"origin\"}"));
    assert!(text.contains("caje_manifest_rows_written_total 1"));
    assert!(text.contains("caje_populator_runs_total"));
    // Every metric has help text.
    let families = text.lines().filter(|l| l.starts_with("# TYPE")).count();
    let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
    assert!(
        families > 20 && families == helps,
        "{families} types, {helps} helps"
    );

    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write metrics");
            let out = child.wait_with_output().expect("promtool runs");
            assert!(
                out.status.success(),
                "promtool: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) => eprintln!("promtool not run ({e}); .ci/run installs it"),
    }
}

#[actix_web::test]
async fn health_is_503_while_an_actor_does_not_answer() {
    use caje::actors::manifest::{self, PageVisit, WriteBatch};
    use diesel::RunQueryDsl;

    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    // Another writer holds the database: the manifest's next write waits
    // for it (up to its 5 s busy timeout), and answers nothing meanwhile.
    let mut blocker = manifest::connect(&app.dir.path().join("manifest.db")).expect("open");
    diesel::sql_query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .expect("begin");
    let key = caje::cache::CacheKey::new("GET", HOST, "/cache/blocked");
    app.manifest.do_send(WriteBatch(vec![PageVisit::now(key)]));

    let reply = app.request("GET", HOST, "/_caje/health", &[]).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["not_answering"], json!(["manifest"]));

    diesel::sql_query("COMMIT")
        .execute(&mut blocker)
        .expect("commit");
    let reply = app.request("GET", HOST, "/_caje/health", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    app.pages(1).await;
}
