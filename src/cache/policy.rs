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

/// Heuristic freshness (RFC 9111 §4.2.2) for an origin that opts in: a
/// response with `Last-Modified` and no explicit freshness is fresh for
/// `fraction` of its age (`Date` − `Last-Modified`), at most `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heuristic {
    /// In (0, 1]; never NaN (the config checks it), hence `Eq`.
    pub fraction: f32,
    pub max: Duration,
}

impl Eq for Heuristic {}

/// The statuses RFC 9110 §15.1 makes heuristically cacheable.
pub const HEURISTICALLY_CACHEABLE: [u16; 12] =
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Whether the origin gave the response explicit freshness as caje reads
/// it: `max-age` or `s-maxage` (from a valid `CDN-Cache-Control` when there
/// is one), else `Expires` (which such a `CDN-Cache-Control` replaces).
pub fn explicit_freshness(response_headers: &HeaderMap) -> bool {
    let (directives, targeted) = directives::response(response_headers);
    directives.has("max-age")
        || directives.has("s-maxage")
        || (!targeted && response_headers.contains_key("expires"))
}

/// The options a response with `status` and `response_headers` is judged
/// with under an origin's `heuristic` rule: [`options`], with the rule's
/// fraction when the response may be heuristically fresh, lowered so that
/// the lifetime stays within the rule's `max` (the library has no cap).
/// Kept in the stored policy, so the entry's hits follow the same rule.
pub fn options_for(
    heuristic: Option<Heuristic>,
    status: u16,
    response_headers: &HeaderMap,
    now: SystemTime,
) -> CacheOptions {
    let plain = options();
    let Some(rule) = heuristic else {
        return plain;
    };
    if !HEURISTICALLY_CACHEABLE.contains(&status) || explicit_freshness(response_headers) {
        return plain;
    }
    let date = |name| {
        let text = response_headers.get(name)?.to_str().ok()?;
        httpdate::parse_http_date(text.trim_matches([' ', '\t'])).ok()
    };
    let Some(last_modified) = date("last-modified") else {
        return plain;
    };
    // As the library counts: from the `Date`, else the time received.
    let age = date("date")
        .unwrap_or(now)
        .duration_since(last_modified)
        .map_or(0, |d| d.as_secs());
    if age == 0 {
        return plain;
    }
    let max = rule.max.as_secs() as f64;
    let mut fraction = rule.fraction.min((max / age as f64) as f32);
    // f32 rounding must not take the lifetime past the cap.
    while fraction > 0.0 && age as f64 * f64::from(fraction) >= max + 1.0 {
        fraction = f32::from_bits(fraction.to_bits() - 1);
    }
    CacheOptions {
        cache_heuristic: fraction,
        ..plain
    }
}

