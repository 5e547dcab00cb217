//! One round of purge sync ([`apply_since`]) against a real SQLite manifest
//! and a real `CacheStore`, both in a temp dir: purges are logged through
//! the `Manifest` writer and read through a `ManifestWatch`, as in a node.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{Actor, SyncArbiter};
use bytes::Bytes;
use http_cache_semantics::CachePolicy;

use super::apply::PurgeSyncError;
use super::*;
use crate::actors::cache_store::{BeginStore, HoldsFresh};
use crate::actors::manifest::{self, LiteFsWrites, LogPurge, Manifest, PurgeTarget};
use crate::cache::entry::EntryHead;
use crate::cache::memory_tier::MemoryTier;
use crate::cache::{policy, CacheKey};
use crate::config::LiteFsMode;
use crate::metrics::Metrics;

fn key(path: &str) -> CacheKey {
    CacheKey::new("GET", "a", path)
}

/// A manifest writer on `database`, prepared (migrated).
fn manifest_on(database: &Path, metrics: &Metrics) -> Mailbox<Manifest> {
    let litefs = LiteFsWrites::new(LiteFsMode::Off, database, Duration::from_secs(1));
    manifest::prepare(database, &litefs).expect("prepared");
    let (database, writes) = (database.to_owned(), metrics.manifest.clone());
    let meter = metrics.actors.meter("manifest");
    let writer = SyncArbiter::start(1, move || {
        Manifest::new(
            database.clone(),
            litefs.clone(),
            writes.clone(),
            meter.clone(),
        )
    });
    Mailbox::new(writer, metrics.actors.meter("manifest"))
}

/// The read-only watch purge sync reads the log through.
fn watch_on(database: &Path, metrics: &Metrics) -> Mailbox<ManifestWatch> {
    let (database, sync) = (database.to_owned(), metrics.sync.clone());
    let meter = metrics.actors.meter("manifest_watch");
    let watch = SyncArbiter::start(1, move || {
        ManifestWatch::new(database.clone(), None, sync.clone(), meter.clone())
    });
    Mailbox::new(watch, metrics.actors.meter("manifest_watch"))
}

fn cache_in(dir: &Path, metrics: &Metrics) -> Mailbox<CacheStore> {
    let memory = Arc::new(MemoryTier::new(0, 0, metrics.cache.clone()));
    let meter = metrics.actors.meter("cache_store");
    let store = CacheStore::new(
        dir.to_owned(),
        None,
        memory,
        metrics.cache.clone(),
        meter,
        None,
    );
    Mailbox::new(store.start(), metrics.actors.meter("cache_store"))
}

/// Stores a fresh (`max-age=60`) response for `path`, tagged `tags`.
async fn store(cache: &Mailbox<CacheStore>, path: &str, tags: &[&str]) {
    let request = http1::Request::get(path)
        .header("host", "a")
        .body(())
        .expect("request");
    let response = http1::Response::builder()
        .header("cache-control", "max-age=60")
        .body(())
        .expect("response");
    let now = SystemTime::now();
    let head = EntryHead {
        key: key(path),
        vary: Vec::new(),
        status: 200,
        headers: Vec::new(),
        policy: CachePolicy::new_options(&request, &response, now, policy::options()),
        stored_at_ms: now
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        invalidated: false,
    };
    let sink = cache
        .send(BeginStore {
            head: Box::new(head),
            expected_len: Some(4),
        })
        .await
        .expect("the cache store answers")
        .expect("storing begins");
    assert!(sink.write(Bytes::from_static(b"body")).await);
    assert!(sink.commit().await, "stored");
}

async fn fresh_here(cache: &Mailbox<CacheStore>, paths: &[&str]) -> Vec<bool> {
    let keys = paths.iter().map(|p| key(p)).collect();
    cache
        .send(HoldsFresh(keys))
        .await
        .expect("the cache store answers")
}

async fn log_purge(manifest: &Mailbox<Manifest>, target: PurgeTarget, soft: bool) -> i64 {
    manifest
        .send(LogPurge { target, soft })
        .await
        .expect("the manifest answers")
        .expect("logged")
}

#[actix_web::test]
async fn a_round_applies_the_purges_logged_after_the_cursor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let metrics = Metrics::new().expect("metrics");
    let database = dir.path().join("manifest.db");
    let manifest = manifest_on(&database, &metrics);
    let log = watch_on(&database, &metrics);
    let cache = cache_in(&dir.path().join("cache"), &metrics);
    for (path, tags) in [("/a", &[][..]), ("/b", &["t"][..]), ("/c", &[][..])] {
        store(&cache, path, tags).await;
    }

    // Without a cursor a node starts from the log's end: 0 while it is empty.
    assert_eq!(apply_since(None, &log, &cache).await.expect("round"), 0);

    let first = log_purge(&manifest, PurgeTarget::Url(key("/a")), false).await;
    let last = log_purge(&manifest, PurgeTarget::Tag("t".into()), true).await;
    assert!(last > first);
    assert_eq!(
        apply_since(Some(0), &log, &cache).await.expect("round"),
        last,
        "the cursor moves to the last purge applied"
    );
    // /a purged, /b soft-purged (kept, but no longer fresh), /c untouched.
    assert_eq!(
        fresh_here(&cache, &["/a", "/b", "/c"]).await,
        [false, false, true]
    );

    // Nothing new: the cursor stays.
    assert_eq!(
        apply_since(Some(last), &log, &cache).await.expect("round"),
        last
    );

    // A node without a cursor skips what was logged before it started.
    store(&cache, "/a", &[]).await;
    assert_eq!(apply_since(None, &log, &cache).await.expect("round"), last);
    assert_eq!(fresh_here(&cache, &["/a"]).await, [true]);
}

#[actix_web::test]
async fn a_purge_log_that_cannot_be_read_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let metrics = Metrics::new().expect("metrics");
    let database = dir.path().join("manifest.db");
    let log = watch_on(&database, &metrics);
    let cache = cache_in(&dir.path().join("cache"), &metrics);
    // Not there yet (as on a replica before the primary creates it): the
    // read fails, and the read-only connection does not create it.
    let failed = apply_since(Some(0), &log, &cache).await;
    assert!(
        matches!(failed, Err(PurgeSyncError::Manifest(_))),
        "{failed:?}"
    );
    assert!(!database.exists(), "a purge read created the database");

    // There but never migrated: the purge log table does not exist.
    drop(manifest::connect(&database).expect("created"));
    let failed = apply_since(Some(0), &log, &cache).await;
    assert!(
        matches!(failed, Err(PurgeSyncError::Manifest(_))),
        "{failed:?}"
    );

    // Migrated: the watch reopens its connection and reads the log.
    let manifest = manifest_on(&database, &metrics);
    let id = log_purge(&manifest, PurgeTarget::Tag("t".into()), false).await;
    assert_eq!(apply_since(Some(0), &log, &cache).await.expect("read"), id);
}
