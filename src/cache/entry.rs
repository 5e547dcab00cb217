//! The on-disk format of one cached response.
//!
//! ```text
//! magic "CAJE" | version u16 LE | head length u32 LE | body length u64 LE | head (postcard) | body
//! ```
//!
//! The body length sits in the fixed prefix rather than in the postcard head
//! because a chunked origin response's length is known only after its last
//! byte: the writer fills it in then, before renaming the file into place.

use std::io::Read;
use std::time::{Duration, UNIX_EPOCH};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use http_cache_semantics::CachePolicy;
use serde::{Deserialize, Serialize};

use super::key::{CacheKey, VaryValues};
use super::policy;

/// Version 2 added purge tags and the soft-purge mark; version 3 keeps
/// `Vary` values as bytes. An entry of another version is a miss, removed
/// on first use.
pub const FORMAT_VERSION: u16 = 3;
const MAGIC: [u8; 4] = *b"CAJE";
pub const PREFIX_LEN: u64 = 4 + 2 + 4 + 8;
/// Offset of the body length in the prefix, patched when the body is complete.
pub const BODY_LEN_OFFSET: u64 = 4 + 2 + 4;
/// A head larger than this is corrupt: real ones are a few KiB.
const MAX_HEAD_LEN: u32 = 1 << 20;

/// Everything about a stored response but its body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryHead {
    pub key: CacheKey,
    /// The request's values of the headers named by the response's `Vary`.
    pub vary: VaryValues,
    pub status: u16,
    /// Response header fields as the origin sent them, hop-by-hop ones removed.
    pub headers: Vec<(String, Vec<u8>)>,
    pub policy: CachePolicy,
    /// When the response was received, in milliseconds since the Unix epoch.
    pub stored_at_ms: u64,
    /// Purge tags the origin gave it (`Surrogate-Key`, `Cache-Tag`).
    pub tags: Vec<String>,
    /// Soft-purged: kept, but must be revalidated before it is used again.
    pub invalidated: bool,
}

