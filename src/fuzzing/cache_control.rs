//! The `cache_control` target: directives caje reads and what it hands to
//! `http-cache-semantics`.

use std::time::{Duration, UNIX_EPOCH};

use actix_web::http::header::{HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use http_cache_semantics::CachePolicy;

use super::input::{blocks, header_map};
use super::NOW;
use crate::cache::directives::{self, Directives};
use crate::cache::http_compat;
use crate::cache::key::CacheKey;
use crate::cache::{policy, status_codes};

/// Cache-Control handling. Input: a response block (first line the status
/// code, then header lines) and a request header block.
/// `Directives::parse(d.to_field())` is `d`; the fields handed to
/// `http-cache-semantics` say exactly what caje read; the library finds
/// freshness only where caje sees explicit freshness, and storage only
/// where caje's directives allow it.
pub fn cache_control(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = Directives::parse(text.lines());
    check_round_trip(&parsed);

    let mut blocks = blocks(data);
    let mut response_block = blocks.next().unwrap_or_default();
    let mut status = StatusCode::OK;
    if let Some(end) = response_block.iter().position(|&b| b == b'\n') {
        if let Ok(s) = StatusCode::from_bytes(&response_block[..end]) {
            status = s;
            response_block = &response_block[end + 1..];
        }
    }
    let response = header_map(response_block);
    let request = header_map(blocks.next().unwrap_or_default());
    let text_values = |headers: &HeaderMap, name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    };

    let (resp, targeted) = directives::response(&response);
    check_round_trip(&resp);
    let source = if targeted {
        "cdn-cache-control"
    } else {
        "cache-control"
    };
    let source_values = text_values(&response, source);
    assert_eq!(
        resp,
        Directives::parse(source_values.iter().map(String::as_str))
    );

    let req = directives::request(&request);
    check_round_trip(&req);
    let pragma_no_cache = text_values(&request, "pragma")
        .iter()
        .any(|p| p.to_ascii_lowercase().contains("no-cache"));
    if !request.contains_key("cache-control") && pragma_no_cache {
        assert_eq!(req, Directives::parse(["no-cache"]));
    } else {
        let cc = text_values(&request, "cache-control");
        assert_eq!(req, Directives::parse(cc.iter().map(String::as_str)));
    }

    let key = CacheKey::new("GET", "example.com", "/");
    let policy_req = http_compat::policy_request(&key, &request, &Vec::new());
    for name in policy_req.headers.keys() {
        assert!(
            ["host", "cache-control", "authorization"].contains(&name.as_str()),
            "{name}"
        );
    }
    if let Some(auth) = policy_req.headers.get("authorization") {
        assert_eq!(auth, "redacted");
    }
    assert_eq!(library_field(&policy_req.headers), req);

    let policy_res = http_compat::policy_response(status, &response);
    assert_eq!(
        policy_res.status.as_u16(),
        status_codes::for_library(status.as_u16())
    );
    assert!(!policy_res.headers.contains_key("cdn-cache-control"));
    if targeted {
        assert!(!policy_res.headers.contains_key("expires"));
        assert!(!policy_res.headers.contains_key("pragma"));
    }
    // must-understand: no-store is ignored for a status caje implements,
    // and added for any other (RFC 9111 §5.2.2.3).
    let understood = status_codes::understood(status.as_u16());
    let must_understand = resp.has("must-understand");
    let mut expected = match (must_understand, understood) {
        (true, true) => resp.without("no-store"),
        (true, false) => resp.with("no-store"),
        (false, _) => resp.clone(),
    }
    .without("proxy-revalidate");
    let revalidate = resp.has("proxy-revalidate") || resp.has("s-maxage");
    if revalidate && !resp.has("must-revalidate") {
        let field = [expected.to_field(), "must-revalidate".to_owned()];
        expected = Directives::parse(field.iter().map(String::as_str).filter(|f| !f.is_empty()));
    }
    assert_eq!(library_field(&policy_res.headers), expected);
    for name in response.keys() {
        let replaced = match name.as_str() {
            // Singletons the boundary normalises (see `ages_and_dates`).
            "cache-control" | "cdn-cache-control" | "age" | "date" | "last-modified"
            | "expires" => true,
            "pragma" => targeted,
            _ => false,
        };
        // http 0.2 (actix) takes a few names http 1.x refuses, such as
        // ones with `"`: no field the library reads is among them.
        let http1_name = http1::HeaderName::from_bytes(name.as_str().as_bytes()).is_ok();
        if !replaced && http1_name {
            let sent: Vec<&[u8]> = response.get_all(name).map(HeaderValue::as_bytes).collect();
            let got: Vec<&[u8]> = policy_res
                .headers
                .get_all(name.as_str())
                .iter()
                .map(http1::HeaderValue::as_bytes)
                .collect();
            assert_eq!(got, sent, "{name} passed on unchanged");
        }
    }

    ages_and_dates(&response, &policy_res.headers, targeted);

    let now = UNIX_EPOCH + NOW;
    let policy = CachePolicy::new_options(&policy_req, &policy_res, now, policy::options());
    // Panics on overflow, as the hit path computes it later on.
    let later = now + Duration::from_secs(86_400);
    let _ = (policy.age(later), policy.time_to_live(later));
    let positive = |name: &str| resp.seconds(name).is_some_and(|s| s > 0);
    if !policy.time_to_live(now).is_zero() {
        let expires = !targeted && response.contains_key("expires");
        assert!(
            positive("s-maxage") || positive("max-age") || expires,
            "fresh without explicit freshness: {resp:?}"
        );
    }
    let no_store = resp.has("no-store") && !(must_understand && understood);
    if no_store || resp.has("private") || (must_understand && !understood) {
        assert!(!policy.is_storable(), "stored despite {resp:?}");
    }
}

