//! Reading the cache: `Lookup` finds the stored response a request selects,
//! and [`EntryBody`] streams its body from the file (or the memory tier),
//! reading from the page cache in place and only a chunk that would wait
//! for the disk on the blocking pool.

use std::borrow::Borrow;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use futures_util::future::Either;
use futures_util::Stream;

use super::actor::CacheStore;
use crate::cache::encoding::{self, Encoding};
use crate::cache::entry::{EntryError, EntryHead};
use crate::cache::key::{self, CacheKey, Hash, VariantKey, VaryValues};
use crate::cache::memory_tier::HotEntry;
use crate::cache::response_fields::ResponseFields;

/// Read size when streaming a stored body.
pub(super) const READ_CHUNK: usize = 256 * 1024;

/// Finds the stored response for a request.
#[derive(Message)]
#[rtype(result = "LookupResult")]
pub struct Lookup {
    pub key: CacheKey,
    /// The request's headers, for selecting a variant by `Vary`.
    pub request_headers: HeaderMap,
    /// The origin's compression at the edge: from this many body bytes,
    /// when on (see [`LookupResult::Compressible`]).
    pub compress_from: Option<u64>,
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
    /// The variant this request selects is a compressed one not made yet,
    /// and the identity variant it is made from is stored: a `Compress`
    /// message makes it.
    Compressible {
        identity: VaryValues,
        coding: Encoding,
    },
}

pub struct Hit {
    pub head: Arc<EntryHead>,
    /// The head's fields as a response is built from them.
    pub fields: Arc<ResponseFields>,
    pub body: EntryBody,
}

impl Hit {
    pub fn new(head: Arc<EntryHead>, body: EntryBody) -> Self {
        Self {
            fields: Arc::new(ResponseFields::new(&head)),
            head,
            body,
        }
    }

    /// A hit on an entry of the memory tier: nothing parsed again.
    pub fn from_memory(entry: &HotEntry) -> Self {
        Self {
            head: entry.head.clone(),
            fields: entry.fields.clone(),
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

    /// A second reader of the same body (file reads are positional).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Self::File { file, offset, len } => Self::File {
                file: file.try_clone()?,
                offset: *offset,
                len: *len,
            },
            Self::Memory(bytes) => Self::Memory(bytes.clone()),
        })
    }

    /// The whole body, when it is in memory and no longer than one slice
    /// of [`Self::into_stream`]: sent as one value, actix-http writes it
    /// with the head without polling a stream.
    pub fn as_one_chunk(&self) -> Option<&Bytes> {
        match self {
            Self::Memory(bytes) if bytes.len() <= READ_CHUNK => Some(bytes),
            _ => None,
        }
    }

    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
        match self {
            Self::File { file, offset, len } => Either::Left(file_stream(file, offset, len)),
            // In slices of the body (no copy): actix-http copies each chunk
            // into its write buffer, which a whole large body would grow to
            // its size (and reallocate on the way).
            Self::Memory(bytes) => Either::Right(futures_util::stream::iter(
                (0..bytes.len())
                    .step_by(READ_CHUNK)
                    .map(move |start| Ok(bytes.slice(start..bytes.len().min(start + READ_CHUNK)))),
            )),
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

impl CacheStore {
    /// The `Vary` names of a URL, reading one stored head when the index
    /// does not know them yet (after a rebuild).
    fn vary_names_of(&mut self, primary: Hash) -> Option<Vec<String>> {
        let url = self.index.url(&primary)?;
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
                    if let Some(url) = self.index.url_mut(&primary) {
                        url.vary = Some(names.clone());
                    }
                    return Some(names);
                }
                Err(e) => self.discard_broken(&vk, &e),
            }
        }
        None
    }
}

impl Handler<Lookup> for CacheStore {
    type Result = LookupResult;

