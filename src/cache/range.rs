//! Range requests answered from a stored response (RFC 9110 §14).
//!
//! caje stores whole 200 responses, so a `Range` on a request answered from
//! cache is served by cutting the stored body. Everything here is pure: the
//! caller hands in the request's `Range` and `If-Range` and the stored
//! response's length and validators, and gets back what to send.
//!
//! Multiple ranges: caje does not generate `multipart/byteranges`. Ranges
//! that overlap or touch are coalesced (RFC 9110 §14.2 allows it); if one
//! range remains it is sent as a single-part 206, if several remain the whole
//! representation is sent as a 200, which §14.2 also allows ("a server MAY
//! ignore the Range header field"). That keeps the response path one body
//! slice and leaves nothing to amplify.

use super::conditional::EntityTag;
use std::cmp::Ordering;

/// More range-specs than this and the `Range` header is ignored: no real
/// client needs that many, and RFC 9110 §14.2 lets a server ignore them.
pub const MAX_RANGES: usize = 100;

/// More ranges than this overlapping an earlier one and the `Range` header is
/// ignored. RFC 9110 §14.2 names "more than two overlapping ranges" as
/// something a server may ignore, since it only serves to waste work.
pub const MAX_OVERLAPS: usize = 1;

/// What to send for a request answered from a stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with the whole representation: no `Range`, a `Range` that is
    /// invalid, of another unit, abusive or that asks for several disjoint
    /// ranges (caje sends no multipart), or an `If-Range` that failed.
    Full,
    /// 206 with one part, described by [`ByteRange::content_range`].
    Partial(ByteRange),
    /// 416 with `Content-Range: bytes */complete_len`
    /// (see [`unsatisfied_content_range`]).
    Unsatisfiable,
}

impl RangeAnswer {
    /// The `Content-Range` field value to send with this answer, if any.
    pub fn content_range(&self, complete_len: u64) -> Option<String> {
        match self {
            Self::Full => None,
            Self::Partial(range) => Some(range.content_range(complete_len)),
            Self::Unsatisfiable => Some(unsatisfied_content_range(complete_len)),
        }
    }
}

/// A resolved byte range: offsets `first..=last` of the stored body, both
/// inclusive as in `Content-Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    /// How many bytes the range holds (0 only for a malformed `first > last`,
    /// which [`answer`] never returns).
    pub fn len(&self) -> u64 {
        if self.first > self.last {
            0
        } else {
            (self.last - self.first).saturating_add(1)
        }
    }

    /// Whether the range holds no bytes; never true for an [`answer`] result.
    pub fn is_empty(&self) -> bool {
        self.first > self.last
    }

    /// The `Content-Range` field value of a 206 carrying this range,
    /// e.g. `bytes 0-99/1234`.
    pub fn content_range(&self, complete_len: u64) -> String {
        format!("bytes {}-{}/{}", self.first, self.last, complete_len)
    }
}

/// The `Content-Range` field value of a 416, e.g. `bytes */1234`: it tells the
/// client the current length so that it can ask again.
pub fn unsatisfied_content_range(complete_len: u64) -> String {
    format!("bytes */{complete_len}")
}

