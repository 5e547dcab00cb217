//! Serving stale responses (RFC 5861, RFC 9111 §4.2.4): how stale a stored
//! response is, and what its directives allow. `http-cache-semantics` has
//! no stale-while-revalidate or stale-if-error logic, so caje keeps it here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use http_cache_semantics::CachePolicy;

use super::{directives, EntryHead};

/// What a stored response's directives allow once it is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleRules {
    /// `stale-while-revalidate`: served stale while refreshed in the background.
    pub while_revalidate: Duration,
    /// `stale-if-error`: served stale when the origin fails; `None` when the
    /// response says nothing (a configured default may apply).
    pub if_error: Option<Duration>,
    /// `must-revalidate`, `proxy-revalidate`, `s-maxage` (which implies
    /// proxy-revalidate for a shared cache) or `no-cache` forbid both.
    pub forbidden: bool,
}

/// The stored header fields as a map.
pub fn header_map(head: &EntryHead) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in &head.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

pub fn rules(head: &EntryHead) -> StaleRules {
    let (d, _) = directives::response(&header_map(head));
    StaleRules {
        while_revalidate: Duration::from_secs(d.seconds("stale-while-revalidate").unwrap_or(0)),
        if_error: d.seconds("stale-if-error").map(Duration::from_secs),
        forbidden: [
            "must-revalidate",
            "proxy-revalidate",
            "s-maxage",
            "no-cache",
        ]
        .iter()
        .any(|name| d.has(name)),
    }
}

/// How far past its freshness lifetime a stored response is at `now`
/// (zero while fresh).
pub fn staleness(policy: &CachePolicy, stored_at_ms: u64, now: SystemTime) -> Duration {
    let stored_at = UNIX_EPOCH + Duration::from_millis(stored_at_ms);
    let lifetime = policy.time_to_live(stored_at) + policy.age(stored_at);
    policy.age(now).saturating_sub(lifetime)
}

/// Remaining freshness in whole seconds, negative once stale (RFC 9211 `ttl`).
pub fn signed_ttl(policy: &CachePolicy, stored_at_ms: u64, now: SystemTime) -> i64 {
    // Saturating: `as i64` would turn a max-age near u64::MAX negative.
    let seconds = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let ttl = policy.time_to_live(now);
    if !ttl.is_zero() {
        return seconds(ttl);
    }
    -seconds(staleness(policy, stored_at_ms, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{policy, CacheKey};

    fn head(cache_control: &str, stored_at: SystemTime) -> EntryHead {
        let req = http1::Request::get("/x")
            .header("host", "a")
            .body(())
            .expect("request");
        let res = http1::Response::builder()
            .header("cache-control", cache_control)
            .body(())
            .expect("response");
        EntryHead {
            key: CacheKey::new("GET", "a", "/x"),
            vary: vec![],
            status: 200,
            headers: vec![("cache-control".into(), cache_control.as_bytes().to_vec())],
            policy: CachePolicy::new_options(&req, &res, stored_at, policy::options()),
            stored_at_ms: stored_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            tags: vec![],
            invalidated: false,
        }
    }

    #[test]
    fn directives_set_the_windows() {
        let now = SystemTime::now();
        let h = head(
            "max-age=10, stale-while-revalidate=30, stale-if-error=600",
            now,
        );
        assert_eq!(
            rules(&h),
            StaleRules {
                while_revalidate: Duration::from_secs(30),
                if_error: Some(Duration::from_secs(600)),
                forbidden: false,
            }
        );
        for strict in [
            "max-age=10, must-revalidate",
            "max-age=10, proxy-revalidate",
            "s-maxage=10",
            "no-cache",
        ] {
            assert!(rules(&head(strict, now)).forbidden, "{strict}");
        }
        assert_eq!(rules(&head("max-age=10", now)).if_error, None);
    }

    #[test]
    fn staleness_counts_from_the_end_of_freshness() {
        let stored = SystemTime::now() - Duration::from_secs(25);
        let h = head("max-age=10", stored);
        let now = SystemTime::now();
        let stale = staleness(&h.policy, h.stored_at_ms, now).as_secs();
        assert!((14..=16).contains(&stale), "{stale}");
        assert!((-16..=-14).contains(&signed_ttl(&h.policy, h.stored_at_ms, now)));
        let fresh = head("max-age=100", stored);
        assert_eq!(
            staleness(&fresh.policy, fresh.stored_at_ms, now),
            Duration::ZERO
        );
        assert!(signed_ttl(&fresh.policy, fresh.stored_at_ms, now) > 70);
    }
}
