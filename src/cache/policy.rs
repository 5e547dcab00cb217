//! The caching decision, made by `http-cache-semantics` as a shared cache.

use std::time::{Duration, SystemTime};

use http_cache_semantics::{CacheOptions, CachePolicy};

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

/// Whether a response may be stored: allowed by RFC 9111 for a shared cache
/// and fresh for a positive time.
pub fn is_storable(policy: &CachePolicy, now: SystemTime) -> bool {
    policy.is_storable() && !policy.time_to_live(now).is_zero()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(request_headers: &[(&str, &str)], response_headers: &[(&str, &str)]) -> CachePolicy {
        let mut req = http1::Request::get("/x").header("host", "a");
        for (k, v) in request_headers {
            req = req.header(*k, *v);
        }
        let mut res = http1::Response::builder();
        for (k, v) in response_headers {
            res = res.header(*k, *v);
        }
        CachePolicy::new_options(
            &req.body(()).expect("request"),
            &res.body(()).expect("response"),
            SystemTime::now(),
            options(),
        )
    }

    #[test]
    fn only_explicit_freshness_is_stored() {
        let now = SystemTime::now();
        assert!(is_storable(
            &policy(&[], &[("cache-control", "max-age=60")]),
            now
        ));
        assert!(is_storable(
            &policy(&[], &[("cache-control", "s-maxage=60")]),
            now
        ));
        assert!(!is_storable(&policy(&[], &[]), now));
        assert!(!is_storable(
            &policy(&[], &[("last-modified", "Mon, 01 Jan 2001 00:00:00 GMT")]),
            now
        ));
        assert!(!is_storable(
            &policy(&[], &[("cache-control", "public")]),
            now
        ));
        assert!(!is_storable(
            &policy(&[], &[("cache-control", "immutable")]),
            now
        ));
        assert!(!is_storable(
            &policy(&[], &[("cache-control", "max-age=0")]),
            now
        ));
    }

    #[test]
    fn shared_cache_rules() {
        let now = SystemTime::now();
        let private = [("cache-control", "private, max-age=60")];
        assert!(!is_storable(&policy(&[], &private), now));
        let no_store = [("cache-control", "no-store, max-age=60")];
        assert!(!is_storable(&policy(&[], &no_store), now));
        let auth = [("authorization", "Bearer x")];
        assert!(!is_storable(
            &policy(&auth, &[("cache-control", "max-age=60")]),
            now
        ));
        assert!(is_storable(
            &policy(&auth, &[("cache-control", "public, max-age=60")]),
            now
        ));
    }
}
