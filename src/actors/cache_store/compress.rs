//! Making compressed variants: `Compress` makes the br, zstd or gzip
//! variant of a stored identity variant once, on the blocking pool, and
//! stores it as a variant of its own. Requests that ask for the same one
//! meanwhile wait for that one job; all are then answered as a lookup
//! would be (the identity variant when it cannot be compressed).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::actor::CacheStore;
use super::in_flight::{WriteId, WriteKind};
use super::index::EntryInfo;
use super::reads::{LookupResult, READ_CHUNK};
use crate::cache::encoding::{self, Encoding};
use crate::cache::entry::{self, EntryError, EntryHead, BODY_LEN_OFFSET};
use crate::cache::key::{CacheKey, VariantKey, VaryValues};

/// Answers the variant `coding` of the stored identity variant of `key`
/// selected by `identity`, making it first if need be.
#[derive(Message)]
#[rtype(result = "LookupResult")]
pub struct Compress {
    pub key: CacheKey,
    pub identity: VaryValues,
    pub coding: Encoding,
    /// The origin's `compress_min_size`.
    pub min_len: u64,
}

/// Requests waiting for one compressed variant to be made.
pub(super) struct Waiting {
    key: CacheKey,
    identity: VaryValues,
    vary: VaryValues,
    waiters: Vec<oneshot::Sender<LookupResult>>,
}

impl Handler<Compress> for CacheStore {
    type Result = ResponseFuture<LookupResult>;

    fn handle(&mut self, msg: Compress, ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("compress");
        let _span = tracing::debug_span!("cache_store.compress", host = %msg.key.host(), path = %msg.key.path_and_query(), coding = msg.coding.token()).entered();
        let (target, vary) = encoding::sibling(&msg.key, &msg.identity, msg.coding);
        if self.index.contains(&target) {
            let found = self.hit(target, &msg.key, &vary);
            return Box::pin(async { found });
        }
        let (tx, rx) = oneshot::channel();
        let answer = Box::pin(async { rx.await.unwrap_or(LookupResult::Broken) });
        if let Some(waiting) = self.compressing.get_mut(&target) {
            waiting.waiters.push(tx);
            return answer;
        }
        let source = VariantKey::new(&msg.key, &msg.identity);
        // Its tags, so that a tag purge cancels the variant being made.
        let Some(tags) = self.info_of(&source).map(|info| info.tags) else {
            let _ = tx.send(LookupResult::VaryMiss);
            return answer;
        };
        self.compressing.insert(
            target,
            Waiting {
                key: msg.key,
                identity: msg.identity,
                vary,
                waiters: vec![tx],
            },
        );
        let write = self.in_flight.begin(target, WriteKind::Store, tags);
        let (path, tmp) = (self.path_for(&source), self.next_tmp_path());
        let (coding, min_len) = (msg.coding, msg.min_len);
        // A soft purge marks the index before the identity file's head.
        let invalidated = self.index.marked_invalidated(&source);
        let job = {
            let tmp = tmp.clone();
            tokio::task::spawn_blocking(move || {
                compress_entry(&path, &tmp, coding, min_len, invalidated)
            })
        };
        ctx.spawn(fut::wrap_future::<_, Self>(job).map(move |done, act, _| {
            let done = done.unwrap_or_else(|e| Err(io::Error::other(e).into()));
            act.finish_compress(write, source, target, tmp, done);
        }));
        answer
    }
}

