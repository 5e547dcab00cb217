//! The proxy request handler. It owns nothing between requests: it asks the
//! `CacheStore` for a stored response and streams the origin's answer to the
//! client (and, when storable, to the store).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError};
use awc::error::{ConnectError, SendRequestError};
use futures_util::StreamExt;
use http_cache_semantics::BeforeRequest;
use tracing_actix_web::RootSpan;

use super::body::tee;
use super::forward::{self, ClientInfo};
use super::http_compat;
use super::store::{begin_store, content_length, storable_head};
use crate::actors::cache_store::{CacheStore, Hit, Lookup, LookupResult, Purge};
use crate::actors::Mailbox;
use crate::admin::auth::AdminAuth;
use crate::cache::{CacheKey, CacheStatus, Forward};
use crate::config::{normalize_host, Origin, Settings};
use crate::metrics::ProxyMetrics;

/// What every worker's proxy handler shares.
pub struct ProxyState {
    pub settings: Arc<Settings>,
    pub cache: Mailbox<CacheStore>,
    pub metrics: ProxyMetrics,
}

/// Stored entries are keyed by `GET`: a `HEAD` is answered from them too.
const STORED_METHOD: &str = "GET";

pub async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
    client: web::Data<awc::Client>,
    auth: web::Data<AdminAuth>,
    root_span: RootSpan,
) -> HttpResponse {
    let Some(raw_host) = request_host(&req) else {
        return plain(StatusCode::BAD_REQUEST, "caje: the request names no host\n");
    };
    let Some(origin) = state.settings.origin_for(&raw_host) else {
        return plain(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "caje: no origin is configured for host {:?}\n",
                normalize_host(&raw_host)
            ),
        );
    };
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let key = CacheKey::new(STORED_METHOD, &origin.host, path_and_query);
    if req.method().as_str() == "PURGE" {
        return purge(&req, &state, &auth, key).await;
    }
    let cacheable_method = matches!(*req.method(), Method::GET | Method::HEAD);

    let reason = if cacheable_method {
        match lookup(&req, &state, &key).await {
            Ok(hit) => {
                root_span.record("cache_status", "hit");
                state.metrics.requests.with_label_values(&["hit"]).inc();
                return hit;
            }
            Err(reason) => reason,
        }
    } else {
        Forward::Method
    };
    let outcome = CacheStatus::forward(reason).outcome();
    root_span.record("cache_status", outcome);
    state.metrics.requests.with_label_values(&[outcome]).inc();
    let started = Instant::now();
    let response = send_to_origin(&req, payload, origin, &raw_host, &client).await;
    let elapsed = started.elapsed();
    root_span.record("origin_ms", elapsed.as_millis() as u64);
    let origin_label = origin.host.as_str();
    state
        .metrics
        .origin_seconds
        .with_label_values(&[origin_label])
        .observe(elapsed.as_secs_f64());
    let status_label = match &response {
        Ok(r) => r.status().as_str().to_owned(),
        Err(SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout)) => {
            "timeout".to_owned()
        }
        Err(_) => "error".to_owned(),
    };
    state
        .metrics
        .origin_requests
        .with_label_values(&[origin_label, &status_label])
        .inc();
    match response {
        Ok(response) => relay(&req, &state, key, reason, response).await,
        Err(e) => origin_failure(origin, &e),
    }
}

/// `PURGE` on a proxied URL drops every stored variant of it on this node.
async fn purge(
    req: &HttpRequest,
    state: &ProxyState,
    auth: &AdminAuth,
    key: CacheKey,
) -> HttpResponse {
    if let Err(refused) = auth.check(req) {
        return refused.error_response();
    }
    match state.cache.send(Purge(key)).await {
        Ok(0) => plain(StatusCode::NOT_FOUND, "caje: nothing stored for that URL\n"),
        Ok(n) => plain(
            StatusCode::OK,
            format!("caje: purged {n} stored response(s)\n"),
        ),
        Err(e) => {
            tracing::error!(error = %e, "cache store is not answering");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "caje: cache store is not answering\n",
            )
        }
    }
}

/// The host a request is for: its `Host` field, or the authority of an
/// HTTP/2 request. Forwarding headers from the client are never consulted.
fn request_host(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// A fresh stored response as the answer, or why the origin must be asked.
async fn lookup(
    req: &HttpRequest,
    state: &ProxyState,
    key: &CacheKey,
) -> Result<HttpResponse, Forward> {
    let found = state
        .cache
        .send(Lookup {
            key: key.clone(),
            request_headers: req.headers().clone(),
        })
        .await;
    let hit = match found {
        Ok(LookupResult::Found(hit)) => hit,
        Ok(LookupResult::UriMiss) => return Err(Forward::UriMiss),
        Ok(LookupResult::VaryMiss) => return Err(Forward::VaryMiss),
        Ok(LookupResult::Broken) => return Err(Forward::Miss),
        Err(e) => {
            tracing::error!(error = %e, "cache store is not answering");
            return Err(Forward::Miss);
        }
    };
    let now = SystemTime::now();
    let policy_request = http_compat::policy_request(key, req.headers(), &hit.head.vary);
    match hit.head.policy.before_request(&policy_request, now) {
        BeforeRequest::Fresh(_) => Ok(serve_hit(req, *hit, now, &state.metrics)),
        BeforeRequest::Stale { .. } if hit.head.policy.is_stale(now) => Err(Forward::Stale),
        // Fresh, but the request's own directives ruled the stored copy out.
        BeforeRequest::Stale { .. } => Err(Forward::Request),
    }
}

fn serve_hit(req: &HttpRequest, hit: Hit, now: SystemTime, metrics: &ProxyMetrics) -> HttpResponse {
    let Hit { head, body } = hit;
    let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    for (name, value) in &head.headers {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            response.append_header((name.as_str(), value));
        }
    }
    let age = head.policy.age(now).as_secs();
    response.insert_header((header::AGE, age));
    let ttl = head.policy.time_to_live(now).as_secs();
    let len = Some(body.len());
    let sent = metrics.body_bytes.with_label_values(&["cache"]);
    let stream = body.into_stream().inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            sent.inc_by(chunk.len() as u64);
        }
    });
    let mut response = with_body(response, status, req.method(), len, stream);
    forward::mark_response(
        response.headers_mut(),
        req.version(),
        &CacheStatus::hit(ttl).to_string(),
    );
    response
}

