//! The `entry` target: cache entry files decoded from arbitrary bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::HeaderMap;
use http_cache_semantics::CachePolicy;

use super::allocation::peak_allocation;
use super::{assert_header_value, NOW};
use crate::cache::entry::{self, DecodedEntry, EntryHead, BODY_LEN_OFFSET, PREFIX_LEN};
use crate::cache::http_compat;
use crate::cache::key::VariantKey;
use crate::cache::status::CacheStatus;
use crate::cache::{freshness, policy};

/// Peak bytes [`entry::decode_head`] may hold at once: the head buffer and
/// what postcard decodes from it grow with the bytes actually read (a few
/// dozen bytes of structures per byte of input at most), plus a fixed
/// allowance for what serde and `http` preallocate from a declared length
/// (at most 1 MiB per sequence, a few MiB per header map). A declared head
/// or body length that is not backed by bytes must never be allocated.
pub fn entry_allocation_limit(input_len: usize) -> usize {
    64 * input_len + 16 * 1024 * 1024
}

/// Cache entry files: [`entry::decode_head`] on arbitrary bytes, both with
/// the real length and with the length the prefix claims (a file read while
/// it shrinks). It never panics or allocates beyond
/// [`entry_allocation_limit`]; what it accepts is exactly as long as it
/// says, encodes back to an equal head, and survives everything the hit
/// path does with a head.
pub fn entry(data: &[u8]) {
    let (decoded, peak) = peak_allocation(|| entry::decode_head(&mut &data[..], data.len() as u64));
    check_allocation(peak, data.len());
    if let Some(claimed) = claimed_len(data) {
        let (short, peak) = peak_allocation(|| entry::decode_head(&mut &data[..], claimed));
        check_allocation(peak, data.len());
        if let Ok(short) = short {
            assert!(
                short.body_offset <= data.len() as u64,
                "head read past the input"
            );
        }
    }
    if let Ok(decoded) = decoded {
        check_decoded(data, decoded);
    }
}

fn check_allocation(peak: usize, input_len: usize) {
    let limit = entry_allocation_limit(input_len);
    assert!(
        peak <= limit,
        "decode_head held {peak} bytes for {input_len} bytes of input (limit {limit})"
    );
}

/// The file length the prefix announces, when there is a prefix.
fn claimed_len(data: &[u8]) -> Option<u64> {
    let head_len = u32::from_le_bytes(data.get(6..10)?.try_into().ok()?);
    let body_len = u64::from_le_bytes(data.get(10..18)?.try_into().ok()?);
    Some((PREFIX_LEN + u64::from(head_len)).saturating_add(body_len))
}

fn check_decoded(data: &[u8], decoded: DecodedEntry) {
    let Some(head_len) = data
        .get(6..10)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
    else {
        panic!("an entry shorter than its prefix decoded");
    };
    assert_eq!(decoded.body_offset, PREFIX_LEN + u64::from(head_len));
    assert_eq!(
        decoded.body_offset.checked_add(decoded.body_len),
        Some(data.len() as u64),
        "an accepted entry is exactly as long as it says"
    );
    let body = &data[decoded.body_offset as usize..];
    let head = decoded.head;

    let again = entry_bytes(&head, body);
    let redecoded = match entry::decode_head(&mut &again[..], again.len() as u64) {
        Ok(d) => d,
        Err(e) => panic!("a decoded head, encoded again, does not decode: {e}"),
    };
    assert_eq!(&again[redecoded.body_offset as usize..], body);
    let other = redecoded.head;
    assert_eq!(other.key, head.key);
    assert_eq!(other.vary, head.vary);
    assert_eq!(other.status, head.status);
    assert_eq!(other.headers, head.headers);
    assert_eq!(other.stored_at_ms, head.stored_at_ms);
    assert_eq!(other.tags, head.tags);
    assert_eq!(other.invalidated, head.invalidated);

    let stored = UNIX_EPOCH.checked_add(Duration::from_millis(head.stored_at_ms));
    let times = [Some(UNIX_EPOCH + NOW), stored]
        .into_iter()
        .flatten()
        .flat_map(|t| [Some(t), t.checked_add(Duration::from_secs(86_400))])
        .flatten();
    for now in times {
        assert_eq!(
            policy_behaviour(&other.policy, now),
            policy_behaviour(&head.policy, now),
            "the policy changed by encoding it again"
        );
        hit_path(&head, now);
    }
    let vk = VariantKey::new(&head.key, &head.vary);
    assert_eq!(VariantKey::from_file_name(&vk.file_name()), Some(vk));
}

/// An entry file for `head` and `body`, as the cache writes it.
pub fn entry_bytes(head: &EntryHead, body: &[u8]) -> Vec<u8> {
    let mut bytes = match entry::encode_head(head) {
        Ok(bytes) => bytes,
        Err(e) => panic!("head does not encode: {e}"),
    };
    let at = BODY_LEN_OFFSET as usize;
    bytes[at..at + 8].copy_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

fn policy_behaviour(policy: &CachePolicy, now: SystemTime) -> (bool, Duration, Duration, bool) {
    (
        policy.is_storable(),
        policy.time_to_live(now),
        policy.age(now),
        policy.is_stale(now),
    )
}

/// What a request answered from this head computes, none of which may
/// panic, and a `Cache-Status` whose `ttl` has the sign of the freshness left.
fn hit_path(head: &EntryHead, now: SystemTime) {
    let ttl = head.policy.time_to_live(now);
    let signed = freshness::signed_ttl(&head.policy, head.stored_at_ms, now);
    if ttl.is_zero() {
        assert!(signed <= 0, "stale, yet ttl={signed}");
    } else {
        assert!(signed >= 0, "fresh for {ttl:?}, yet ttl={signed}");
    }
    let _ = freshness::staleness(&head.policy, head.stored_at_ms, now);
    let request = http_compat::policy_request(&head.key, &HeaderMap::new(), &head.vary);
    let _ = head.policy.before_request(&request, now);
    let status = CacheStatus::hit(signed);
    assert_header_value(&status.to_string());
    let _ = policy::is_storable(&head.policy, now, &head.header_map());
    let _ = freshness::rules(head);
}
