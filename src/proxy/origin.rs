//! Talking to an origin: the forwarded request (optionally made conditional
//! to revalidate a stored copy), its metrics, and the 502 / 504 that say
//! which origin failed.

use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use awc::error::{ConnectError, SendRequestError};

use super::forward::{self, ClientInfo};
use super::request_checks::LimitedBody;
use super::respond::plain;
use super::store::content_length;
use crate::config::Origin;
use crate::metrics::ProxyMetrics;

/// The validators of a stored copy, sent to ask the origin whether it
/// changed (RFC 9111 §4.3.1).
#[derive(Debug, Default, Clone)]
pub struct Revalidate {
    pub etag: Option<HeaderValue>,
    pub last_modified: Option<HeaderValue>,
}

impl Revalidate {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// The client's preconditions, replaced by caje's own when it revalidates:
/// the origin's 304 must speak of the stored copy.
const PRECONDITIONS: [header::HeaderName; 5] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
];

/// A client's range fields: a fetch whose answer may be stored asks for the
/// whole representation (a 206 is never stored, so one client's `Range`
/// would decide whether everyone's answer is cached); the range is then
/// served from the stored body.
const RANGE_FIELDS: [header::HeaderName; 2] = [header::RANGE, header::IF_RANGE];

/// Where a request goes: the configured origin and this worker's client;
/// `client_ip_header` as configured (see `forward::ClientInfo`).
pub struct Upstream<'a> {
    pub origin: &'a Origin,
    pub client: &'a awc::Client,
    pub client_ip_header: Option<&'a HeaderName>,
}

/// Sends the client's request to its origin as `method` (a background
/// refresh always fetches with `GET`), with `body` streamed when given;
/// `whole` when the answer may be stored (see [`RANGE_FIELDS`]).
pub async fn send(
    req: &HttpRequest,
    method: Method,
    body: Option<LimitedBody>,
    upstream: &Upstream<'_>,
    revalidate: Option<&Revalidate>,
    whole: bool,
) -> Result<awc::ClientResponse, SendRequestError> {
    let Upstream {
        origin,
        client,
        client_ip_header,
    } = upstream;
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{}", origin.upstream, path_and_query);
    let mut request = client.request(method, url).timeout(origin.timeout);
    let headers = request.headers_mut();
    *headers = forward::origin_request_headers(
        req.headers(),
        &ClientInfo {
            peer: req.peer_addr(),
            client_ip_header: *client_ip_header,
            host: &origin.host,
            version: req.version(),
        },
    );
    if whole {
        for name in RANGE_FIELDS {
            headers.remove(name);
        }
    }
    if let Some(validators) = revalidate {
        for name in PRECONDITIONS {
            headers.remove(name);
        }
        if let Some(etag) = &validators.etag {
            headers.insert(header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(date) = &validators.last_modified {
            headers.insert(header::IF_MODIFIED_SINCE, date.clone());
        }
    }
    let content_length = content_length(req.headers());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    match (body, content_length) {
        (Some(body), Some(len)) if len > 0 => request.send_body(SizedStream::new(len, body)).await,
        (Some(body), _) if chunked => request.send_stream(body).await,
        _ => request.send().await,
    }
}

fn timed_out(error: &SendRequestError) -> bool {
    matches!(
        error,
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout)
    )
}

/// Counts an origin request by origin and status (or error) and times it.
pub fn record(
    metrics: &ProxyMetrics,
    origin: &Origin,
    elapsed: Duration,
    result: &Result<awc::ClientResponse, SendRequestError>,
) {
    let label = origin.host.as_str();
    metrics
        .origin_seconds
        .with_label_values(&[label])
        .observe(elapsed.as_secs_f64());
    let status = match result {
        Ok(r) => r.status().as_str().to_owned(),
        Err(e) if timed_out(e) => "timeout".to_owned(),
        Err(_) => "error".to_owned(),
    };
    metrics
        .origin_requests
        .with_label_values(&[label, &status])
        .inc();
}

/// 502 when the origin cannot be reached or answers garbage, 504 when it is too slow.
pub fn failure(origin: &Origin, error: &SendRequestError) -> HttpResponse {
    tracing::warn!(origin = %origin.upstream, %error, "origin request failed");
    if timed_out(error) {
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
