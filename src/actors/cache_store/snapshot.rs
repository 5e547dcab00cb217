//! The index snapshot's format, written at a graceful stop so that the next
//! start need not walk (and `stat`) every entry file. Plain little-endian
//! fixed-size records:
//!
//! ```text
//! magic "cajeidx\0" | version u32 | flags u32 | shards u32 | entries u64
//! shards  × (prefix u8, directory mtime i64 ns)
//! entries × (primary hash [32], variant hash [32], size u64, mtime i64 ns)
//! BLAKE3 of every byte before it [32], then the end of the file
//! ```
//!
//! Only encoding and decoding here; which shards a start may take from a
//! snapshot is the store's call (`rebuild.rs`).

use std::io::{self, Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cache::key::VariantKey;

const MAGIC: [u8; 8] = *b"cajeidx\0";
const VERSION: u32 = 1;
/// Flag: entries carry their files' mtimes (written by a bounded store,
/// which needs them to evict oldest first).
const WITH_MTIMES: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 4 + 4 + 8;
const SHARD_LEN: usize = 1 + 8;
const ENTRY_LEN: usize = 32 + 32 + 8 + 8;

/// A shard directory (`<cache_dir>/<2 hex>`) as it was when written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shard {
    /// The first byte of its entries' primary hashes (its name in hex).
    pub prefix: u8,
    /// The directory's mtime, in nanoseconds since the Unix epoch.
    pub modified_ns: i64,
}

/// An entry file: its name, size and mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub vk: VariantKey,
    pub size: u64,
    /// Nanoseconds since the Unix epoch; 0 in a snapshot without mtimes.
    pub modified_ns: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Snapshot {
    /// Whether the entries' mtimes are recorded.
    pub with_mtimes: bool,
    pub shards: Vec<Shard>,
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum SnapshotError {
    #[error("not an index snapshot (wrong magic)")]
    Magic,
    #[error("index snapshot version {0}, this caje reads {VERSION}")]
    Version(u32),
    #[error("index snapshot lists {0} shards, there are at most 256")]
    Shards(u32),
    #[error("index snapshot truncated")]
    Truncated,
    #[error("index snapshot checksum mismatch")]
    Checksum,
    #[error("index snapshot has bytes after its checksum")]
    TrailingBytes,
    #[error("reading the index snapshot: {0}")]
    Io(io::Error),
}

impl From<io::Error> for SnapshotError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Self::Truncated
        } else {
            Self::Io(e)
        }
    }
}

/// A time as nanoseconds since the Unix epoch (negative before it),
/// saturating past the year 2262.
pub(super) fn nanos_since_epoch(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// Writes `snapshot` to `out` (buffer it: records are written one by one).
pub(super) fn encode(snapshot: &Snapshot, out: impl Write) -> io::Result<()> {
    let mut out = Hashing::new(out);
    let shards = u32::try_from(snapshot.shards.len())
        .ok()
        .filter(|&n| n <= 256)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "more than 256 shards"))?;
    out.write_all(&MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    let flags = if snapshot.with_mtimes { WITH_MTIMES } else { 0 };
    out.write_all(&flags.to_le_bytes())?;
    out.write_all(&shards.to_le_bytes())?;
    out.write_all(&(snapshot.entries.len() as u64).to_le_bytes())?;
    for shard in &snapshot.shards {
        out.write_all(&[shard.prefix])?;
        out.write_all(&shard.modified_ns.to_le_bytes())?;
    }
    for entry in &snapshot.entries {
        let mut record = [0u8; ENTRY_LEN];
        record[..32].copy_from_slice(&entry.vk.primary);
        record[32..64].copy_from_slice(&entry.vk.variant);
        record[64..72].copy_from_slice(&entry.size.to_le_bytes());
        let modified = if snapshot.with_mtimes {
            entry.modified_ns
        } else {
            0
        };
        record[72..].copy_from_slice(&modified.to_le_bytes());
        out.write_all(&record)?;
    }
    let (mut out, checksum) = out.finish();
    out.write_all(checksum.as_bytes())?;
    out.flush()
}