/// The `Cache-Status` `detail` of a stored response: `heuristic` when its
/// freshness is a heuristic one (it has `Last-Modified`, no explicit
/// freshness, and no `no-cache` making it stored only to be revalidated).
pub fn freshness_detail(response_headers: &HeaderMap) -> Option<&'static str> {
    let heuristic = !explicit_freshness(response_headers)
        && response_headers.contains_key("last-modified")
        && !directives::response(response_headers).0.has("no-cache");
    heuristic.then_some("heuristic")
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

    const DAY: Duration = Duration::from_secs(24 * 3600);
    const RULE: Heuristic = Heuristic {
        fraction: 0.1,
        max: DAY,
    };

    /// The time to live admission would give, under `rule`; `None` when
    /// not storable.
    fn heuristic_ttl(
        status: u16,
        response: &[(&str, &str)],
        rule: Option<Heuristic>,
    ) -> Option<u64> {
        let key = CacheKey::new("GET", "a", "/x");
        let (request, response) = (map(&[]), map(response));
        let now = SystemTime::now();
        let status = StatusCode::from_u16(status).expect("status");
        let policy = CachePolicy::new_options(
            &http_compat::policy_request(&key, &request, &vec![]),
            &http_compat::policy_response(status, &response),
            now,
            options_for(rule, status.as_u16(), &response, now),
        );
        is_storable(&policy, now, &response).then(|| policy.time_to_live(now).as_secs())
    }

    fn dated(age: Duration) -> (String, String) {
        let now = SystemTime::now();
        (
            httpdate::fmt_http_date(now),
            httpdate::fmt_http_date(now - age),
        )
    }

    #[test]
    fn heuristic_freshness_is_a_fraction_of_the_age_when_the_origin_opts_in() {
        let (date, lm) = dated(DAY);
        let fields = [("date", date.as_str()), ("last-modified", lm.as_str())];
        assert_eq!(heuristic_ttl(200, &fields, None), None, "off: not stored");
        let ttl = heuristic_ttl(200, &fields, Some(RULE)).expect("stored");
        assert!((8630..=8640).contains(&ttl), "{ttl}");
        let half = Heuristic {
            fraction: 0.5,
            ..RULE
        };
        let ttl = heuristic_ttl(200, &fields, Some(half)).expect("stored");
        assert!((43190..=43200).contains(&ttl), "{ttl}");
        // No Last-Modified, or one not before the Date: nothing to go by.
        assert_eq!(
            heuristic_ttl(200, &[("date", date.as_str())], Some(RULE)),
            None
        );
        let future = [("date", lm.as_str()), ("last-modified", date.as_str())];
        assert_eq!(heuristic_ttl(200, &future, Some(RULE)), None);
    }

    #[test]
    fn heuristic_freshness_is_capped() {
        let (date, lm) = dated(Duration::from_secs(3 * 365 * 24 * 3600));
        let fields = [("date", date.as_str()), ("last-modified", lm.as_str())];
        let ttl = heuristic_ttl(200, &fields, Some(RULE)).expect("stored");
        assert!((86_390..=86_400).contains(&ttl), "{ttl}");
        let hour = Heuristic {
            max: Duration::from_secs(3600),
            ..RULE
        };
        let ttl = heuristic_ttl(200, &fields, Some(hour)).expect("stored");
        assert!((3590..=3600).contains(&ttl), "{ttl}");
    }

    #[test]
    fn heuristic_freshness_only_for_heuristically_cacheable_statuses() {
        let (date, lm) = dated(DAY);
        let fields = [("date", date.as_str()), ("last-modified", lm.as_str())];
        for status in [203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
            assert!(
                heuristic_ttl(status, &fields, Some(RULE)).is_some(),
                "{status}"
            );
        }
        for status in [302, 303, 307, 400, 403, 500, 502, 503] {
            assert_eq!(heuristic_ttl(status, &fields, Some(RULE)), None, "{status}");
        }
        // `public` makes a 302 storable for the library, never heuristically fresh here.
        let public = [
            ("date", date.as_str()),
            ("last-modified", lm.as_str()),
            ("cache-control", "public"),
        ];
        assert_eq!(heuristic_ttl(302, &public, Some(RULE)), None);
        assert!(heuristic_ttl(200, &public, Some(RULE)).is_some());
    }

    #[test]
    fn heuristic_freshness_never_overrides_the_origin() {
        let (date, lm) = dated(DAY);
        let with = |cc: &'static str| {
            let fields = [
                ("date", date.as_str()),
                ("last-modified", lm.as_str()),
                ("cache-control", cc),
            ];
            heuristic_ttl(200, &fields, Some(RULE))
        };
        assert_eq!(with("private"), None);
        assert_eq!(with("no-store"), None);
        assert_eq!(with("no-cache"), Some(0), "stored only to be revalidated");
        assert_eq!(with("max-age=0"), None, "explicit freshness wins");
        assert_eq!(with("max-age=60"), Some(60));
        let expired = [
            ("date", date.as_str()),
            ("last-modified", lm.as_str()),
            ("expires", "0"),
        ];
        assert_eq!(heuristic_ttl(200, &expired, Some(RULE)), None);
        // A valid CDN-Cache-Control replaces Cache-Control and Expires.
        let targeted = [
            ("date", date.as_str()),
            ("last-modified", lm.as_str()),
            ("expires", "0"),
            ("cdn-cache-control", "public"),
        ];
        assert!(heuristic_ttl(200, &targeted, Some(RULE)).expect("stored") > 8000);
        let targeted_max_age = [
            ("date", date.as_str()),
            ("last-modified", lm.as_str()),
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ];
        assert_eq!(heuristic_ttl(200, &targeted_max_age, Some(RULE)), Some(60));
    }

    #[test]
    fn the_heuristic_detail_names_only_heuristic_freshness() {
        let lm = ("last-modified", "Mon, 01 Jan 2001 00:00:00 GMT");
        assert_eq!(freshness_detail(&map(&[lm])), Some("heuristic"));
        assert_eq!(
            freshness_detail(&map(&[lm, ("cache-control", "max-age=60")])),
            None
        );
        assert_eq!(
            freshness_detail(&map(&[lm, ("cache-control", "no-cache")])),
            None
        );
        assert_eq!(freshness_detail(&map(&[("etag", "\"a\"")])), None);
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
