//! Whether an origin response is stored, and starting its entry. Shared by
//! the proxy handler and the populator, so both decide alike.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderMap};
use futures_util::StreamExt;
use http_cache_semantics::CachePolicy;

use super::{forward, http_compat};
use crate::actors::cache_store::{BeginStore, CacheStore, StoreSink};
use crate::actors::Mailbox;
use crate::cache::key::{self, VaryValues};
use crate::cache::{policy, CacheKey, EntryHead};

/// The entry head to store and its time to live, when RFC 9111 (as a shared
/// cache) lets caje store this response and the origin gave it freshness.
/// `response_headers` are the origin's headers as caje passes them on.
pub fn storable_head(
    key: &CacheKey,
    request_headers: &HeaderMap,
    origin: &awc::ClientResponse,
    response_headers: &HeaderMap,
) -> Option<(EntryHead, u64)> {
    // Cookies belong to one user; a shared copy would hand them to everyone.
    if response_headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    let names = key::vary_names(origin.headers())?;
    let vary: VaryValues = key::vary_values(&names, request_headers);
    let now = SystemTime::now();
    let policy = CachePolicy::new_options(
        &http_compat::policy_request(key, request_headers, &vary),
        &http_compat::policy_response(origin.status(), origin.headers()),
        now,
        policy::options(),
    );
    if !policy::is_storable(&policy, now, origin.headers()) {
        return None;
    }
    let ttl = policy.time_to_live(now).as_secs();
    let stored_headers = response_headers
        .iter()
        .filter(|(name, _)| **name != header::AGE)
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let head = EntryHead {
        tags: purge_tags(response_headers),
        invalidated: false,
        key: key.clone(),
        vary,
        status: origin.status().as_u16(),
        headers: stored_headers,
        policy,
        stored_at_ms: now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    Some((head, ttl))
}

/// Purge tags from `Surrogate-Key` (space-separated) and `Cache-Tag`
/// (comma-separated), without duplicates.
pub fn purge_tags(response_headers: &HeaderMap) -> Vec<String> {
    let surrogate = response_headers
        .get_all("surrogate-key")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split_ascii_whitespace());
    let cache_tag = response_headers
        .get_all("cache-tag")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let mut tags: Vec<String> = surrogate
        .chain(cache_tag)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// Starts an entry; `None` when the store cannot (it counts and logs why).
pub async fn begin_store(
    cache: &Mailbox<CacheStore>,
    head: EntryHead,
    expected_len: Option<u64>,
) -> Option<StoreSink> {
    match cache.send(BeginStore { head, expected_len }).await {
        Ok(Ok(sink)) => Some(sink),
        Ok(Err(_)) => None,
        Err(e) => {
            tracing::error!(error = %e, "cache store is not answering");
            None
        }
    }
}

/// Stores a whole origin response when allowed, reading its body to the
/// end (for fetches nobody waits on: the populator, background refreshes).
/// `Ok(true)` once it is stored and lookups find it.
pub async fn store_fully(
    cache: &Mailbox<CacheStore>,
    key: &CacheKey,
    request_headers: &HeaderMap,
    response: awc::ClientResponse,
) -> Result<bool, awc::error::PayloadError> {
    let passed_on = forward::response_headers(response.headers());
    let Some((head, _ttl)) = storable_head(key, request_headers, &response, &passed_on) else {
        return Ok(false);
    };
    let len = content_length(response.headers());
    let Some(sink) = begin_store(cache, head, len).await else {
        return Ok(false);
    };
    let mut body = std::pin::pin!(response);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if !sink.write(chunk).await {
            return Ok(false);
        }
    }
    Ok(sink.commit().await)
}

/// The `Content-Length` an origin announced.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