impl CacheStore {
    /// Puts a compressed variant in place (unless a purge or a newer
    /// identity body came meanwhile) and answers everyone waiting for it.
    fn finish_compress(
        &mut self,
        write: WriteId,
        source: VariantKey,
        target: VariantKey,
        tmp: PathBuf,
        done: Result<Option<(EntryHead, u64)>, EntryError>,
    ) {
        let current = self.in_flight.end(write);
        let Some(waiting) = self.compressing.remove(&target) else {
            return;
        };
        let made = match done {
            Ok(Some((head, size))) if current => self.place(target, &tmp, &head, size),
            Ok(Some(_)) => {
                self.metrics.writes_cancelled.inc();
                false
            }
            // Too small once its length is known, say: as it is from now on.
            Ok(None) => {
                self.not_compressible.insert(source);
                false
            }
            Err(EntryError::Io(e)) => {
                self.metrics.io_errors.inc();
                tracing::warn!(error = %e, "cannot write a compressed variant");
                false
            }
            Err(e) => {
                self.discard_broken(&source, &e);
                false
            }
        };
        if !made {
            let _ = fs::remove_file(&tmp);
        }
        let (vk, vary) = if made {
            (target, &waiting.vary)
        } else {
            (source, &waiting.identity)
        };
        for waiter in waiting.waiters {
            let found = if self.index.contains(&vk) {
                self.hit(vk, &waiting.key, vary)
            } else {
                LookupResult::VaryMiss
            };
            let _ = waiter.send(found);
        }
    }

    /// Renames a compressed variant into place and indexes it; `true` when
    /// it is there.
    fn place(&mut self, vk: VariantKey, tmp: &Path, head: &EntryHead, size: u64) -> bool {
        let path = self.path_for(&vk);
        let moved = path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::rename(tmp, &path));
        if let Err(e) = moved {
            self.metrics.io_errors.inc();
            tracing::warn!(error = %e, "cannot move a compressed variant into place");
            return false;
        }
        self.add_stored(vk, EntryInfo::from_head(head, size));
        true
    }

    /// A new identity body makes the variants compressed from the old one
    /// out of date: they go, and so do any being made.
    pub(super) fn drop_compressed(&mut self, derived: &[VariantKey]) {
        for vk in derived {
            self.in_flight.cancel_variant(vk);
            if self.index.contains(vk) {
                self.metrics.removed.inc();
                self.remove(vk);
            }
        }
    }
}

/// Runs on the blocking pool: writes the `coding` variant of the identity
/// entry at `path` to `tmp`, soft-purged as well when `invalidated`; its
/// head and size, or `None` when that entry may not be compressed (its
/// body is below `min_len`, say).
fn compress_entry(
    path: &Path,
    tmp: &Path,
    coding: Encoding,
    min_len: u64,
    invalidated: bool,
) -> Result<Option<(EntryHead, u64)>, EntryError> {
    let mut source = File::open(path)?;
    let len = source.metadata()?.len();
    let decoded = entry::decode_head(&mut io::BufReader::new(&mut source), len)?;
    if !encoding::may_compress(&decoded.head, Some(decoded.body_len), min_len) {
        return Ok(None);
    }
    source.seek(SeekFrom::Start(decoded.body_offset))?;
    let mut head = encoding::compressed_head(&decoded.head, coding);
    head.invalidated |= invalidated;
    let head_bytes = entry::encode_head(&head)?;
    let written = (|| -> Result<u64, EntryError> {
        let mut out = BufWriter::with_capacity(READ_CHUNK, File::create(tmp)?);
        out.write_all(&head_bytes)?;
        let mut body = (&mut source).take(decoded.body_len);
        let mut counted = Counted { out, written: 0 };
        crate::codec::compress(coding, &mut body, &mut counted)?;
        if body.limit() != 0 {
            return Err(EntryError::Length {
                expected: decoded.body_len,
                actual: decoded.body_len - body.limit(),
            });
        }
        let body_len = counted.written;
        let mut file = counted.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(BODY_LEN_OFFSET))?;
        file.write_all(&body_len.to_le_bytes())?;
        Ok(body_len)
    })();
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    let body_len = written?;
    Ok(Some((
        head,
        entry::PREFIX_LEN + head_bytes.len() as u64 + body_len,
    )))
}

/// A writer that counts what passes through it.
struct Counted<W> {
    out: W,
    written: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
