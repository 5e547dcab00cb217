//! The `CacheStore` actor itself: its state, the rebuild of the index from
//! file names at start, and the bookkeeping every message shares (adding,
//! removing and opening entries, reading a head the index lacks).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;

use super::compress::Waiting;
use super::in_flight::InFlight;
use super::index::{EntryInfo, Index, Variant};
use super::snapshot::nanos_since_epoch;
use crate::actors::manifest_batcher::ManifestBatcher;
use crate::actors::Mailbox;
use crate::cache::entry::{self, DecodedEntry, EntryError};
use crate::cache::eviction::Evictor;
use crate::cache::key::VariantKey;
use crate::cache::memory_tier::MemoryTier;
use crate::metrics::{ActorMeter, CacheMetrics};

pub struct CacheStore {
    pub(super) root: PathBuf,
    pub(super) tmp_dir: PathBuf,
    pub(super) index: Index,
    pub(super) evictor: Evictor,
    pub(super) memory: Arc<MemoryTier>,
    pub(super) metrics: CacheMetrics,
    pub(super) meter: ActorMeter,
    pub(super) on_store: Option<Mailbox<ManifestBatcher>>,
    next_tmp: u64,
    /// Stores and head rewrites under way, which a purge cancels.
    pub(super) in_flight: InFlight,
    /// Compressed variants being made, and who waits for each.
    pub(super) compressing: HashMap<VariantKey, Waiting>,
    /// Identity variants found not compressible (an image an origin sent
    /// with `Vary: Accept-Encoding`, say): served as they are without
    /// trying again, until they change.
    pub(super) not_compressible: HashSet<VariantKey>,
    /// The index holds every entry on disk (the rebuild at start worked):
    /// only then may a snapshot of it be written.
    pub(super) index_complete: bool,
    /// An index snapshot was written: the first change after it removes it.
    pub(super) snapshot_written: bool,
}

impl CacheStore {
    /// `on_store` is told of every committed entry (the manifest records it);
    /// `max_bytes` bounds the entries' total size (least recently used go);
    /// `memory` is the tier of small hot entries this store keeps current.
    pub(crate) fn new(
        root: PathBuf,
        max_bytes: Option<u64>,
        memory: Arc<MemoryTier>,
        metrics: CacheMetrics,
        meter: ActorMeter,
        on_store: Option<Mailbox<ManifestBatcher>>,
    ) -> Self {
        let tmp_dir = root.join("tmp");
        metrics
            .max_bytes
            .set(max_bytes.map_or(0, |m| i64::try_from(m).unwrap_or(i64::MAX)));
        Self {
            root,
            tmp_dir,
            index: Index::default(),
            evictor: Evictor::new(max_bytes),
            memory,
            metrics,
            meter,
            on_store,
            next_tmp: 0,
            in_flight: InFlight::default(),
            compressing: HashMap::new(),
            not_compressible: HashSet::new(),
            index_complete: false,
            snapshot_written: false,
        }
    }

    /// A fresh name under `tmp/` for an entry being written.
    pub(super) fn next_tmp_path(&mut self) -> PathBuf {
        self.next_tmp += 1;
        self.tmp_dir
            .join(format!("{}-{}.tmp", std::process::id(), self.next_tmp))
    }

    pub(super) fn path_for(&self, vk: &VariantKey) -> PathBuf {
        let name = vk.file_name();
        self.root.join(&name[..2]).join(name)
    }

    /// Indexes an entry just written, whose head is known, and counts it.
    pub(super) fn add_stored(&mut self, vk: VariantKey, info: EntryInfo) {
        let size = info.size;
        self.add_variant(
            vk,
            Variant {
                size,
                info: Some(Box::new(info)),
            },
        );
        self.metrics.stored.inc();
    }

    /// Indexes an entry just written, then evicts what the bound requires.
    pub(super) fn add_variant(&mut self, vk: VariantKey, variant: Variant) {
        self.drop_snapshot();
        self.memory.remove(&vk.primary);
        self.not_compressible.remove(&vk);
        for used in self.memory.take_used() {
            self.evictor.used(&used);
        }
        self.index_variant(vk, variant, nanos_since_epoch(SystemTime::now()));
    }

