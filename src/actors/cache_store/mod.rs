//! `CacheStore`: the one owner of the cache directory and its in-memory index.
//!
//! Entries live at `<cache_dir>/<2 hex>/<primary hash>-<variant hash>`; new
//! ones are written under `<cache_dir>/tmp/` and renamed into place when whole,
//! so a crash never leaves a half entry under a real name. The index (URL →
//! its `Vary` names and variants) is rebuilt from file names at start, without
//! reading bodies, so a miss never touches the disk. What a variant is (its
//! key and freshness) is known from the moment it is stored, or read from its
//! head the first time it is needed after a restart. Small entries that are
//! hit are also held in the memory tier, which the store alone fills and
//! empties, and which request handlers read without a message.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use futures_util::future::Either;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};

mod in_flight;

use self::in_flight::{InFlight, WriteId, WriteKind};
use super::manifest_batcher::{ManifestBatcher, RecordPage};
use super::Mailbox;
use crate::cache::entry::{self, DecodedEntry, EntryError, EntryHead, BODY_LEN_OFFSET};
use crate::cache::eviction::Evictor;
use crate::cache::key::{self, CacheKey, Hash, VariantKey};
use crate::cache::memory_tier::{HotEntry, MemoryTier};
use crate::metrics::{ActorMeter, CacheMetrics};

/// Chunks in flight between a response being streamed and its file.
const SINK_CHUNKS: usize = 16;
/// Read size when streaming a stored body.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CacheStoreError {
    #[error("cache directory I/O: {0}")]
    Io(#[from] io::Error),
    #[error("cache entry: {0}")]
    Entry(#[from] EntryError),
}

/// What a stored variant is, as listed and as the populator judges it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntryInfo {
    pub key: CacheKey,
    pub size: u64,
    /// Milliseconds since the Unix epoch.
    pub stored_at_ms: u64,
    /// When it stops being fresh, in milliseconds since the Unix epoch.
    pub fresh_until_ms: u64,
    pub tags: Vec<String>,
    /// Soft-purged: must be revalidated before it is used again.
    pub invalidated: bool,
}

impl EntryInfo {
    fn from_head(head: &EntryHead, size: u64) -> Self {
        let stored = UNIX_EPOCH + Duration::from_millis(head.stored_at_ms);
        let ttl = head.policy.time_to_live(stored);
        Self {
            key: head.key.clone(),
            size,
            stored_at_ms: head.stored_at_ms,
            fresh_until_ms: head.stored_at_ms.saturating_add(ttl.as_millis() as u64),
            tags: head.tags.clone(),
            invalidated: head.invalidated,
        }
    }

