//! Partial content (RFC 9111 §3.3, §3.4): a `206` from the origin is stored
//! as a partial entry holding one contiguous byte range of the
//! representation; later ranges it covers are served from it, and a
//! request reaching past its end asks the origin for the missing part
//! only, joined to the stored part when both are of the same
//! representation (the same strong `ETag`, or the same `Last-Modified`).
//! Pure decisions; the proxy does the fetching and joining.

use actix_web::http::header::{self, HeaderMap};

use super::conditional::EntityTag;
use super::range::{self, ByteRange, RangeAnswer};
use super::EntryHead;

/// What a partial entry holds: `range` of a representation of `complete` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub range: ByteRange,
    pub complete: u64,
}

/// `bytes first-last/complete` (RFC 9110 §14.4), with a known complete
/// length and the range inside it.
pub fn parse_content_range(value: &str) -> Option<Held> {
    let (unit, rest) = value.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, complete) = rest.trim().split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let number = |text: &str| -> Option<u64> {
        let digits = text.trim();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let held = Held {
        range: ByteRange {
            first: number(first)?,
            last: number(last)?,
        },
        complete: number(complete)?,
    };
    (held.range.first <= held.range.last && held.range.last < held.complete).then_some(held)
}

/// The part a `206` from the origin holds, when it may be stored: one
/// range (not multipart) with a known complete length, and a validator
/// that tells a later part of the same representation from another's (a
/// strong `ETag`, else `Last-Modified`).
pub fn storable_part(response_headers: &HeaderMap) -> Option<Held> {
    let text = |name| response_headers.get(name).and_then(|v| v.to_str().ok());
    let held = parse_content_range(text(header::CONTENT_RANGE)?)?;
    let strong_etag = text(header::ETAG)
        .and_then(EntityTag::parse)
        .is_some_and(|tag| !tag.weak);
    (strong_etag || text(header::LAST_MODIFIED).is_some()).then_some(held)
}

/// The part a stored entry holds, when it is a partial entry.
pub fn held(head: &EntryHead) -> Option<Held> {
    (head.status == 206)
        .then(|| head.field_str("content-range"))
        .flatten()
        .and_then(parse_content_range)
}

/// What a partial entry does for a `GET` with these `Range` and `If-Range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Answered from the stored part: a range inside it, or a 416.
    Covered(RangeAnswer),
    /// The request reaches past one end of the stored part: `missing`
    /// (before or after it) is asked of the origin, and `wanted` (`None`:
    /// the whole representation) is sent from the stored part and it.
    Extend {
        wanted: Option<ByteRange>,
        missing: ByteRange,
    },
    /// The stored part cannot help (what is wanted lies apart from it, or
    /// reaches past both its ends): the request goes to the origin as on a
    /// miss.
    Refetch,
}

pub fn plan(held: Held, range: Option<&str>, if_range: Option<&str>, head: &EntryHead) -> Plan {
    let answer = range::answer(
        range,
        if_range,
        held.complete,
        head.field_str("etag"),
        head.field_str("last-modified"),
    );
    let wanted = match answer {
        RangeAnswer::Unsatisfiable => return Plan::Covered(answer),
        RangeAnswer::Partial(part) => Some(part),
        RangeAnswer::Full => None,
    };
    let span = wanted.unwrap_or(ByteRange {
        first: 0,
        last: held.complete.saturating_sub(1),
    });
    let stored = held.range;
    if wanted.is_some() && span.first >= stored.first && span.last <= stored.last {
        return Plan::Covered(answer);
    }
    let touches_start = span.first >= stored.first && span.first <= stored.last.saturating_add(1);
    if touches_start && span.last > stored.last {
        return Plan::Extend {
            wanted,
            missing: ByteRange {
                first: stored.last + 1,
                last: span.last,
            },
        };
    }
    let touches_end = span.last <= stored.last && span.last.saturating_add(1) >= stored.first;
    if touches_end && span.first < stored.first {
        return Plan::Extend {
            wanted,
            missing: ByteRange {
                first: span.first,
                last: stored.first - 1,
            },
        };
    }
    Plan::Refetch
}

/// The `If-Range` the missing part is asked with: the stored strong
/// `ETag`, else its `Last-Modified`, so the origin answers a part only of
/// the stored representation.
pub fn if_range(head: &EntryHead) -> Option<&str> {
    head.field_str("etag")
        .filter(|tag| EntityTag::parse(tag).is_some_and(|t| !t.weak))
        .or_else(|| head.field_str("last-modified"))
}

/// Whether an origin's answer to the request for `missing` is exactly that
/// part of the stored representation, so that the two may be joined.
pub fn joins(
    head: &EntryHead,
    held: Held,
    missing: ByteRange,
    status: u16,
    answer: &HeaderMap,
) -> bool {
    let text = |name| answer.get(name).and_then(|v| v.to_str().ok());
    let part = text("content-range").and_then(parse_content_range);
    let same_part = part
        == Some(Held {
            range: missing,
            complete: held.complete,
        });
    let same_representation = match (head.field_str("etag"), text("etag")) {
        (Some(stored), Some(new)) => match (EntityTag::parse(stored), EntityTag::parse(new)) {
            (Some(stored), Some(new)) => stored.strong_eq(&new),
            _ => false,
        },
        (None, None) => {
            head.field_str("last-modified").is_some()
                && head.field_str("last-modified") == text("last-modified")
        }
        _ => false,
    };
    status == 206 && same_part && same_representation
}

