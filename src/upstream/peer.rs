//! Asking a peer node for a page it stored (tiered cache): an ordinary
//! `GET` of the same URL, `Host` the page's host, `Cache-Control:
//! only-if-cached` and this node's `CDN-Loop` member, so the peer answers
//! from its cache or with 504 and never asks anyone else. An answer is used
//! only when it is a stored answer (the peer's `Cache-Status` says `hit`)
//! that caje's own admission would store and that is still fresh once the
//! peer's `Age` is counted; anything else (an error, a slow peer, a 504)
//! means asking the origin as without peers.

use std::time::{Duration, SystemTime};

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;

use super::headers;
use crate::cache::admit::{self, AdmitRules, OriginAnswer};
use crate::cache::CacheKey;
use crate::metrics::ProxyMetrics;

/// Where a page is asked for, and how.
pub struct Peer<'a> {
    /// The peer's `peer_url` (`http://host:port`).
    pub url: &'a str,
    pub client: &'a awc::Client,
    pub timeout: Duration,
    /// This node's `CDN-Loop` member.
    pub cdn_loop: &'a HeaderValue,
    pub metrics: &'a ProxyMetrics,
}

/// Why a peer's answer was not used.
#[derive(Debug, thiserror::Error)]
pub enum PeerMiss {
    #[error("peer {0} did not answer in time")]
    Timeout(String),
    #[error("peer {url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("peer {url} has no usable copy: {reason}")]
    Unusable { url: String, reason: &'static str },
}

impl PeerMiss {
    fn outcome(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Failed { .. } => "error",
            Self::Unusable { .. } => "unusable",
        }
    }
}

/// Asks `peer` for `key`, sending `fields` (the request's, as the origin
/// would see them; empty for the populator). Answers the peer's response
/// when it is a usable stored answer for a request with `fields`.
pub async fn ask(
    peer: &Peer<'_>,
    key: &CacheKey,
    fields: &HeaderMap,
    rules: AdmitRules<'_>,
) -> Result<awc::ClientResponse, PeerMiss> {
    let result = ask_unmetered(peer, key, fields, rules).await;
    let outcome = match &result {
        Ok(_) => "used",
        Err(miss) => miss.outcome(),
    };
    peer.metrics
        .peer_requests
        .with_label_values(&[outcome])
        .inc();
    if let Err(miss) = &result {
        tracing::info!(host = %key.host(), path = %key.path_and_query(), %miss, "peer not used; asking the origin");
    }
    result
}

async fn ask_unmetered(
    peer: &Peer<'_>,
    key: &CacheKey,
    fields: &HeaderMap,
    rules: AdmitRules<'_>,
) -> Result<awc::ClientResponse, PeerMiss> {
    let url = format!("{}{}", peer.url, key.path_and_query());
    let failed = |reason: String| PeerMiss::Failed {
        url: peer.url.to_owned(),
        reason,
    };
    let unusable = |reason| PeerMiss::Unusable {
        url: peer.url.to_owned(),
        reason,
    };
    let host = HeaderValue::from_str(key.host()).map_err(|e| failed(e.to_string()))?;
    let mut request = peer.client.get(&url).timeout(peer.timeout);
    let out = request.headers_mut();
    for (name, value) in fields {
        if is_forwarded(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(header::ACCEPT_ENCODING, headers::accept_encoding(fields));
    out.insert(header::HOST, host);
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("only-if-cached"),
    );
    headers::append_via(out, actix_web::http::Version::HTTP_11);
    headers::append_cdn_loop(out, peer.cdn_loop);
    let response = match actix_web::rt::time::timeout(peer.timeout, request.send()).await {
        Err(_elapsed) => return Err(PeerMiss::Timeout(peer.url.to_owned())),
        Ok(Err(e)) if super::send::timed_out(&e) => {
            return Err(PeerMiss::Timeout(peer.url.to_owned()))
        }
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Ok(Ok(response)) => response,
    };
    if response.status() == StatusCode::GATEWAY_TIMEOUT || response.status().is_server_error() {
        return Err(unusable("it answered 504 or another server error"));
    }
    if !peer_hit(response.headers()) {
        return Err(unusable("its Cache-Status does not say hit"));
    }
    let passed_on = headers::response_headers(response.headers());
    let answer = OriginAnswer {
        status: response.status(),
        headers: response.headers(),
        passed_on: &passed_on,
    };
    // The peer's `Age` counts: admission judges freshness with it.
    let Some((head, _ttl)) = admit::admit(key, fields, &answer, rules) else {
        return Err(unusable("caje would not store its answer"));
    };
    if head.policy.is_stale(SystemTime::now()) {
        return Err(unusable("its copy is stale"));
    }
    Ok(response)
}

/// The request fields a peer sees besides caje's own: those that can select
/// a variant. Preconditions and ranges never go (a peer's answer must be
/// the whole stored response), nor caching directives (caje sets
/// `only-if-cached`), nor anything `as_origin_sees` withheld. A `CDN-Loop`
/// the request carried goes, with this node's member appended.
fn is_forwarded(name: &header::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host"
            | "cache-control"
            | "pragma"
            | "range"
            | "if-range"
            | "if-none-match"
            | "if-modified-since"
            | "if-match"
            | "if-unmodified-since"
            | "content-length"
            | "via"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Whether the last `Cache-Status` member (the peer's own) says `hit`.
fn peer_hit(fields: &HeaderMap) -> bool {
    fields
        .get_all(header::CACHE_STATUS)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()
        .is_some_and(|member| member.split(';').skip(1).any(|p| p.trim() == "hit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(status: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            header::CACHE_STATUS,
            HeaderValue::from_str(status).expect("value"),
        );
        map
    }

    #[test]
    fn only_the_peer_s_own_hit_counts() {
        assert!(peer_hit(&fields("caje-ams; hit; ttl=3")));
        assert!(peer_hit(&fields("origin-cdn; fwd=miss, caje-ams; hit")));
        assert!(!peer_hit(&fields("caje-ams; hit, caje-lhr; fwd=uri-miss")));
        assert!(!peer_hit(&fields(
            "caje; fwd=uri-miss; detail=only-if-cached"
        )));
        assert!(!peer_hit(&HeaderMap::new()));
    }
}
