//! Revalidation (RFC 9111 §4.3): the validators a stored response is
//! checked with, and the stored response updated by the origin's 304 Not
//! Modified (§3.2, §4.3.4): the 304's header fields replace the stored
//! ones, the body is kept, and freshness starts again.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use http_cache_semantics::CachePolicy;

use super::admit::AdmitRules;
use super::conditional::EntityTag;
use super::entry::fields_map;
use super::{encoding, http_compat, policy, EntryHead};

/// Fields a 304 may not change: they describe the stored body.
const KEPT_FROM_STORED: [HeaderName; 4] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::TRANSFER_ENCODING,
    header::CONTENT_RANGE,
];

/// The validators of a stored copy, sent to ask the origin whether it
/// changed (RFC 9111 §4.3.1).
#[derive(Debug, Default, Clone)]
pub struct StoredValidators {
    pub etag: Option<HeaderValue>,
    pub last_modified: Option<HeaderValue>,
}

impl StoredValidators {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// The validators to revalidate a stored response with.
pub fn validators(head: &EntryHead) -> StoredValidators {
    let value = |name| {
        head.field(name)
            .and_then(|v| HeaderValue::from_bytes(v).ok())
    };
    StoredValidators {
        etag: value("etag"),
        last_modified: value("last-modified"),
    }
}

/// Whether a 304 speaks of this stored response: its validator, if it has
/// one, must be the stored one.
fn matches(head: &EntryHead, not_modified: &HeaderMap) -> bool {
    let text = |v: &HeaderValue| v.to_str().ok().map(str::to_owned);
    if let Some(new) = not_modified.get(header::ETAG).and_then(text) {
        let stored = head.field_str("etag");
        return match (EntityTag::parse(&new), stored.and_then(EntityTag::parse)) {
            (Some(new), Some(stored)) => new.weak_eq(&stored),
            _ => false,
        };
    }
    if let Some(new) = not_modified.get(header::LAST_MODIFIED) {
        return head.field("last-modified") == Some(new.as_bytes());
    }
    true
}

/// What becomes of the stored copy after a 304.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Its head is replaced by the updated one.
    Update,
    /// It stays as it was: this request may not store (its `no-store`, or
    /// credentials the response does not allow sharing), but a request
    /// directive never removes what is stored (RFC 9111 §5.2.1.5).
    AsStored,
    /// The origin's answer now forbids storing it for anyone.
    Drop,
}

/// A stored response after the origin's 304.
pub struct Revalidated {
    pub head: EntryHead,
    pub keep: Keep,
}

