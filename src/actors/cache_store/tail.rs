//! A body being stored, read back from its file as it is written: a client
//! that reads slower than its origin sends is served from here, so the
//! store fills at the origin's pace and requests coalesced behind it are
//! not held to that client's.

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::watch;

use super::reads::{read_chunk, READ_CHUNK};

/// Read size when following a body being written: below glibc's mmap
/// threshold (128 KiB), so each read's buffer is reused heap, not fresh
/// pages faulted in (a 10 MiB body read on in 256 KiB reads spent 5% of
/// its CPU in page faults).
const TAIL_READ: usize = 64 * 1024;

/// How much of a body is in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// This many bytes so far; more may come.
    Partly(u64),
    /// All of it, this many bytes.
    Whole(u64),
    /// The write stopped: this many bytes are in the file, and no more
    /// will come.
    Failed(u64),
}

impl Written {
    /// The bytes that can be read from the file now.
    pub fn readable(self) -> u64 {
        match self {
            Written::Partly(len) | Written::Whole(len) | Written::Failed(len) => len,
        }
    }
}

/// The file of a body being stored, and how far it is written.
#[derive(Clone)]
pub struct BodyTail {
    pub(super) file: Arc<File>,
    /// Where the body starts in the file, after the entry's head.
    pub(super) body_offset: u64,
    pub(super) progress: Arc<watch::Sender<Written>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// The store failed: the rest of the body must come from elsewhere.
    #[error("the body stopped being stored at byte {0}")]
    Stopped(u64),
    #[error("reading the body being stored: {0}")]
    Io(#[from] io::Error),
}

impl BodyTail {
    /// How far the body is written, as it changes. While one is held the
    /// writer publishes as it goes.
    pub fn progress(&self) -> watch::Receiver<Written> {
        self.progress.subscribe()
    }

    /// The body from byte `from` on, each part as soon as it is in the file;
    /// [`TailError::Stopped`] where the store gave up. The file stays
    /// readable if the entry is purged or replaced meanwhile.
    pub fn read_from(self, from: u64) -> impl Stream<Item = Result<Bytes, TailError>> + 'static {
        let progress = self.progress();
        let state = (self.file, self.body_offset, progress, from);
        futures_util::stream::try_unfold(state, |(file, offset, mut progress, at)| async move {
            let end = loop {
                let written = *progress.borrow_and_update();
                match written {
                    _ if at < written.readable() => break written.readable(),
                    Written::Whole(_) => return Ok(None),
                    Written::Failed(_) => return Err(TailError::Stopped(at)),
                    Written::Partly(_) => {
                        // The writer publishes its end even if it panics.
                        if progress.changed().await.is_err() {
                            return Err(TailError::Stopped(at));
                        }
                    }
                }
            };
            let want = (end - at).min(TAIL_READ as u64) as usize;
            let (file, chunk) = read_chunk(file, offset + at, want).await?;
            let next = at + chunk.len() as u64;
            Ok(Some((chunk, (file, offset, progress, next))))
        })
    }
}

/// The writer's side: publishes how far the body is in the file while a
/// reader follows it, and its end, `Failed` if dropped before one.
pub(super) struct Publisher {
    progress: Arc<watch::Sender<Written>>,
    /// The length last published: flushed to the file.
    shown: u64,
    ended: bool,
}

impl Publisher {
    pub(super) fn new(progress: Arc<watch::Sender<Written>>) -> Self {
        Self {
            progress,
            shown: 0,
            ended: false,
        }
    }

    /// Whether to flush and publish `written` bytes now: while anyone
    /// reads along, when the writer has caught up with the chunks sent to
    /// it (`caught_up`) or has a read's worth more to show.
    pub(super) fn due(&self, written: u64, caught_up: bool) -> bool {
        self.progress.receiver_count() > 0
            && (caught_up || written - self.shown >= READ_CHUNK as u64)
    }

    /// `len` bytes are flushed to the file.
    pub(super) fn partly(&mut self, len: u64) {
        self.shown = len;
        self.progress.send_replace(Written::Partly(len));
    }

    /// The body is whole (`Some(len)`), or will never be.
    pub(super) fn end(mut self, whole: Option<u64>) {
        self.ended = true;
        self.progress.send_replace(match whole {
            Some(len) => Written::Whole(len),
            None => Written::Failed(self.shown),
        });
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if !self.ended {
            self.progress.send_replace(Written::Failed(self.shown));
        }
    }
}
