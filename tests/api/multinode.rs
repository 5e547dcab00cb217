//! Three caje processes sharing one manifest database, as LiteFS presents
//! one database on every node: a page stored through one node is listed by
//! all, each other node populates it from the origin on demand, and clearing
//! the manifest through any node is seen by all.

use serde_json::{json, Value};

use crate::helpers::{
    admin_request, eventually, request, spawn_origin, test_client, CajeProcess, Reply, HOST, TOKEN,
};

/// GET `path` through `node` for [`HOST`].
async fn get(client: &awc::Client, node: &CajeProcess, path: &str) -> Reply {
    request(client, &node.url(path), "GET", HOST, &[]).await
}

/// An admin request to `node` with the token; it must succeed.
async fn admin(client: &awc::Client, node: &CajeProcess, method: &str, path: &str) -> Reply {
    let answer = admin_request(client, &node.url(path), method, Some(TOKEN), None).await;
    assert_eq!(
        answer.status, 200,
        "{method} {path} on node {}: {}",
        node.name, answer.body
    );
    answer
}

/// `/_caje/list` of `node`, as JSON.
async fn list(client: &awc::Client, node: &CajeProcess) -> Value {
    admin(client, node, "GET", "/_caje/list").await.json()
}

/// `here` of every manifest page on the list.
fn here(list: &Value) -> Vec<bool> {
    list["manifest"]["pages"]
        .as_array()
        .map(|pages| pages.iter().map(|p| p["here"] == true).collect())
        .unwrap_or_default()
}

#[actix_web::test]
async fn a_page_stored_on_one_node_spreads_to_the_others_through_the_shared_manifest() {
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("manifest.db");
    let mut configs = Vec::new();
    // All at once, on a fresh database: exactly one of them creates the tables.
    // Change-driven sync off: it would warm B and C before the test asks
    // their populators, which would then queue nothing.
    for name in ["a", "b", "c"] {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).expect("node dir");
        let config = home.join("caje.toml");
        std::fs::write(
            &config,
            format!(
                r#"listen = "127.0.0.1:0"
cache_dir = {cache:?}
database = {database:?}
litefs = "off"
manifest_batch_window = "10ms"
populate_interval = "1h"
sync_interval = "0s"

[[origin]]
host = "{HOST}"
upstream = "{upstream}"
"#,
                cache = home.join("cache").display().to_string(),
                database = database.display().to_string(),
                upstream = origin.url(),
            ),
        )
        .expect("write config");
        configs.push((name, config));
    }
    let nodes = futures_util::future::join_all(configs.iter().map(|(name, config)| {
        CajeProcess::start_with(name, config, &[("CAJE_ADMIN_TOKEN", TOKEN)])
    }))
    .await;
    let [a, b, c] = &nodes[..] else {
        unreachable!()
    };
    let client = test_client();
    let path = "/cache/spread";
    let url = format!("http://{HOST}{path}");

    // Stored through node A only.
    let first = get(&client, a, path).await;
    assert_eq!(first.status, 200);
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    assert_eq!(first.body, format!("{path} #1"));

    // Node B reads A's row from the shared manifest, and lacks the page.
    let seen = eventually(|| async {
        let list = list(&client, b).await;
        (list["manifest"]["total"] == 1).then_some(list)
    })
    .await;
    assert_eq!(seen["manifest"]["pages"][0]["path"], path);
    assert_eq!(seen["manifest"]["pages"][0]["host"], HOST);
    assert_eq!(here(&seen), [false]);
    assert_eq!(seen["cache"]["total"], 0);

    // Populating B and C queues exactly that page on each.
    for node in [b, c] {
        let report = admin(&client, node, "POST", "/_caje/populate").await.json();
        assert_eq!(report["queued"], json!([url]), "node {}", node.name);
    }

    // Waiting on the list, not on GETs: a GET that misses would itself fetch.
    for node in [b, c] {
        eventually(|| async {
            let list = list(&client, node).await;
            (list["cache"]["total"] == 1 && here(&list) == [true]).then_some(())
        })
        .await;
    }

    // Every node now answers from its own cache.
    let mut bodies = Vec::new();
    for node in [a, b, c] {
        let reply = get(&client, node, path).await;
        assert_eq!(reply.status, 200, "node {}", node.name);
        assert!(
            reply.cache_status().starts_with("caje; hit"),
            "node {}: {}",
            node.name,
            reply.cache_status()
        );
        bodies.push(reply.body);
    }
    assert_eq!(bodies[0], format!("{path} #1"));
    bodies[1..].sort();
    assert_eq!(bodies[1..], [format!("{path} #2"), format!("{path} #3")]);
    // One origin request per node, none from the hits.
    assert_eq!(origin.counter.get(path), 3);

    // Each node's store reached the manifest (a row written after the clear
    // below would bring the page back).
    for node in [a, b, c] {
        eventually(|| async {
            (node.metric("caje_manifest_rows_written_total").await >= 1.0).then_some(())
        })
        .await;
    }

    // Clearing the manifest through C empties it for every node.
    let cleared = admin(&client, c, "POST", "/_caje/clear_db").await.json();
    assert_eq!(cleared, json!({ "removed_pages": 1 }));
    for node in [a, b] {
        let list = list(&client, node).await;
        assert_eq!(list["manifest"]["total"], 0, "node {}", node.name);
        // Each node's file cache is its own and untouched.
        assert_eq!(list["cache"]["total"], 1, "node {}", node.name);
    }
}
