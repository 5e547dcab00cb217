//! The caching decision, made by `http-cache-semantics` as a shared cache.

use std::time::{Duration, SystemTime};

use actix_web::http::header::HeaderMap;
use http_cache_semantics::{CacheOptions, CachePolicy};

use super::directives;

/// The largest `Age` a policy is built with: RFC 9111 §1.2.2 lets a cache
/// take a larger delta-seconds as 2^31, and `http-cache-semantics` adds the
/// time since storing to `Age` unchecked, so a value near `u64::MAX` would
/// overflow (and panic) on the first hit.
pub const MAX_AGE_SECONDS: u64 = 1 << 31;

/// Shared-cache options with heuristics off: caje caches only what the origin
/// gave explicit freshness to (`max-age`, `s-maxage` or `Expires`).
pub fn options() -> CacheOptions {
    CacheOptions {
        shared: true,
        cache_heuristic: 0.0,
        immutable_min_time_to_live: Duration::ZERO,
        ignore_cargo_cult: false,
    }
}

/// Whether a response may be stored: allowed by RFC 9111 for a shared
/// cache, and either fresh for a positive time or `no-cache` with a
/// validator (stored to be revalidated on every use, which costs the origin
/// a 304 instead of a body).
pub fn is_storable(policy: &CachePolicy, now: SystemTime, response_headers: &HeaderMap) -> bool {
    if !policy.is_storable() {
        return false;
    }
    if !policy.time_to_live(now).is_zero() {
        return true;
    }
    let has_validator =
        response_headers.contains_key("etag") || response_headers.contains_key("last-modified");
    has_validator && directives::response(response_headers).0.has("no-cache")
}

/// Whether the origin says a shared cache may keep this response for
/// everyone (`public` or `s-maxage`), the opt-in a response with
/// `Set-Cookie` needs.
pub fn marked_public(response_headers: &HeaderMap) -> bool {
    let (directives, _) = directives::response(response_headers);
    directives.has("public") || directives.has("s-maxage")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::http_compat;
    use crate::cache::test_headers as map;
    use crate::cache::CacheKey;
    use actix_web::http::StatusCode;

    /// The decision as the proxy makes it, through the same boundary.
    fn storable(request: &[(&str, &str)], response: &[(&str, &str)]) -> bool {
        let key = CacheKey::new("GET", "a", "/x");
        let (request, response) = (map(request), map(response));
        let now = SystemTime::now();
        let policy = CachePolicy::new_options(
            &http_compat::policy_request(&key, &request, &vec![]),
            &http_compat::policy_response(StatusCode::OK, &response),
            now,
            options(),
        );
        is_storable(&policy, now, &response)
    }

    #[test]
    fn only_explicit_freshness_is_stored() {
        assert!(storable(&[], &[("cache-control", "max-age=60")]));
        assert!(storable(&[], &[("cache-control", "s-maxage=60")]));
        assert!(
            storable(&[], &[("cache-control", "Max-Age=60")]),
            "names are case-insensitive"
        );
        assert!(!storable(&[], &[]));
        assert!(!storable(
            &[],
            &[("last-modified", "Mon, 01 Jan 2001 00:00:00 GMT")]
        ));
        assert!(!storable(&[], &[("cache-control", "public")]));
        assert!(!storable(&[], &[("cache-control", "immutable")]));
        assert!(!storable(&[], &[("cache-control", "max-age=0")]));
        assert!(
            !storable(&[], &[("expires", "0")]),
            "an invalid Expires is in the past"
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
        assert!(storable(&[], &[("expires", later.as_str())]));
    }

    #[test]
    fn shared_cache_rules() {
        assert!(!storable(&[], &[("cache-control", "private, max-age=60")]));
        assert!(!storable(&[], &[("cache-control", "no-store, max-age=60")]));
        assert!(!storable(
            &[("cache-control", "no-store")],
            &[("cache-control", "max-age=60")]
        ));
        let auth = [("authorization", "Bearer x")];
        assert!(!storable(&auth, &[("cache-control", "max-age=60")]));
        assert!(storable(&auth, &[("cache-control", "public, max-age=60")]));
        assert!(storable(&auth, &[("cache-control", "s-maxage=60")]));
        assert!(storable(
            &auth,
            &[("cache-control", "must-revalidate, max-age=60")]
        ));
    }

    #[test]
    fn public_or_s_maxage_mark_a_response_public() {
        assert!(marked_public(&map(&[(
            "cache-control",
            "Public, max-age=60"
        )])));
        assert!(marked_public(&map(&[("cache-control", "s-maxage=60")])));
        assert!(marked_public(&map(&[("cdn-cache-control", "public")])));
        assert!(!marked_public(&map(&[("cache-control", "max-age=60")])));
        assert!(!marked_public(&map(&[
            ("cache-control", "public"),
            ("cdn-cache-control", "max-age=60")
        ])));
    }

    #[test]
    fn no_cache_is_stored_only_with_a_validator() {
        assert!(storable(
            &[],
            &[("cache-control", "no-cache"), ("etag", "\"a\"")]
        ));
        assert!(storable(
            &[],
            &[
                ("cache-control", "no-cache, max-age=60"),
                ("last-modified", "Mon, 01 Jan 2001 00:00:00 GMT")
            ]
        ));
        assert!(!storable(&[], &[("cache-control", "no-cache")]));
    }

    #[test]
    fn cdn_cache_control_wins_over_cache_control_and_expires() {
        assert!(storable(
            &[],
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60")
            ]
        ));
        assert!(!storable(
            &[],
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store")
            ]
        ));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
        assert!(!storable(
            &[],
            &[("expires", later.as_str()), ("cdn-cache-control", "public")]
        ));
        assert!(storable(
            &[],
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "Bad Value")
            ]
        ));
    }
}
