//! A stored response's status and header fields in the form a response is
//! built from, parsed once per entry: a hit on an entry of the memory tier
//! then copies no name or value (each is a reference-counted clone), and
//! only `Age` and `Cache-Status` are made per request.

use std::time::SystemTime;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;

use super::freshness::{self, AgeAt};
use super::{policy, EntryHead};

pub struct ResponseFields {
    pub status: StatusCode,
    /// The stored fields in their stored order (pairs that are not valid
    /// fields are left out, as they always were).
    pub fields: Vec<(HeaderName, HeaderValue)>,
    /// Whether the origin sent its own `Accept-Ranges`.
    pub has_accept_ranges: bool,
    /// `Cache-Status`'s `detail` for a hit (`heuristic` freshness).
    pub freshness_detail: Option<&'static str>,
    /// When the response stops being fresh (`freshness::fresh_until`).
    pub fresh_until: Option<SystemTime>,
    /// Its age when these fields were read, for its `Age` on a hit.
    pub age_at: AgeAt,
}

impl ResponseFields {
    pub fn new(head: &EntryHead) -> Self {
        let now = SystemTime::now();
        let fields: Vec<(HeaderName, HeaderValue)> = head
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from_bytes(name.as_bytes()).ok()?,
                    HeaderValue::from_bytes(value).ok()?,
                ))
            })
            .collect();
        Self {
            status: StatusCode::from_u16(head.status).unwrap_or(StatusCode::OK),
            freshness_detail: policy::freshness_detail(&head.header_map()),
            has_accept_ranges: fields.iter().any(|(n, _)| n == header::ACCEPT_RANGES),
            fresh_until: freshness::fresh_until(&head.policy, now),
            age_at: AgeAt::new(&head.policy, now),
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use http_cache_semantics::CachePolicy;

    use super::*;
    use crate::cache::{policy, CacheKey};

    #[test]
    fn keeps_valid_fields_in_order_and_leaves_out_the_rest() {
        let req = http1::Request::get("/").body(()).expect("request");
        let res = http1::Response::builder().body(()).expect("response");
        let mut head = EntryHead {
            key: CacheKey::new("GET", "a", "/"),
            vary: Vec::new(),
            status: 203,
            headers: Vec::new(),
            policy: CachePolicy::new_options(&req, &res, SystemTime::now(), policy::options()),
            stored_at_ms: 0,
            tags: Vec::new(),
            invalidated: false,
        };
        head.headers = vec![
            ("etag".into(), b"\"a\"".to_vec()),
            ("bad name".into(), b"x".to_vec()),
            ("x-bad-value".into(), b"a\nb".to_vec()),
            ("accept-ranges".into(), b"none".to_vec()),
            ("x-custom".into(), b"1".to_vec()),
        ];
        let fields = ResponseFields::new(&head);
        assert_eq!(fields.status, StatusCode::NON_AUTHORITATIVE_INFORMATION);
        let names: Vec<&str> = fields.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["etag", "accept-ranges", "x-custom"]);
        assert!(fields.has_accept_ranges);
        head.headers.retain(|(n, _)| n != "accept-ranges");
        assert!(!ResponseFields::new(&head).has_accept_ranges);
    }
}
