//! Peer fetch (tiered cache): real caje nodes in this process sharing one
//! manifest database, a real origin on loopback, and stub peers. A page one
//! node stored is warmed on the others from that node, not the origin; a
//! peer that fails, is slow, answers 504 or holds only a stale copy leaves
//! the page to the origin; a request that passed through a caje node is
//! never sent to a peer; `Cache-Status` names each cache on the way.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use caje::actors::manifest::{Holder, PageVisit, WriteBatch};
use caje::actors::populator::{GetStatus, RunNow};
use caje::cache::CacheKey;
use caje::config::{PeerFetch, Settings};

use crate::helpers::{
    closed_port, eventually, spawn_app_in, spawn_origin, spawn_raw_origin, TestApp, TestOrigin,
    HOST,
};

/// A node called `name`, offered as a peer, over the manifest at `database`.
pub(crate) async fn node(
    origin: &TestOrigin,
    database: &Path,
    name: &str,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let database = database.to_owned();
    let name = name.to_owned();
    spawn_app_in(origin, dir, move |s| {
        s.database = database;
        s.node_name = Some(name);
        s.peer_url = Some("http://127.0.0.1:0".to_owned());
        s.manifest_batch_window = Duration::from_millis(10);
        adjust(s);
    })
    .await
}

/// Runs `app`'s populator and waits until it has dealt with `n` pages in all.
pub(crate) async fn warm(app: &TestApp, n: u64) {
    app.populator
        .send(RunNow)
        .await
        .expect("answer")
        .expect("run");
    eventually(|| async {
        let s = app.populator.send(GetStatus).await.expect("status");
        (s.fetched + s.failed >= n && s.queued == 0 && s.in_flight == 0).then_some(())
    })
    .await;
}

/// Lists `path` in the manifest as stored by a node reachable at `peer_url`.
async fn listed_on(app: &TestApp, path: &str, peer_url: String) {
    let holder = Holder {
        stored_by: Some("elsewhere".to_owned()),
        peer_url: Some(peer_url),
    };
    app.manifest
        .send(WriteBatch(vec![PageVisit::now(CacheKey::new(
            "GET", HOST, path,
        ))
        .by(&holder)]))
        .await
        .expect("written");
}

#[actix_web::test]
async fn a_page_stored_on_one_node_is_warmed_on_the_others_from_that_node() {
    let origin = spawn_origin().await;
    let shared = tempfile::tempdir().expect("temp dir");
    let database = shared.path().join("manifest.db");
    let a = node(&origin, &database, "a", |_| {}).await;
    let b = node(&origin, &database, "b", |_| {}).await;
    let c = node(&origin, &database, "c", |_| {}).await;

    assert_eq!(a.get("/cache/spread").await.body, "/cache/spread #1");
    let pages = b.pages(1).await;
    assert_eq!(pages[0].stored_by.as_deref(), Some("a"));
    assert_eq!(pages[0].peer_url.as_deref(), Some(a.url("").as_str()));

    warm(&b, 1).await;
    warm(&c, 1).await;
    for node in [&b, &c] {
        let reply = node.get("/cache/spread").await;
        assert_eq!(reply.body, "/cache/spread #1", "{}", node.url(""));
        assert!(
            reply.cache_status().starts_with("caje-a; hit, caje-"),
            "{}",
            reply.cache_status()
        );
        assert!(reply.cache_status().contains("; hit; ttl="));
    }
    // RFC 9211: the peer's member first, this node's last.
    let b_status = b.get("/cache/spread").await;
    assert!(
        b_status
            .cache_status()
            .starts_with("caje-a; hit, caje-b; hit; ttl="),
        "{}",
        b_status.cache_status()
    );
    assert_eq!(
        origin.counter.get("/cache/spread"),
        1,
        "one origin fetch in all"
    );
    let used = b
        .metrics
        .proxy
        .peer_requests
        .with_label_values(&["used"])
        .get();
    assert_eq!(used, 1);
}

#[actix_web::test]
async fn a_down_slow_or_empty_peer_leaves_the_page_to_the_origin() {
    let origin = spawn_origin().await;
    // A slow peer: it would answer a usable stored copy, after peer_timeout.
    let slow = spawn_origin().await;
    let shared = tempfile::tempdir().expect("temp dir");
    let database = shared.path().join("manifest.db");
    // A real node that does not hold the pages: it answers 504.
    let empty = node(&origin, &database, "empty", |_| {}).await;
    let b = node(&origin, &database, "b", |s| {
        s.peer_timeout = Duration::from_millis(300)
    })
    .await;

    let slow_page =
        "/headers/slow?x-delay-ms=1500&cache-control=max-age%3D60&cache-status=caje-x%3B%20hit";
    listed_on(
        &b,
        "/cache/down",
        format!("http://127.0.0.1:{}", closed_port()),
    )
    .await;
    listed_on(&b, slow_page, slow.url()).await;
    listed_on(&b, "/cache/empty", empty.url("")).await;
    warm(&b, 3).await;

    assert_eq!(
        b.populator.send(GetStatus).await.expect("status").fetched,
        3
    );
    for path in ["/cache/down", slow_page, "/cache/empty"] {
        let reply = b.get(path).await;
        assert!(
            reply.cache_status().contains("hit"),
            "{path}: {}",
            reply.cache_status()
        );
    }
    assert_eq!(origin.counter.get("/cache/down"), 1);
    assert_eq!(origin.counter.get("/headers/slow"), 1);
    assert_eq!(origin.counter.get("/cache/empty"), 1);
    assert_eq!(
        slow.counter.get("/headers/slow"),
        1,
        "the slow peer was asked"
    );
    let outcome = |o: &str| b.metrics.proxy.peer_requests.with_label_values(&[o]).get();
    assert_eq!(
        (outcome("error"), outcome("timeout"), outcome("unusable")),
        (1, 1, 1)
    );
}

