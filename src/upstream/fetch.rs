//! Fetches nobody waits on (the populator warming a page, a background
//! refresh): the origin's answer stored whole when admission allows, and
//! the start of an entry for a response streamed to a client.

use actix_web::http::header::{self, HeaderMap};
use futures_util::StreamExt;

use super::headers;
use crate::actors::cache_store::{BeginStore, CacheStore, StoreSink};
use crate::actors::Mailbox;
use crate::cache::admit::{self, AdmitRules, OriginAnswer};
use crate::cache::{CacheKey, EntryHead};

/// Starts an entry; `None` when the store cannot (it counts and logs why).
pub async fn begin_store(
    cache: &Mailbox<CacheStore>,
    head: Box<EntryHead>,
    expected_len: Option<u64>,
) -> Option<StoreSink> {
    match cache.send(BeginStore { head, expected_len }).await {
        Ok(Ok(sink)) => Some(sink),
        Ok(Err(_)) => None,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a cache entry");
            None
        }
    }
}

/// Stores a whole origin response to a request with `request_headers` when
/// admission allows, reading its body to the end. `Ok(true)` once it is
/// stored and lookups find it.
pub async fn store_fully(
    cache: &Mailbox<CacheStore>,
    key: &CacheKey,
    request_headers: &HeaderMap,
    response: awc::ClientResponse,
    rules: AdmitRules<'_>,
) -> Result<bool, awc::error::PayloadError> {
    let passed_on = headers::response_headers(response.headers());
    let answer = OriginAnswer {
        status: response.status(),
        headers: response.headers(),
        passed_on: &passed_on,
    };
    let Some((head, _ttl)) = admit::admit(key, request_headers, &answer, rules) else {
        return Ok(false);
    };
    let len = content_length(response.headers());
    let Some(sink) = begin_store(cache, Box::new(head), len).await else {
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

/// The `Content-Length` a message announced.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
