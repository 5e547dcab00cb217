//! Checks on what a client asks before anything goes to an origin: which
//! host the request is for (the absolute-form target's authority wins over
//! `Host`, RFC 9112 §3.2.2), whether its path is one the origin cannot read
//! differently from the cache key, and whether its declared body fits the
//! limit (a streamed one is counted by `body::LimitedBody`).
//!
//! Framing (`Content-Length` with `Transfer-Encoding`, duplicate
//! `Content-Length` or `Host`, oversized heads) is refused earlier by
//! actix-http's parser, before a handler runs.

use actix_web::dev::RequestHead;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::respond::plain;
use crate::upstream::fetch::content_length;

/// Longer than any DNS name (253) with a port: nothing real is refused.
const MAX_HOST_LEN: usize = 255;

/// Why a request is answered by caje itself, without asking the origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the request names no host")]
    NoHost,
    #[error("the request's host is not a valid host name")]
    BadHost,
    #[error("the request target is not an http URL or a path")]
    NotHttp,
    #[error("the request target is not a path")]
    NotAPath,
    #[error("the path has an invalid percent-encoding")]
    BadPercentEncoding,
    #[error("the path has a \".\" or \"..\" segment")]
    DotSegment,
    #[error("the path has an encoded NUL")]
    EncodedNul,
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
}

impl Refused {
    fn status(&self) -> StatusCode {
        match self {
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn response(&self) -> HttpResponse {
        plain(self.status(), format!("caje: {self}\n"))
    }
}

/// The host name a request is for, without its port, as the client wrote
/// it: the authority of an absolute-form target (or of an HTTP/2 request),
/// else `Host`. Forwarding headers from the client are never consulted.
pub fn target_host(req: &RequestHead) -> Result<&str, Refused> {
    let uri = &req.uri;
    let host = match uri.authority() {
        // An authority-form target (CONNECT) has no scheme: caje is no tunnel.
        Some(authority) if matches!(uri.scheme_str(), Some("http" | "https")) => authority.as_str(),
        Some(_) => return Err(Refused::NotHttp),
        None => match req.headers().get(header::HOST) {
            Some(value) => value.to_str().map_err(|_| Refused::BadHost)?,
            None => return Err(Refused::NoHost),
        },
    };
    if host.is_empty() {
        return Err(Refused::NoHost);
    }
    host_name(host).ok_or(Refused::BadHost)
}

/// The checks on a routed request's target and declared body size.
pub fn check(req: &RequestHead, max_body: u64) -> Result<(), Refused> {
    check_path(req.uri.path())?;
    check_body_length(req.headers(), max_body)
}

/// The name of a host name or IP literal with an optional port (`[::1]`
/// of `[::1]:80`); `None` for user info, spaces or anything DNS could not
/// hold. One pass over a name: it runs before every cache hit.
fn host_name(host: &str) -> Option<&str> {
    if host.len() > MAX_HOST_LEN {
        return None;
    }
    let bytes = host.as_bytes();
    let name_len = match bytes.strip_prefix(b"[") {
        Some(rest) => {
            let end = rest.iter().position(|&b| b == b']')?;
            let literal = &rest[..end];
            let literal_ok = !literal.is_empty()
                && literal
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            if !literal_ok {
                return None;
            }
            end + 2
        }
        None => bytes
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')))
            .unwrap_or(host.len()),
    };
    // At an ASCII byte (or the end): a valid split of the text.
    let (name, port) = host.split_at_checked(name_len)?;
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        // RFC 3986 allows an empty port.
        Some("") => true,
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()) && digits.parse::<u16>().is_ok(),
    };
    (!name.is_empty() && port_ok).then_some(name)
}

/// The path is forwarded byte for byte and is the cache key as it is, so
/// `%2F` stays distinct from `/`. What is refused is what an origin could
/// resolve to another resource than the key names: dot segments, also
/// percent-encoded or hidden behind an encoded `/` or a `\`, invalid
/// percent-encoding (origins decode it differently) and encoded NUL. One
/// pass, no allocation: it runs before every cache hit.
fn check_path(path: &str) -> Result<(), Refused> {
    if !path.starts_with('/') {
        return Err(Refused::NotAPath);
    }
    let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
    let bytes = path.as_bytes();
    let mut i = 0;
    // The decoded piece since the last separator: its length, and whether
    // it is all dots.
    let (mut length, mut dots) = (0, true);
    loop {
        let byte = match bytes.get(i) {
            None => None,
            Some(b'%') => {
                let (high, low) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2)));
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(Refused::BadPercentEncoding);
                };
                i += 3;
                Some((high * 16 + low) as u8)
            }
            Some(&b) => {
                i += 1;
                Some(b)
            }
        };
        match byte {
            None | Some(b'/' | b'\\') => {
                if dots && (length == 1 || length == 2) {
                    return Err(Refused::DotSegment);
                }
                if byte.is_none() {
                    return Ok(());
                }
                (length, dots) = (0, true);
            }
            Some(0) => return Err(Refused::EncodedNul),
            Some(b) => {
                length += 1;
                dots &= b == b'.';
            }
        }
    }
}

/// A declared `Content-Length` over the limit is refused before the origin
/// is asked; a chunked body is counted by [`LimitedBody`] as it streams.
fn check_body_length(headers: &HeaderMap, limit: u64) -> Result<(), Refused> {
    match content_length(headers) {
        Some(length) if length > limit => Err(Refused::BodyTooLarge { limit }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for (good, name) in [
            ("site.test", "site.test"),
            ("Site.Test:8080", "Site.Test"),
            ("a_b.test:", "a_b.test"),
            ("[::1]:3001", "[::1]"),
            ("[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]"),
            ("127.0.0.1", "127.0.0.1"),
        ] {
            assert_eq!(host_name(good), Some(name), "{good}");
        }
        for bad in [
            "a b",
            "user@site.test",
            "site.test:port",
            "site.test:70000",
            "site.test:80:80",
            ":80",
            "[::1",
            "[]",
            "[::1]x",
            "[::1]:8x",
            "site.test\t",
            "sité.test",
            &"a".repeat(MAX_HOST_LEN + 1),
        ] {
            assert_eq!(host_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths() {
        for good in [
            "/", "/a/b", "/a%2Fb", "/a%2e", "/...", "/.a/..b/", "/a/.../b", "/100%25",
        ] {
            assert_eq!(check_path(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("*", Refused::NotAPath),
            ("/a%zz", Refused::BadPercentEncoding),
            ("/a%2", Refused::BadPercentEncoding),
            ("/a%+f", Refused::BadPercentEncoding),
            ("/a/../b", Refused::DotSegment),
            ("/a/./b", Refused::DotSegment),
            ("/a/..", Refused::DotSegment),
            ("/a/%2e%2E/b", Refused::DotSegment),
            ("/a/.%2e", Refused::DotSegment),
            ("/a/..%2Fb", Refused::DotSegment),
            ("/a/..%5Cb", Refused::DotSegment),
            ("/a%00b", Refused::EncodedNul),
            ("/a/%2e", Refused::DotSegment),
            ("/a/%2e%2e%2fb", Refused::DotSegment),
            ("/a\\..\\b", Refused::DotSegment),
            ("/a/%%41", Refused::BadPercentEncoding),
        ] {
            assert_eq!(check_path(bad), Err(why), "{bad}");
        }
    }
}
