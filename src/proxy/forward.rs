//! Header rules for forwarding: hop-by-hop fields are removed both ways
//! (RFC 9110 §7.6.1), and caje sets `Via` and `X-Forwarded-*` itself, so a
//! client can never choose what the origin is told.

use std::net::SocketAddr;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Version;

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    ) || name.as_str().starts_with("proxy-")
}

/// The header fields a message carries end to end: without hop-by-hop fields,
/// those its `Connection` names, and any named in `drop`.
fn end_to_end(headers: &HeaderMap, drop: &[HeaderName]) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if is_hop_by_hop(name) || drop.contains(name) || named.iter().any(|n| n == name.as_str()) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// `Via` value for a message received with `version`; caje's pseudonym is "caje".
fn via(version: Version) -> HeaderValue {
    HeaderValue::from_static(match version {
        Version::HTTP_09 => "0.9 caje",
        Version::HTTP_10 => "1.0 caje",
        Version::HTTP_2 => "2 caje",
        Version::HTTP_3 => "3 caje",
        _ => "1.1 caje",
    })
}

/// Appends caje's `Via` entry after any the message already had.
pub fn append_via(headers: &mut HeaderMap, version: Version) {
    headers.append(header::VIA, via(version));
}

/// What the origin is told about the client.
pub struct ClientInfo<'a> {
    pub peer: Option<SocketAddr>,
    /// The `Host` the client asked for, as it sent it.
    pub host: &'a str,
    pub version: Version,
}

/// Headers for the origin request. `Host` and `Content-Length` are left to
/// the client library, which sets them for the upstream and the body it sends.
pub fn origin_request_headers(client: &HeaderMap, info: &ClientInfo<'_>) -> HeaderMap {
    let x_forwarded_for = HeaderName::from_static("x-forwarded-for");
    let x_forwarded_host = HeaderName::from_static("x-forwarded-host");
    let x_forwarded_proto = HeaderName::from_static("x-forwarded-proto");
    let mut out = end_to_end(
        client,
        &[
            header::HOST,
            header::CONTENT_LENGTH,
            x_forwarded_for.clone(),
            x_forwarded_host.clone(),
            x_forwarded_proto.clone(),
        ],
    );
    if let Some(peer) = info.peer {
        let prior: Vec<&str> = client
            .get_all(&x_forwarded_for)
            .filter_map(|v| v.to_str().ok())
            .collect();
        let mut chain = prior.join(", ");
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(&peer.ip().to_string());
        if let Ok(value) = HeaderValue::from_str(&chain) {
            out.insert(x_forwarded_for, value);
        }
    }
    if let Ok(host) = HeaderValue::from_str(info.host) {
        out.insert(x_forwarded_host, host);
    }
    out.insert(x_forwarded_proto, HeaderValue::from_static("http"));
    append_via(&mut out, info.version);
    out
}

/// Headers of an origin response as caje passes them on; the body's length
/// is set by the response body itself.
pub fn response_headers(origin: &HeaderMap) -> HeaderMap {
    end_to_end(origin, &[header::CONTENT_LENGTH])
}

/// Marks that the response passed through caje: `Via` and `Cache-Status`.
pub fn mark_response(headers: &mut HeaderMap, version: Version, cache_status: &str) {
    append_via(headers, version);
    if let Ok(status) = HeaderValue::from_str(cache_status) {
        headers.insert(header::CACHE_STATUS, status);
    }
}