    fn handle(&mut self, msg: Lookup, _ctx: &mut Self::Context) -> LookupResult {
        let _handling = self.meter.handling("lookup");
        let _span = tracing::debug_span!("cache_store.lookup", host = %msg.key.host(), path = %msg.key.path_and_query()).entered();
        self.metrics.lookups.inc();
        let primary = msg.key.primary_hash();
        let Some(names) = self.vary_names_of(primary) else {
            return LookupResult::UriMiss;
        };
        let vary = key::vary_values(&names, &msg.request_headers);
        let vk = VariantKey::new(&msg.key, &vary);
        if self.index.contains(&vk) {
            return self.hit(vk, &msg.key, &vary);
        }
        let coding = Encoding::of_vary(&vary).filter(|&c| c != Encoding::Identity);
        if let (Some(coding), Some(_)) = (coding, msg.compress_from) {
            let (identity_vk, identity) = encoding::sibling(&msg.key, &vary, Encoding::Identity);
            if self.not_compressible.contains(&identity_vk) {
                return self.hit(identity_vk, &msg.key, &identity);
            }
            if self.index.contains(&identity_vk) {
                return LookupResult::Compressible { identity, coding };
            }
        }
        LookupResult::VaryMiss
    }
}

impl CacheStore {
    /// The stored variant `vk`, which the index holds, as a hit (held in
    /// the memory tier from now on when small); its head must say it is
    /// `key`'s variant selected by `vary`.
    pub(super) fn hit(
        &mut self,
        vk: VariantKey,
        key: &CacheKey,
        vary: &VaryValues,
    ) -> LookupResult {
        match self.open(&vk) {
            Ok((decoded, _)) if decoded.head.key != *key || decoded.head.vary != *vary => {
                self.discard_broken(&vk, &EntryError::KeyMismatch);
                LookupResult::Broken
            }
            Ok((mut decoded, file)) => {
                self.evictor.used(&vk);
                // A soft purge marks the index at once; the file's head
                // follows when its rewrite is done.
                decoded.head.invalidated |= self.index.marked_invalidated(&vk);
                let head = Arc::new(decoded.head);
                if !self.memory.admits(decoded.body_len) {
                    self.metrics.hits.inc();
                    let body = EntryBody::File {
                        file,
                        offset: decoded.body_offset,
                        len: decoded.body_len,
                    };
                    return LookupResult::Found(Box::new(Hit::new(head, body)));
                }
                match read_whole(file, decoded.body_len) {
                    Ok(body) => {
                        self.metrics.hits.inc();
                        let entry = HotEntry::new(head, body);
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
        let (file, chunk) = read_chunk(file, offset, want).await?;
        let n = chunk.len() as u64;
        Ok(Some((chunk, (file, offset + n, left - n))))
    })
}

/// Up to `want` bytes at `offset`, at least one: from the page cache in
/// place, or on the blocking pool when the read would wait for the disk.
/// `file` is handed back for the next chunk.
pub(super) async fn read_chunk<F>(file: F, offset: u64, want: usize) -> io::Result<(F, Bytes)>
where
    F: Borrow<File> + Send + 'static,
{
    let (file, chunk) = match read_cached(file.borrow(), offset, want) {
        Some(read) => (file, read?),
        None => tokio::task::spawn_blocking(move || {
            read_at(file.borrow(), offset, want).map(|chunk| (file, chunk))
        })
        .await
        .map_err(io::Error::other)??,
    };
    if chunk.is_empty() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok((file, Bytes::from(chunk)))
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

#[cfg(test)]
mod tests {
    use std::fs;

    use futures_util::TryStreamExt;

    use super::*;

    #[actix_web::test]
    async fn a_body_held_in_memory_is_sent_in_slices_of_it() {
        let bytes = Bytes::from(
            (0..READ_CHUNK * 5 / 2)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        );
        let chunks: Vec<Bytes> = EntryBody::Memory(bytes.clone())
            .into_stream()
            .try_collect()
            .await
            .expect("stream");
        let lens: Vec<usize> = chunks.iter().map(Bytes::len).collect();
        assert_eq!(lens, [READ_CHUNK, READ_CHUNK, READ_CHUNK / 2]);
        assert_eq!(chunks.concat(), bytes);
        // Slices share the held body: nothing was copied.
        assert_eq!(chunks[1].as_ptr(), bytes[READ_CHUNK..].as_ptr());
        let none: Vec<Bytes> = EntryBody::Memory(Bytes::new())
            .into_stream()
            .try_collect()
            .await
            .expect("stream");
        assert!(none.is_empty());
    }

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