    pub fn is_fresh(&self, now_ms: u64) -> bool {
        !self.invalidated && self.fresh_until_ms > now_ms
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Variant {
    size: u64,
    /// `None` after a rebuild until its head is read.
    info: Option<EntryInfo>,
}

#[derive(Default)]
struct UrlEntry {
    /// `Vary` names of the newest stored variant; `None` after a rebuild
    /// until a lookup reads one head.
    vary: Option<Vec<String>>,
    variants: HashMap<Hash, Variant>,
}

pub struct CacheStore {
    root: PathBuf,
    tmp_dir: PathBuf,
    index: HashMap<Hash, UrlEntry>,
    evictor: Evictor,
    memory: Arc<MemoryTier>,
    metrics: CacheMetrics,
    meter: ActorMeter,
    on_store: Option<Mailbox<ManifestBatcher>>,
    next_tmp: u64,
    /// Stores and head rewrites under way, which a purge cancels.
    in_flight: InFlight,
}

impl CacheStore {
    /// `on_store` is told of every committed entry (the manifest records it);
    /// `max_bytes` bounds the entries' total size (least recently used go);
    /// `memory` is the tier of small hot entries this store keeps current.
    pub fn new(
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
            index: HashMap::new(),
            evictor: Evictor::new(max_bytes),
            memory,
            metrics,
            meter,
            on_store,
            next_tmp: 0,
            in_flight: InFlight::default(),
        }
    }

    /// A fresh name under `tmp/` for an entry being written.
    fn next_tmp_path(&mut self) -> PathBuf {
        self.next_tmp += 1;
        self.tmp_dir
            .join(format!("{}-{}.tmp", std::process::id(), self.next_tmp))
    }

    fn path_for(&self, vk: &VariantKey) -> PathBuf {
        let name = vk.file_name();
        self.root.join(&name[..2]).join(name)
    }

    /// Indexes an entry, then evicts what the bound requires.
    fn add_variant(&mut self, vk: VariantKey, variant: Variant) {
        self.memory.remove(&vk.primary);
        for used in self.memory.take_used() {
            self.evictor.used(&used);
        }
        let size = variant.size;
        let url = self.index.entry(vk.primary).or_default();
        match url.variants.insert(vk.variant, variant) {
            Some(old) => self.metrics.bytes.sub(old.size as i64),
            None => self.metrics.entries.inc(),
        }
        self.metrics.bytes.add(size as i64);
        for victim in self.evictor.added(vk, size) {
            self.metrics.evictions.inc();
            self.remove(&victim);
        }
    }

    /// Removes leftovers of interrupted writes and indexes every entry by name.
    fn rebuild(&mut self) -> io::Result<()> {
        fs::create_dir_all(&self.tmp_dir)?;
        for tmp in fs::read_dir(&self.tmp_dir)? {
            let path = tmp?.path();
            if fs::remove_file(&path).is_ok() {
                self.metrics.temp_files_cleaned.inc();
            }
        }
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
                let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
                found.push((modified, vk, metadata.len()));
            }
        }
        // Oldest first: the last written are kept when the bound bites.
        found.sort_by_key(|(modified, _, _)| *modified);
        for (_, vk, size) in found {
            self.add_variant(vk, Variant { size, info: None });
        }
        Ok(())
    }

    /// Opens and checks an entry; any damage is reported as an error.
    fn open(&self, vk: &VariantKey) -> Result<(DecodedEntry, File), EntryError> {
        let mut file = File::open(self.path_for(vk))?;
        let len = file.metadata()?.len();
        let mut reader = io::BufReader::with_capacity(8 * 1024, &mut file);
        let decoded = entry::decode_head(&mut reader, len)?;
        drop(reader);
        file.seek(SeekFrom::Start(decoded.body_offset))?;
        Ok((decoded, file))
    }

    /// Drops an entry from the index and the disk.
    fn remove(&mut self, vk: &VariantKey) {
        // A rewrite under way would rename the old body back into place.
        self.in_flight.cancel_rewrites(vk);
        self.memory.remove(&vk.primary);
        self.evictor.removed(vk);
        if let Some(url) = self.index.get_mut(&vk.primary) {
            if let Some(old) = url.variants.remove(&vk.variant) {
                self.metrics.entries.dec();
                self.metrics.bytes.sub(old.size as i64);
            }
            if url.variants.is_empty() {
                self.index.remove(&vk.primary);
            }
        }
        if let Err(e) = fs::remove_file(self.path_for(vk)) {
            if e.kind() != io::ErrorKind::NotFound {
                self.metrics.io_errors.inc();
                tracing::warn!(error = %e, "cannot remove cache entry");
            }
        }
    }

    fn discard_broken(&mut self, vk: &VariantKey, error: &EntryError) {
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
    fn info_of(&mut self, vk: &VariantKey) -> Option<EntryInfo> {
        let variant = self.index.get(&vk.primary)?.variants.get(&vk.variant)?;
        if let Some(info) = &variant.info {
            return Some(info.clone());
        }
        let size = variant.size;
        match self.open(vk) {
            Ok((decoded, _)) => {
                let info = EntryInfo::from_head(&decoded.head, size);
                if let Some(v) = self
                    .index
                    .get_mut(&vk.primary)
                    .and_then(|url| url.variants.get_mut(&vk.variant))
                {
                    v.info = Some(info.clone());
                }
                Some(info)
            }
            Err(e) => {
                self.discard_broken(vk, &e);
                None
            }
        }
    }

    /// The `Vary` names of a URL, reading one stored head when the index
    /// does not know them yet (after a rebuild).
    fn vary_names_of(&mut self, primary: Hash) -> Option<Vec<String>> {
        let url = self.index.get(&primary)?;
        if let Some(names) = &url.vary {
            return Some(names.clone());
        }
        let variants: Vec<Hash> = url.variants.keys().copied().collect();
        for variant in variants {
            let vk = VariantKey { primary, variant };
            match self.open(&vk) {
                Ok((decoded, _)) => {
                    let names: Vec<String> =
                        decoded.head.vary.iter().map(|(n, _)| n.clone()).collect();
                    if let Some(url) = self.index.get_mut(&primary) {
                        url.vary = Some(names.clone());
                    }
                    return Some(names);
                }
                Err(e) => self.discard_broken(&vk, &e),
            }
        }
        None
    }

    fn variants_of(&self, key: &CacheKey) -> Vec<VariantKey> {
        let primary = key.primary_hash();
        self.index
            .get(&primary)
            .map(|url| {
                url.variants
                    .keys()
                    .map(|variant| VariantKey {
                        primary,
                        variant: *variant,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn variant_keys(&self) -> Vec<VariantKey> {
        self.index
            .iter()
            .flat_map(|(primary, url)| {
                url.variants.keys().map(|variant| VariantKey {
                    primary: *primary,
                    variant: *variant,
                })
            })
            .collect()
    }

    fn begin_store(
        &mut self,
        msg: BeginStore,
        ctx: &mut Context<Self>,
    ) -> Result<StoreSink, CacheStoreError> {
        let vk = VariantKey::new(&msg.head.key, &msg.head.vary);
        let head_bytes = entry::encode_head(&msg.head)?;
        let tmp = self.next_tmp_path();
        let mut file = match File::create(&tmp) {
            // `tmp/` could not be made at start (the directory was read-only
            // then) or was removed since: storing resumes once it can be made.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&self.tmp_dir)?;
                File::create(&tmp)?
            }
            created => created?,
        };
        if let Err(e) = file.write_all(&head_bytes) {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        let (tx, rx) = mpsc::channel(SINK_CHUNKS);
        let expected = msg.expected_len;
        let writer = tokio::task::spawn_blocking(move || write_body(file, rx, expected));
        let write = self
            .in_flight
            .begin(vk, WriteKind::Store, msg.head.tags.clone());
        let pending = PendingEntry {
            write,
            tmp,
            vk,
            head_len: head_bytes.len() as u64,
            vary_names: msg.head.vary.iter().map(|(n, _)| n.clone()).collect(),
            info: EntryInfo::from_head(&msg.head, 0),
        };
        let (committed_tx, committed) = oneshot::channel();
        ctx.spawn(
            fut::wrap_future::<_, Self>(writer).map(move |joined, act, _| {
                let written = joined.unwrap_or(Err(WriteError::Aborted));
                let _ = committed_tx.send(act.finish_store(pending, written));
            }),
        );
        Ok(StoreSink { tx, committed })
    }

    /// Commits a written entry; `true` when it is in place.
    fn finish_store(&mut self, pending: PendingEntry, written: Result<u64, WriteError>) -> bool {
        let purged = !self.in_flight.end(pending.write);
        let written = written.and_then(|len| {
            if purged {
                Err(WriteError::Purged)
            } else {
                Ok(len)
            }
        });
        let body_len = match written {
            Ok(len) => len,
            Err(e) => {
                let _ = fs::remove_file(&pending.tmp);
                if let WriteError::Purged = e {
                    self.metrics.writes_cancelled.inc();
                } else {
                    self.metrics.stores_aborted.inc();
                }
                if let WriteError::Io(e) = &e {
                    self.metrics.io_errors.inc();
                    tracing::warn!(error = %e, "cache write failed");
                } else {
                    tracing::debug!(reason = %e, "cache write abandoned");
                }
                return false;
            }
        };
        if let Err(e) = self.commit(&pending) {
            let _ = fs::remove_file(&pending.tmp);
            self.metrics.io_errors.inc();
            tracing::warn!(error = %e, "cannot move cache entry into place");
            return false;
        }
        let vk = pending.vk;
        // A rewrite that began before holds the body this entry replaced.
        self.in_flight.cancel_rewrites(&vk);
        let url = self.index.entry(vk.primary).or_default();
        let stale_variants: Vec<Hash> = match &url.vary {
            // The origin changed what it varies on: other variants were
            // selected by other headers and can no longer be chosen right.
            Some(old) if *old != pending.vary_names => url
                .variants
                .keys()
                .copied()
                .filter(|v| *v != vk.variant)
                .collect(),
            _ => Vec::new(),
        };
        url.vary = Some(pending.vary_names);
        let size = entry::PREFIX_LEN + pending.head_len + body_len;
        let key = pending.info.key.clone();
        let info = EntryInfo {
            size,
            ..pending.info
        };
        self.add_variant(
            vk,
            Variant {
                size,
                info: Some(info),
            },
        );
        self.metrics.stored.inc();
        for variant in stale_variants {
            self.metrics.removed.inc();
            self.remove(&VariantKey {
                primary: vk.primary,
                variant,
            });
        }
        if let Some(on_store) = &self.on_store {
            on_store.do_send(RecordPage { key });
        }
        true
    }

    fn commit(&self, pending: &PendingEntry) -> io::Result<()> {
        let path = self.path_for(&pending.vk);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::rename(&pending.tmp, &path)
    }
}

impl Actor for CacheStore {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let _span =
            tracing::info_span!("cache_store.rebuild", dir = %self.root.display()).entered();
        match self.rebuild() {
            Ok(()) => tracing::info!(
                entries = self.metrics.entries.get(),
                bytes = self.metrics.bytes.get(),
                temp_files_cleaned = self.metrics.temp_files_cleaned.get(),
                "cache index rebuilt"
            ),
            Err(e) => {
                self.metrics.io_errors.inc();
                tracing::error!(
                    error = %e,
                    "cannot prepare the cache directory; starting empty, storing nothing while it is unusable"
                );
            }
        }
    }
}

/// Finds the stored response for a request.
#[derive(Message)]
#[rtype(result = "LookupResult")]
pub struct Lookup {
    pub key: CacheKey,
    /// The request's headers, for selecting a variant by `Vary`.
    pub request_headers: HeaderMap,
}

#[derive(MessageResponse)]
pub enum LookupResult {
    /// Nothing stored for the URL.
    UriMiss,
    /// The URL is stored, but not the variant this request selects.
    VaryMiss,
    /// The entry was damaged and has been removed.
    Broken,
    Found(Box<Hit>),
}

pub struct Hit {
    pub head: Arc<EntryHead>,
    pub body: EntryBody,
}

impl Hit {
    /// A hit on an entry of the memory tier.
    pub fn from_memory(entry: &HotEntry) -> Self {
        Self {
            head: entry.head.clone(),
            body: EntryBody::Memory(entry.body.clone()),
        }
    }
}

/// A stored body: `len` bytes of an open file from `offset`, or a body the
/// memory tier holds.
pub enum EntryBody {
    File { file: File, offset: u64, len: u64 },
    Memory(Bytes),
}

impl EntryBody {
    pub fn len(&self) -> u64 {
        match self {
            Self::File { len, .. } => *len,
            Self::Memory(bytes) => bytes.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
        match self {
            Self::File { file, offset, len } => Either::Left(file_stream(file, offset, len)),
            Self::Memory(bytes) => Either::Right(futures_util::stream::iter([Ok(bytes)])),
        }
    }

    /// `len` bytes of the body from byte `first` (a range request).
    pub fn into_range_stream(
        self,
        first: u64,
        len: u64,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
        match self {
            Self::File {
                file,
                offset,
                len: all,
            } => Self::File {
                file,
                offset: offset + first.min(all),
                len: len.min(all.saturating_sub(first)),
            },
            Self::Memory(bytes) => {
                let start = (first as usize).min(bytes.len());
                let end = start.saturating_add(len as usize).min(bytes.len());
                Self::Memory(bytes.slice(start..end))
            }
        }
        .into_stream()
    }
}

impl Handler<Lookup> for CacheStore {
    type Result = LookupResult;

    fn handle(&mut self, msg: Lookup, _ctx: &mut Self::Context) -> LookupResult {
        let _handling = self.meter.handling("lookup");
        let _span = tracing::debug_span!("cache_store.lookup", host = %msg.key.host, path = %msg.key.path_and_query).entered();
        self.metrics.lookups.inc();
        let primary = msg.key.primary_hash();
        let Some(names) = self.vary_names_of(primary) else {
            return LookupResult::UriMiss;
        };
        let vary = key::vary_values(&names, &msg.request_headers);
        let vk = VariantKey::new(&msg.key, &vary);
        let known = self
            .index
            .get(&primary)
            .is_some_and(|url| url.variants.contains_key(&vk.variant));
        if !known {
            return LookupResult::VaryMiss;
        }
        match self.open(&vk) {
            Ok((decoded, _)) if decoded.head.key != msg.key || decoded.head.vary != vary => {
                self.discard_broken(&vk, &EntryError::KeyMismatch);
                LookupResult::Broken
            }
            Ok((mut decoded, file)) => {
                self.evictor.used(&vk);
                // A soft purge marks the index at once; the file's head
                // follows when its rewrite is done.
                decoded.head.invalidated |= self.marked_invalidated(&vk);
                let head = Arc::new(decoded.head);
                if !self.memory.admits(decoded.body_len) {
                    self.metrics.hits.inc();
                    let body = EntryBody::File {
                        file,
                        offset: decoded.body_offset,
                        len: decoded.body_len,
                    };
                    return LookupResult::Found(Box::new(Hit { head, body }));
                }
                match read_whole(file, decoded.body_len) {
                    Ok(body) => {
                        self.metrics.hits.inc();
                        let entry = HotEntry { head, body };
                        let hit = Hit::from_memory(&entry);
                        self.memory.insert(vk, entry);
                        LookupResult::Found(Box::new(hit))
                    }
                    Err(e) => {
                        self.discard_broken(&vk, &EntryError::Io(e));
                        LookupResult::Broken
                    }
                }
            }
            Err(e) => {
                self.discard_broken(&vk, &e);
                LookupResult::Broken
            }
        }
    }
}

/// `len` bytes of `file` from `offset`, in chunks read straight into the
/// buffer that is sent. A chunk in the page cache is read where the stream
/// is polled, without blocking; only one that would wait for the disk is
/// read on the blocking pool (a hop to another thread per chunk).
fn file_stream(
    file: File,
    offset: u64,
    len: u64,
) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
    futures_util::stream::try_unfold((file, offset, len), |(file, offset, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = left.min(READ_CHUNK as u64) as usize;
        let (file, chunk) = match read_cached(&file, offset, want) {
            Some(read) => (file, read?),
            None => tokio::task::spawn_blocking(move || {
                read_at(&file, offset, want).map(|chunk| (file, chunk))
            })
            .await
            .map_err(io::Error::other)??,
        };
        if chunk.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let n = chunk.len() as u64;
        Ok(Some((Bytes::from(chunk), (file, offset + n, left - n))))
    })
}

/// Up to `want` bytes at `offset`, waiting for the disk if need be.
fn read_at(file: &File, offset: u64, want: usize) -> io::Result<Vec<u8>> {
    let mut chunk = vec![0; want];
    let n = file.read_at(&mut chunk, offset)?;
    chunk.truncate(n);
    Ok(chunk)
}

/// Up to `want` bytes at `offset` if the page cache holds them (`preadv2`
/// with `RWF_NOWAIT`); `None` when the read would wait for the disk.
fn read_cached(file: &File, offset: u64, want: usize) -> Option<io::Result<Vec<u8>>> {
    let mut chunk: Vec<u8> = Vec::with_capacity(want);
    let iov = libc::iovec {
        iov_base: chunk.as_mut_ptr().cast(),
        iov_len: want,
    };
    let offset = i64::try_from(offset).ok()?;
    // SAFETY: `iov` describes `want` bytes of `chunk`'s spare capacity, which
    // outlives the call; the kernel writes at most that many.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
    if n < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            // Not cached, or a kernel or file system without RWF_NOWAIT.
            Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS) => None,
            _ => Some(Err(error)),
        };
    }
    // SAFETY: the kernel initialised the first `n` (≤ `want`) bytes.
    unsafe { chunk.set_len(n as usize) };
    Some(Ok(chunk))
}

/// Reads a small body whole, for the memory tier.
fn read_whole(mut file: File, len: u64) -> io::Result<Bytes> {
    let mut body = vec![0; len as usize];
    file.read_exact(&mut body)?;
    Ok(Bytes::from(body))
}

/// Starts storing a response; the body is then fed through the returned sink.
#[derive(Message)]
#[rtype(result = "Result<StoreSink, CacheStoreError>")]
pub struct BeginStore {
    pub head: EntryHead,
    /// The origin's `Content-Length`: a body that ends short is not stored.
    pub expected_len: Option<u64>,
}

impl Handler<BeginStore> for CacheStore {
    type Result = Result<StoreSink, CacheStoreError>;

    fn handle(&mut self, msg: BeginStore, ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("begin_store");
        let _span = tracing::debug_span!("cache_store.begin_store", host = %msg.head.key.host, path = %msg.head.key.path_and_query).entered();
        self.begin_store(msg, ctx).inspect_err(|e| {
            self.metrics.io_errors.inc();
            self.meter.error("begin_store");
            tracing::warn!(error = %e, "cannot start a cache entry");
        })
    }
}

/// Replaces a stored entry's head, keeping its body: after a 304
/// revalidation the origin's new header fields and freshness are stored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateHead(pub EntryHead);

impl Handler<UpdateHead> for CacheStore {
    type Result = ();

    fn handle(&mut self, msg: UpdateHead, ctx: &mut Self::Context) {
        let _handling = self.meter.handling("update_head");
        let _span = tracing::debug_span!("cache_store.update_head", host = %msg.0.key.host, path = %msg.0.key.path_and_query).entered();
        let head = msg.0;
        let vk = VariantKey::new(&head.key, &head.vary);
        self.rewrite(vk, ctx, move |old| {
            if old.key != head.key || old.vary != head.vary {
                return Err(EntryError::KeyMismatch);
            }
            Ok(head)
        });
    }
}

impl CacheStore {
    /// Rewrites a stored entry's head with `edit`, keeping its body, on the
    /// blocking pool; the index follows when the new file is in place.
    fn rewrite(
        &mut self,
        vk: VariantKey,
        ctx: &mut Context<Self>,
        edit: impl FnOnce(EntryHead) -> Result<EntryHead, EntryError> + Send + 'static,
    ) {
        let known = self
            .index
            .get(&vk.primary)
            .is_some_and(|url| url.variants.contains_key(&vk.variant));
        if !known {
            return;
        }
        self.memory.remove(&vk.primary);
        let write = self.in_flight.begin(vk, WriteKind::Rewrite, Vec::new());
        let (path, tmp) = (self.path_for(&vk), self.next_tmp_path());
        let job = {
            let (path, tmp) = (path.clone(), tmp.clone());
            tokio::task::spawn_blocking(move || rewrite_head(&path, &tmp, edit))
        };
        ctx.spawn(
            fut::wrap_future::<_, Self>(job).map(move |done, act, _| match done {
                Ok(Ok((head, size))) => act.finish_rewrite(write, vk, &tmp, head, size),
                Ok(Err(e)) => {
                    act.in_flight.end(write);
                    act.discard_broken(&vk, &e);
                }
                Err(e) => {
                    act.in_flight.end(write);
                    act.metrics.io_errors.inc();
                    tracing::warn!(error = %e, "cannot rewrite a cache entry's head");
                }
            }),
        );
    }

    /// Renames a rewritten entry into place, here on the store's thread,
    /// unless a purge, an eviction or a newer store came since it began.
    fn finish_rewrite(
        &mut self,
        write: WriteId,
        vk: VariantKey,
        tmp: &std::path::Path,
        head: EntryHead,
        size: u64,
    ) {
        let known = self
            .index
            .get(&vk.primary)
            .is_some_and(|url| url.variants.contains_key(&vk.variant));
        if !self.in_flight.end(write) || !known {
            let _ = fs::remove_file(tmp);
            self.metrics.writes_cancelled.inc();
            tracing::debug!(file = %vk.file_name(), "head rewrite dropped: the entry changed meanwhile");
            return;
        }
        if let Err(e) = fs::rename(tmp, self.path_for(&vk)) {
            let _ = fs::remove_file(tmp);
            self.metrics.io_errors.inc();
            tracing::warn!(error = %e, "cannot move a rewritten cache entry into place");
            return;
        }
        // A soft purge that came meanwhile cancelled this rewrite, so the
        // head's own mark is the truth now.
        self.add_variant(
            vk,
            Variant {
                size,
                info: Some(EntryInfo::from_head(&head, size)),
            },
        );
    }

    /// Whether the index holds a variant as soft-purged.
    fn marked_invalidated(&self, vk: &VariantKey) -> bool {
        self.index
            .get(&vk.primary)
            .and_then(|url| url.variants.get(&vk.variant))
            .and_then(|v| v.info.as_ref())
            .is_some_and(|info| info.invalidated)
    }

    /// Every stored variant carrying `tag` (reading heads not known yet).
    fn tagged(&mut self, tag: &str) -> Vec<VariantKey> {
        let keys = self.variant_keys();
        keys.into_iter()
            .filter(|vk| {
                self.info_of(vk)
                    .is_some_and(|info| info.tags.iter().any(|t| t == tag))
            })
            .collect()
    }

    /// Drops `keys` (a hard purge) or marks them for revalidation (soft).
    /// Either way every write to them that began before is cancelled.
    fn purge_variants(&mut self, keys: &[VariantKey], soft: bool, ctx: &mut Context<Self>) {
        for vk in keys {
            self.metrics.removed.inc();
            self.in_flight.cancel_variant(vk);
            if soft {
                // Marked in the index at once (its head read first if it
                // is not known yet): the very next lookup must validate.
                self.info_of(vk);
                if let Some(info) = self
                    .index
                    .get_mut(&vk.primary)
                    .and_then(|url| url.variants.get_mut(&vk.variant))
                    .and_then(|v| v.info.as_mut())
                {
                    info.invalidated = true;
                }
                self.rewrite(*vk, ctx, |mut head| {
                    head.invalidated = true;
                    Ok(head)
                });
            } else {
                self.remove(vk);
            }
        }
    }
}

/// Runs on the blocking pool: writes the edited head and the old body to
/// `tmp` (the store renames it into place); returns the new head and size.
fn rewrite_head(
    path: &std::path::Path,
    tmp: &std::path::Path,
    edit: impl FnOnce(EntryHead) -> Result<EntryHead, EntryError>,
) -> Result<(EntryHead, u64), EntryError> {
    let mut old = File::open(path)?;
    let len = old.metadata()?.len();
    let decoded = entry::decode_head(&mut io::BufReader::new(&mut old), len)?;
    old.seek(SeekFrom::Start(decoded.body_offset))?;
    let body_len = decoded.body_len;
    let head = edit(decoded.head)?;
    let head_bytes = entry::encode_head(&head)?;
    let written = (|| -> Result<(), EntryError> {
        let mut out = BufWriter::with_capacity(READ_CHUNK, File::create(tmp)?);
        out.write_all(&head_bytes)?;
        let copied = io::copy(&mut (&mut old).take(body_len), &mut out)?;
        if copied != body_len {
            return Err(EntryError::Length {
                expected: body_len,
                actual: copied,
            });
        }
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(BODY_LEN_OFFSET))?;
        file.write_all(&body_len.to_le_bytes())?;
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written?;
    Ok((head, entry::PREFIX_LEN + head_bytes.len() as u64 + body_len))
}

/// Which of these URLs this node holds a fresh copy of (any variant).
#[derive(Message)]
#[rtype(result = "Vec<bool>")]
pub struct HoldsFresh(pub Vec<CacheKey>);

impl Handler<HoldsFresh> for CacheStore {
    type Result = Vec<bool>;

    fn handle(&mut self, msg: HoldsFresh, _ctx: &mut Self::Context) -> Vec<bool> {
        let _handling = self.meter.handling("holds_fresh");
        let _span = tracing::debug_span!("cache_store.holds_fresh", urls = msg.0.len()).entered();
        let now = now_ms();
        msg.0
            .iter()
            .map(|key| {
                let primary = key.primary_hash();
                let variants: Vec<Hash> = self
                    .index
                    .get(&primary)
                    .map(|url| url.variants.keys().copied().collect())
                    .unwrap_or_default();
                variants.into_iter().any(|variant| {
                    self.info_of(&VariantKey { primary, variant })
                        .is_some_and(|info| info.is_fresh(now))
                })
            })
            .collect()
    }
}

/// One page of the cache's entries, in a stable (hash) order.
#[derive(Message)]
#[rtype(result = "EntryList")]
pub struct ListEntries {
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Clone, serde::Serialize, MessageResponse)]
pub struct EntryList {
    pub total: usize,
    pub entries: Vec<EntryInfo>,
}

impl Handler<ListEntries> for CacheStore {
    type Result = EntryList;

    fn handle(&mut self, msg: ListEntries, _ctx: &mut Self::Context) -> EntryList {
        let _handling = self.meter.handling("list_entries");
        let _span = tracing::debug_span!("cache_store.list_entries").entered();
        let mut keys = self.variant_keys();
        keys.sort_by_key(VariantKey::file_name);
        let total = keys.len();
        let entries = keys
            .iter()
            .skip(msg.offset)
            .take(msg.limit)
            .filter_map(|vk| self.info_of(vk))
            .collect();
        EntryList { total, entries }
    }
}

/// Drops every stored variant of a URL and cancels any being written;
/// answers how many there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Purge(pub CacheKey);

impl Handler<Purge> for CacheStore {
    type Result = usize;

    fn handle(&mut self, msg: Purge, ctx: &mut Self::Context) -> usize {
        let _handling = self.meter.handling("purge");
        let _span = tracing::info_span!("cache_store.purge", host = %msg.0.host, path = %msg.0.path_and_query).entered();
        let keys = self.variants_of(&msg.0);
        self.purge_variants(&keys, false, ctx);
        keys.len() + self.in_flight.cancel_url(&msg.0.primary_hash())
    }
}

/// Marks every stored variant of a URL for revalidation before its next
/// use (a soft purge), cancelling any being written; answers how many
/// there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct SoftPurge(pub CacheKey);

impl Handler<SoftPurge> for CacheStore {
    type Result = usize;

    fn handle(&mut self, msg: SoftPurge, ctx: &mut Self::Context) -> usize {
        let _handling = self.meter.handling("soft_purge");
        let _span = tracing::info_span!("cache_store.soft_purge", host = %msg.0.host, path = %msg.0.path_and_query).entered();
        let keys = self.variants_of(&msg.0);
        self.purge_variants(&keys, true, ctx);
        keys.len() + self.in_flight.cancel_url(&msg.0.primary_hash())
    }
}

/// Purges every stored response carrying a tag, hard or soft; answers how
/// many there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct PurgeTag {
    pub tag: String,
    pub soft: bool,
}

