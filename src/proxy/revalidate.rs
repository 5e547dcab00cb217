//! A stored response updated by the origin's 304 Not Modified (RFC 9111
//! §3.2 and §4.3.4): the 304's header fields replace the stored ones, the
//! body is kept, and freshness starts again.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use http_cache_semantics::CachePolicy;

use super::forward;
use super::http_compat;
use super::origin::Revalidate;
use crate::cache::conditional::EntityTag;
use crate::cache::{policy, EntryHead};

/// Fields a 304 may not change: they describe the stored body.
const KEPT_FROM_STORED: [HeaderName; 4] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::TRANSFER_ENCODING,
    header::CONTENT_RANGE,
];

fn stored_value<'a>(head: &'a EntryHead, name: &str) -> Option<&'a [u8]> {
    head.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// The validators to revalidate a stored response with.
pub fn validators(head: &EntryHead) -> Revalidate {
    let value = |name| stored_value(head, name).and_then(|v| HeaderValue::from_bytes(v).ok());
    Revalidate {
        etag: value("etag"),
        last_modified: value("last-modified"),
    }
}

/// Whether a 304 speaks of this stored response: its validator, if it has
/// one, must be the stored one.
fn matches(head: &EntryHead, not_modified: &HeaderMap) -> bool {
    let text = |v: &HeaderValue| v.to_str().ok().map(str::to_owned);
    if let Some(new) = not_modified.get(header::ETAG).and_then(text) {
        let stored = stored_value(head, "etag").and_then(|v| std::str::from_utf8(v).ok());
        return match (EntityTag::parse(&new), stored.and_then(EntityTag::parse)) {
            (Some(new), Some(stored)) => new.weak_eq(&stored),
            _ => false,
        };
    }
    if let Some(new) = not_modified.get(header::LAST_MODIFIED) {
        return stored_value(head, "last-modified") == Some(new.as_bytes());
    }
    true
}

/// What becomes of the stored copy after a 304.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Its head is replaced by the updated one.
    Update,
    /// It stays as it was: this request may not store (its `no-store`, or
    /// credentials the response does not allow sharing), but a request
    /// directive never removes what is stored (RFC 9111 §5.2.1.5).
    AsStored,
    /// The origin's answer now forbids storing it for anyone.
    Drop,
}

/// A stored response after the origin's 304.
pub struct Revalidated {
    pub head: EntryHead,
    pub keep: Keep,
}

/// The stored head updated by a 304, or `None` when the 304 is about
/// another response than the stored one.
pub fn updated_head(
    stored: &EntryHead,
    request_headers: &HeaderMap,
    not_modified: &HeaderMap,
    now: SystemTime,
) -> Option<Revalidated> {
    if !matches(stored, not_modified) {
        return None;
    }
    let fresh = forward::response_headers(not_modified);
    // A 304's cookie is for the client whose request it answers, never
    // for the stored copy everyone gets.
    let replaced = |name: &str| {
        fresh.contains_key(name)
            && name != "age"
            && name != "set-cookie"
            && !KEPT_FROM_STORED.iter().any(|kept| kept.as_str() == name)
    };
    let mut headers: Vec<(String, Vec<u8>)> = stored
        .headers
        .iter()
        .filter(|(name, _)| !replaced(name))
        .cloned()
        .collect();
    for (name, value) in &fresh {
        if replaced(name.as_str()) {
            headers.push((name.as_str().to_owned(), value.as_bytes().to_vec()));
        }
    }
    let mut policy_headers = HeaderMap::new();
    for (name, value) in &headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            policy_headers.append(name, value);
        }
    }
    if let Some(age) = not_modified.get(header::AGE) {
        policy_headers.insert(header::AGE, age.clone());
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let response = http_compat::policy_response(status, &policy_headers);
    let policy_for = |request_headers: &HeaderMap| {
        CachePolicy::new_options(
            &http_compat::policy_request(&stored.key, request_headers, &stored.vary),
            &response,
            now,
            policy::options(),
        )
    };
    // The stored copy is judged as any client would find it: without this
    // request's directives or credentials.
    let policy = policy_for(&HeaderMap::new());
    let keep = if !policy::is_storable(&policy, now, &policy_headers) {
        Keep::Drop
    } else if policy::is_storable(&policy_for(request_headers), now, &policy_headers) {
        Keep::Update
    } else {
        Keep::AsStored
    };
    let head = EntryHead {
        headers,
        policy,
        // Validated again: no longer soft-purged.
        invalidated: false,
        stored_at_ms: now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        ..stored.clone()
    };
    Some(Revalidated { head, keep })
}