/// Reads a snapshot written by [`encode`] from `input` (buffer it); any
/// damage is an error, never a partial snapshot.
pub(super) fn decode(input: impl Read) -> Result<Snapshot, SnapshotError> {
    let mut input = Hashing::new(input);
    let mut header = [0u8; HEADER_LEN];
    input.read_exact(&mut header)?;
    let (magic, rest) = header.split_at(8);
    if magic != MAGIC {
        return Err(SnapshotError::Magic);
    }
    let version = u32::from_le_bytes(fixed(&rest[0..4]));
    if version != VERSION {
        return Err(SnapshotError::Version(version));
    }
    let flags = u32::from_le_bytes(fixed(&rest[4..8]));
    let shard_count = u32::from_le_bytes(fixed(&rest[8..12]));
    if shard_count > 256 {
        return Err(SnapshotError::Shards(shard_count));
    }
    let entry_count = u64::from_le_bytes(fixed(&rest[12..20]));
    let mut shards = Vec::with_capacity(shard_count as usize);
    for _ in 0..shard_count {
        let mut record = [0u8; SHARD_LEN];
        input.read_exact(&mut record)?;
        shards.push(Shard {
            prefix: record[0],
            modified_ns: i64::from_le_bytes(fixed(&record[1..])),
        });
    }
    // A damaged count must not reserve memory the file does not back.
    let mut entries = Vec::with_capacity(entry_count.min(1 << 20) as usize);
    for _ in 0..entry_count {
        let mut record = [0u8; ENTRY_LEN];
        input.read_exact(&mut record)?;
        entries.push(Entry {
            vk: VariantKey {
                primary: fixed(&record[..32]),
                variant: fixed(&record[32..64]),
            },
            size: u64::from_le_bytes(fixed(&record[64..72])),
            modified_ns: i64::from_le_bytes(fixed(&record[72..])),
        });
    }
    let (mut input, computed) = input.finish();
    let mut recorded = [0u8; 32];
    input.read_exact(&mut recorded)?;
    if computed != blake3::Hash::from(recorded) {
        return Err(SnapshotError::Checksum);
    }
    if input.read(&mut [0u8; 1])? != 0 {
        return Err(SnapshotError::TrailingBytes);
    }
    Ok(Snapshot {
        with_mtimes: flags & WITH_MTIMES != 0,
        shards,
        entries,
    })
}

/// The array in a slice of exactly its length (the callers' ranges are).
fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

/// A reader or writer that hashes every byte passing through it.
struct Hashing<T> {
    inner: T,
    hasher: blake3::Hasher,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }

    fn finish(self) -> (T, blake3::Hash) {
        (self.inner, self.hasher.finalize())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(with_mtimes: bool) -> Snapshot {
        let entry = |n: u8| Entry {
            vk: VariantKey {
                primary: [n; 32],
                variant: [n.wrapping_mul(7); 32],
            },
            size: 1000 + u64::from(n),
            modified_ns: if with_mtimes {
                1_700_000_000_000_000_000 + i64::from(n)
            } else {
                0
            },
        };
        Snapshot {
            with_mtimes,
            shards: vec![
                Shard {
                    prefix: 0x00,
                    modified_ns: 1_700_000_000_123_456_789,
                },
                Shard {
                    prefix: 0xff,
                    modified_ns: -5,
                },
            ],
            entries: (0..=255).map(entry).collect(),
        }
    }

    fn encoded(snapshot: &Snapshot) -> Vec<u8> {
        let mut out = Vec::new();
        encode(snapshot, &mut out).expect("encode to memory");
        out
    }

    #[test]
    fn a_snapshot_round_trips_with_and_without_mtimes() {
        for with_mtimes in [true, false] {
            let snapshot = sample(with_mtimes);
            let bytes = encoded(&snapshot);
            assert_eq!(
                bytes.len(),
                HEADER_LEN + 2 * SHARD_LEN + 256 * ENTRY_LEN + 32
            );
            assert_eq!(decode(bytes.as_slice()).expect("decodes"), snapshot);
        }
        let empty = Snapshot {
            with_mtimes: false,
            shards: Vec::new(),
            entries: Vec::new(),
        };
        assert_eq!(decode(encoded(&empty).as_slice()).expect("decodes"), empty);
    }

    #[test]
    fn a_truncated_snapshot_is_refused_wherever_it_ends() {
        let bytes = encoded(&sample(true));
        for len in [
            0,
            5,
            HEADER_LEN,
            HEADER_LEN + 3,
            bytes.len() / 2,
            bytes.len() - 1,
        ] {
            assert!(
                matches!(decode(&bytes[..len]), Err(SnapshotError::Truncated)),
                "cut at {len}"
            );
        }
    }

    #[test]
    fn a_foreign_file_or_version_is_refused() {
        let mut bytes = encoded(&sample(true));
        bytes[8] = 2;
        assert!(matches!(
            decode(bytes.as_slice()),
            Err(SnapshotError::Version(2))
        ));
        bytes[0] = b'X';
        assert!(matches!(
            decode(bytes.as_slice()),
            Err(SnapshotError::Magic)
        ));
        let mut many_shards = encoded(&sample(true));
        many_shards[16..20].copy_from_slice(&257u32.to_le_bytes());
        assert!(matches!(
            decode(many_shards.as_slice()),
            Err(SnapshotError::Shards(257))
        ));
    }

    #[test]
    fn any_changed_byte_or_extra_byte_is_refused() {
        let bytes = encoded(&sample(true));
        // A count in the header, a shard's mtime, an entry's hash and
        // size, the checksum itself.
        for at in [
            HEADER_LEN - 8,
            HEADER_LEN + 2,
            HEADER_LEN + 2 * SHARD_LEN + 5,
            bytes.len() - 40,
            bytes.len() - 1,
        ] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(
                matches!(
                    decode(damaged.as_slice()),
                    Err(SnapshotError::Checksum | SnapshotError::Truncated)
                ),
                "byte {at} changed"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode(longer.as_slice()),
            Err(SnapshotError::TrailingBytes)
        ));
    }
}
