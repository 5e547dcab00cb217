//! The properties the fuzz targets in `fuzz/` check, one function per target.
//! `tests/fuzz_corpora.rs` replays every seed and corpus file
//! (`fuzz/seeds/<target>/`, `fuzz/corpus/<target>/`) through the same
//! function, so the checks live in one place and a crash once found stays
//! fixed. Each function panics when a property fails and ignores input it
//! cannot use.
//!
//! Inputs are text where the code under test reads text, so corpora can be
//! seeded with real header values and config files: header blocks are
//! `name: value` lines (lines that are not a valid field are skipped) and
//! blocks are separated by an empty line.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use http_cache_semantics::{BeforeRequest, CachePolicy};

use crate::cache::directives::{self, Directives};
use crate::cache::entry::{self, DecodedEntry, EntryHead, BODY_LEN_OFFSET, PREFIX_LEN};
use crate::cache::http_compat;
use crate::cache::key::{self, CacheKey, VariantKey};
use crate::cache::status::{CacheStatus, Forward, MAX_SF_INTEGER};
use crate::cache::{freshness, policy, range};
use crate::config::{ConfigError, Settings};

/// A fixed "now" (2025-01-01), so that a failing input fails every time.
const NOW: Duration = Duration::from_secs(1_735_689_600);

// ---------------------------------------------------------------- entries

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

// ---------------------------------------------------------------- config

/// Config files: [`Settings::parse`] never panics; what it accepts is
/// valid throughout, and every error on a file with an `[[origin]]` names a
/// line of the file.
pub fn config(data: &[u8]) {
    // caje reads config files with `read_to_string`: other bytes never get here.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Settings::parse("fuzz.toml", text) {
        Ok(settings) => check_settings(&settings),
        Err(ConfigError::Invalid {
            line, key, message, ..
        }) => {
            let lines = text.matches('\n').count() + 1;
            assert!(
                (1..=lines).contains(&line),
                "line {line} of a {lines}-line file"
            );
            assert!(key.is_none_or(|k| !k.is_empty()), "empty key");
            assert!(!message.is_empty(), "empty message");
        }
        Err(ConfigError::Missing { .. }) => {
            let origins = text
                .parse::<toml::Table>()
                .ok()
                .and_then(|t| t.get("origin").and_then(|o| o.as_array()).map(Vec::len));
            assert!(
                origins.is_none_or(|n| n == 0),
                "a file with {origins:?} origins reported as having none"
            );
        }
        Err(e) => panic!("parsing text cannot fail with {e}"),
    }
}

fn check_settings(s: &Settings) {
    assert!(!s.origins.is_empty());
    for (i, o) in s.origins.iter().enumerate() {
        assert!(!o.host.is_empty());
        assert_eq!(o.host, o.host.to_ascii_lowercase());
        assert_eq!(crate::config::normalize_host(&o.host), o.host, "no port");
        assert!(
            s.origins[..i].iter().all(|p| p.host != o.host),
            "duplicate host"
        );
        assert_eq!(s.origin_for(&o.host), Some(o));
        assert_eq!(
            s.origin_for(&format!("{}:8080", o.host.to_ascii_uppercase())),
            Some(o)
        );
        let rest = o.upstream.strip_prefix("http://");
        assert!(
            rest.is_some_and(|r| !r.is_empty() && !r.contains('/')),
            "{}",
            o.upstream
        );
        assert!(!o.timeout.is_zero());
    }
    for d in [
        s.manifest_batch_window,
        s.halt_timeout,
        s.populate_interval,
        s.coalesce_timeout,
        s.purge_poll_interval,
    ] {
        assert!(!d.is_zero());
    }
    assert!(s.workers.is_none_or(|w| w > 0));
    assert!(s.populate_concurrency > 0 && s.populate_rate > 0);
    assert!(s.max_size.is_none_or(|m| m > 0));
    assert!(
        s.admin_token.is_none(),
        "the token never comes from the file"
    );
}

// ---------------------------------------------------------------- Vary

