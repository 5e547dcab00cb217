//! Sending one request to an origin: the forwarded request (optionally made
//! conditional to revalidate a stored copy, or widened to the whole
//! representation), timed and counted in the origin metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, Version};
use awc::error::{ConnectError, InvalidUrl, SendRequestError};
use bytes::Bytes;
use futures_util::Stream;

use super::headers::{self, ClientInfo};
use super::target::RequestTarget;
use crate::cache::revalidate::StoredValidators;
use crate::config::{HostHeader, Origin};
use crate::metrics::ProxyMetrics;

/// The client's preconditions, replaced by caje's own when it revalidates:
/// the origin's 304 must speak of the stored copy.
const PRECONDITIONS: [HeaderName; 5] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
];

/// A client's range fields, left out of a fetch for the whole
/// representation (a coalesced miss, a refresh, the populator): such a
/// fetch is stored whole, and the range is served from it. A ranged miss
/// fetching alone passes them on and may store the `206` as a partial entry
/// (`cache::partial`).
const RANGE_FIELDS: [HeaderName; 2] = [header::RANGE, header::IF_RANGE];

/// Where a request goes: the configured origin, this worker's client, the
/// configured `client_ip_header` (see `headers::ClientInfo`) and the
/// metrics every origin request is counted in.
pub struct Upstream<'a> {
    pub origin: &'a Origin,
    pub client: awc::Client,
    /// Where its requests go, parsed once for the origin.
    pub target: Arc<RequestTarget>,
    pub client_ip_header: Option<&'a HeaderName>,
    pub metrics: &'a ProxyMetrics,
    /// This node's `CDN-Loop` member (`Settings::cdn_loop`).
    pub cdn_loop: HeaderValue,
}

/// What is asked of the origin.
pub struct OriginRequest<'a> {
    pub method: Method,
    pub path_and_query: &'a str,
    /// The client's header fields; empty for caje's own fetches.
    pub client_headers: &'a HeaderMap,
    pub peer: Option<SocketAddr>,
    pub version: Version,
    /// Made conditional on the stored copy's validators.
    pub revalidate: Option<&'a StoredValidators>,
    /// The answer may be stored: see [`RANGE_FIELDS`].
    pub whole: bool,
    /// caje's own `Range` and `If-Range`: the part a partial entry lacks.
    pub part: Option<(HeaderValue, Option<HeaderValue>)>,
}

impl<'a> OriginRequest<'a> {
    /// caje's own `GET` of a stored URL (the populator): no client fields.
    pub fn own_get(path_and_query: &'a str) -> Self {
        static NONE: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();
        Self {
            method: Method::GET,
            path_and_query,
            client_headers: NONE.get_or_init(HeaderMap::new),
            peer: None,
            version: Version::HTTP_11,
            revalidate: None,
            whole: true,
            part: None,
        }
    }
}

/// A request body streamed to the origin: `length` as announced, or
/// chunked when `None`.
pub struct RequestBody<S> {
    pub stream: S,
    pub length: Option<u64>,
}

/// The body type of a request that has none.
pub type NoBody = futures_util::stream::Empty<Result<Bytes, std::io::Error>>;

/// An origin's answer (or failure) and how long it took.
pub struct Sent {
    pub result: Result<awc::ClientResponse, SendRequestError>,
    pub elapsed: Duration,
}

/// Sends `request` to the upstream's origin, with `body` streamed when
/// given, and counts it in the origin metrics.
pub async fn send<S, E>(
    upstream: &Upstream<'_>,
    request: OriginRequest<'_>,
    body: Option<RequestBody<S>>,
) -> Sent
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + 'static,
    E: Into<Box<dyn std::error::Error>> + 'static,
{
    let origin = upstream.origin;
    let target = &upstream.target;
    let uri = match target.uri(request.path_and_query) {
        Ok(uri) => uri,
        Err(e) => {
            let result = Err(SendRequestError::Url(InvalidUrl::HttpError(e)));
            record(upstream.metrics, origin, Duration::ZERO, &result);
            return Sent {
                result,
                elapsed: Duration::ZERO,
            };
        }
    };
    // Decompression off: caje names the codings it accepts itself, and
    // awc would otherwise make a field for them it then does not set.
    let mut outgoing = upstream
        .client
        .request(request.method, uri)
        .no_decompress()
        .timeout(origin.timeout);
    let fields = outgoing.headers_mut();
    *fields = headers::origin_request_headers(
        request.client_headers,
        &ClientInfo {
            peer: request.peer,
            client_ip_header: upstream.client_ip_header,
            host: target.public_host(),
            version: request.version,
            cdn_loop: &upstream.cdn_loop,
        },
    );
    // `Host`: the configured public name (never the client's spelling of
    // it), or the upstream's as awc would write it.
    let host = match origin.transport.host_header {
        HostHeader::Client => target.public_host(),
        HostHeader::Upstream => target.upstream_host(),
    };
    if let Some(host) = host {
        // Never among the client's fields passed on: appended.
        fields.append(header::HOST, host.clone());
    }
    if request.whole {
        for name in RANGE_FIELDS {
            fields.remove(name);
        }
    }
    if let Some((range, if_range)) = request.part {
        fields.insert(header::RANGE, range);
        if let Some(validator) = if_range {
            fields.insert(header::IF_RANGE, validator);
        }
    }
    if let Some(validators) = request.revalidate {
        for name in PRECONDITIONS {
            fields.remove(name);
        }
        if let Some(etag) = &validators.etag {
            fields.insert(header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(date) = &validators.last_modified {
            fields.insert(header::IF_MODIFIED_SINCE, date.clone());
        }
    }
    let started = Instant::now();
    let result = match body {
        Some(RequestBody {
            stream,
            length: Some(len),
        }) if len > 0 => outgoing.send_body(SizedStream::new(len, stream)).await,
        Some(RequestBody {
            stream,
            length: None,
        }) => outgoing.send_stream(stream).await,
        _ => outgoing.send().await,
    };
    let elapsed = started.elapsed();
    record(upstream.metrics, origin, elapsed, &result);
    Sent { result, elapsed }
}

/// Whether a failure is the origin being too slow (504) rather than
/// unreachable (502).
pub fn timed_out(error: &SendRequestError) -> bool {
    matches!(
        error,
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout)
    )
}

/// Why the TLS handshake with the origin failed, when that is the failure
/// (its certificate not trusted, for another name, expired, ...).
pub fn tls_failure(error: &SendRequestError) -> Option<&rustls::Error> {
    match error {
        SendRequestError::Connect(ConnectError::Io(e)) => {
            e.get_ref()?.downcast_ref::<rustls::Error>()
        }
        _ => None,
    }
}

/// Counts an origin request by origin and status (or error) and times it.
fn record(
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
    let code = result.as_ref().map(awc::ClientResponse::status);
    let status = match &code {
        Ok(code) => code.as_str(),
        Err(e) if timed_out(e) => "timeout",
        Err(e) if tls_failure(e).is_some() => "tls_error",
        Err(_) => "error",
    };
    metrics
        .origin_requests
        .with_label_values(&[label, status])
        .inc();
}
