//! The populator fetches what the manifest lists and this node lacks.

use caje::actors::cache_store::Purge;
use caje::actors::manifest::{PageVisit, WriteBatch};
use caje::actors::populator::{GetStatus, PopulateReport, RunNow};
use caje::cache::CacheKey;
use serde_json::json;

use crate::helpers::{
    eventually, spawn_admin_app, spawn_app_in, spawn_app_with, spawn_origin, TestApp, HOST, TOKEN,
};

#[actix_web::test]
async fn populate_fetches_pages_this_node_lacks() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    for path in ["/cache/w1", "/cache/w2", "/no-store"] {
        app.get(path).await;
    }
    app.pages(2).await;
    app.admin("POST", "/_caje/clear_fs", Some(TOKEN), None)
        .await;

    let reply = app
        .admin("POST", "/_caje/populate", Some(TOKEN), None)
        .await;
    assert_eq!(reply.status, 200);
    let mut queued: Vec<String> =
        serde_json::from_value(reply.json()["queued"].clone()).expect("urls");
    queued.sort();
    assert_eq!(
        queued,
        [
            format!("http://{HOST}/cache/w1"),
            format!("http://{HOST}/cache/w2")
        ]
    );
    eventually(|| async {
        let s = app.populator.send(GetStatus).await.expect("status");
        (s.fetched == 2 && s.queued == 0 && s.in_flight == 0).then_some(())
    })
    .await;
    app.stored(4).await;
    for path in ["/cache/w1", "/cache/w2"] {
        let reply = app.get(path).await;
        assert!(
            reply.cache_status().contains("hit"),
            "{path}: {}",
            reply.cache_status()
        );
        assert_eq!(reply.body, format!("{path} #2"));
        assert_eq!(origin.counter.get(path), 2);
    }
    // Nothing is missing now: a second run queues nothing.
    let again = app
        .admin("POST", "/_caje/populate", Some(TOKEN), None)
        .await
        .json();
    assert_eq!(again["queued"], json!([]));
}

#[actix_web::test]
async fn a_page_is_never_fetched_twice_at_once() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    app.get("/sleep/400").await;
    app.pages(1).await;
    app.admin("POST", "/_caje/clear_fs", Some(TOKEN), None)
        .await;

    let first = app
        .populator
        .send(RunNow)
        .await
        .expect("answer")
        .expect("run");
    let second = app
        .populator
        .send(RunNow)
        .await
        .expect("answer")
        .expect("run");
    assert_eq!(first.queued.len(), 1);
    assert_eq!((second.queued.len(), second.already_in_flight), (0, 1));
    eventually(|| async {
        let s = app.populator.send(GetStatus).await.expect("status");
        (s.fetched == 1).then_some(())
    })
    .await;
    assert_eq!(origin.counter.get("/sleep/400"), 2);
}

#[actix_web::test]
async fn a_failing_origin_is_backed_off() {
    let port = crate::helpers::closed_port();
    let app = spawn_app_with(vec![(
        HOST,
        format!("http://127.0.0.1:{port}"),
        std::time::Duration::from_secs(5),
    )])
    .await;
    // Another region stored the page: its row is in the manifest.
    let key = caje::cache::CacheKey::new("GET", HOST, "/cache/elsewhere");
    app.manifest
        .send(WriteBatch(vec![PageVisit::now(key)]))
        .await
        .expect("write");

    let run = app
        .populator
        .send(RunNow)
        .await
        .expect("answer")
        .expect("run");
    assert_eq!(run.queued.len(), 1);
    eventually(|| async {
        let s = app.populator.send(GetStatus).await.expect("status");
        (s.failed == 1).then_some(())
    })
    .await;
    app.populator
        .send(RunNow)
        .await
        .expect("answer")
        .expect("run");
    let status = eventually(|| async {
        let s = app.populator.send(GetStatus).await.expect("status");
        (s.deferred == 1).then_some(s)
    })
    .await;
    assert_eq!(
        status.failed, 1,
        "the origin was not asked again while backing off"
    );
}