/// Vary and cache keys. Input: a block of three lines (method, host, path
/// and query), the response's header block, the request's header block.
/// `vary_names` is normalised and independent of field order; `vary_values`
/// is idempotent (a request carrying the normalised values selects the same
/// variant, and the policy agrees); file names round-trip.
pub fn vary(data: &[u8]) {
    let mut blocks = blocks(data);
    let key_lines: Vec<String> = blocks
        .next()
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let part = |i: usize| key_lines.get(i).map_or("", String::as_str);
    let key = CacheKey::new(part(0), part(1), part(2));
    let response = header_map(blocks.next().unwrap_or_default());
    let request = header_map(blocks.next().unwrap_or_default());

    check_file_names(&key, &String::from_utf8_lossy(data));

    let names = key::vary_names(&response);
    let mut reversed = HeaderMap::new();
    for (name, value) in response.iter().collect::<Vec<_>>().into_iter().rev() {
        reversed.append(name.clone(), value.clone());
    }
    assert_eq!(key::vary_names(&reversed), names, "order of Vary fields");
    let Some(names) = names else {
        let star = response.get_all("vary").any(|v| {
            v.to_str()
                .map_or(true, |t| t.split(',').any(|n| n.trim() == "*"))
        });
        assert!(star, "None without `*`");
        return;
    };
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "sorted, no duplicates"
    );
    for name in &names {
        assert!(!name.is_empty() && !name.contains(',') && name.trim() == name);
        assert_eq!(*name, name.to_ascii_lowercase());
    }

    let values = key::vary_values(&names, &request);
    assert_eq!(values.len(), names.len());
    let mut normalised = request.clone();
    for ((name, value), expected) in values.iter().zip(&names) {
        assert_eq!(name, expected);
        let present =
            HeaderName::from_bytes(name.as_bytes()).is_ok_and(|n| request.contains_key(n));
        assert_eq!(value.is_some(), present, "{name}: None only when absent");
        if let (Ok(name), Some(value)) = (HeaderName::from_bytes(name.as_bytes()), value) {
            // `policy_request` hands the policy this value as a field.
            let Ok(value) = HeaderValue::from_bytes(value) else {
                panic!("normalised {name} value {value:?} is no field value");
            };
            normalised.insert(name, value);
        }
    }
    assert_eq!(
        key::vary_values(&names, &normalised),
        values,
        "normalising is idempotent"
    );
    let variant = VariantKey::new(&key, &values);
    assert_eq!(
        VariantKey::from_file_name(&variant.file_name()),
        Some(variant)
    );

    // The policy sees the same normalised values, so it takes both requests
    // for the same variant.
    let mut response = response;
    response.insert(
        HeaderName::from_static("cache-control"),
        HeaderValue::from_static("max-age=60"),
    );
    let now = UNIX_EPOCH + NOW;
    let policy = CachePolicy::new_options(
        &http_compat::policy_request(&key, &request, &values),
        &http_compat::policy_response(StatusCode::OK, &response),
        now,
        policy::options(),
    );
    let fresh = |headers: &HeaderMap| {
        let req = http_compat::policy_request(&key, headers, &values);
        matches!(policy.before_request(&req, now), BeforeRequest::Fresh(_))
    };
    assert_eq!(
        fresh(&request),
        fresh(&normalised),
        "policy and variant disagree"
    );
}

/// `from_file_name` parses exactly what `file_name` makes.
fn check_file_names(key: &CacheKey, text: &str) {
    let vk = VariantKey::new(key, &Vec::new());
    let name = vk.file_name();
    assert_eq!(name.len(), 129);
    assert!(name
        .chars()
        .all(|c| matches!(c, '0'..='9' | 'a'..='f' | '-')));
    assert_eq!(VariantKey::from_file_name(&name), Some(vk));
    for line in text.lines() {
        if let Some(parsed) = VariantKey::from_file_name(line) {
            assert_eq!(parsed.file_name(), line.to_ascii_lowercase());
        }
    }
}

// ---------------------------------------------------------------- Cache-Status

const DETAILS: [&str; 3] = ["stale-while-revalidate", "stale-if-error", "only-if-cached"];
const FORWARDS: [Forward; 6] = [
    Forward::UriMiss,
    Forward::VaryMiss,
    Forward::Miss,
    Forward::Method,
    Forward::Request,
    Forward::Stale,
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
        detail: DETAILS.get(usize::from(bytes[12])).copied(),
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
            ("detail", Some(v)) if is_sf_token(v) => {
                status.detail = Some(*DETAILS.iter().find(|d| **d == v)?)
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

/// RFC 8941 §3.3.4: `( ALPHA / "*" ) *( tchar / ":" / "/" )`.
fn is_sf_token(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '*')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c))
}