impl Handler<PurgeTag> for CacheStore {
    type Result = usize;

    fn handle(&mut self, msg: PurgeTag, ctx: &mut Self::Context) -> usize {
        let _handling = self.meter.handling("purge_tag");
        let _span =
            tracing::info_span!("cache_store.purge_tag", tag = %msg.tag, soft = msg.soft).entered();
        let keys = self.tagged(&msg.tag);
        self.purge_variants(&keys, msg.soft, ctx);
        keys.len() + self.in_flight.cancel_tagged(&msg.tag)
    }
}

/// Empties this node's file cache; answers how many entries it removed.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Clear;

impl Handler<Clear> for CacheStore {
    type Result = usize;

    fn handle(&mut self, _msg: Clear, _ctx: &mut Self::Context) -> usize {
        let _handling = self.meter.handling("clear");
        let _span = tracing::info_span!("cache_store.clear").entered();
        let keys = self.variant_keys();
        for vk in &keys {
            self.metrics.removed.inc();
            self.remove(vk);
        }
        keys.len() + self.in_flight.cancel_all()
    }
}

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, MessageResponse)]
pub struct CacheStats {
    pub entries: u64,
    pub bytes: u64,
    pub lookups: u64,
    pub hits: u64,
    pub stored: u64,
    pub stores_aborted: u64,
    pub writes_cancelled: u64,
    pub corrupt: u64,
    pub io_errors: u64,
    pub temp_files_cleaned: u64,
}

