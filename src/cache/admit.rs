//! Admission: whether an origin response is stored, and the entry head it
//! is stored with. Shared by the proxy, background refreshes and the
//! populator, so all decide alike.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use http_cache_semantics::CachePolicy;

use super::freshness_rules::{FreshnessRules, Ignored};
use super::key::{self, VaryValues};
use super::policy::Heuristic;
use super::{
    directives, encoding, http_compat, partial, policy, status_codes, CacheKey, EntryHead,
};

/// An origin's settings that admission follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmitRules<'a> {
    /// Store a `public` or `s-maxage` response with `Set-Cookie` (without it).
    pub cache_set_cookie: bool,
    /// Heuristic freshness, when the origin opts in.
    pub heuristic: Option<Heuristic>,
    /// Store the statuses of `status_codes::CLIENT_ERRORS` too.
    pub cache_client_errors: bool,
    /// `default_ttl` and path rules.
    pub freshness: &'a FreshnessRules,
    /// Compression at the edge from this many body bytes; `None`: off.
    pub compress_from: Option<u64>,
}

impl AdmitRules<'_> {
    /// A stored response's fields as its caching decision read them: with
    /// the lifetime the origin's rules give it and what a rule ignores
    /// gone (see `freshness_rules`); the origin's own fields otherwise.
    pub fn judged_fields<'h>(
        &self,
        key: &CacheKey,
        status: u16,
        headers: &'h HeaderMap,
    ) -> Cow<'h, HeaderMap> {
        match self
            .freshness
            .applied(key.path_and_query(), status, headers)
        {
            Some(applied) => Cow::Owned(applied.judged_fields(headers)),
            None => Cow::Borrowed(headers),
        }
    }

    /// The `Cache-Status` `detail` of a stored response: the rule that
    /// gave its freshness, else `heuristic` for a heuristic one.
    pub fn freshness_detail(
        &self,
        key: &CacheKey,
        status: u16,
        headers: &HeaderMap,
    ) -> Option<Cow<'static, str>> {
        if let Some(applied) = self
            .freshness
            .applied(key.path_and_query(), status, headers)
        {
            return Some(applied.source.detail());
        }
        policy::freshness_detail(headers).map(Cow::Borrowed)
    }
}

/// An origin response as admission sees it.
pub struct OriginAnswer<'a> {
    pub status: StatusCode,
    /// The fields as the origin sent them.
    pub headers: &'a HeaderMap,
    /// The fields as caje passes them on (hop-by-hop ones removed; a
    /// `Content-Length` there is never stored).
    pub passed_on: &'a HeaderMap,
}

/// Why an answer is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The answer itself forbids it (its status, its fields, a path rule):
    /// no client's request could have it stored.
    ForAnyone,
    /// Judged with this request (its directives, its credentials): another
    /// client's request might have it stored.
    ForThisRequest,
}

/// The entry head to store and its time to live in seconds, when RFC 9111
/// (as a shared cache) lets caje store this answer to a request with
/// `request_headers` and the origin gave it freshness (or `rules` allow a
/// heuristic one).
pub fn admit(
    key: &CacheKey,
    request_headers: &HeaderMap,
    answer: &OriginAnswer<'_>,
    rules: AdmitRules<'_>,
) -> Option<(EntryHead, u64)> {
    admission(key, request_headers, answer, rules).ok()
}

/// [`admit`], saying why when the answer is not stored.
pub fn admission(
    key: &CacheKey,
    request_headers: &HeaderMap,
    answer: &OriginAnswer<'_>,
    rules: AdmitRules<'_>,
) -> Result<(EntryHead, u64), Refusal> {
    use Refusal::{ForAnyone, ForThisRequest};
    // A bypassed path is never stored, whoever fetched it.
    if rules.freshness.bypass(key.path_and_query()).is_some() {
        return Err(ForAnyone);
    }
    let status = answer.status.as_u16();
    let admissible = if status == 206 {
        partial::storable_part(answer.headers).is_some()
    } else {
        status_codes::admissible(status, rules.cache_client_errors)
    };
    if !admissible {
        return Err(ForAnyone);
    }
    let applied = rules
        .freshness
        .applied(key.path_and_query(), status, answer.headers);
    // Cookies belong to one user: such a response is shared only when the
    // site allows it and the origin marks it public, or a path rule says
    // so in so many words, and then without them.
    let with_cookie = answer.headers.contains_key(header::SET_COOKIE);
    let cookie_allowed = (rules.cache_set_cookie && policy::marked_public(answer.headers))
        || applied
            .as_ref()
            .is_some_and(|a| a.ignores(Ignored::SetCookie));
    if with_cookie && !cookie_allowed {
        return Err(ForAnyone);
    }
    let cookieless;
    let without_cookie = if with_cookie {
        cookieless = without_set_cookie(answer.headers);
        &cookieless
    } else {
        answer.headers
    };
    // With the lifetime caje's rules give it, judged as the origin's own.
    let judged;
    let origin_headers = match &applied {
        Some(applied) => {
            judged = applied.judged_fields(without_cookie);
            &judged
        }
        None => without_cookie,
    };
    // Most answers that may not be stored say so in their directives: no
    // policy is built to learn it (the policy reads the same directives;
    // `must-understand` may lift `no-store`, so the policy judges those).
    let (directives, _) = directives::response(origin_headers);
    let no_store = directives.has("no-store") && !directives.has("must-understand");
    if no_store || directives.has("private") {
        return Err(ForAnyone);
    }
    let names = key::vary_names(origin_headers).ok_or(ForAnyone)?;
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
        return Err(ForThisRequest);
    }
    let ttl = policy.time_to_live(now).as_secs();
    let stored_headers = answer
        .passed_on
        .iter()
        .filter(|(name, _)| {
            !matches!(
                **name,
                header::AGE | header::SET_COOKIE | header::CONTENT_LENGTH
            )
        })
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let mut head = EntryHead {
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
    if let Some(min_len) = rules.compress_from {
        let len = answer
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        if encoding::may_compress(&head, len, min_len) {
            encoding::mark_compressible(&mut head);
        }
    }
    Ok((head, ttl))
}

