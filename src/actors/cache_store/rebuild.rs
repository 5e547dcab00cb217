//! The index rebuilt at start: leftovers of interrupted writes removed,
//! then every shard directory either taken from the index snapshot of the
//! last graceful stop (when its mtime is the one recorded: no file was
//! added, renamed or removed in it since) or walked, each file `stat`ed.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::time::UNIX_EPOCH;

use super::actor::CacheStore;
use super::index::{Index, Variant};
use super::snapshot::{self, nanos_since_epoch, Entry, Snapshot};
use super::write_snapshot::SNAPSHOT_FILE;
use crate::cache::key::VariantKey;

/// How many shard directories a start took from the snapshot, and walked.
pub(super) struct Shards {
    pub from_snapshot: i64,
    pub walked: i64,
}

impl CacheStore {
    /// Removes leftovers of interrupted writes and indexes every entry.
    pub(super) fn rebuild(&mut self) -> io::Result<Shards> {
        fs::create_dir_all(&self.tmp_dir)?;
        for tmp in fs::read_dir(&self.tmp_dir)? {
            let path = tmp?.path();
            if fs::remove_file(&path).is_ok() {
                self.metrics.temp_files_cleaned.inc();
            }
        }
        let snapshot = self.take_snapshot();
        // Each shard's recorded mtime, by its prefix.
        let mut recorded = [None; 256];
        for shard in snapshot.iter().flat_map(|s| &s.shards) {
            recorded[usize::from(shard.prefix)] = Some(shard.modified_ns);
        }
        let mut trusted = [false; 256];
        let mut shards = Shards {
            from_snapshot: 0,
            walked: 0,
        };
        let mut found = Vec::new();
        for shard in fs::read_dir(&self.root)? {
            let shard = shard?;
            let shard_name = shard.file_name();
            let Some(prefix) = shard_name.to_str().filter(|n| n.len() == 2) else {
                continue;
            };
            if !shard.file_type()?.is_dir() {
                continue;
            }
            if let Some(byte) = prefix_byte(prefix) {
                let modified = shard.metadata()?.modified().unwrap_or(UNIX_EPOCH);
                if recorded[usize::from(byte)] == Some(nanos_since_epoch(modified)) {
                    trusted[usize::from(byte)] = true;
                    shards.from_snapshot += 1;
                    continue;
                }
            }
            shards.walked += 1;
            for file in fs::read_dir(shard.path())? {
                let file = file?;
                let name = file.file_name();
                let Some(vk) = name
                    .to_str()
                    .filter(|n| n.starts_with(prefix))
                    .and_then(VariantKey::from_file_name)
                else {
                    continue;
                };
                let metadata = file.metadata()?;
                found.push(Entry {
                    vk,
                    size: metadata.len(),
                    modified_ns: nanos_since_epoch(metadata.modified().unwrap_or(UNIX_EPOCH)),
                });
            }
        }
        // The snapshot's entries kept in place, the fewer appended to the
        // more (their order does not matter): no second copy of the bulk.
        let mut entries = snapshot.map(|s| s.entries).unwrap_or_default();
        entries.retain(|e| trusted[usize::from(e.vk.primary[0])]);
        if entries.len() < found.len() {
            std::mem::swap(&mut entries, &mut found);
        }
        entries.append(&mut found);
        self.index_found(entries);
        Ok(shards)
    }

    /// Indexes the entries found at start.
    fn index_found(&mut self, mut found: Vec<Entry>) {
        self.memory.held_urls.reserve(found.len());
        if !self.evictor.is_bounded() {
            // Nothing to evict: the index is built in one go, its B-tree's
            // nodes full.
            for entry in &found {
                self.memory.held_urls.add(&entry.vk.primary);
                self.metrics.entries.inc();
                self.metrics.bytes.add(entry.size as i64);
            }
            self.index = Index::from_found(found.into_iter().map(|e| (e.vk, e.size)));
            return;
        }
        // Oldest first: the last written are kept when the bound bites.
        found.sort_by_key(|e| e.modified_ns);
        for entry in found {
            let variant = Variant {
                size: entry.size,
                info: None,
            };
            self.index_variant(entry.vk, variant, entry.modified_ns);
        }
    }

    /// The snapshot of the last graceful stop, removed first: one a crash
    /// leaves behind later must never be trusted. `None` (logged) when
    /// there is none or it cannot be used: every shard is walked then.
    fn take_snapshot(&mut self) -> Option<Snapshot> {
        let path = self.root.join(SNAPSHOT_FILE);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::info!("no index snapshot (the last stop was not graceful, or this is the first start): walking every shard");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the index snapshot: walking every shard");
                return None;
            }
        };
        if let Err(e) = fs::remove_file(&path) {
            tracing::warn!(error = %e, "cannot remove the index snapshot, so it is not used: walking every shard");
            return None;
        }
        let snapshot = match snapshot::decode(BufReader::with_capacity(1 << 20, file)) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::warn!(error = %e, "index snapshot unusable: walking every shard");
                return None;
            }
        };
        if self.evictor.is_bounded() && !snapshot.with_mtimes {
            tracing::warn!("the index snapshot, written without max_size, lacks the entries' ages eviction needs: walking every shard");
            return None;
        }
        Some(snapshot)
    }
}

/// The byte a shard directory's name stands for: two lowercase hex digits,
/// as entry file names start.
pub(super) fn prefix_byte(name: &str) -> Option<u8> {
    let byte = u8::from_str_radix(name, 16).ok()?;
    (format!("{byte:02x}") == name).then_some(byte)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix::Actor;

    use super::super::GetCacheStats;
    use super::*;
    use crate::cache::memory_tier::MemoryTier;
    use crate::cache::CacheKey;
    use crate::metrics::Metrics;

    #[actix::test]
    async fn until_the_index_is_built_every_url_may_be_held() {
        let dir = tempfile::tempdir().expect("temp dir");
        let held = VariantKey {
            primary: CacheKey::new("GET", "a", "/held").primary_hash(),
            variant: [7; 32],
        };
        let name = held.file_name();
        let shard = dir.path().join(&name[..2]);
        fs::create_dir_all(&shard).expect("shard");
        fs::write(shard.join(&name), b"an entry file").expect("entry");
        let absent = CacheKey::new("GET", "a", "/absent").primary_hash();

        let metrics = Metrics::new().expect("metrics");
        let memory = Arc::new(MemoryTier::new(0, 0, metrics.cache.clone()));
        // Before the store has built its index, a request must ask it.
        assert!(memory.store_may_hold(&absent));
        let store = CacheStore::new(
            dir.path().to_owned(),
            None,
            memory.clone(),
            metrics.cache.clone(),
            metrics.actors.meter("cache_store"),
            None,
        )
        .start();
        // The index is built before the store answers its first message.
        store.send(GetCacheStats).await.expect("stats");
        assert!(memory.store_may_hold(&held.primary));
        assert!(!memory.store_may_hold(&absent));
    }
}