#[actix_web::test]
async fn a_nearly_full_cache_is_not_populated() {
    let origin = spawn_origin().await;
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| s.max_size = Some(1000 * 1024)).await;
    // Another region stored a page this node lacks.
    let key = caje::cache::CacheKey::new("GET", HOST, "/cache/elsewhere");
    app.manifest
        .send(WriteBatch(vec![PageVisit::now(key)]))
        .await
        .expect("write");
    let run = || async {
        app.populator
            .send(RunNow)
            .await
            .expect("answer")
            .expect("run")
    };

    app.get("/chunked/500?half").await;
    app.stored(1).await;
    // Half full: the page is queued (and fetched).
    let half = run().await;
    assert_eq!((half.queued.len(), half.cache_full), (1, false));
    eventually(|| async {
        let s = app.populator.send(GetStatus).await.expect("status");
        (s.fetched == 1).then_some(())
    })
    .await;

    // Past 90% of max_size: a run queues nothing, even for a missing page,
    // so it never evicts what traffic keeps only to fetch it back later.
    app.cache
        .send(Purge(CacheKey::new("GET", HOST, "/cache/elsewhere")))
        .await
        .expect("purge");
    app.get("/chunked/450?more").await;
    app.stored(3).await;
    let full = run().await;
    assert_eq!((full.queued.len(), full.cache_full), (0, true));
    assert_eq!(origin.counter.get("/cache/elsewhere"), 1);
}

#[actix_web::test]
async fn a_full_reconcile_streams_the_manifest_a_page_at_a_time() {
    let origin = spawn_origin().await;
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| s.manifest_page_size = 2).await;
    // Other regions stored five pages this node lacks.
    lacks(&app, (1..=5).map(|n| format!("/cache/streamed-{n}"))).await;

    let run = run_now(&app).await;
    let mut queued = run.queued.clone();
    queued.sort();
    let expected: Vec<String> = (1..=5)
        .map(|n| format!("http://{HOST}/cache/streamed-{n}"))
        .collect();
    assert_eq!(queued, expected);
    // Read as 2 + 2 + 1 rows, never the whole manifest at once.
    let (reads, text) = manifest_reads(&app);
    assert_eq!(reads.as_deref(), Some("3"), "{text}");
    eventually(|| async {
        let s = app.populator.send(GetStatus).await.expect("status");
        (s.fetched == 5).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn populate_concurrency_bounds_the_whole_node_not_each_slice() {
    let origin = spawn_origin().await;
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| {
        // Each page its own slice, so its own fetch stream.
        s.manifest_page_size = 1;
        s.populate_concurrency = 1;
        s.populate_rate = 1000;
    })
    .await;
    lacks(&app, (1..=4).map(|n| format!("/sleep/150?n={n}"))).await;
    let run = run_now(&app).await;
    assert_eq!(run.queued.len(), 4);
    let mut most = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = app.populator.send(GetStatus).await.expect("status");
        most = most.max(s.in_flight);
        if s.fetched == 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s:?}");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(most, 1, "fetches at once with populate_concurrency 1");
}

#[actix_web::test]
async fn the_populator_holds_a_bounded_number_of_pages_and_leaves_the_rest_for_later() {
    let origin = spawn_origin().await;
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| {
        s.manifest_page_size = 2;
        s.populate_pending = 3;
        // Slow enough that nothing finishes before the run is over.
        s.populate_rate = 1;
    })
    .await;
    lacks(&app, (1..=7).map(|n| format!("/sleep/{n}"))).await;
    let run = run_now(&app).await;
    assert_eq!(run.queued.len(), 3, "{:?}", run.queued);
    assert!(run.left_for_later >= 1, "{}", run.left_for_later);
    // The run stops at the full queue instead of reading the whole manifest.
    let (reads, text) = manifest_reads(&app);
    assert_eq!(reads.as_deref(), Some("2"), "{text}");
    let status = app.populator.send(GetStatus).await.expect("status");
    assert!(status.queued <= 3, "{}", status.queued);
}

/// Records `paths` on [`HOST`] in the manifest, as other regions would:
/// pages this node lacks.
async fn lacks(app: &TestApp, paths: impl Iterator<Item = String>) {
    let visits = paths
        .map(|path| PageVisit::now(CacheKey::new("GET", HOST, &path)))
        .collect();
    app.manifest.send(WriteBatch(visits)).await.expect("write");
}

async fn run_now(app: &TestApp) -> PopulateReport {
    app.populator
        .send(RunNow)
        .await
        .expect("answer")
        .expect("run")
}

/// How many slices of the manifest the populator read, and the metrics text.
fn manifest_reads(app: &TestApp) -> (Option<String>, String) {
    let text = app.metrics.render().expect("metrics");
    let reads = text.lines().find_map(|line| {
        line.strip_prefix("caje_actor_messages_total{actor=\"manifest\",message=\"pages_after\"}")
            .map(|count| count.trim().to_owned())
    });
    (reads, text)
}