/// What `policy_response` hands on for the singletons it normalises: one
/// `Age`, the first member of the first line when it is digits (above 2^31
/// as 2^31, RFC 9111 §1.2.2); one `Date`, `Last-Modified` and `Expires`,
/// each as IMF-fixdate when the first line is an HTTP-date in any form, an
/// invalid `Expires` as "0" (already expired), an invalid other date left
/// out; no `Expires` under `CDN-Cache-Control`.
fn ages_and_dates(response: &HeaderMap, policy: &http1::HeaderMap, targeted: bool) {
    for name in ["age", "date", "last-modified", "expires"] {
        assert!(policy.get_all(name).iter().count() <= 1, "one {name}");
    }
    let first = response.get("age").map(|v| {
        let member = v
            .as_bytes()
            .split(|&b| b == b',')
            .next()
            .unwrap_or_default();
        member.trim_ascii().to_vec()
    });
    let expected_age = first
        .filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
        .map(|d| {
            // Compared as decimal strings, so any length works.
            let significant = &d[d.iter().take_while(|&&b| b == b'0').count()..];
            let max = b"2147483648".as_slice();
            if significant.len() > max.len()
                || (significant.len() == max.len() && significant > max)
            {
                max.to_vec()
            } else {
                d
            }
        });
    assert_eq!(
        policy.get("age").map(|v| v.as_bytes().to_vec()),
        expected_age,
        "age"
    );
    for name in ["date", "last-modified", "expires"] {
        let sent = response.get(name);
        let got = policy.get(name).map(http1::HeaderValue::as_bytes);
        if name == "expires" && targeted {
            assert_eq!(got, None);
            continue;
        }
        let parsed = sent
            .and_then(|v| v.to_str().ok())
            .and_then(|t| httpdate::parse_http_date(t.trim_matches([' ', '\t'])).ok());
        match (sent, parsed) {
            (None, _) => assert_eq!(got, None, "{name}"),
            (Some(_), Some(time)) => {
                assert_eq!(
                    got,
                    Some(httpdate::fmt_http_date(time).as_bytes()),
                    "{name}"
                )
            }
            (Some(_), None) if name == "expires" => assert_eq!(got, Some(&b"0"[..])),
            (Some(_), None) => assert_eq!(got, None, "{name}"),
        }
    }
}

/// `to_field` prints what `parse` reads back unchanged; `seconds` and
/// `without` agree with `has`.
fn check_round_trip(d: &Directives) {
    let field = d.to_field();
    assert_eq!(&Directives::parse([field.as_str()]), d, "{field:?}");
    assert_eq!(
        Directives::parse([field.as_str()]).to_field(),
        field,
        "printing is stable"
    );
    for name in ["max-age", "s-maxage", "no-cache", "stale-if-error"] {
        if d.seconds(name).is_some() {
            assert!(d.has(name));
        }
        assert!(!d.without(name).has(name));
    }
}

/// The `Cache-Control` a message hands to `http-cache-semantics`, read back.
fn library_field(headers: &http1::HeaderMap) -> Directives {
    let values: Vec<&str> = headers
        .get_all(http1::header::CACHE_CONTROL)
        .iter()
        .map(|v| match v.to_str() {
            Ok(v) => v,
            Err(_) => panic!("Cache-Control handed on as non-text: {v:?}"),
        })
        .collect();
    assert!(values.len() <= 1, "one Cache-Control field");
    Directives::parse(values)
}
