//! Where one origin's requests go, made once per origin rather than for
//! every request: the scheme and authority awc is asked with, the `Host`
//! field awc would write for them, and the origin's public name as a field
//! value. awc is given a URI built from these parts and the request's path,
//! not a URL string it would parse again, and a `Host` it need not format.

use std::borrow::Cow;

use actix_web::http::header::HeaderValue;
use actix_web::http::uri::{Authority, PathAndQuery, Scheme};
use actix_web::http::Uri;
use awc::error::HttpError;

use crate::config::Origin;

/// One origin's request target, parsed.
#[derive(Debug)]
pub struct RequestTarget {
    /// The base awc is asked with, as text: what a base that did not parse
    /// is reported as (a checked `upstream` always parses).
    base: String,
    /// Its authority, when it parsed; the scheme is always `http`.
    authority: Option<Authority>,
    /// `Host` as awc writes it for `authority`: without a port of 80 or 443.
    upstream_host: Option<HeaderValue>,
    /// The origin's configured (public) host name.
    public_host: Option<HeaderValue>,
}

impl RequestTarget {
    pub fn new(origin: &Origin) -> Self {
        let base = request_base(&origin.upstream).into_owned();
        let authority = base
            .strip_prefix("http://")
            .and_then(|authority| Authority::try_from(authority).ok());
        let upstream_host = authority.as_ref().and_then(|authority| {
            let host = authority.host();
            let field = match authority.port_u16() {
                None | Some(80) | Some(443) => host.to_owned(),
                Some(port) => format!("{host}:{port}"),
            };
            HeaderValue::try_from(field).ok()
        });
        Self {
            base,
            authority,
            upstream_host,
            public_host: HeaderValue::from_str(&origin.host).ok(),
        }
    }

    /// The URI of `path_and_query` at this origin; the error awc would
    /// have given for the URL when it does not parse.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, HttpError> {
        let Some(authority) = &self.authority else {
            return Uri::try_from(format!("{}{path_and_query}", self.base)).map_err(Into::into);
        };
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query(PathAndQuery::try_from(path_and_query)?)
            .build()
    }

    /// The `Host` field for the upstream's authority.
    pub fn upstream_host(&self) -> Option<&HeaderValue> {
        self.upstream_host.as_ref()
    }

    /// The origin's public host name as a field value.
    pub fn public_host(&self) -> Option<&HeaderValue> {
        self.public_host.as_ref()
    }
}

/// The URL base awc is asked with for an origin's `upstream`: an
/// `https://` one as `http://` with its port (443 unless given), since
/// the connection it gets is TLS already (see `connector`).
fn request_base(upstream: &str) -> Cow<'_, str> {
    let Some(authority) = upstream.strip_prefix("https://") else {
        return Cow::Borrowed(upstream);
    };
    // A port follows the last ':' outside an IPv6 literal's brackets.
    let has_port = authority
        .rsplit_once(']')
        .map_or(authority, |(_, rest)| rest)
        .contains(':');
    Cow::Owned(if has_port {
        format!("http://{authority}")
    } else {
        format!("http://{authority}:443")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_https_upstream_is_asked_as_http_with_its_port() {
        assert_eq!(request_base("http://a:8080"), "http://a:8080");
        assert_eq!(request_base("https://a"), "http://a:443");
        assert_eq!(request_base("https://a:8443"), "http://a:8443");
        assert_eq!(request_base("https://[::1]"), "http://[::1]:443");
        assert_eq!(request_base("https://[::1]:9"), "http://[::1]:9");
    }

    fn target(upstream: &str) -> RequestTarget {
        RequestTarget::new(&Origin::new("public.example", upstream))
    }

    #[test]
    fn a_uri_from_the_parts_is_the_one_the_url_would_parse_to() {
        for (upstream, path) in [
            ("http://a:8080", "/p?q=1"),
            ("https://a", "/"),
            ("https://[::1]:9", "/x/y?z"),
            ("http://127.0.0.1", "/%20a?b=c&d"),
        ] {
            let target = target(upstream);
            let url = format!("{}{path}", request_base(upstream));
            assert_eq!(
                target.uri(path).expect("a URI"),
                Uri::try_from(url).expect("parsed")
            );
        }
        assert!(target("http://a").uri("/a b").is_err());
    }

    #[test]
    fn host_fields_are_the_ones_awc_and_the_origin_expect() {
        let host = |upstream: &str| target(upstream).upstream_host().cloned();
        assert_eq!(
            host("http://a:8080"),
            Some(HeaderValue::from_static("a:8080"))
        );
        assert_eq!(host("http://a"), Some(HeaderValue::from_static("a")));
        assert_eq!(host("https://a"), Some(HeaderValue::from_static("a")));
        assert_eq!(
            host("https://[::1]:9"),
            Some(HeaderValue::from_static("[::1]:9"))
        );
        assert_eq!(
            target("http://a").public_host(),
            Some(&HeaderValue::from_static("public.example"))
        );
    }
}
