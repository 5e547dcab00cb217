//! Invalidation by unsafe methods (RFC 9111 §4.4): a non-error response to
//! POST, PUT, DELETE, PATCH (any method that is not safe) invalidates the
//! stored responses of the target URI, and of the `Location` and
//! `Content-Location` URIs when they are on the same host.

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode, Uri};

use crate::cache::query::KeyRules;
use crate::cache::CacheKey;
use crate::config::normalize_host;

/// Whether a response to `method` with `status` invalidates stored responses.
pub fn invalidates(method: &Method, status: StatusCode) -> bool {
    let safe = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    !safe && (status.is_success() || status.is_redirection())
}

/// The keys to drop: the target's, and those of same-host `Location` and
/// `Content-Location` references (resolved against the target, keyed by
/// the origin's `key_rules` as a request for them would be).
pub fn targets(
    target: &CacheKey,
    key_rules: &KeyRules,
    response_headers: &HeaderMap,
) -> Vec<CacheKey> {
    let mut keys = vec![target.clone()];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(reference) = response_headers.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(path) = same_host_path(target, reference.trim()) {
            let key = CacheKey::new(target.method(), target.host(), &key_rules.normalise(&path));
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

fn same_host_path(target: &CacheKey, reference: &str) -> Option<String> {
    // Decided by the text, not by `Uri`: "other" alone would parse as a host.
    if reference.contains("://") || reference.starts_with("//") {
        let uri: Uri = if reference.starts_with("//") {
            format!("http:{reference}").parse().ok()?
        } else {
            reference.parse().ok()?
        };
        let authority = uri.authority()?;
        if normalize_host(authority.as_str()) != target.host() {
            return None;
        }
        return Some(uri.path_and_query().map_or("/", |p| p.as_str()).to_owned());
    }
    if reference.starts_with('/') {
        return Some(reference.to_owned());
    }
    // A relative path: resolved against the target's directory.
    let path = target.path_and_query().split('?').next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Some(format!("{dir}{reference}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_non_error_responses_to_unsafe_methods_invalidate() {
        assert!(invalidates(&Method::POST, StatusCode::OK));
        assert!(invalidates(&Method::DELETE, StatusCode::NO_CONTENT));
        assert!(invalidates(&Method::PUT, StatusCode::SEE_OTHER));
        assert!(invalidates(&Method::PATCH, StatusCode::CREATED));
        assert!(invalidates(
            &Method::from_bytes(b"LINK").expect("method"),
            StatusCode::OK
        ));
        assert!(!invalidates(&Method::POST, StatusCode::NOT_FOUND));
        assert!(!invalidates(
            &Method::POST,
            StatusCode::INTERNAL_SERVER_ERROR
        ));
        assert!(!invalidates(&Method::GET, StatusCode::OK));
        assert!(!invalidates(&Method::OPTIONS, StatusCode::OK));
    }

    #[test]
    fn same_host_locations_are_invalidated_too() {
        let target = CacheKey::new("GET", "a.test", "/items/1?x=1");
        let paths = |h: HeaderMap| -> Vec<String> {
            targets(&target, &KeyRules::default(), &h)
                .into_iter()
                .map(|k| k.path_and_query().to_owned())
                .collect()
        };
        assert_eq!(paths(HeaderMap::new()), ["/items/1?x=1"]);
        assert_eq!(
            paths(headers(&[
                (header::LOCATION, "/items/2"),
                (header::CONTENT_LOCATION, "http://A.test:8080/items/3?y")
            ])),
            ["/items/1?x=1", "/items/2", "/items/3?y"]
        );
        assert_eq!(
            paths(headers(&[(header::LOCATION, "other")])),
            ["/items/1?x=1", "/items/other"]
        );
        assert_eq!(
            paths(headers(&[(header::LOCATION, "http://b.test/items/2")])),
            ["/items/1?x=1"]
        );
        assert_eq!(
            paths(headers(&[(header::LOCATION, "//a.test/items/4")])),
            ["/items/1?x=1", "/items/4"]
        );
        assert_eq!(
            paths(headers(&[(header::LOCATION, "/items/1?x=1")])),
            ["/items/1?x=1"]
        );
    }

    #[test]
    fn locations_are_keyed_as_requests_for_them_are() {
        let target = CacheKey::new("GET", "a.test", "/items/1");
        let rules = KeyRules {
            ignore: vec![crate::cache::glob::Glob::new("utm_*")],
            sort: true,
        };
        let location = headers(&[(header::LOCATION, "/items/2?utm_source=x&b=1&a=2")]);
        let paths: Vec<String> = targets(&target, &rules, &location)
            .into_iter()
            .map(|k| k.path_and_query().to_owned())
            .collect();
        assert_eq!(paths, ["/items/1", "/items/2?a=2&b=1"]);
    }
}