impl EntryHead {
    /// A stored header field's value (the first, if repeated).
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The same, when it is text.
    pub fn field_str(&self, name: &str) -> Option<&str> {
        self.field(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The stored header fields as a map.
    pub fn header_map(&self) -> HeaderMap {
        fields_map(&self.headers)
    }
}

/// Header fields kept as name-value pairs, as a map (pairs that are not
/// valid fields are left out).
pub fn fields_map(fields: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("not a caje cache entry")]
    BadMagic,
    #[error("entry format version {0}, expected {FORMAT_VERSION}")]
    WrongVersion(u16),
    #[error("entry head of {0} bytes is implausibly large")]
    HeadTooLarge(u32),
    #[error("entry head does not decode: {0}")]
    Decode(#[from] postcard::Error),
    #[error("entry is {actual} bytes long, its prefix says {expected}")]
    Length { expected: u64, actual: u64 },
    #[error("entry holds another key than its file name says")]
    KeyMismatch,
    /// caje clamps `Age` before building a policy, so only damage gives this.
    #[error("entry policy has an Age of {0} s")]
    AgeTooLarge(u64),
    #[error("reading entry: {0}")]
    Io(#[from] std::io::Error),
}

/// Prefix and head of a new entry, with the body length still unknown.
pub fn encode_head(head: &EntryHead) -> Result<Vec<u8>, EntryError> {
    let body = postcard::to_stdvec(head)?;
    let head_len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n <= MAX_HEAD_LEN)
        .ok_or(EntryError::HeadTooLarge(u32::MAX))?;
    let mut out = Vec::with_capacity(PREFIX_LEN as usize + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&head_len.to_le_bytes());
    out.extend_from_slice(&u64::MAX.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// A decoded head and where its body lies in the file.
#[derive(Debug)]
pub struct DecodedEntry {
    pub head: EntryHead,
    pub body_offset: u64,
    pub body_len: u64,
}

/// Reads and checks an entry's prefix and head; `file_len` is the file's
/// size, which must be exactly prefix + head + body.
pub fn decode_head(reader: &mut impl Read, file_len: u64) -> Result<DecodedEntry, EntryError> {
    let mut prefix = [0u8; PREFIX_LEN as usize];
    reader
        .read_exact(&mut prefix)
        .map_err(|_| EntryError::Length {
            expected: PREFIX_LEN,
            actual: file_len,
        })?;
    if prefix[0..4] != MAGIC {
        return Err(EntryError::BadMagic);
    }
    let version = u16::from_le_bytes([prefix[4], prefix[5]]);
    if version != FORMAT_VERSION {
        return Err(EntryError::WrongVersion(version));
    }
    let head_len = u32::from_le_bytes([prefix[6], prefix[7], prefix[8], prefix[9]]);
    if head_len > MAX_HEAD_LEN {
        return Err(EntryError::HeadTooLarge(head_len));
    }
    let mut body_len = [0u8; 8];
    body_len.copy_from_slice(&prefix[10..18]);
    let body_len = u64::from_le_bytes(body_len);
    let body_offset = PREFIX_LEN + u64::from(head_len);
    let expected = body_offset.saturating_add(body_len);
    if expected != file_len {
        return Err(EntryError::Length {
            expected,
            actual: file_len,
        });
    }
    let mut head = vec![0u8; head_len as usize];
    reader.read_exact(&mut head)?;
    let head: EntryHead = postcard::from_bytes(&head)?;
    // At the epoch the policy's age is its `Age` alone (it was stored later),
    // so this reads it without the addition a huge one would overflow.
    let age = head.policy.age(UNIX_EPOCH);
    if age > Duration::from_secs(policy::MAX_AGE_SECONDS) {
        return Err(EntryError::AgeTooLarge(age.as_secs()));
    }
    Ok(DecodedEntry {
        head,
        body_offset,
        body_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy;

    fn sample_head() -> EntryHead {
        let req = http1::Request::get("/x")
            .header("host", "a")
            .body(())
            .expect("request");
        let res = http1::Response::builder()
            .header("cache-control", "max-age=60")
            .body(())
            .expect("response");
        EntryHead {
            key: CacheKey::new("GET", "a", "/x"),
            vary: vec![("accept".into(), Some("text/html".into()))],
            status: 200,
            headers: vec![("content-type".into(), b"text/plain".to_vec())],
            policy: CachePolicy::new_options(
                &req,
                &res,
                std::time::SystemTime::now(),
                policy::options(),
            ),
            stored_at_ms: 1,
            tags: vec!["t1".into()],
            invalidated: false,
        }
    }

    fn with_body(head: &EntryHead, body: &[u8]) -> Vec<u8> {
        let mut bytes = encode_head(head).expect("encodes");
        let len = (body.len() as u64).to_le_bytes();
        bytes[BODY_LEN_OFFSET as usize..BODY_LEN_OFFSET as usize + 8].copy_from_slice(&len);
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn round_trips_head_and_policy() {
        let head = sample_head();
        let bytes = with_body(&head, b"hello");
        let decoded = decode_head(&mut &bytes[..], bytes.len() as u64).expect("decodes");
        assert_eq!(decoded.head.key, head.key);
        assert_eq!(decoded.head.vary, head.vary);
        assert_eq!(decoded.body_len, 5);
        assert_eq!(&bytes[decoded.body_offset as usize..], b"hello");
        let now = std::time::SystemTime::now();
        assert!(decoded.head.policy.time_to_live(now) > std::time::Duration::from_secs(50));
    }

    #[test]
    fn rejects_every_kind_of_damage() {
        let head = sample_head();
        let bytes = with_body(&head, b"hello");
        let short = &bytes[..bytes.len() - 1];
        assert!(matches!(
            decode_head(&mut &short[..], short.len() as u64),
            Err(EntryError::Length { .. })
        ));
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(matches!(
            decode_head(&mut &magic[..], magic.len() as u64),
            Err(EntryError::BadMagic)
        ));
        let mut version = bytes.clone();
        version[4] = 9;
        assert!(matches!(
            decode_head(&mut &version[..], version.len() as u64),
            Err(EntryError::WrongVersion(9))
        ));
        let mut garbled = bytes.clone();
        for b in &mut garbled[PREFIX_LEN as usize..PREFIX_LEN as usize + 8] {
            *b = 0xff;
        }
        assert!(decode_head(&mut &garbled[..], garbled.len() as u64).is_err());
        let unfinished = encode_head(&head).expect("encodes");
        assert!(decode_head(&mut &unfinished[..], unfinished.len() as u64).is_err());
        assert!(decode_head(&mut &b"CA"[..], 2).is_err());
    }

    #[test]
    fn refuses_an_age_caje_never_stores() {
        let mut head = sample_head();
        // Built without `http_compat`, which would have clamped the Age.
        let req = http1::Request::get("/x").body(()).expect("request");
        let res = http1::Response::builder()
            .header("cache-control", "max-age=60")
            .header("age", u64::MAX.to_string())
            .body(())
            .expect("response");
        let now = std::time::SystemTime::now();
        head.policy = CachePolicy::new_options(&req, &res, now, policy::options());
        let bytes = with_body(&head, b"x");
        assert!(matches!(
            decode_head(&mut &bytes[..], bytes.len() as u64),
            Err(EntryError::AgeTooLarge(_))
        ));
    }
}
