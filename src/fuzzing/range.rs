//! The `range` target: range requests answered from a stored body.

use super::assert_header_value;
use crate::cache::range;

/// Range requests on a stored body. Input lines: `Range` value, `If-Range`
/// value (empty: none), body length, `ETag`, `Last-Modified`. A 206 never
/// names a byte outside the body, its `Content-Range` is a valid header
/// value, and a range whose `If-Range` fails is never partial.
pub fn range(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut next = || lines.next().filter(|l| !l.is_empty());
    let range_value = next();
    let if_range = next();
    let len = next().and_then(|l| l.parse::<u64>().ok()).unwrap_or(100);
    let etag = next();
    let last_modified = next();
    let answer = range::answer(range_value, if_range, len, etag, last_modified);
    match &answer {
        range::RangeAnswer::Partial(r) => {
            assert!(r.first <= r.last && r.last < len, "{r:?} of {len} bytes");
            assert!(!r.is_empty() && r.len() <= len);
        }
        range::RangeAnswer::Unsatisfiable => assert!(range_value.is_some()),
        range::RangeAnswer::Full => {}
    }
    if let Some(value) = answer.content_range(len) {
        assert_header_value(&value);
    }
    if range_value.is_none() {
        assert_eq!(answer, range::RangeAnswer::Full);
    }
    // The same request without If-Range can only be more partial.
    if if_range.is_some() {
        let unconditional = range::answer(range_value, None, len, etag, last_modified);
        if answer != range::RangeAnswer::Full {
            assert_eq!(answer, unconditional);
        }
    }
}
