//! The `cache_status` target: `Cache-Status` values rendered from any status.

use super::assert_header_value;
use crate::cache::status::{CacheStatus, Forward, MAX_SF_INTEGER};

const DETAILS: [&str; 6] = [
    "stale-while-revalidate",
    "stale-if-error",
    "only-if-cached",
    "heuristic",
    "default-ttl",
    "\"rule /static/*\"",
];
const FORWARDS: [Forward; 8] = [
    Forward::UriMiss,
    Forward::VaryMiss,
    Forward::Miss,
    Forward::Method,
    Forward::Request,
    Forward::Stale,
    Forward::Bypass,
    Forward::Partial,
];

/// `Cache-Status` rendering. Input: bytes read as the fields of a
/// [`CacheStatus`]. The rendered value is a valid header value and an RFC
/// 8941 list member that parses back to the same status (`ttl` clamped to
/// the integers a structured field can carry).
pub fn cache_status(data: &[u8]) {
    let mut bytes = [0u8; 13];
    let n = data.len().min(bytes.len());
    bytes[..n].copy_from_slice(&data[..n]);
    let flags = bytes[0];
    let bit = |i: u8| flags & (1 << i) != 0;
    let status = CacheStatus {
        hit: bit(0),
        fwd: FORWARDS.get(usize::from(bytes[1])).copied(),
        fwd_status: bit(1).then(|| u16::from_le_bytes([bytes[2], bytes[3]])),
        stored: bit(2),
        collapsed: bit(3),
        ttl: bit(4).then(|| i64::from_le_bytes(bytes[4..12].try_into().unwrap_or_default())),
        detail: DETAILS
            .get(usize::from(bytes[12]))
            .map(|d| std::borrow::Cow::Borrowed(*d)),
    };
    let text = status.to_string();
    assert_header_value(&text);
    let mut expected = status.clone();
    expected.ttl = status.ttl.map(|t| t.clamp(-MAX_SF_INTEGER, MAX_SF_INTEGER));
    assert_eq!(
        parse_cache_status(&text).as_ref(),
        Some(&expected),
        "{text}"
    );
    let outcome = status.outcome();
    match (status.hit, status.fwd) {
        (true, _) => assert_eq!(outcome, "hit"),
        (false, Some(_)) => assert!(text.contains(&format!("fwd={outcome}"))),
        (false, None) => assert_eq!(outcome, "none"),
    }
}

/// Parses one `Cache-Status` list member caje writes, strictly by RFC 8941
/// (token item, `;key[=value]` parameters) and RFC 9211's parameter types;
/// `None` on any syntax error or unknown parameter.
fn parse_cache_status(text: &str) -> Option<CacheStatus> {
    let mut parts = text.split(';');
    if parts.next()? != crate::cache::status::CACHE_NAME {
        return None;
    }
    let mut status = CacheStatus::default();
    let mut seen = Vec::new();
    for param in parts {
        // RFC 8941 §3.1.2: parameters are `;` *SP key.
        let param = param.trim_start_matches(' ');
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (param, None),
        };
        if seen.contains(&key) {
            return None;
        }
        seen.push(key);
        match (key, value) {
            ("hit", None) => status.hit = true,
            ("stored", None) => status.stored = true,
            ("collapsed", None) => status.collapsed = true,
            ("fwd", Some(v)) => {
                status.fwd = Some(
                    *FORWARDS
                        .iter()
                        .find(|f| CacheStatus::forward(**f).outcome() == v && is_sf_token(v))?,
                )
            }
            ("fwd-status", Some(v)) => status.fwd_status = Some(sf_integer(v)?.try_into().ok()?),
            ("ttl", Some(v)) => status.ttl = Some(sf_integer(v)?),
            ("detail", Some(v)) if is_sf_token(v) || is_sf_string(v) => {
                status.detail = Some(std::borrow::Cow::Borrowed(
                    *DETAILS.iter().find(|d| **d == v)?,
                ))
            }
            _ => return None,
        }
    }
    Some(status)
}

fn sf_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let ok = (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| text.parse().ok()).flatten()
}

/// RFC 8941 §3.3.3: `DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE`,
/// of visible ASCII and spaces.
fn is_sf_string(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return false;
    };
    let mut escaped = false;
    for c in inner.chars() {
        match (escaped, c) {
            (true, '"' | '\\') => escaped = false,
            (true, _) => return false,
            (false, '\\') => escaped = true,
            (false, '"') => return false,
            (false, c) if c == ' ' || c.is_ascii_graphic() => {}
            _ => return false,
        }
    }
    !escaped
}

/// RFC 8941 §3.3.4: `( ALPHA / "*" ) *( tchar / ":" / "/" )`.
fn is_sf_token(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '*')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c))
}