#[actix_web::test]
async fn a_request_from_a_caje_node_is_never_sent_to_a_peer() {
    let origin = spawn_origin().await;
    let peer = spawn_raw_origin(b"HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 0\r\n\r\n").await;
    let shared = tempfile::tempdir().expect("temp dir");
    let database = shared.path().join("manifest.db");
    let b = node(&origin, &database, "b", |s| s.peer_fetch = PeerFetch::All).await;
    let peer_url = format!("http://127.0.0.1:{}", peer.port);
    let asked = || peer.requests.lock().expect("lock").len();
    for path in ["/cache/looped", "/cache/uncached", "/cache/plain"] {
        listed_on(&b, path, peer_url.clone()).await;
    }

    // An ordinary miss asks the peer (which has nothing) first.
    let plain = b.get("/cache/plain").await;
    assert_eq!(plain.status, 200);
    assert_eq!(asked(), 1);
    let head = peer.requests.lock().expect("lock")[0].to_ascii_lowercase();
    assert!(head.contains("cache-control: only-if-cached"), "{head}");
    assert!(head.contains("cdn-loop: caje; node=b"), "{head}");
    assert!(head.contains(&format!("host: {HOST}")), "{head}");

    // One that passed through a caje node goes to the origin only.
    let looped = b
        .get_with("/cache/looped", &[("cdn-loop", "caje; node=a")])
        .await;
    assert_eq!(looped.status, 200);
    assert_eq!(origin.counter.get("/cache/looped"), 1);
    assert_eq!(asked(), 1, "never sent to a peer");
    // A peer's own request: from the cache, or 504.
    let uncached = b
        .get_with(
            "/cache/uncached",
            &[
                ("cdn-loop", "caje; node=a"),
                ("cache-control", "only-if-cached"),
            ],
        )
        .await;
    assert_eq!(uncached.status, 504);
    assert_eq!(origin.counter.get("/cache/uncached"), 0);
    assert_eq!(asked(), 1, "never sent to a peer");

    // CDN-Loop is appended to what the client sent, on origin requests too.
    let echo = b.get_with("/echo", &[("cdn-loop", "other-cdn")]).await;
    assert!(echo.body.contains("cdn-loop: other-cdn\n"), "{}", echo.body);
    assert!(
        echo.body.contains("cdn-loop: caje; node=b\n"),
        "{}",
        echo.body
    );
}

#[actix_web::test]
async fn a_peer_s_stale_copy_is_never_stored_as_fresh() {
    let origin = spawn_origin().await;
    // Fresh for 60 s at the origin, but already 120 s old on the peer.
    let peer = spawn_raw_origin(
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\nage: 120\r\ncache-status: caje-x; hit\r\ncontent-length: 5\r\n\r\nstale",
    )
    .await;
    let shared = tempfile::tempdir().expect("temp dir");
    let database = shared.path().join("manifest.db");
    let b = node(&origin, &database, "b", |_| {}).await;
    listed_on(&b, "/cache/aged", format!("http://127.0.0.1:{}", peer.port)).await;

    warm(&b, 1).await;
    assert_eq!(
        peer.requests.lock().expect("lock").len(),
        1,
        "the peer was asked"
    );
    let reply = b.get("/cache/aged").await;
    assert_eq!(
        reply.body, "/cache/aged #1",
        "the origin's copy, not the peer's"
    );
    assert!(
        reply.cache_status().starts_with("caje-b; hit"),
        "{}",
        reply.cache_status()
    );
    assert_eq!(origin.counter.get("/cache/aged"), 1);
}

#[actix_web::test]
async fn a_miss_fetched_from_a_peer_names_both_caches() {
    let origin = spawn_origin().await;
    let shared = tempfile::tempdir().expect("temp dir");
    let database = shared.path().join("manifest.db");
    let a = node(&origin, &database, "a", |_| {}).await;
    let b = node(&origin, &database, "b", |s| s.peer_fetch = PeerFetch::All).await;

    a.get("/cache/tiered").await;
    b.pages(1).await;
    let miss = b.get("/cache/tiered").await;
    assert_eq!(miss.body, "/cache/tiered #1");
    assert!(
        miss.cache_status()
            .starts_with("caje-a; hit, caje-b; fwd=uri-miss; fwd-status=200; stored"),
        "{}",
        miss.cache_status()
    );
    b.stored(1).await;
    let hit = b.get("/cache/tiered").await;
    assert_eq!(hit.body, "/cache/tiered #1");
    assert!(
        hit.cache_status()
            .starts_with("caje-a; hit, caje-b; hit; ttl="),
        "{}",
        hit.cache_status()
    );
    assert_eq!(origin.counter.get("/cache/tiered"), 1);
}