/// The store's counters; also an "are you there" for health checks.
#[derive(Message)]
#[rtype(result = "CacheStats")]
pub struct GetCacheStats;

impl Handler<GetCacheStats> for CacheStore {
    type Result = CacheStats;

    fn handle(&mut self, _msg: GetCacheStats, _ctx: &mut Self::Context) -> CacheStats {
        let _handling = self.meter.handling("get_cache_stats");
        let _span = tracing::debug_span!("cache_store.get_cache_stats").entered();
        let m = &self.metrics;
        CacheStats {
            entries: m.entries.get().max(0) as u64,
            bytes: m.bytes.get().max(0) as u64,
            lookups: m.lookups.get(),
            hits: m.hits.get(),
            stored: m.stored.get(),
            stores_aborted: m.stores_aborted.get(),
            writes_cancelled: m.writes_cancelled.get(),
            corrupt: m.corrupt.get(),
            io_errors: m.io_errors.get(),
            temp_files_cleaned: m.temp_files_cleaned.get(),
        }
    }
}

struct PendingEntry {
    write: WriteId,
    tmp: PathBuf,
    vk: VariantKey,
    head_len: u64,
    vary_names: Vec<String>,
    info: EntryInfo,
}

enum SinkMessage {
    Chunk(Bytes),
    Finish,
}

