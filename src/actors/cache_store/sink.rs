//! Storing a response: `BeginStore` writes its head to a file under `tmp/`,
//! the returned [`StoreSink`] feeds the body to a writer on the blocking
//! pool, and the store renames the file into place once it is whole, unless
//! a purge came meanwhile.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::actor::CacheStore;
use super::in_flight::{WriteId, WriteKind};
use super::index::EntryInfo;
use super::reads::READ_CHUNK;
use super::tail::{BodyTail, Publisher, Written};
use crate::actors::manifest_batcher::RecordPage;
use crate::cache::encoding;
use crate::cache::entry::{self, EntryError, EntryHead, BODY_LEN_OFFSET};
use crate::cache::key::{Hash, VariantKey};

/// Chunks in flight between a response being streamed and its file.
const SINK_CHUNKS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheStoreError {
    #[error("cache directory I/O: {0}")]
    Io(#[from] io::Error),
    #[error("cache entry: {0}")]
    Entry(#[from] EntryError),
}

/// Starts storing a response; the body is then fed through the returned sink.
#[derive(Message)]
#[rtype(result = "Result<StoreSink, CacheStoreError>")]
pub(crate) struct BeginStore {
    /// Boxed: a miss's future holds the message while the store answers.
    pub head: Box<EntryHead>,
    /// The origin's `Content-Length`: a body that ends short is not stored.
    pub expected_len: Option<u64>,
}

impl Handler<BeginStore> for CacheStore {
    type Result = Result<StoreSink, CacheStoreError>;

    fn handle(&mut self, msg: BeginStore, ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("begin_store");
        let _span = tracing::debug_span!("cache_store.begin_store", host = %msg.head.key.host(), path = %msg.head.key.path_and_query()).entered();
        self.begin_store(msg, ctx).inspect_err(|e| {
            self.metrics.io_errors.inc();
            self.meter.error("begin_store");
            tracing::warn!(error = %e, "cannot start a cache entry");
        })
    }
}

impl CacheStore {
    fn begin_store(
        &mut self,
        msg: BeginStore,
        ctx: &mut Context<Self>,
    ) -> Result<StoreSink, CacheStoreError> {
        let vk = VariantKey::new(&msg.head.key, &msg.head.vary);
        let head_bytes = entry::encode_head(&msg.head)?;
        let tmp = self.next_tmp_path();
        let file = match create_readable(&tmp) {
            // `tmp/` could not be made at start (the directory was read-only
            // then) or was removed since: storing resumes once it can be made.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&self.tmp_dir)?;
                create_readable(&tmp)?
            }
            created => created?,
        };
        if let Err(e) = (&file).write_all(&head_bytes) {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        let file = Arc::new(file);
        let progress = Arc::new(watch::Sender::new(Written::Partly(0)));
        let tail = BodyTail {
            file: file.clone(),
            body_offset: head_bytes.len() as u64,
            progress: progress.clone(),
        };
        let (tx, rx) = mpsc::channel(SINK_CHUNKS);
        let expected = msg.expected_len;
        let writer = tokio::task::spawn_blocking(move || {
            let mut publisher = Publisher::new(progress);
            let written = write_body(&file, rx, expected, &mut publisher);
            publisher.end(written.as_ref().ok().copied());
            written
        });
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
            derived: encoding::derived_from(&msg.head),
        };
        let (committed_tx, committed) = oneshot::channel();
        ctx.spawn(
            fut::wrap_future::<_, Self>(writer).map(move |joined, act, _| {
                let written = joined.unwrap_or(Err(WriteError::Aborted));
                let _ = committed_tx.send(act.finish_store(pending, written));
            }),
        );
        Ok(StoreSink {
            tx,
            committed,
            tail,
        })
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
        self.memory.held_urls.add(&vk.primary);
        let url = self.index.url_or_default(vk.primary);
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
        self.add_stored(
            vk,
            EntryInfo {
                size,
                ..pending.info
            },
        );
        self.drop_compressed(&pending.derived);
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

struct PendingEntry {
    write: WriteId,
    tmp: PathBuf,
    vk: VariantKey,
    head_len: u64,
    vary_names: Vec<String>,
    info: EntryInfo,
    /// The compressed variants made from an older body of this one.
    derived: Vec<VariantKey>,
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
    tail: BodyTail,
}

impl StoreSink {
    /// The body read back from the file as it is written.
    pub fn tail(&self) -> BodyTail {
        self.tail.clone()
    }

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

/// A new file under `tmp/`, readable too: a [`BodyTail`] reads it back.
fn create_readable(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Runs on the blocking pool: copies chunks to the file after its head and
/// fills in the body length once the last one arrived. While a
/// [`BodyTail`] reads along, what is written is flushed and published.
fn write_body(
    file: &File,
    mut rx: mpsc::Receiver<SinkMessage>,
    expected: Option<u64>,
    publisher: &mut Publisher,
) -> Result<u64, WriteError> {
    let mut out = BufWriter::with_capacity(READ_CHUNK, file);
    let mut written = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(SinkMessage::Chunk(chunk)) => {
                out.write_all(&chunk)?;
                written += chunk.len() as u64;
                if publisher.due(written, rx.is_empty()) {
                    out.flush()?;
                    publisher.partly(written);
                }
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
