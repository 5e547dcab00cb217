//! The index snapshot: a graceful stop writes it, the next start takes the
//! shard directories left unchanged from it (and removes it), walks the
//! others; a damaged or missing one only means a full walk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use caje::cache::{CacheKey, VariantKey};

use crate::helpers::{
    eventually, process_config, request, spawn_app, spawn_origin, test_client, CajeProcess,
    TestOrigin, HOST, TOKEN,
};

const PATHS: usize = 24;

fn paths() -> Vec<String> {
    (0..PATHS).map(|i| format!("/cache/snap-{i}")).collect()
}

/// Where the entry for `path` on [`HOST`] (no `Vary`) lives under `cache`.
fn entry_path(cache: &Path, path: &str) -> PathBuf {
    let name = VariantKey::new(&CacheKey::new("GET", HOST, path), &vec![]).file_name();
    cache.join(&name[..2]).join(name)
}

/// The shard directories in `cache`.
fn shard_count(cache: &Path) -> f64 {
    std::fs::read_dir(cache)
        .expect("cache dir")
        .filter_map(Result::ok)
        .filter(|d| d.file_name().len() == 2)
        .count() as f64
}

/// A node over `dir` with an admin token (for its metrics).
async fn start(dir: &Path, origin: &TestOrigin) -> CajeProcess {
    start_with(dir, origin, "").await
}

/// The same, with `extra` top-level settings.
async fn start_with(dir: &Path, origin: &TestOrigin, extra: &str) -> CajeProcess {
    let config = process_config(dir, &origin.url(), extra);
    CajeProcess::start_with("caje", &config, &[("CAJE_ADMIN_TOKEN", TOKEN)]).await
}

/// SIGTERM, then waits for a clean exit.
async fn stop(caje: &mut CajeProcess) {
    caje.signal(libc::SIGTERM);
    let status = caje.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
}

/// The body and `Cache-Status` of `path`.
async fn get(caje: &CajeProcess, path: &str) -> (u16, String, String) {
    let reply = request(&test_client(), &caje.url(path), "GET", HOST, &[]).await;
    let status = reply.cache_status().to_owned();
    (reply.status, reply.body, status)
}

/// Asks for every path once and waits until all are stored.
async fn store_all(caje: &CajeProcess, paths: &[String]) {
    for path in paths {
        get(caje, path).await;
    }
    let want = paths.len() as f64;
    eventually(|| async { (caje.metric("caje_cache_entries").await >= want).then_some(()) }).await;
}

