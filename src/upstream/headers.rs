//! Header rules for forwarding: hop-by-hop fields are removed both ways
//! (RFC 9110 §7.6.1), and caje sets `Via` and `X-Forwarded-*` itself, so a
//! client can never choose what the origin is told.
//!
//! Fields that make an origin believe in another host, URL, scheme, client
//! or method than the one caje keys the response under are dropped: origins
//! such as IIS, Symfony or Rails honour them, and a response built for a
//! client's `X-Original-URL` or `X-Forwarded-Host` would be stored under the
//! plain URL and served to everyone (cache poisoning).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Version;
use smallvec::SmallVec;

use crate::cache::encoding;

/// Client fields that can change which resource, host, scheme, client or
/// method an origin thinks it serves (as web servers, frameworks and
/// platforms read them); every `X-Forwarded-*` too. None reaches an origin:
/// what caje keys a response under is all the origin may build it from.
const REWRITING: [&str; 32] = [
    "forwarded",
    "x-forwarded",
    "x-host",
    "x-original-host",
    "x-proxy-host",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-override-url",
    "x-envoy-original-path",
    "x-http-destinationurl",
    "x-proxy-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "fly-client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-url-scheme",
    "x-scheme",
    "x-https",
    "front-end-https",
    "x-arr-ssl",
];

fn is_rewriting(name: &HeaderName) -> bool {
    let name = name.as_str();
    // Every such name starts with one of these letters: most fields a
    // request carries are passed over without a look at the list.
    matches!(name.as_bytes().first(), Some(b'x' | b'f' | b'c' | b't'))
        && (REWRITING.contains(&name) || name.starts_with("x-forwarded-"))
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    ) || name.as_str().starts_with("proxy-")
}

/// The field names a message's `Connection` nominates as hop-by-hop.
fn connection_named(headers: &HeaderMap) -> SmallVec<[&str; 4]> {
    named_in(headers.get_all(header::CONNECTION))
}