// ---------------------------------------------------------------- Cache-Control

/// Cache-Control handling. Input: a response block (first line the status
/// code, then header lines) and a request header block.
/// `Directives::parse(d.to_field())` is `d`; the fields handed to
/// `http-cache-semantics` say exactly what caje read; the library finds
/// freshness only where caje sees explicit freshness, and storage only
/// where caje's directives allow it.
pub fn cache_control(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = Directives::parse(text.lines());
    check_round_trip(&parsed);

    let mut blocks = blocks(data);
    let mut response_block = blocks.next().unwrap_or_default();
    let mut status = StatusCode::OK;
    if let Some(end) = response_block.iter().position(|&b| b == b'\n') {
        if let Ok(s) = StatusCode::from_bytes(&response_block[..end]) {
            status = s;
            response_block = &response_block[end + 1..];
        }
    }
    let response = header_map(response_block);
    let request = header_map(blocks.next().unwrap_or_default());
    let text_values = |headers: &HeaderMap, name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    };

    let (resp, targeted) = directives::response(&response);
    check_round_trip(&resp);
    let source = if targeted {
        "cdn-cache-control"
    } else {
        "cache-control"
    };
    let source_values = text_values(&response, source);
    assert_eq!(
        resp,
        Directives::parse(source_values.iter().map(String::as_str))
    );

    let req = directives::request(&request);
    check_round_trip(&req);
    let pragma_no_cache = text_values(&request, "pragma")
        .iter()
        .any(|p| p.to_ascii_lowercase().contains("no-cache"));
    if !request.contains_key("cache-control") && pragma_no_cache {
        assert_eq!(req, Directives::parse(["no-cache"]));
    } else {
        let cc = text_values(&request, "cache-control");
        assert_eq!(req, Directives::parse(cc.iter().map(String::as_str)));
    }

    let key = CacheKey::new("GET", "example.com", "/");
    let policy_req = http_compat::policy_request(&key, &request, &Vec::new());
    for name in policy_req.headers.keys() {
        assert!(
            ["host", "cache-control", "authorization"].contains(&name.as_str()),
            "{name}"
        );
    }
    if let Some(auth) = policy_req.headers.get("authorization") {
        assert_eq!(auth, "redacted");
    }
    assert_eq!(library_field(&policy_req.headers), req);

    let policy_res = http_compat::policy_response(status, &response);
    assert_eq!(policy_res.status.as_u16(), status.as_u16());
    assert!(!policy_res.headers.contains_key("cdn-cache-control"));
    if targeted {
        assert!(!policy_res.headers.contains_key("expires"));
        assert!(!policy_res.headers.contains_key("pragma"));
    }
    let mut expected = resp.without("proxy-revalidate");
    let revalidate = resp.has("proxy-revalidate") || resp.has("s-maxage");
    if revalidate && !resp.has("must-revalidate") {
        let field = [expected.to_field(), "must-revalidate".to_owned()];
        expected = Directives::parse(field.iter().map(String::as_str).filter(|f| !f.is_empty()));
    }
    assert_eq!(library_field(&policy_res.headers), expected);
    for name in response.keys() {
        let replaced = match name.as_str() {
            "cache-control" | "cdn-cache-control" => true,
            "expires" | "pragma" => targeted,
            _ => false,
        };
        // http 0.2 (actix) takes a few names http 1.x refuses, such as
        // ones with `"`: no field the library reads is among them.
        let http1_name = http1::HeaderName::from_bytes(name.as_str().as_bytes()).is_ok();
        if !replaced && http1_name {
            let sent: Vec<&[u8]> = response
                .get_all(name)
                .map(|v| clamped_age(name, v.as_bytes()))
                .collect();
            let got: Vec<&[u8]> = policy_res
                .headers
                .get_all(name.as_str())
                .iter()
                .map(http1::HeaderValue::as_bytes)
                .collect();
            assert_eq!(got, sent, "{name} passed on unchanged");
        }
    }

    let now = UNIX_EPOCH + NOW;
    let policy = CachePolicy::new_options(&policy_req, &policy_res, now, policy::options());
    // Panics on overflow, as the hit path computes it later on.
    let later = now + Duration::from_secs(86_400);
    let _ = (policy.age(later), policy.time_to_live(later));
    let positive = |name: &str| resp.seconds(name).is_some_and(|s| s > 0);
    if !policy.time_to_live(now).is_zero() {
        let expires = !targeted && response.contains_key("expires");
        assert!(
            positive("s-maxage") || positive("max-age") || expires,
            "fresh without explicit freshness: {resp:?}"
        );
    }
    if resp.has("no-store") || resp.has("private") {
        assert!(!policy.is_storable(), "stored despite {resp:?}");
    }
}