/// Whether no client at all could have this answer stored: not merely the
/// one whose request (its directives, its credentials, its preconditions
/// or range) fetched it. Only then does a URL skip coalescing for a while
/// (hit-for-miss). `refused` is the request's own admission, when it was
/// judged: refused for anyone, it is not judged again.
pub fn storable_for_no_one(
    key: &CacheKey,
    answer: &OriginAnswer<'_>,
    rules: AdmitRules<'_>,
    refused: Option<Refusal>,
) -> bool {
    // These answer one request's preconditions, range or malformation, and
    // say nothing of what the resource itself allows.
    let status = answer.status.as_u16();
    let one_request =
        matches!(status, 206 | 304 | 412 | 416) || status_codes::CLIENT_ERRORS.contains(&status);
    !one_request
        && (refused == Some(Refusal::ForAnyone)
            || admission(key, &HeaderMap::new(), answer, rules).is_err())
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::freshness_rules::StatusTtls;
    use crate::cache::test_headers as map;

    fn ttl_given(request: &[(&str, &str)], response: &[(&str, &str)]) -> Option<u64> {
        judged(request, response).ok()
    }

    fn judged(request: &[(&str, &str)], response: &[(&str, &str)]) -> Result<u64, Refusal> {
        let freshness = FreshnessRules {
            default_ttl: StatusTtls(vec![(200, Duration::from_secs(600))]),
            rules: vec![],
        };
        let rules = AdmitRules {
            cache_set_cookie: true,
            heuristic: None,
            freshness: &freshness,
            cache_client_errors: false,
            compress_from: None,
        };
        let fields = map(response);
        let answer = OriginAnswer {
            status: StatusCode::OK,
            headers: &fields,
            passed_on: &fields,
        };
        let key = CacheKey::new("GET", "a", "/x");
        admission(&key, &map(request), &answer, rules).map(|(_, ttl)| ttl)
    }

    #[test]
    fn a_refusal_for_anyone_holds_for_a_request_with_no_fields_at_all() {
        let requests: [&[(&str, &str)]; 3] = [
            &[],
            &[("authorization", "Bearer x")],
            &[("cache-control", "no-store")],
        ];
        let responses: [&[(&str, &str)]; 6] = [
            &[],
            &[("cache-control", "no-store")],
            &[("cache-control", "private")],
            &[("vary", "*")],
            &[("set-cookie", "s=1")],
            &[("cache-control", "public, max-age=60")],
        ];
        for request in requests {
            for response in responses {
                if judged(request, response) == Err(Refusal::ForAnyone) {
                    assert!(judged(&[], response).is_err(), "{request:?} {response:?}");
                }
            }
        }
        assert_eq!(
            judged(&[], &[("cache-control", "no-store")]),
            Err(Refusal::ForAnyone)
        );
        // Another client's request would have it stored.
        assert_eq!(
            judged(&[("cache-control", "no-store")], &[]),
            Err(Refusal::ForThisRequest)
        );
        assert_eq!(judged(&[], &[]), Ok(600));
    }

    #[test]
    fn a_given_ttl_is_no_licence_to_share_what_the_request_or_origin_keeps_private() {
        assert_eq!(ttl_given(&[], &[]), Some(600));
        // A max-age, never s-maxage: a response to a request with
        // credentials stays unshared unless the origin says otherwise.
        assert_eq!(ttl_given(&[("authorization", "Bearer x")], &[]), None);
        assert_eq!(
            ttl_given(
                &[("authorization", "Bearer x")],
                &[("cache-control", "public")]
            ),
            Some(600)
        );
        assert_eq!(ttl_given(&[("cache-control", "no-store")], &[]), None);
        // cache_set_cookie still wants `public`; a given TTL is not that.
        assert_eq!(ttl_given(&[], &[("set-cookie", "s=1")]), None);
        assert_eq!(ttl_given(&[], &[("vary", "*")]), None);
        // no-cache: stored with its validator, but every use revalidates.
        assert_eq!(
            ttl_given(&[], &[("cache-control", "no-cache"), ("etag", "\"a\"")]),
            Some(0)
        );
    }
}