/// Where a response body being served is copied to disk. Dropping it
/// without [`StoreSink::finish`] or [`StoreSink::commit`] abandons the entry.
pub struct StoreSink {
    tx: mpsc::Sender<SinkMessage>,
    committed: oneshot::Receiver<bool>,
}

impl StoreSink {
    /// Queues a chunk; `false` when the writer has given up.
    pub async fn write(&self, chunk: Bytes) -> bool {
        self.tx.send(SinkMessage::Chunk(chunk)).await.is_ok()
    }

    /// The body is complete: commit the entry, without waiting for it.
    pub async fn finish(self) {
        let _ = self.tx.send(SinkMessage::Finish).await;
    }

    /// The body is complete: commit the entry and wait until it is in place
    /// (lookups then find it); `true` when it was stored.
    pub async fn commit(self) -> bool {
        if self.tx.send(SinkMessage::Finish).await.is_err() {
            return false;
        }
        self.committed.await.unwrap_or(false)
    }
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("the response ended before the body was complete")]
    Aborted,
    #[error("a purge came while it was being written")]
    Purged,
    #[error("the body was {written} bytes, the origin announced {expected}")]
    Short { written: u64, expected: u64 },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Runs on the blocking pool: copies chunks to the file after its head and
/// fills in the body length once the last one arrived.
fn write_body(
    file: File,
    mut rx: mpsc::Receiver<SinkMessage>,
    expected: Option<u64>,
) -> Result<u64, WriteError> {
    let mut out = BufWriter::with_capacity(READ_CHUNK, file);
    let mut written = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(SinkMessage::Chunk(chunk)) => {
                out.write_all(&chunk)?;
                written += chunk.len() as u64;
            }
            Some(SinkMessage::Finish) => break,
            None => return Err(WriteError::Aborted),
        }
    }
    if let Some(expected) = expected.filter(|&e| e != written) {
        return Err(WriteError::Short { written, expected });
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(BODY_LEN_OFFSET))?;
    file.write_all(&written.to_le_bytes())?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;

    #[actix_web::test]
    async fn a_file_body_is_read_exactly_from_its_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("entry");
        let bytes: Vec<u8> = (0..READ_CHUNK * 2 + 100).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &bytes).expect("write");
        let open = || File::open(&path).expect("open");

        // Just written, so in the page cache: read without a thread hop.
        let cached = read_cached(&open(), 10, 50).expect("cached").expect("read");
        assert_eq!(cached, &bytes[10..60]);
        assert_eq!(read_at(&open(), 10, 50).expect("read"), &bytes[10..60]);

        let body = EntryBody::File {
            file: open(),
            offset: 7,
            len: bytes.len() as u64 - 7,
        };
        let all: Vec<Bytes> = body.into_stream().try_collect().await.expect("stream");
        assert_eq!(all.concat(), &bytes[7..]);
        let range = EntryBody::File {
            file: open(),
            offset: 7,
            len: bytes.len() as u64 - 7,
        };
        let part: Vec<Bytes> = range
            .into_range_stream(READ_CHUNK as u64, 300)
            .try_collect()
            .await
            .expect("stream");
        assert_eq!(part.concat(), &bytes[7 + READ_CHUNK..7 + READ_CHUNK + 300]);

        // A file shorter than its entry said ends the stream with an error.
        let short = EntryBody::File {
            file: open(),
            offset: 0,
            len: bytes.len() as u64 + 1,
        };
        assert!(short
            .into_stream()
            .try_collect::<Vec<Bytes>>()
            .await
            .is_err());
    }
}