/// Sends the client's request to its origin, body streamed.
async fn send_to_origin(
    req: &HttpRequest,
    payload: web::Payload,
    origin: &Origin,
    raw_host: &str,
    client: &awc::Client,
) -> Result<awc::ClientResponse, SendRequestError> {
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{}", origin.upstream, path_and_query);
    let mut request = client
        .request(req.method().clone(), url)
        .timeout(origin.timeout);
    *request.headers_mut() = forward::origin_request_headers(
        req.headers(),
        &ClientInfo {
            peer: req.peer_addr(),
            host: raw_host,
            version: req.version(),
        },
    );
    let content_length = content_length(req.headers());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    match content_length {
        Some(len) if len > 0 => request.send_body(SizedStream::new(len, payload)).await,
        _ if chunked => request.send_stream(payload).await,
        _ => request.send().await,
    }
}

/// Streams the origin's response to the client, storing it on the way when
/// the caching decision allows.
async fn relay(
    req: &HttpRequest,
    state: &ProxyState,
    key: CacheKey,
    reason: Forward,
    origin: awc::ClientResponse,
) -> HttpResponse {
    let status = origin.status();
    let headers = forward::response_headers(origin.headers());
    let content_length = content_length(origin.headers());
    let mut cache_status = CacheStatus::forward(reason);
    cache_status.fwd_status = Some(status.as_u16());

    let sink = if *req.method() == Method::GET {
        match storable_head(&key, req.headers(), &origin, &headers) {
            Some((head, ttl)) => {
                cache_status.ttl = Some(ttl);
                begin_store(&state.cache, head, content_length).await
            }
            None => None,
        }
    } else {
        None
    };
    cache_status.stored = sink.is_some();
    let sink = match (sink, content_length) {
        // Nothing will flow through an empty body: its entry is complete now.
        (Some(sink), Some(0)) => {
            sink.finish().await;
            None
        }
        (sink, _) => sink,
    };

    let mut response = HttpResponse::build(status);
    for (name, value) in &headers {
        response.append_header((name.clone(), value.clone()));
    }
    let sent = state.metrics.body_bytes.with_label_values(&["origin"]);
    let stream = tee(origin, sink, content_length).inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            sent.inc_by(chunk.len() as u64);
        }
    });
    let mut response = with_body(response, status, req.method(), content_length, stream);
    forward::mark_response(
        response.headers_mut(),
        req.version(),
        &cache_status.to_string(),
    );
    response
}

/// Attaches a body, keeping its length when known. `HEAD` responses keep
/// the length but send nothing; statuses that never have content get none.
fn with_body<S, E>(
    mut response: HttpResponseBuilder,
    status: StatusCode,
    method: &Method,
    len: Option<u64>,
    body: S,
) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + 'static,
    E: Into<Box<dyn std::error::Error>> + 'static,
{
    if status.is_informational() || status == StatusCode::NO_CONTENT {
        return response.finish();
    }
    if status == StatusCode::NOT_MODIFIED {
        if let Some(len) = len {
            response.insert_header((header::CONTENT_LENGTH, len));
        }
        return response.finish();
    }
    let nothing = futures_util::stream::empty::<Result<bytes::Bytes, E>>();
    match (len, *method == Method::HEAD) {
        (Some(len), true) => response.body(SizedStream::new(len, nothing)),
        (None, true) => response.streaming(nothing),
        (Some(len), false) => response.body(SizedStream::new(len, body)),
        (None, false) => response.streaming(body),
    }
}

/// 502 when the origin cannot be reached or answers garbage, 504 when it is too slow.
fn origin_failure(origin: &Origin, error: &SendRequestError) -> HttpResponse {
    let timed_out = matches!(
        error,
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout)
    );
    tracing::warn!(origin = %origin.upstream, %error, "origin request failed");
    if timed_out {
        plain(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "caje: origin {} for {} did not answer within {}\n",
                origin.upstream,
                origin.host,
                humantime::format_duration(origin.timeout)
            ),
        )
    } else {
        plain(
            StatusCode::BAD_GATEWAY,
            format!(
                "caje: origin {} for {} could not be reached: {error}\n",
                origin.upstream, origin.host
            ),
        )
    }
}

fn plain(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(body.into())
}