/// What to send for a request whose stored response has `complete_len` body
/// bytes and the given `ETag` / `Last-Modified`.
///
/// Only for GET: RFC 9110 §14.2 defines range handling for GET alone, so the
/// caller must not call this (or must ignore the answer) for other methods,
/// HEAD included. `range` and `if_range` are the request's field values, or
/// `None` when absent or not valid UTF-8; a request with several `Range`
/// fields (a singleton field) should be passed `None`.
pub fn answer(
    range: Option<&str>,
    if_range: Option<&str>,
    complete_len: u64,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> RangeAnswer {
    let Some(range) = range else {
        // If-Range without Range means nothing (RFC 9110 §13.1.5).
        return RangeAnswer::Full;
    };
    if let Some(validator) = if_range {
        if !if_range_matches(validator, etag, last_modified) {
            return RangeAnswer::Full;
        }
    }
    let Some(specs) = parse_byte_ranges(range) else {
        return RangeAnswer::Full;
    };
    resolve(&specs, complete_len)
}

/// Whether a `Range` value asks for exactly one byte range, the kind a
/// partial entry can hold (`cache::partial`).
pub fn is_single_range(range: &str) -> bool {
    parse_byte_ranges(range).is_some_and(|specs| specs.len() == 1)
}

/// Whether an `If-Range` validator lets the `Range` through (RFC 9110
/// §13.1.5). An entity-tag needs a strong match: the stored part must be of
/// the very same bytes, which a weak tag does not promise. A date must equal
/// the stored `Last-Modified`; we compare the trimmed strings rather than
/// also checking that the date is strong (RFC 9110 §8.8.2.2: at least a second
/// older than the response's `Date`), a simplification that can only be wrong
/// for a representation changed twice within one second.
fn if_range_matches(validator: &str, etag: Option<&str>, last_modified: Option<&str>) -> bool {
    let validator = validator.trim();
    if validator.starts_with('"') || validator.starts_with("W/") {
        return match (EntityTag::parse(validator), etag.and_then(EntityTag::parse)) {
            (Some(asked), Some(stored)) => asked.strong_eq(&stored),
            _ => false,
        };
    }
    httpdate::parse_http_date(validator).is_ok()
        && last_modified.is_some_and(|stored| stored.trim() == validator)
}

/// One byte range-spec as written, before the representation's length is
/// applied. Numbers saturate at `u64::MAX`, which no body reaches, so a huge
/// number behaves exactly as its true value would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `first-last` or `first-` (`last` = `None`).
    Int { first: u64, last: Option<u64> },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

/// Parses `bytes=spec, spec, ...` (RFC 9110 §14.1.1, §14.2). `None` means the
/// header is to be ignored: another unit, a syntax error, no range-spec at
/// all, or more than [`MAX_RANGES`] of them.
fn parse_byte_ranges(value: &str) -> Option<Vec<RangeSpec>> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    // A list may hold empty elements, which recipients must skip (RFC 9110
    // §5.6.1.2); OWS around each element is allowed.
    for element in set.split(',').map(|e| e.trim_matches([' ', '\t'])) {
        if element.is_empty() {
            continue;
        }
        if specs.len() == MAX_RANGES {
            return None;
        }
        specs.push(parse_spec(element)?);
    }
    (!specs.is_empty()).then_some(specs)
}

fn parse_spec(spec: &str) -> Option<RangeSpec> {
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return Some(RangeSpec::Suffix(parse_digits(last)?));
    }
    let first_value = parse_digits(first)?;
    if last.is_empty() {
        return Some(RangeSpec::Int {
            first: first_value,
            last: None,
        });
    }
    let last_value = parse_digits(last)?;
    // Compared as decimal strings, so that two saturated numbers still order.
    if cmp_decimal(first, last) == Ordering::Greater {
        return None;
    }
    Some(RangeSpec::Int {
        first: first_value,
        last: Some(last_value),
    })
}

