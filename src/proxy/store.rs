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
/// `response_headers` are the origin's headers as caje passes them on;
/// `cache_set_cookie` is the origin's setting of that name.
pub fn storable_head(
    key: &CacheKey,
    request_headers: &HeaderMap,
    origin: &awc::ClientResponse,
    response_headers: &HeaderMap,
    cache_set_cookie: bool,
) -> Option<(EntryHead, u64)> {
    // Cookies belong to one user: such a response is shared only when the
    // site allows it and the origin marks it public, and then without them.
    let with_cookie = origin.headers().contains_key(header::SET_COOKIE);
    if with_cookie && !(cache_set_cookie && policy::marked_public(origin.headers())) {
        return None;
    }
    let cookieless;
    let origin_headers = if with_cookie {
        cookieless = without_set_cookie(origin.headers());
        &cookieless
    } else {
        origin.headers()
    };
    let names = key::vary_names(origin_headers)?;
    let vary: VaryValues = key::vary_values(&names, request_headers);
    let now = SystemTime::now();
    // Judged (and serialized into the entry) without the cookie it will not keep.
    let policy = CachePolicy::new_options(
        &http_compat::policy_request(key, request_headers, &vary),
        &http_compat::policy_response(origin.status(), origin_headers),
        now,
        policy::options(),
    );
    if !policy::is_storable(&policy, now, origin_headers) {
        return None;
    }
    let ttl = policy.time_to_live(now).as_secs();
    let stored_headers = response_headers
        .iter()
        .filter(|(name, _)| **name != header::AGE && **name != header::SET_COOKIE)
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

fn without_set_cookie(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    kept.remove(header::SET_COOKIE);
    kept
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
    cache_set_cookie: bool,
) -> Result<bool, awc::error::PayloadError> {
    let passed_on = forward::response_headers(response.headers());
    let Some((head, _ttl)) = storable_head(
        key,
        request_headers,
        &response,
        &passed_on,
        cache_set_cookie,
    ) else {
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
