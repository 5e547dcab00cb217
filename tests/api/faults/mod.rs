//! Faults around caje: origins that hang, reset or send short bodies, a full
//! or read-only cache disk, and a manifest locked by another process. Users
//! are still answered, nothing partial is stored, and no manifest row is lost.
//!
//! The disk tests mount a tmpfs and the lock tests run python3; where this
//! machine cannot, they print why and return.
//!
//! One file per theme: `origins` (hanging, resetting and short origins),
//! `disk` (a full or read-only cache disk), `locks` (the manifest or the
//! HALT lock held by another process). The checks they share are here.

use std::path::{Path, PathBuf};

use caje::actors::cache_store::GetCacheStats;

use crate::helpers::{eventually, TestApp};

mod disk;
mod locks;
mod origins;

/// Files under the cache directory's shards (entries) and under `tmp/`.
fn cache_files(app: &TestApp) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let list = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    let root = app.cache_dir();
    let entries = list(&root)
        .into_iter()
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.len() == 2))
        .flat_map(|shard| list(&shard))
        .collect();
    (entries, list(&root.join("tmp")))
}

/// Nothing was kept: no entry file, no temp file left, and the store
/// counted an abandoned write and no stored one.
async fn assert_nothing_stored(app: &TestApp) {
    eventually(|| async {
        let stats = app.cache.send(GetCacheStats).await.expect("cache store");
        (stats.stores_aborted >= 1).then_some(())
    })
    .await;
    eventually(|| async { cache_files(app).1.is_empty().then_some(()) }).await;
    let stats = app.cache.send(GetCacheStats).await.expect("cache store");
    assert_eq!((stats.stored, stats.entries), (0, 0));
    assert_eq!(cache_files(app).0, Vec::<PathBuf>::new());
}

/// A value of an unlabelled metric, as `/_caje/metrics` renders it.
fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.metrics.render().expect("metrics render");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}
