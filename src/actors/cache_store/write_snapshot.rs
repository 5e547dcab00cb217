//! The index snapshot written at a graceful stop (`<cache_dir>/index.snapshot`):
//! every entry with its size (and mtime, for a bounded store), and every
//! shard directory's mtime, so that the next start takes the shards left
//! untouched from it instead of walking them. Any change the store makes
//! afterwards removes it again.

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::time::{Instant, UNIX_EPOCH};

use actix::prelude::*;

use super::actor::CacheStore;
use super::rebuild::prefix_byte;
use super::snapshot::{self, nanos_since_epoch, Entry, Shard, Snapshot};

/// The snapshot's name in the cache directory.
pub(super) const SNAPSHOT_FILE: &str = "index.snapshot";

/// Writes the index snapshot; sent once the server has stopped, so that no
/// request changes the cache while it is written. Answers how many entries
/// it lists.
#[derive(Message)]
#[rtype(result = "Result<usize, WriteSnapshotError>")]
pub struct WriteSnapshot;

#[derive(Debug, thiserror::Error)]
pub enum WriteSnapshotError {
    #[error("the index was not rebuilt at start, so it may lack entries on disk")]
    IndexIncomplete,
    #[error("cannot write the index snapshot: {0}")]
    Io(#[from] io::Error),
}

impl Handler<WriteSnapshot> for CacheStore {
    type Result = Result<usize, WriteSnapshotError>;

    fn handle(&mut self, _msg: WriteSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("write_snapshot");
        if !self.index_complete {
            return Err(WriteSnapshotError::IndexIncomplete);
        }
        let began = Instant::now();
        let snapshot = self.snapshot()?;
        let tmp = self.tmp_dir.join(SNAPSHOT_FILE);
        let written = File::create(&tmp)
            .and_then(|file| snapshot::encode(&snapshot, BufWriter::with_capacity(1 << 20, file)))
            .and_then(|()| fs::rename(&tmp, self.root.join(SNAPSHOT_FILE)));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        self.snapshot_written = true;
        tracing::info!(
            entries = snapshot.entries.len(),
            shards = snapshot.shards.len(),
            elapsed_ms = began.elapsed().as_millis() as u64,
            "index snapshot written"
        );
        Ok(snapshot.entries.len())
    }
}

impl CacheStore {
    /// The index and the shard directories as they are now.
    fn snapshot(&self) -> io::Result<Snapshot> {
        let mut shards = Vec::new();
        for dir in fs::read_dir(&self.root)? {
            let dir = dir?;
            let Some(prefix) = dir.file_name().to_str().and_then(prefix_byte) else {
                continue;
            };
            let metadata = dir.metadata()?;
            if metadata.is_dir() {
                shards.push(Shard {
                    prefix,
                    modified_ns: nanos_since_epoch(metadata.modified().unwrap_or(UNIX_EPOCH)),
                });
            }
        }
        let with_mtimes = self.evictor.is_bounded();
        let entries = self
            .index
            .sizes()
            .map(|(vk, size)| Entry {
                // A bounded evictor holds every indexed entry.
                modified_ns: self.evictor.modified_ns(&vk).unwrap_or(0),
                vk,
                size,
            })
            .collect();
        Ok(Snapshot {
            with_mtimes,
            shards,
            entries,
        })
    }

    /// Removes the snapshot once the store changes the cache after writing
    /// it: the change may fall in the same tick of the file system's clock
    /// as the shard's recorded mtime, which would then not show it.
    pub(super) fn drop_snapshot(&mut self) {
        if !self.snapshot_written {
            return;
        }
        self.snapshot_written = false;
        match fs::remove_file(self.root.join(SNAPSHOT_FILE)) {
            Ok(()) => {
                tracing::info!("the cache changed after the index snapshot: snapshot removed")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                self.metrics.io_errors.inc();
                tracing::warn!(error = %e, "cannot remove the index snapshot the cache no longer matches");
            }
        }
    }
}
