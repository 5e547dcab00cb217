//! Freshness: whether a stored response may be sent as it is or must be
//! validated first (RFC 9111 §4.2), and when a stale one may still be
//! served (stale-while-revalidate, stale-if-error: RFC 5861, §4.2.4).
//! `http-cache-semantics` lets a client's `max-stale` be refused only by
//! `must-revalidate` and has no stale-while-revalidate or stale-if-error
//! logic, so caje keeps those rules here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::HeaderMap;
use http_cache_semantics::{BeforeRequest, CachePolicy};

use super::directives::{self, Directives};
use super::{http_compat, EntryHead, Forward, KeyView};

/// What a stored response can do for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sent as it is.
    Fresh,
    /// Validated with the origin first: stale or soft-purged
    /// ([`Forward::Stale`]), or the request's own directives ask for it
    /// ([`Forward::Request`]).
    Validate(Forward),
}

/// Judges a stored response for a request with these (origin-visible)
/// headers and their directives (`request`, parsed once by the caller) at
/// `now`; `fresh_until` is the response's [`fresh_until`].
pub fn judge<'k>(
    (seen, request): (&HeaderMap, &Directives),
    key: impl Into<KeyView<'k>>,
    (head, fresh_until): (&EntryHead, Option<SystemTime>),
    now: SystemTime,
) -> Verdict {
    if head.invalidated {
        return Verdict::Validate(Forward::Stale);
    }
    let stale = fresh_until.is_none_or(|until| now >= until);
    // The key and the `Vary` selection already match the stored request, so
    // without request directives the policy's answer is its freshness alone;
    // asking it in full would rebuild both requests and the response head.
    if request.is_empty() {
        return if stale {
            Verdict::Validate(Forward::Stale)
        } else {
            Verdict::Fresh
        };
    }
    let policy_request = http_compat::policy_request(key, seen, &head.vary);
    match head.policy.before_request(&policy_request, now) {
        // A client's `max-stale` never beats a shared-cache prohibition on
        // serving stale (no-cache, must-revalidate, proxy-revalidate,
        // s-maxage; RFC 9111 §4.2.4): the library checks only must-revalidate.
        BeforeRequest::Fresh(_) if stale && rules(head).forbidden => {
            Verdict::Validate(Forward::Stale)
        }
        BeforeRequest::Fresh(_) => Verdict::Fresh,
        BeforeRequest::Stale { .. } if stale => Verdict::Validate(Forward::Stale),
        // Fresh, but the request's own directives ask for validation.
        BeforeRequest::Stale { .. } => Verdict::Validate(Forward::Request),
    }
}

/// Whether a stale entry may be sent while it is refreshed (never a
/// soft-purged one: it must be validated first).
pub fn within_while_revalidate(head: &EntryHead, now: SystemTime) -> bool {
    let rules = rules(head);
    !head.invalidated
        && !rules.forbidden
        && staleness(&head.policy, head.stored_at_ms, now) <= rules.while_revalidate
}

/// Whether a stale entry may stand in for a failed origin: within the
/// response's `stale-if-error`, or else the configured `default`.
pub fn within_if_error(head: &EntryHead, default: Duration, now: SystemTime) -> bool {
    let rules = rules(head);
    !rules.forbidden
        && staleness(&head.policy, head.stored_at_ms, now) <= rules.if_error.unwrap_or(default)
}

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

pub fn rules(head: &EntryHead) -> StaleRules {
    let (d, _) = directives::response(&head.header_map());
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

/// When a stored response stops being fresh ([`fresh_until`] of its
/// policy at any `now`): its age grows with the clock, so its remaining
/// lifetime at one moment fixes the end, and a hit compares two times
/// instead of asking the policy (which parses its directives each time).
/// `None` when it is stale already.
pub fn fresh_until(policy: &CachePolicy, now: SystemTime) -> Option<SystemTime> {
    let ttl = policy.time_to_live(now);
    (!ttl.is_zero()).then(|| now + ttl)
}

/// A stored response's age as its policy gave it at one moment: it grows
/// with the clock from there, so a hit adds the time since instead of
/// asking the policy (which looks its `Age` field up by name each time).
#[derive(Debug, Clone, Copy)]
pub struct AgeAt {
    at: SystemTime,
    age: Duration,
}

impl AgeAt {
    pub fn new(policy: &CachePolicy, now: SystemTime) -> Self {
        Self {
            at: now,
            age: policy.age(now),
        }
    }

    /// [`CachePolicy::age`] at `now`; the policy is asked again only if
    /// the clock went back.
    pub fn age(&self, policy: &CachePolicy, now: SystemTime) -> Duration {
        match now.duration_since(self.at) {
            Ok(since) => self.age + since,
            Err(_) => policy.age(now),
        }
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
    fn an_age_read_once_grows_as_the_policy_says() {
        let received = SystemTime::now();
        let req = http1::Request::get("/x").body(()).expect("request");
        let res = http1::Response::builder()
            .header("cache-control", "max-age=600")
            .header("age", "100")
            .body(())
            .expect("response");
        let policy = CachePolicy::new_options(&req, &res, received, policy::options());
        let read = received + Duration::from_millis(1500);
        let age_at = AgeAt::new(&policy, read);
        for later in [0, 1, 999, 61_000] {
            let now = read + Duration::from_millis(later);
            assert_eq!(age_at.age(&policy, now), policy.age(now), "{later}");
        }
        assert_eq!(age_at.age(&policy, read).as_secs(), 101);
        // The clock went back: the policy is asked.
        let before = received + Duration::from_millis(500);
        assert_eq!(age_at.age(&policy, before), policy.age(before));
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

    #[test]
    fn fresh_until_agrees_with_the_policy_at_every_later_moment() {
        let stored = SystemTime::now() - Duration::from_secs(25);
        for cache_control in [
            "max-age=10",
            "max-age=100",
            "max-age=30, s-maxage=60",
            "no-cache",
        ] {
            let h = head(cache_control, stored);
            // Worked out at one moment, then asked at others after it.
            let worked_out = stored + Duration::from_millis(1_500);
            let until = fresh_until(&h.policy, worked_out);
            for later_ms in [
                1_500, 9_999, 10_000, 29_999, 30_000, 59_999, 60_000, 99_000, 200_000,
            ] {
                let now = stored + Duration::from_millis(later_ms);
                let stale = until.is_none_or(|until| now >= until);
                assert_eq!(
                    stale,
                    h.policy.is_stale(now),
                    "{cache_control} at {later_ms} ms"
                );
                if let Some(until) = until.filter(|until| now < *until) {
                    let left = until.duration_since(now).expect("later").as_secs();
                    assert_eq!(
                        left,
                        h.policy.time_to_live(now).as_secs(),
                        "{cache_control}"
                    );
                }
            }
        }
    }
}