/// The stored head updated by a 304 (its fields as caje passes them on),
/// or `None` when the 304 is about another response than the stored one.
/// `rules` are the origin's, as admission applied them (heuristic
/// freshness, `default_ttl`, path rules).
pub fn updated_head(
    stored: &EntryHead,
    request_headers: &HeaderMap,
    not_modified: &HeaderMap,
    rules: AdmitRules<'_>,
    now: SystemTime,
) -> Option<Revalidated> {
    if !matches(stored, not_modified) {
        return None;
    }
    let fresh = not_modified;
    // A 304's cookie is for the client whose request it answers, never
    // for the stored copy everyone gets.
    let replaced = |name: &str| {
        fresh.contains_key(name)
            && name != "age"
            && name != "set-cookie"
            && !KEPT_FROM_STORED.iter().any(|kept| kept.as_str() == name)
    };
    let mut headers: Vec<(String, Vec<u8>)> = stored
        .headers
        .iter()
        .filter(|(name, _)| !replaced(name))
        .cloned()
        .collect();
    for (name, value) in fresh {
        if replaced(name.as_str()) {
            headers.push((name.as_str().to_owned(), value.as_bytes().to_vec()));
        }
    }
    encoding::keep_weak(stored, &mut headers);
    let mut merged = fields_map(&headers);
    if let Some(age) = not_modified.get(header::AGE) {
        merged.insert(header::AGE, age.clone());
    }
    let policy_headers = rules.judged_fields(&stored.key, stored.status, &merged);
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let response = http_compat::policy_response(status, &policy_headers);
    let options = policy::options_for(rules.heuristic, stored.status, &policy_headers, now);
    let policy_for = |request_headers: &HeaderMap| {
        CachePolicy::new_options(
            &http_compat::policy_request(&stored.key, request_headers, &stored.vary),
            &response,
            now,
            options,
        )
    };
    // The stored copy is judged as any client would find it: without this
    // request's directives or credentials.
    let policy = policy_for(&HeaderMap::new());
    let keep = if !policy::is_storable(&policy, now, &policy_headers) {
        Keep::Drop
    } else if policy::is_storable(&policy_for(request_headers), now, &policy_headers) {
        Keep::Update
    } else {
        Keep::AsStored
    };
    let head = EntryHead {
        headers,
        policy,
        // Validated again: no longer soft-purged.
        invalidated: false,
        stored_at_ms: now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        ..stored.clone()
    };
    Some(Revalidated { head, keep })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::admit::{admit, OriginAnswer};
    use crate::cache::entry::{decode_head, encode_head, BODY_LEN_OFFSET};
    use crate::cache::freshness_rules::{FreshnessRules, StatusTtls};
    use crate::cache::policy::Heuristic;
    use crate::cache::test_headers as map;
    use crate::cache::CacheKey;

    const DAY: Duration = Duration::from_secs(24 * 3600);
    const RULES: AdmitRules = AdmitRules {
        cache_set_cookie: false,
        heuristic: Some(Heuristic {
            fraction: 0.1,
            max: DAY,
        }),
        freshness: &FreshnessRules::NONE,
        cache_client_errors: false,
        compress_from: None,
    };

    fn heuristic_entry() -> (EntryHead, String) {
        let now = SystemTime::now();
        let last_modified = httpdate::fmt_http_date(now - DAY);
        let fields = map(&[
            ("date", &httpdate::fmt_http_date(now)),
            ("last-modified", &last_modified),
        ]);
        let answer = OriginAnswer {
            status: StatusCode::OK,
            headers: &fields,
            passed_on: &fields,
        };
        let key = CacheKey::new("GET", "a", "/x");
        let (head, ttl) = admit(&key, &HeaderMap::new(), &answer, RULES).expect("stored");
        assert!((8630..=8640).contains(&ttl), "{ttl}");
        (head, last_modified)
    }

    #[test]
    fn a_stored_policy_keeps_its_heuristic_rule() {
        let (head, _) = heuristic_entry();
        let mut bytes = encode_head(&head).expect("encodes");
        // An empty body, as the writer completes it.
        let at = BODY_LEN_OFFSET as usize;
        bytes[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
        let len = bytes.len() as u64;
        let decoded = decode_head(&mut &bytes[..], len).expect("decodes").head;
        let ttl = decoded.policy.time_to_live(SystemTime::now()).as_secs();
        assert!((8630..=8640).contains(&ttl), "{ttl}");
    }

    #[test]
    fn a_304_keeps_the_entry_under_its_heuristic_rule() {
        let (stored, last_modified) = heuristic_entry();
        // Two days later: the age is now three days, the lifetime 7.2 h.
        let later = SystemTime::now() + 2 * DAY;
        let not_modified = map(&[
            ("date", &httpdate::fmt_http_date(later)),
            ("last-modified", &last_modified),
        ]);
        let updated =
            updated_head(&stored, &HeaderMap::new(), &not_modified, RULES, later).expect("304");
        assert_eq!(updated.keep, Keep::Update);
        let ttl = updated.head.policy.time_to_live(later).as_secs();
        assert!((25_910..=25_920).contains(&ttl), "{ttl}");
        // Rebuilt without the rule, nothing would keep it fresh.
        let plain = AdmitRules {
            heuristic: None,
            ..RULES
        };
        let plain = updated_head(&stored, &HeaderMap::new(), &not_modified, plain, later);
        assert_eq!(plain.expect("304").keep, Keep::Drop);
    }

    #[test]
    fn a_default_ttl_is_stored_in_the_policy_and_given_again_after_a_304() {
        let freshness = FreshnessRules {
            default_ttl: StatusTtls(vec![(200, Duration::from_secs(600))]),
            rules: vec![],
        };
        let rules = AdmitRules {
            cache_set_cookie: false,
            heuristic: None,
            freshness: &freshness,
            cache_client_errors: false,
            compress_from: None,
        };
        let fields = map(&[("etag", "\"a\"")]);
        let answer = OriginAnswer {
            status: StatusCode::OK,
            headers: &fields,
            passed_on: &fields,
        };
        let key = CacheKey::new("GET", "a", "/x");
        let (head, ttl) = admit(&key, &HeaderMap::new(), &answer, rules).expect("stored");
        assert_eq!(ttl, 600);
        // The client gets the origin's own fields, never caje's max-age.
        assert_eq!(head.field_str("cache-control"), None);
        // Ten minutes later it is stale; the origin's 304 starts it again.
        let later = SystemTime::now() + Duration::from_secs(601);
        assert!(head.policy.is_stale(later));
        let not_modified = map(&[("etag", "\"a\"")]);
        let updated =
            updated_head(&head, &HeaderMap::new(), &not_modified, rules, later).expect("304");
        assert_eq!(updated.keep, Keep::Update);
        assert_eq!(updated.head.policy.time_to_live(later).as_secs(), 600);
        // A 304 that now gives freshness itself is followed.
        let explicit = map(&[("etag", "\"a\""), ("cache-control", "max-age=5")]);
        let updated = updated_head(&head, &HeaderMap::new(), &explicit, rules, later).expect("304");
        assert_eq!(updated.head.policy.time_to_live(later).as_secs(), 5);
    }
}