    /// The same for an entry whose file was written at `modified_ns`, the
    /// memory tier left alone (at start it holds nothing).
    pub(super) fn index_variant(&mut self, vk: VariantKey, variant: Variant, modified_ns: i64) {
        let size = variant.size;
        self.memory.held_urls.add(&vk.primary);
        let url = self.index.url_or_default(vk.primary);
        match url.variants.insert(vk.variant, variant) {
            Some(old) => self.metrics.bytes.sub(old.size as i64),
            None => self.metrics.entries.inc(),
        }
        self.metrics.bytes.add(size as i64);
        for victim in self.evictor.added(vk, size, modified_ns) {
            self.metrics.evictions.inc();
            self.remove(&victim);
        }
    }

    /// Opens and checks an entry; any damage is reported as an error.
    pub(super) fn open(&self, vk: &VariantKey) -> Result<(DecodedEntry, File), EntryError> {
        let mut file = File::open(self.path_for(vk))?;
        let len = file.metadata()?.len();
        let mut reader = io::BufReader::with_capacity(8 * 1024, &mut file);
        let decoded = entry::decode_head(&mut reader, len)?;
        drop(reader);
        file.seek(SeekFrom::Start(decoded.body_offset))?;
        Ok((decoded, file))
    }

    /// Drops an entry from the index and the disk.
    pub(super) fn remove(&mut self, vk: &VariantKey) {
        self.drop_snapshot();
        // A rewrite under way would rename the old body back into place.
        self.in_flight.cancel_rewrites(vk);
        self.memory.remove(&vk.primary);
        self.not_compressible.remove(vk);
        self.evictor.removed(vk);
        if let Some(url) = self.index.url_mut(&vk.primary) {
            if let Some(old) = url.variants.remove(&vk.variant) {
                self.metrics.entries.dec();
                self.metrics.bytes.sub(old.size as i64);
            }
            if url.variants.is_empty() {
                self.index.remove_url(&vk.primary);
                self.memory.held_urls.remove(&vk.primary);
            }
        }
        if let Err(e) = fs::remove_file(self.path_for(vk)) {
            if e.kind() != io::ErrorKind::NotFound {
                self.metrics.io_errors.inc();
                tracing::warn!(error = %e, "cannot remove cache entry");
            }
        }
    }

    /// Counts why an entry is unusable, then drops it.
    pub(super) fn discard_broken(&mut self, vk: &VariantKey, error: &EntryError) {
        match error {
            EntryError::Io(e) if e.kind() == io::ErrorKind::NotFound => {}
            EntryError::Io(_) => self.metrics.io_errors.inc(),
            _ => self.metrics.corrupt.inc(),
        }
        tracing::warn!(file = %vk.file_name(), %error, "broken cache entry removed; served as a miss");
        self.remove(vk);
    }

    /// What a variant is, reading its head if the index does not know yet;
    /// `None` (and the entry removed) when it is broken.
    pub(super) fn info_of(&mut self, vk: &VariantKey) -> Option<EntryInfo> {
        let variant = self.index.variant(vk)?;
        if let Some(info) = &variant.info {
            return Some(EntryInfo::clone(info));
        }
        let size = variant.size;
        match self.open(vk) {
            Ok((decoded, _)) => {
                let info = EntryInfo::from_head(&decoded.head, size);
                if let Some(v) = self.index.variant_mut(vk) {
                    v.info = Some(Box::new(info.clone()));
                }
                Some(info)
            }
            Err(e) => {
                self.discard_broken(vk, &e);
                None
            }
        }
    }
}

impl Actor for CacheStore {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let _span =
            tracing::info_span!("cache_store.rebuild", dir = %self.root.display()).entered();
        let began = Instant::now();
        match self.rebuild() {
            Ok(shards) => {
                self.index_complete = true;
                self.metrics.shards_from_snapshot.set(shards.from_snapshot);
                self.metrics.shards_walked.set(shards.walked);
                tracing::info!(
                    index_from = if shards.from_snapshot > 0 {
                        "snapshot"
                    } else {
                        "walk"
                    },
                    shards_from_snapshot = shards.from_snapshot,
                    shards_walked = shards.walked,
                    entries = self.metrics.entries.get(),
                    bytes = self.metrics.bytes.get(),
                    temp_files_cleaned = self.metrics.temp_files_cleaned.get(),
                    elapsed_ms = began.elapsed().as_millis() as u64,
                    "cache index rebuilt"
                )
            }
            Err(e) => {
                self.metrics.io_errors.inc();
                tracing::error!(
                    error = %e,
                    "cannot prepare the cache directory; starting empty, storing nothing while it is unusable"
                );
            }
        }
        self.memory.held_urls.mark_complete();
    }
}
