//! What each `caje admin` command does to a real node.

use super::{absolute, cacheable, caje_admin, json, on, succeeded};
use crate::helpers::{spawn_admin_app, spawn_origin, TestApp, TOKEN};

fn hit(reply: &crate::helpers::Reply) -> bool {
    reply.cache_status().starts_with("caje; hit")
}

/// Stores `path` on `app` and checks the next request is a hit.
async fn store(app: &TestApp, path: &str, n: u64) {
    app.get(path).await;
    app.stored(n).await;
    assert!(hit(&app.get(path).await), "{path} was not stored");
}

#[actix_web::test]
async fn health_needs_no_token_and_says_ok() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let node = app.url("");
    let out = caje_admin(&["health", "--node", &node], None).await;
    let text = succeeded(&out);
    assert!(text.contains("status    ok"), "{text}");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");

    let out = caje_admin(&["health", "--json", "--node", &node], None).await;
    let health = json(&out);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["manifest"], "ready");
}

#[actix_web::test]
async fn list_shows_a_stored_entry_in_the_table_and_in_json() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let path = cacheable("listed", "t");
    store(&app, &path, 1).await;

    let text = succeeded(&on(&app, "list", &[]).await);
    assert!(text.contains("cache: 1 entry"), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains(&path))
        .unwrap_or_else(|| panic!("no row for {path}:\n{text}"));
    assert!(
        row.starts_with("site.test") && row.ends_with("fresh"),
        "{row}"
    );

    let list = json(&on(&app, "list", &["--json"]).await);
    assert_eq!(list["cache"]["total"], 1);
    assert_eq!(list["cache"]["entries"][0]["path"], path.as_str());
    assert_eq!(list["cache"]["entries"][0]["fresh"], true);
}

#[actix_web::test]
async fn purge_by_url_makes_the_next_request_a_miss() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let path = cacheable("purged", "t");
    let kept = cacheable("kept", "t");
    store(&app, &path, 1).await;
    store(&app, &kept, 2).await;

    let text = succeeded(&on(&app, "purge", &[&absolute(&path)]).await);
    assert!(
        text.starts_with("purged 1 stored response(s) for http://site.test/headers/purged"),
        "{text}"
    );
    assert!(!hit(&app.get(&path).await));
    assert!(hit(&app.get(&kept).await));
}

#[actix_web::test]
async fn purge_by_tag_hard_and_soft() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let tagged = [cacheable("a", "product-1"), cacheable("b", "product-1")];
    let other = cacheable("c", "other");
    store(&app, &tagged[0], 1).await;
    store(&app, &tagged[1], 2).await;
    store(&app, &other, 3).await;

    let answer = json(&on(&app, "purge", &["--tag", "product-1", "--json"]).await);
    assert_eq!(
        answer,
        serde_json::json!({ "tag": "product-1", "soft": false, "purged": 2, "logged": true })
    );
    for path in &tagged {
        assert!(!hit(&app.get(path).await), "{path}");
    }
    assert!(hit(&app.get(&other).await));

    let text = succeeded(&on(&app, "purge", &["--tag", "other", "--soft"]).await);
    assert!(
        text.starts_with(
            "soft-purged (marked for revalidation) 1 stored response(s) for tag other"
        ),
        "{text}"
    );
    assert!(!hit(&app.get(&other).await), "a soft purge revalidates");
}

#[actix_web::test]
async fn populate_fetches_the_pages_this_node_lacks() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let path = cacheable("populated", "t");
    store(&app, &path, 1).await;
    app.pages(1).await;
    let cleared = app
        .admin("POST", "/_caje/clear_fs", Some(TOKEN), None)
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.body);

    let text = succeeded(&on(&app, "populate", &[]).await);
    assert!(
        text.starts_with("queued 1 page(s), 0 already in flight"),
        "{text}"
    );
    assert!(text.contains(&format!("  {}", absolute(&path))), "{text}");
    app.stored(2).await;
    assert!(hit(&app.get(&path).await));

    let answer = json(&on(&app, "populate", &["--json"]).await);
    assert_eq!(answer["cache_full"], false, "{answer}");
}

#[actix_web::test]
async fn clear_cache_empties_the_file_cache() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let path = cacheable("cleared", "t");
    store(&app, &path, 1).await;

    let text = succeeded(&on(&app, "clear-cache", &[]).await);
    assert_eq!(text, "removed 1 entry from the node's file cache\n");
    let list = json(&on(&app, "list", &["--json"]).await);
    assert_eq!(list["cache"]["total"], 0, "{list}");
    assert!(!hit(&app.get(&path).await));
}
