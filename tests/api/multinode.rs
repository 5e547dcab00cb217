//! Three caje processes sharing one manifest database, as LiteFS presents
//! one database on every node: a page stored through one node is listed by
//! all, each other node populates it from the origin on demand, and clearing
//! the manifest through any node is seen by all.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_origin, HOST, TOKEN};

/// A caje process with the admin token [`TOKEN`], its stderr in `log`.
/// Killed when dropped; its log is printed when the test failed.
struct Node {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Node {
    async fn start(name: &'static str, config: PathBuf, log: PathBuf) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_caje"))
            .arg("--config")
            .arg(&config)
            .env("CAJE_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "caje=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("caje binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Reads the announcement, then keeps draining stdout until caje exits.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(port) = line.strip_prefix("caje listening on port ") {
                    if let (Some(tx), Ok(port)) = (tx.take(), port.trim().parse::<u16>()) {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let mut node = Node {
            name,
            child,
            port: 0,
            log,
        };
        node.port = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("node {name} did not announce its port within 30 s"))
            .unwrap_or_else(|_| panic!("node {name} exited before listening"));
        node
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- log of node {} ----\n{log}", self.name);
        }
    }
}

/// A proxied response, or an admin answer, read whole.
struct Answer {
    status: u16,
    cache_status: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn read(mut res: awc::ClientResponse) -> Answer {
    let body = res.body().limit(1 << 20).await.expect("body");
    Answer {
        status: res.status().as_u16(),
        cache_status: res
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn client() -> awc::Client {
    awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(30))
        .finish()
}

/// GET `path` through `node` for [`HOST`].
async fn get(client: &awc::Client, node: &Node, path: &str) -> Answer {
    let res = client
        .get(node.url(path))
        .insert_header(("host", HOST))
        .send()
        .await
        .unwrap_or_else(|e| panic!("node {} answers: {e}", node.name));
    read(res).await
}

/// An admin request to `node` with the bearer token, asking for JSON.
async fn admin(client: &awc::Client, node: &Node, method: &str, path: &str) -> Answer {
    let res = client
        .request(
            awc::http::Method::from_bytes(method.as_bytes()).expect("method"),
            node.url(path),
        )
        .insert_header(("accept", "application/json"))
        .insert_header(("authorization", format!("Bearer {TOKEN}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("node {} answers: {e}", node.name));
    let answer = read(res).await;
    assert_eq!(
        answer.status, 200,
        "{method} {path} on node {}: {}",
        node.name, answer.body
    );
    answer
}

/// `/_caje/list` of `node`, as JSON.
async fn list(client: &awc::Client, node: &Node) -> Value {
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
    let mut starts = Vec::new();
    // All at once, on a fresh database: exactly one of them creates the tables.
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
        starts.push(Node::start(name, config, home.join("caje.log")));
    }
    let nodes = futures_util::future::join_all(starts).await;
    let [a, b, c] = &nodes[..] else {
        unreachable!()
    };
    let client = client();
    let path = "/cache/spread";
    let url = format!("http://{HOST}{path}");

    // Stored through node A only.
    let first = get(&client, a, path).await;
    assert_eq!(first.status, 200);
    assert!(
        first.cache_status.contains("stored"),
        "{}",
        first.cache_status
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
            reply.cache_status.starts_with("caje; hit"),
            "node {}: {}",
            node.name,
            reply.cache_status
        );
        bodies.push(reply.body);
    }
    assert_eq!(bodies[0], format!("{path} #1"));
    bodies[1..].sort();
    assert_eq!(bodies[1..], [format!("{path} #2"), format!("{path} #3")]);
    // One origin request per node, none from the hits.
    assert_eq!(origin.counter.get(path), 3);

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