/// The field names `Connection` values nominate.
fn named_in<'a>(connection: impl Iterator<Item = &'a HeaderValue>) -> SmallVec<[&'a str; 4]> {
    connection
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

fn is_named(name: &HeaderName, named: &[&str]) -> bool {
    named.iter().any(|n| n.eq_ignore_ascii_case(name.as_str()))
}

/// The header fields a message carries end to end: without hop-by-hop fields,
/// those its `Connection` names, and any `drop` is true of; with `room` for
/// the fields caje adds (so adding them never grows the map).
fn end_to_end(headers: &HeaderMap, drop: impl Fn(&HeaderName) -> bool, room: usize) -> HeaderMap {
    let named = connection_named(headers);
    let mut out = HeaderMap::with_capacity(headers.len() + room);
    for (name, value) in headers {
        if is_hop_by_hop(name) || drop(name) || is_named(name, &named) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The client's fields as far as the origin can see them: without those
/// caje withholds (its `Connection` names them, or they would rewrite the
/// request). Caching decisions (the `Vary` variant, request directives) are
/// made on this view, so a variant is keyed by the request the origin
/// actually received (RFC 9111 §4.1), never by a value it never saw. The
/// fixed hop-by-hop fields stay: they never reach an origin, so no answer
/// can depend on them. `Accept-Encoding` stays as the client wrote it: the
/// origin (and a peer) get only the coding it selects (see
/// [`accept_encoding`]), and so does the cache key (`key::vary_values`),
/// without a copy of the fields on every request. Borrowed unless
/// something is withheld.
pub fn as_origin_sees(client: &HeaderMap) -> Cow<'_, HeaderMap> {
    let named = connection_named(client);
    // Most requests have no `Connection` naming a field: only the names
    // caje rewrites are then looked at.
    let withheld = |name: &HeaderName| {
        is_rewriting(name) || (!named.is_empty() && !is_hop_by_hop(name) && is_named(name, &named))
    };
    if !client.keys().any(withheld) {
        return Cow::Borrowed(client);
    }
    let mut view = client.clone();
    view.retain(|name, _| !withheld(name));
    Cow::Owned(view)
}

/// The `Accept-Encoding` an origin is sent: the one coding of br, zstd,
/// gzip and identity the client gets (`identity` without the field). The
/// cache key holds only that, so the origin may see no more: one client's
/// header string never decides what is stored for others with another.
pub fn accept_encoding(client: &HeaderMap) -> HeaderValue {
    HeaderValue::from_static(encoding::normalised(client))
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

/// The client's address as caje knows it: from `trusted`, the header a
/// TLS-terminating proxy in front of caje sets (`Fly-Client-IP`), when
/// configured and holding an address; else the connection's peer.
fn client_address(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trusted: Option<&HeaderName>,
) -> Option<IpAddr> {
    trusted
        .and_then(|name| headers.get(name))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(peer.map(|p| p.ip()))
}

/// An address as a field value, written on the stack first: a `String`
/// grown as the address is formatted costs several allocations.
fn address_value(address: IpAddr) -> Option<HeaderValue> {
    // An address's text is at most 45 bytes (`INET6_ADDRSTRLEN` less its NUL).
    let mut text = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    crate::ip_text::write(&mut cursor, address).ok()?;
    let len = usize::try_from(cursor.position()).ok()?;
    HeaderValue::from_bytes(&text[..len]).ok()
}

/// What the origin is told about the client.
pub struct ClientInfo<'a> {
    pub peer: Option<SocketAddr>,
    /// The configured `client_ip_header`: read, then never forwarded.
    pub client_ip_header: Option<&'a HeaderName>,
    /// The public host the response is keyed under: the configured name,
    /// never the client's spelling of it (case, port, absolute-form target).
    pub host: Option<&'a HeaderValue>,
    pub version: Version,
    /// This node's `CDN-Loop` member, appended after the client's.
    pub cdn_loop: &'a HeaderValue,
}

/// Headers for the origin request. `Host` and `Content-Length` are left to
/// the client library, which sets them for the upstream and the body it sends.
pub fn origin_request_headers(client: &HeaderMap, info: &ClientInfo<'_>) -> HeaderMap {
    const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    // Every field set below is dropped from the client's first, so each
    // is appended (a map's insert would look for values to replace).
    let dropped = |name: &HeaderName| {
        *name == header::HOST
            || *name == header::CONTENT_LENGTH
            || *name == header::ACCEPT_ENCODING
            || is_rewriting(name)
            || Some(name) == info.client_ip_header
    };
    // Room for the six fields set below and a `Host`.
    let mut out = end_to_end(client, dropped, 7);
    out.append(header::ACCEPT_ENCODING, accept_encoding(client));
    let address = client_address(client, info.peer, info.client_ip_header);
    // caje faces clients directly: a client's own `X-Forwarded-For` chain is
    // whatever it chose to write, so only the address caje saw is passed on.
    if let Some(value) = address.and_then(address_value) {
        out.append(X_FORWARDED_FOR, value);
    }
    if let Some(host) = info.host {
        out.append(X_FORWARDED_HOST, host.clone());
    }
    out.append(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    append_via(&mut out, info.version);
    append_cdn_loop(&mut out, info.cdn_loop);
    out
}

/// Headers of an origin response as caje passes them on; the body's length
/// is set by the response body itself. The `Cache-Status` members of caches
/// upstream (a peer) are kept without their `ttl`, which is out of date as
/// soon as the answer is stored.
pub fn response_headers(origin: &HeaderMap) -> HeaderMap {
    // Room for `Via`, `Cache-Status` and a `Vary` on the coding.
    let mut out = end_to_end(origin, |name| *name == header::CONTENT_LENGTH, 3);
    without_upstream_ttls(&mut out);
    out
}

/// An origin response's fields taken from the response, not copied (a
/// relayed miss has no other use for them): those caje passes on, and
/// those the origin sent where they differ in a field admission may read.
pub struct ResponseFields {
    /// As [`response_headers`] has them, but with `Content-Length`, which
    /// admission reads: [`ResponseFields::into_passed_on`] removes it.
    with_length: HeaderMap,
    /// The fields as sent, kept only when the origin's `Connection` named
    /// an end-to-end field: admission reads it, clients never get it.
    sent: Option<HeaderMap>,
}

impl ResponseFields {
    /// Takes the fields of an origin response (leaving it none).
    pub fn take(origin: &mut HeaderMap) -> Self {
        let connection: SmallVec<[HeaderValue; 2]> =
            origin.get_all(header::CONNECTION).cloned().collect();
        let named = named_in(connection.iter());
        // Most name only `keep-alive` (or `close`, no field): what passing
        // on removes is then hop-by-hop anyway, read by no caching decision.
        let names_more = named.iter().any(|n| {
            !(n.eq_ignore_ascii_case("keep-alive")
                || n.eq_ignore_ascii_case("close")
                || HeaderName::from_bytes(n.as_bytes()).is_ok_and(|name| is_hop_by_hop(&name)))
        });
        let sent = names_more.then(|| origin.clone());
        let mut with_length = std::mem::take(origin);
        with_length.retain(|name, _| !is_hop_by_hop(name) && !is_named(name, &named));
        without_upstream_ttls(&mut with_length);
        Self { with_length, sent }
    }

    /// The fields as the origin sent them, as far as admission reads them.
    pub fn sent(&self) -> &HeaderMap {
        self.sent.as_ref().unwrap_or(&self.with_length)
    }

    /// The fields as caje passes them on, with `Content-Length` (admission
    /// never stores it).
    pub fn with_length(&self) -> &HeaderMap {
        &self.with_length
    }

    /// The fields as caje passes them on: [`response_headers`]'s.
    pub fn into_passed_on(self) -> HeaderMap {
        let mut passed_on = self.with_length;
        passed_on.remove(header::CONTENT_LENGTH);
        passed_on
    }
}

/// Upstream `Cache-Status` members without their `ttl`.
fn without_upstream_ttls(fields: &mut HeaderMap) {
    if !fields.contains_key(header::CACHE_STATUS) {
        return;
    }
    let upstream: Vec<String> = fields
        .get_all(header::CACHE_STATUS)
        .filter_map(|v| v.to_str().ok())
        .map(without_ttl)
        .collect();
    fields.remove(header::CACHE_STATUS);
    if let Ok(value) = HeaderValue::from_str(&upstream.join(", ")) {
        if !upstream.is_empty() {
            fields.insert(header::CACHE_STATUS, value);
        }
    }
}

/// A `Cache-Status` value without the `ttl` parameter of its members (a
/// member with a quoted string is kept as it is).
fn without_ttl(value: &str) -> String {
    value
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|member| {
            if member.contains('"') {
                return member.to_owned();
            }
            member
                .split(';')
                .map(str::trim)
                .filter(|p| !p.starts_with("ttl="))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Marks that the response passed through caje: `Via`, and its
/// `Cache-Status` member after those of caches before it (RFC 9211: the
/// cache nearest the client last).
pub fn mark_response(headers: &mut HeaderMap, version: Version, member: Option<HeaderValue>) {
    append_via(headers, version);
    let Some(member) = member else {
        return;
    };
    let Some(before) = headers.get(header::CACHE_STATUS) else {
        // The usual case: nothing to join or replace.
        headers.append(header::CACHE_STATUS, member);
        return;
    };
    let value = match before.to_str() {
        Ok(text) if !text.trim().is_empty() => {
            let joined = [before.as_bytes(), b", ", member.as_bytes()].concat();
            HeaderValue::from_bytes(&joined).unwrap_or(member)
        }
        _ => member,
    };
    headers.insert(header::CACHE_STATUS, value);
}

/// Appends this node's `CDN-Loop` member (RFC 8586) after the request's own.
pub fn append_cdn_loop(headers: &mut HeaderMap, member: &HeaderValue) {
    const CDN_LOOP: HeaderName = HeaderName::from_static("cdn-loop");
    headers.append(CDN_LOOP, member.clone());
}

/// Whether a request already passed through a caje node: its `CDN-Loop`
/// names caje's pseudonym (`id`). Such a request is never sent to a peer.
pub fn looped(headers: &HeaderMap, id: &str) -> bool {
    headers
        .get_all("cdn-loop")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|member| member.split(';').next())
        .any(|cdn| cdn.trim().eq_ignore_ascii_case(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_headers as map;

    fn pairs(fields: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let mut pairs: Vec<_> = fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        pairs.sort();
        pairs
    }

    #[test]
    fn the_cache_sees_a_request_without_what_the_origin_never_gets() {
        let names = |fields: &[(&str, &str)]| -> Vec<String> {
            let client = map(fields);
            let mut names: Vec<String> = as_origin_sees(&client)
                .keys()
                .map(|n| n.to_string())
                .collect();
            names.sort();
            names
        };
        // Nothing withheld: the client's own map, borrowed.
        let plain = map(&[("accept", "a"), ("x-hop", "1")]);
        assert!(matches!(as_origin_sees(&plain), Cow::Borrowed(_)));
        assert_eq!(
            names(&[("accept", "a"), ("x-forwarded-host", "evil.test")]),
            ["accept"]
        );
        // A field `Connection` names is the client's hop only; `Connection`
        // itself and other hop-by-hop fields stay (the origin request
        // drops them, and no decision reads them).
        assert_eq!(
            names(&[
                ("connection", "X-Hop"),
                ("x-hop", "1"),
                ("keep-alive", "5"),
                ("accept", "a")
            ]),
            ["accept", "connection", "keep-alive"]
        );
    }

    #[test]
    fn fields_taken_from_a_response_are_those_a_copy_passes_on() {
        let sent = [
            vec![
                ("connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
                ("content-length", "3"),
                ("cache-control", "no-store"),
            ],
            vec![
                ("connection", "close, X-Secret"),
                ("x-secret", "1"),
                ("transfer-encoding", "chunked"),
                ("proxy-authenticate", "Basic"),
                ("cache-status", "peer; hit; ttl=30, other; fwd=miss"),
                ("etag", "\"a\""),
            ],
        ];
        for sent in sent {
            let original = map(&sent);
            let fields = ResponseFields::take(&mut original.clone());
            // Admission reads every end-to-end field as the origin sent it.
            for (name, _) in &original {
                if !is_hop_by_hop(name) && *name != header::CACHE_STATUS {
                    let values =
                        |fields: &HeaderMap| fields.get_all(name).cloned().collect::<Vec<_>>();
                    assert_eq!(values(fields.sent()), values(&original), "{name}");
                }
            }
            assert_eq!(
                fields.with_length().get(header::CONTENT_LENGTH),
                original.get(header::CONTENT_LENGTH)
            );
            assert_eq!(
                pairs(&fields.into_passed_on()),
                pairs(&response_headers(&original))
            );
        }
        // Naming only hop-by-hop fields, the origin's fields are not kept
        // twice: admission reads the passed-on ones.
        let fields = ResponseFields::take(&mut map(&[("connection", "keep-alive, Upgrade")]));
        assert!(std::ptr::eq(fields.sent(), fields.with_length()));
    }

    #[test]
    fn every_rewriting_field_is_withheld() {
        for name in REWRITING
            .iter()
            .chain(&["x-forwarded-for", "x-forwarded-prefix"])
        {
            assert!(is_rewriting(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["host", "accept", "cookie", "user-agent", "if-none-match"] {
            assert!(!is_rewriting(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn an_address_becomes_its_usual_text() {
        for text in [
            "127.0.0.1",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
        ] {
            let address: IpAddr = text.parse().expect("an address");
            assert_eq!(address_value(address), Some(HeaderValue::from_static(text)));
        }
    }
}