/// The stored part and the missing one next to it, as one range.
pub fn joined(held: Held, missing: ByteRange) -> Held {
    Held {
        range: ByteRange {
            first: held.range.first.min(missing.first),
            last: held.range.last.max(missing.last),
        },
        ..held
    }
}

impl Held {
    /// Whether it is the whole representation.
    pub fn is_whole(&self) -> bool {
        self.range.first == 0 && self.range.last + 1 == self.complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_headers as map;

    fn part(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    fn head(content_range: &str) -> EntryHead {
        let req = http1::Request::get("/x")
            .header("host", "a")
            .body(())
            .expect("request");
        let res = http1::Response::builder()
            .header("cache-control", "max-age=60")
            .body(())
            .expect("response");
        let now = std::time::SystemTime::now();
        EntryHead {
            key: crate::cache::CacheKey::new("GET", "a", "/x"),
            vary: vec![],
            status: 206,
            headers: vec![
                ("etag".into(), b"\"v1\"".to_vec()),
                ("content-range".into(), content_range.as_bytes().to_vec()),
            ],
            policy: http_cache_semantics::CachePolicy::new_options(
                &req,
                &res,
                now,
                crate::cache::policy::options(),
            ),
            stored_at_ms: 0,
            tags: vec![],
            invalidated: false,
        }
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-99/200"),
            Some(Held {
                range: part(0, 99),
                complete: 200
            })
        );
        for bad in [
            "bytes 0-99/*",
            "bytes 5-4/200",
            "bytes 0-200/200",
            "items 0-1/2",
            "bytes */200",
            "bytes 0-+1/2",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
        assert!(storable_part(&map(&[
            ("content-range", "bytes 0-9/20"),
            ("etag", "\"a\"")
        ]))
        .is_some());
        assert!(storable_part(&map(&[
            ("content-range", "bytes 0-9/20"),
            ("etag", "W/\"a\"")
        ]))
        .is_none());
        assert!(storable_part(&map(&[
            ("content-range", "bytes 0-9/20"),
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")
        ]))
        .is_some());
        assert!(storable_part(&map(&[("content-range", "bytes 0-9/20")])).is_none());
    }

    #[test]
    fn plans() {
        let h = head("bytes 100-199/300");
        let middle = held(&h).expect("partial");
        let plan_for = |range: Option<&str>| plan(middle, range, None, &h);
        let s = head("bytes 100-299/300");
        let suffix = held(&s).expect("partial");
        for covered in ["bytes=100-299", "bytes=150-", "bytes=-100", "bytes=120-130"] {
            assert!(
                matches!(
                    plan(suffix, Some(covered), None, &s),
                    Plan::Covered(RangeAnswer::Partial(_))
                ),
                "{covered}"
            );
        }
        assert_eq!(
            plan_for(Some("bytes=400-")),
            Plan::Covered(RangeAnswer::Unsatisfiable)
        );
        assert_eq!(
            plan_for(Some("bytes=150-249")),
            Plan::Extend {
                wanted: Some(part(150, 249)),
                missing: part(200, 249)
            }
        );
        assert_eq!(
            plan_for(Some("bytes=200-")),
            Plan::Extend {
                wanted: Some(part(200, 299)),
                missing: part(200, 299)
            }
        );
        assert_eq!(
            plan_for(Some("bytes=0-149")),
            Plan::Extend {
                wanted: Some(part(0, 149)),
                missing: part(0, 99)
            }
        );
        assert_eq!(
            plan(suffix, None, None, &s),
            Plan::Extend {
                wanted: None,
                missing: part(0, 99)
            }
        );
        // Apart from the part, or past both its ends.
        assert_eq!(plan_for(Some("bytes=0-49")), Plan::Refetch);
        assert_eq!(plan_for(Some("bytes=250-")), Plan::Refetch);
        assert_eq!(plan_for(Some("bytes=50-249")), Plan::Refetch);
        assert_eq!(plan_for(None), Plan::Refetch);
        let prefix = head("bytes 0-99/300");
        let prefix_held = held(&prefix).expect("partial");
        assert_eq!(
            plan(prefix_held, None, None, &prefix),
            Plan::Extend {
                wanted: None,
                missing: part(100, 299)
            }
        );
        // An If-Range that fails asks for the whole representation.
        assert_eq!(
            plan(prefix_held, Some("bytes=0-9"), Some("\"other\""), &prefix),
            Plan::Extend {
                wanted: None,
                missing: part(100, 299)
            }
        );
    }

    #[test]
    fn only_the_very_part_of_the_same_representation_joins() {
        let h = head("bytes 0-99/300");
        let prefix = held(&h).expect("partial");
        let missing = part(100, 299);
        let answer = |cr: &str, etag: &str| map(&[("content-range", cr), ("etag", etag)]);
        assert!(joins(
            &h,
            prefix,
            missing,
            206,
            &answer("bytes 100-299/300", "\"v1\"")
        ));
        assert!(!joins(
            &h,
            prefix,
            missing,
            206,
            &answer("bytes 100-299/300", "\"v2\"")
        ));
        assert!(!joins(
            &h,
            prefix,
            missing,
            206,
            &answer("bytes 100-299/301", "\"v1\"")
        ));
        assert!(!joins(
            &h,
            prefix,
            missing,
            206,
            &answer("bytes 100-199/300", "\"v1\"")
        ));
        assert!(!joins(
            &h,
            prefix,
            missing,
            200,
            &answer("bytes 100-299/300", "\"v1\"")
        ));
        assert!(joined(prefix, missing).is_whole());
    }
}