/// Fails unless every path is a hit with the origin's first body.
async fn assert_all_hits(caje: &CajeProcess, paths: &[String]) {
    for path in paths {
        let (status, body, cache_status) = get(caje, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(cache_status.contains("hit"), "{path}: {cache_status}");
        assert_eq!(body, format!("{path} #1"), "{path}");
    }
}

/// (shards from the snapshot, shards walked) at the node's start.
/// How the start went, once the store has built its index (it serves
/// meanwhile); every test here starts over at least one shard.
async fn start_shards(caje: &CajeProcess) -> (f64, f64) {
    eventually(|| async {
        let shards = (
            caje.metric("caje_cache_start_shards_from_snapshot").await,
            caje.metric("caje_cache_start_shards_walked").await,
        );
        (shards.0 + shards.1 > 0.0).then_some(shards)
    })
    .await
}

/// A node in front of a test origin, `paths()` stored: the origin, the
/// temp dir (kept while the test runs), the cache directory, the paths and
/// the running caje.
async fn node_with_entries() -> (
    TestOrigin,
    tempfile::TempDir,
    PathBuf,
    Vec<String>,
    CajeProcess,
) {
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let paths = paths();
    let caje = start(dir.path(), &origin).await;
    store_all(&caje, &paths).await;
    (origin, dir, cache, paths, caje)
}

#[actix_web::test]
async fn a_gracefully_stopped_node_starts_from_its_snapshot_with_every_entry() {
    let (origin, dir, cache, paths, mut caje) = node_with_entries().await;
    let entries = caje.metric("caje_cache_entries").await;
    let bytes = caje.metric("caje_cache_bytes").await;
    stop(&mut caje).await;
    assert!(cache.join("index.snapshot").exists());
    assert!(caje.log().contains("index snapshot written"));

    let caje = start(dir.path(), &origin).await;
    assert_all_hits(&caje, &paths).await;
    assert_eq!(start_shards(&caje).await, (shard_count(&cache), 0.0));
    caje.logged("index_from=\"snapshot\"").await;
    assert_eq!(caje.metric("caje_cache_entries").await, entries);
    assert_eq!(caje.metric("caje_cache_bytes").await, bytes);
    assert!(
        !cache.join("index.snapshot").exists(),
        "a snapshot is removed as it is read"
    );
    for path in &paths {
        assert_eq!(origin.counter.get(path), 1, "{path}");
    }
}

#[actix_web::test]
async fn shards_changed_while_stopped_are_walked_and_missing_files_are_misses() {
    let (origin, dir, cache, paths, mut caje) = node_with_entries().await;
    // Deleted while the node runs: the snapshot lists it, its file is gone.
    let gone_running = &paths[0];
    std::fs::remove_file(entry_path(&cache, gone_running)).expect("delete entry");
    stop(&mut caje).await;

    // While stopped: an entry deleted, and one stored by another node
    // copied in.
    let gone_stopped = &paths[1];
    std::fs::remove_file(entry_path(&cache, gone_stopped)).expect("delete entry");
    let other = spawn_app(&origin).await;
    let added = "/cache/snap-added";
    other.get(added).await;
    other.stored(1).await;
    let target = entry_path(&cache, added);
    std::fs::create_dir_all(target.parent().expect("shard")).expect("shard dir");
    std::fs::copy(other.entry_path(added), &target).expect("copy entry in");
    let changed: BTreeSet<_> = [gone_stopped.as_str(), added]
        .iter()
        .map(|p| entry_path(&cache, p).parent().map(Path::to_owned))
        .collect();

    let caje = start(dir.path(), &origin).await;
    let walked = changed.len() as f64;
    assert_eq!(
        start_shards(&caje).await,
        (shard_count(&cache) - walked, walked)
    );
    for gone in [gone_running, gone_stopped] {
        let (status, body, cache_status) = get(&caje, gone).await;
        assert_eq!(
            (status, body),
            (200, format!("{gone} #2")),
            "{cache_status}"
        );
        assert!(cache_status.contains("miss"), "{gone}: {cache_status}");
    }
    let (status, body, cache_status) = get(&caje, added).await;
    assert_eq!((status, body.as_str()), (200, "/cache/snap-added #1"));
    assert!(cache_status.contains("hit"), "{cache_status}");
    assert_all_hits(&caje, &paths[2..]).await;
    // The entry deleted while running was listed by the snapshot: the
    // lookup found no file, a miss.
    let name = VariantKey::new(&CacheKey::new("GET", HOST, gone_running), &vec![]).file_name();
    let listed = format!("file={name}");
    eventually(|| async {
        let log = caje.log();
        log.lines()
            .any(|l| l.contains("broken cache entry removed") && l.contains(&listed))
            .then_some(())
    })
    .await;
}

#[actix_web::test]
async fn a_damaged_snapshot_means_a_full_walk_with_every_entry() {
    let (origin, dir, cache, paths, mut caje) = node_with_entries().await;
    let snapshot = cache.join("index.snapshot");
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 4] = [
        ("garbage", |b| b.iter_mut().for_each(|x| *x = 0x5a)),
        ("truncated", |b| b.truncate(b.len() - 100)),
        ("a changed byte", |b| {
            let middle = b.len() / 2;
            b[middle] ^= 0x01;
        }),
        ("another version", |b| b[8] = 99),
    ];
    for (what, damage) in damages {
        stop(&mut caje).await;
        let mut bytes = std::fs::read(&snapshot).expect("snapshot written");
        damage(&mut bytes);
        std::fs::write(&snapshot, bytes).expect("damage snapshot");

        caje = start(dir.path(), &origin).await;
        assert_eq!(
            start_shards(&caje).await,
            (0.0, shard_count(&cache)),
            "{what}"
        );
        caje.logged("index snapshot unusable").await;
        assert!(!snapshot.exists(), "{what}");
        assert_all_hits(&caje, &paths).await;
    }
}

#[actix_web::test]
async fn after_a_crash_the_start_walks_and_no_stale_snapshot_is_left() {
    let (origin, dir, cache, mut paths, mut caje) = node_with_entries().await;
    stop(&mut caje).await;

    // Started from the snapshot, which is gone at once: a crash now leaves
    // none behind.
    let mut caje = start(dir.path(), &origin).await;
    assert_eq!(start_shards(&caje).await.1, 0.0);
    assert!(!cache.join("index.snapshot").exists());
    paths.push("/cache/snap-after".to_owned());
    store_all(&caje, &paths).await;
    caje.signal(libc::SIGKILL);
    caje.wait_exit(Duration::from_secs(10)).await;
    assert!(!cache.join("index.snapshot").exists());

    let caje = start(dir.path(), &origin).await;
    assert_eq!(start_shards(&caje).await, (0.0, shard_count(&cache)));
    caje.logged("no index snapshot").await;
    assert_all_hits(&caje, &paths).await;
}

#[actix_web::test]
async fn a_bounded_start_from_the_snapshot_keeps_the_newest_entries() {
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let paths: Vec<String> = (1..=5).map(|n| format!("/chunked/100?{n}")).collect();
    let mut caje = start_with(dir.path(), &origin, "max_size = \"10 MiB\"").await;
    // One after the other: their files' mtimes follow this order.
    for (n, path) in paths.iter().enumerate() {
        get(&caje, path).await;
        let stored = (n + 1) as f64;
        eventually(|| async { (caje.metric("caje_cache_entries").await >= stored).then_some(()) })
            .await;
    }
    stop(&mut caje).await;

    // Room for two 100 KiB entries: the two written last stay.
    let caje = start_with(dir.path(), &origin, "max_size = \"250 KiB\"").await;
    assert_eq!(start_shards(&caje).await.1, 0.0, "{}", caje.log());
    assert_eq!(caje.metric("caje_cache_entries").await, 2.0);
    // Asked only if cached, so that a miss stores (and evicts) nothing.
    let headers = [("cache-control", "only-if-cached")];
    for (n, path) in paths.iter().enumerate() {
        let reply = request(&test_client(), &caje.url(path), "GET", HOST, &headers).await;
        assert_eq!(
            reply.status == 200,
            n >= 3,
            "{path}: {}",
            reply.cache_status()
        );
    }
}
