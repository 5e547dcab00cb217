//! Admission: whether an origin response is stored, and the entry head it
//! is stored with. Shared by the proxy, background refreshes and the
//! populator, so all decide alike.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use http_cache_semantics::CachePolicy;

use super::key::{self, VaryValues};
use super::policy::Heuristic;
use super::{directives, http_compat, policy, CacheKey, EntryHead};

/// An origin's settings that admission follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmitRules {
    /// Store a `public` or `s-maxage` response with `Set-Cookie` (without it).
    pub cache_set_cookie: bool,
    /// Heuristic freshness, when the origin opts in.
    pub heuristic: Option<Heuristic>,
}

/// An origin response as admission sees it.
pub struct OriginAnswer<'a> {
    pub status: StatusCode,
    /// The fields as the origin sent them.
    pub headers: &'a HeaderMap,
    /// The fields as caje passes them on (hop-by-hop ones removed).
    pub passed_on: &'a HeaderMap,
}

/// The entry head to store and its time to live in seconds, when RFC 9111
/// (as a shared cache) lets caje store this answer to a request with
/// `request_headers` and the origin gave it freshness (or `rules` allow a
/// heuristic one).
pub fn admit(
    key: &CacheKey,
    request_headers: &HeaderMap,
    answer: &OriginAnswer<'_>,
    rules: AdmitRules,
) -> Option<(EntryHead, u64)> {
    // Cookies belong to one user: such a response is shared only when the
    // site allows it and the origin marks it public, and then without them.
    let with_cookie = answer.headers.contains_key(header::SET_COOKIE);
    if with_cookie && !(rules.cache_set_cookie && policy::marked_public(answer.headers)) {
        return None;
    }
    let cookieless;
    let origin_headers = if with_cookie {
        cookieless = without_set_cookie(answer.headers);
        &cookieless
    } else {
        answer.headers
    };
    // Most answers that may not be stored say so in their directives: no
    // policy is built to learn it (the policy reads the same directives).
    let (directives, _) = directives::response(origin_headers);
    if directives.has("no-store") || directives.has("private") {
        return None;
    }
    let names = key::vary_names(origin_headers)?;
    let vary: VaryValues = key::vary_values(&names, request_headers);
    let now = SystemTime::now();
    // Judged (and serialized into the entry) without the cookie it will not keep.
    let policy = CachePolicy::new_options(
        &http_compat::policy_request(key, request_headers, &vary),
        &http_compat::policy_response(answer.status, origin_headers),
        now,
        policy::options_for(rules.heuristic, answer.status.as_u16(), origin_headers, now),
    );
    if !policy::is_storable(&policy, now, origin_headers) {
        return None;
    }
    let ttl = policy.time_to_live(now).as_secs();
    let stored_headers = answer
        .passed_on
        .iter()
        .filter(|(name, _)| **name != header::AGE && **name != header::SET_COOKIE)
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let head = EntryHead {
        tags: purge_tags(answer.passed_on),
        invalidated: false,
        key: key.clone(),
        vary,
        status: answer.status.as_u16(),
        headers: stored_headers,
        policy,
        stored_at_ms: now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    Some((head, ttl))
}

/// Whether no client at all could have this answer stored: not merely the
/// one whose request (its directives, its credentials, its preconditions
/// or range) fetched it. Only then does a URL skip coalescing for a while
/// (hit-for-miss).
pub fn storable_for_no_one(key: &CacheKey, answer: &OriginAnswer<'_>, rules: AdmitRules) -> bool {
    // These answer one request's preconditions or range, and say nothing
    // of what the resource itself allows.
    let conditional = matches!(answer.status.as_u16(), 206 | 304 | 412 | 416);
    !conditional && admit(key, &HeaderMap::new(), answer, rules).is_none()
}

fn without_set_cookie(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    kept.remove(header::SET_COOKIE);
    kept
}

/// Purge tags from `Surrogate-Key` (space-separated) and `Cache-Tag`
/// (comma-separated), without duplicates.
pub fn purge_tags(response_headers: &HeaderMap) -> Vec<String> {
    let surrogate = response_headers
        .get_all("surrogate-key")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split_ascii_whitespace());
    let cache_tag = response_headers
        .get_all("cache-tag")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let mut tags: Vec<String> = surrogate
        .chain(cache_tag)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    tags.sort();
    tags.dedup();
    tags
}