/// `1*DIGIT`, saturating at `u64::MAX` instead of overflowing.
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Orders two strings of ASCII digits by their numeric value, at any length.
fn cmp_decimal(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Applies the representation's length to the parsed specs (RFC 9110
/// §14.1.2): clamps, drops what is unsatisfiable, coalesces the rest.
fn resolve(specs: &[RangeSpec], complete_len: u64) -> RangeAnswer {
    if complete_len == 0 {
        // A non-zero suffix-range is satisfiable even against an empty
        // representation (RFC 9110 §14.1.2), but no Content-Range can say
        // "zero bytes", so the (empty) whole is sent; anything else is 416.
        let suffix = specs
            .iter()
            .any(|spec| matches!(spec, RangeSpec::Suffix(n) if *n > 0));
        return if suffix {
            RangeAnswer::Full
        } else {
            RangeAnswer::Unsatisfiable
        };
    }
    let end = complete_len - 1;
    let mut ranges: Vec<ByteRange> = specs
        .iter()
        .filter_map(|spec| match *spec {
            RangeSpec::Int { first, last } => (first <= end).then(|| ByteRange {
                first,
                last: last.map_or(end, |last| last.min(end)),
            }),
            RangeSpec::Suffix(suffix) => (suffix > 0).then(|| ByteRange {
                first: complete_len.saturating_sub(suffix),
                last: end,
            }),
        })
        .collect();
    if ranges.is_empty() {
        return RangeAnswer::Unsatisfiable;
    }
    ranges.sort_unstable_by_key(|range| range.first);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    let mut overlaps = 0;
    for range in ranges {
        match merged.last_mut() {
            Some(prev) if range.first <= prev.last.saturating_add(1) => {
                if range.first <= prev.last {
                    overlaps += 1;
                }
                prev.last = prev.last.max(range.last);
            }
            _ => merged.push(range),
        }
    }
    match merged.as_slice() {
        [single] if overlaps <= MAX_OVERLAPS => RangeAnswer::Partial(*single),
        // Several disjoint parts (no multipart here) or an abusive overlap.
        _ => RangeAnswer::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETAG: &str = "\"v1\"";
    const LM: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

    fn range(value: &str, len: u64) -> RangeAnswer {
        answer(Some(value), None, len, Some(ETAG), Some(LM))
    }

    fn part(first: u64, last: u64) -> RangeAnswer {
        RangeAnswer::Partial(ByteRange { first, last })
    }

    fn with_if_range(if_range: &str, etag: Option<&str>) -> RangeAnswer {
        answer(Some("bytes=0-9"), Some(if_range), 100, etag, Some(LM))
    }

    #[test]
    fn no_range_is_full() {
        assert_eq!(
            answer(None, None, 100, Some(ETAG), Some(LM)),
            RangeAnswer::Full
        );
    }

    #[test]
    fn single_ranges() {
        assert_eq!(range("bytes=0-0", 100), part(0, 0));
        assert_eq!(range("bytes=-1", 100), part(99, 99));
        assert_eq!(range("bytes=5-", 100), part(5, 99));
        assert_eq!(range("bytes=10-19", 100), part(10, 19));
        assert_eq!(range("bytes=99-99", 100), part(99, 99));
        assert_eq!(range("bytes=0-", 100), part(0, 99), "whole body as 206");
    }

    #[test]
    fn last_beyond_the_end_is_clamped() {
        assert_eq!(range("bytes=90-1000", 100), part(90, 99));
        assert_eq!(range("bytes=0-100", 100), part(0, 99));
    }

    #[test]
    fn suffix_longer_than_body_is_the_whole_body() {
        assert_eq!(range("bytes=-500", 100), part(0, 99));
        assert_eq!(range("bytes=-100", 100), part(0, 99));
    }

    #[test]
    fn unit_and_whitespace_leniency() {
        assert_eq!(range("Bytes=0-1", 10), part(0, 1));
        assert_eq!(range("BYTES=0-1", 10), part(0, 1));
        assert_eq!(range("  bytes=0-1  ", 10), part(0, 1));
        assert_eq!(range("bytes=0-1 ,\t2-3", 10), part(0, 3));
        assert_eq!(range("bytes=0-1,,2-3,", 10), part(0, 3), "empty elements");
    }

    #[test]
    fn other_units_are_ignored() {
        assert_eq!(range("items=0-1", 10), RangeAnswer::Full);
        assert_eq!(range("bytesx=0-1", 10), RangeAnswer::Full);
        assert_eq!(range("=0-1", 10), RangeAnswer::Full);
    }

    #[test]
    fn invalid_syntax_is_ignored() {
        for bad in [
            "bytes=10-5",
            "bytes=abc",
            "bytes=",
            "bytes=,",
            "bytes",
            "bytes 0-1",
            "bytes =0-1",
            "bytes=-",
            "bytes=0",
            "bytes=0-1-2",
            "bytes=--1",
            "bytes=+1-2",
            "bytes=0 - 1",
            "bytes=0x10-20",
            "bytes=1-2,abc",
            "bytes=0-1;2-3",
            "",
        ] {
            assert_eq!(range(bad, 100), RangeAnswer::Full, "{bad:?}");
        }
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(range("bytes=100-200", 50), RangeAnswer::Unsatisfiable);
        assert_eq!(range("bytes=50-", 50), RangeAnswer::Unsatisfiable);
        assert_eq!(range("bytes=-0", 50), RangeAnswer::Unsatisfiable);
        assert_eq!(range("bytes=-0,60-70", 50), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn unsatisfiable_parts_of_a_list_are_dropped() {
        assert_eq!(range("bytes=100-200,0-9", 50), part(0, 9));
        assert_eq!(range("bytes=-0, 10-", 50), part(10, 49));
        assert_eq!(range("bytes=60-,-5", 50), part(45, 49));
    }

    #[test]
    fn empty_body() {
        assert_eq!(range("bytes=0-", 0), RangeAnswer::Unsatisfiable);
        assert_eq!(range("bytes=0-0", 0), RangeAnswer::Unsatisfiable);
        assert_eq!(range("bytes=-0", 0), RangeAnswer::Unsatisfiable);
        // Satisfiable per RFC 9110 §14.1.2 but not expressible as a 206.
        assert_eq!(range("bytes=-5", 0), RangeAnswer::Full);
        assert_eq!(range("bytes=abc", 0), RangeAnswer::Full);
    }

    #[test]
    fn several_ranges_coalesce_or_fall_back_to_full() {
        // Adjacent and overlapping ranges become one part, in any order.
        assert_eq!(range("bytes=0-4,5-9", 100), part(0, 9));
        assert_eq!(range("bytes=5-9,0-4", 100), part(0, 9));
        assert_eq!(range("bytes=0-9,5-14", 100), part(0, 14));
        assert_eq!(range("bytes=0-,0-", 100), part(0, 99));
        assert_eq!(range("bytes=-10,80-", 100), part(80, 99));
        assert_eq!(range("bytes=0-9,2-3", 100), part(0, 9));
        // Disjoint parts would need multipart/byteranges: send it all.
        assert_eq!(range("bytes=0-4,10-14", 100), RangeAnswer::Full);
        assert_eq!(range("bytes=0-0,-1", 100), RangeAnswer::Full);
    }

    #[test]
    fn abusive_range_sets_are_ignored() {
        // More than two ranges overlapping.
        assert_eq!(range("bytes=0-5,3-8,6-10", 100), RangeAnswer::Full);
        let many_small: Vec<String> = (0..50).map(|i| format!("{i}-{}", i + 1)).collect();
        let value = format!("bytes={}", many_small.join(","));
        assert_eq!(range(&value, 1000), RangeAnswer::Full);
        // Too many range-specs, even adjacent ones.
        let adjacent = |n: u64| {
            let specs: Vec<String> = (0..n).map(|i| format!("{i}-{i}")).collect();
            format!("bytes={}", specs.join(","))
        };
        let limit = MAX_RANGES as u64;
        assert_eq!(range(&adjacent(limit), 1000), part(0, limit - 1));
        assert_eq!(range(&adjacent(limit + 1), 1000), RangeAnswer::Full);
    }

    #[test]
    fn huge_numbers_saturate_without_panicking() {
        let huge = "99999999999999999999999";
        assert_eq!(range(&format!("bytes=0-{huge}"), 100), part(0, 99));
        assert_eq!(
            range(&format!("bytes={huge}-"), 100),
            RangeAnswer::Unsatisfiable
        );
        assert_eq!(range(&format!("bytes=-{huge}"), 100), part(0, 99));
        assert_eq!(
            range(&format!("bytes={huge}-{huge}"), 100),
            RangeAnswer::Unsatisfiable
        );
        // first > last is still seen when both saturate.
        assert_eq!(
            range("bytes=99999999999999999999999-99999999999999999999998", 100),
            RangeAnswer::Full
        );
        assert_eq!(range(&format!("bytes={huge}-5"), 100), RangeAnswer::Full);
        assert_eq!(range("bytes=0005-0010", 100), part(5, 10));
        let max = u64::MAX;
        assert_eq!(range(&format!("bytes=0-{max}"), max), part(0, max - 1));
        assert_eq!(range("bytes=-1", max), part(max - 1, max - 1));
        assert_eq!(
            ByteRange {
                first: 0,
                last: max
            }
            .len(),
            max
        );
    }

    #[test]
    fn if_range_with_entity_tags() {
        assert_eq!(with_if_range(ETAG, Some(ETAG)), part(0, 9));
        assert_eq!(with_if_range(" \"v1\" ", Some("\"v1\" ")), part(0, 9));
        // Weak tags never match for If-Range, on either side.
        assert_eq!(
            with_if_range("W/\"v1\"", Some("W/\"v1\"")),
            RangeAnswer::Full
        );
        assert_eq!(with_if_range("W/\"v1\"", Some(ETAG)), RangeAnswer::Full);
        assert_eq!(with_if_range(ETAG, Some("W/\"v1\"")), RangeAnswer::Full);
        assert_eq!(with_if_range("\"v2\"", Some(ETAG)), RangeAnswer::Full);
        assert_eq!(with_if_range(ETAG, None), RangeAnswer::Full);
        assert_eq!(with_if_range("\"v1", Some("\"v1")), RangeAnswer::Full);
        assert_eq!(with_if_range("", Some(ETAG)), RangeAnswer::Full);
    }

    #[test]
    fn if_range_with_dates() {
        assert_eq!(with_if_range(LM, Some(ETAG)), part(0, 9));
        assert_eq!(with_if_range(&format!(" {LM} "), None), part(0, 9));
        assert_eq!(
            with_if_range("Tue, 02 Jan 2024 00:00:00 GMT", Some(ETAG)),
            RangeAnswer::Full
        );
        // Same instant, other format: not an exact match.
        assert_eq!(
            with_if_range("Monday, 01-Jan-24 00:00:00 GMT", Some(ETAG)),
            RangeAnswer::Full
        );
        let no_lm = answer(Some("bytes=0-9"), Some(LM), 100, Some(ETAG), None);
        assert_eq!(no_lm, RangeAnswer::Full);
        // Not a date at all, even if it equals the stored value.
        let junk = answer(Some("bytes=0-9"), Some("junk"), 100, None, Some("junk"));
        assert_eq!(junk, RangeAnswer::Full);
    }

    #[test]
    fn if_range_gates_even_unsatisfiable_ranges() {
        let stale = answer(Some("bytes=500-"), Some("\"v0\""), 100, Some(ETAG), None);
        assert_eq!(stale, RangeAnswer::Full);
        let current = answer(Some("bytes=500-"), Some(ETAG), 100, Some(ETAG), None);
        assert_eq!(current, RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn if_range_without_range_is_full() {
        assert_eq!(
            answer(None, Some(ETAG), 100, Some(ETAG), Some(LM)),
            RangeAnswer::Full
        );
        assert_eq!(
            answer(None, Some(LM), 100, Some(ETAG), Some(LM)),
            RangeAnswer::Full
        );
    }

    #[test]
    fn content_range_values() {
        let r = ByteRange { first: 0, last: 99 };
        assert_eq!(r.len(), 100);
        assert!(!r.is_empty());
        assert_eq!(r.content_range(1234), "bytes 0-99/1234");
        assert_eq!(unsatisfied_content_range(1234), "bytes */1234");
        assert_eq!(
            part(0, 99).content_range(1234).as_deref(),
            Some("bytes 0-99/1234")
        );
        assert_eq!(
            RangeAnswer::Unsatisfiable.content_range(1234).as_deref(),
            Some("bytes */1234")
        );
        assert_eq!(RangeAnswer::Full.content_range(1234), None);
        let backwards = ByteRange { first: 5, last: 4 };
        assert_eq!(backwards.len(), 0);
        assert!(backwards.is_empty());
    }
}