/// What `policy_response` hands on for a field value: an `Age` of digits
/// above 2^31 becomes 2^31 (RFC 9111 §1.2.2), anything else is unchanged.
fn clamped_age<'a>(name: &HeaderName, value: &'a [u8]) -> &'a [u8] {
    let digits = value.trim_ascii();
    let all_digits = !digits.is_empty() && digits.iter().all(u8::is_ascii_digit);
    // Compared as decimal strings, so any length works.
    let significant = &digits[digits.iter().take_while(|&&b| b == b'0').count()..];
    let max = b"2147483648".as_slice();
    let huge = all_digits
        && (significant.len() > max.len() || (significant.len() == max.len() && significant > max));
    if name == "age" && huge {
        b"2147483648"
    } else {
        value
    }
}

/// `to_field` prints what `parse` reads back unchanged; `seconds` and
/// `without` agree with `has`.
fn check_round_trip(d: &Directives) {
    let field = d.to_field();
    assert_eq!(&Directives::parse([field.as_str()]), d, "{field:?}");
    assert_eq!(
        Directives::parse([field.as_str()]).to_field(),
        field,
        "printing is stable"
    );
    for name in ["max-age", "s-maxage", "no-cache", "stale-if-error"] {
        if d.seconds(name).is_some() {
            assert!(d.has(name));
        }
        assert!(!d.without(name).has(name));
    }
}

/// The `Cache-Control` a message hands to `http-cache-semantics`, read back.
fn library_field(headers: &http1::HeaderMap) -> Directives {
    let values: Vec<&str> = headers
        .get_all(http1::header::CACHE_CONTROL)
        .iter()
        .map(|v| match v.to_str() {
            Ok(v) => v,
            Err(_) => panic!("Cache-Control handed on as non-text: {v:?}"),
        })
        .collect();
    assert!(values.len() <= 1, "one Cache-Control field");
    Directives::parse(values)
}

// ---------------------------------------------------------------- Range

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

// ---------------------------------------------------------------- helpers

fn assert_header_value(text: &str) {
    assert!(
        HeaderValue::from_str(text).is_ok(),
        "{text:?} is not a valid header value"
    );
}

/// Splits input at empty lines.
fn blocks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.windows(2).position(|w| w == b"\n\n") {
            Some(at) => {
                rest = Some(&current[at + 2..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Header fields from `name: value` lines, in order.
fn header_map(block: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in block.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

// ---------------------------------------------------------------- allocation

/// A global allocator that counts the bytes live on each thread, so that
/// [`peak_allocation`] can measure a call. Install it in a binary that runs
/// [`entry`]:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: caje::fuzzing::CountingAllocator = caje::fuzzing::CountingAllocator;
/// ```
pub struct CountingAllocator;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: allocations during thread teardown go uncounted.
    let _ = LIVE.try_with(|live| {
        let now = live.get().wrapping_add(delta);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; only counted.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Runs `f` and returns the most bytes it held at once on this thread.
/// Panics unless [`CountingAllocator`] is the global allocator, so that a
/// limit checked with it can never pass by not measuring.
pub fn peak_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let probe = std::hint::black_box(vec![0u8; 4096]);
    drop(probe);
    let probed = PEAK.with(Cell::get) - start;
    assert!(
        probed >= 4096,
        "install caje::fuzzing::CountingAllocator as the global allocator"
    );
    PEAK.with(|p| p.set(start));
    let result = f();
    let peak = PEAK.with(Cell::get) - start;
    (result, peak.max(0) as usize)
}
