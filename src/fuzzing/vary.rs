//! The `vary` target: cache keys, `Vary` normalisation and cache file names.

use std::time::UNIX_EPOCH;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use http_cache_semantics::{BeforeRequest, CachePolicy};

use super::input::{blocks, header_map};
use super::NOW;
use crate::cache::http_compat;
use crate::cache::key::{self, CacheKey, VariantKey};
use crate::cache::policy;

/// Vary and cache keys. Input: a block of three lines (method, host, path
/// and query), the response's header block, the request's header block.
/// `vary_names` is normalised and independent of field order; `vary_values`
/// is idempotent (a request carrying the normalised values selects the same
/// variant, and the policy agrees); file names round-trip.
pub fn vary(data: &[u8]) {
    let mut blocks = blocks(data);
    let key_lines: Vec<String> = blocks
        .next()
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let part = |i: usize| key_lines.get(i).map_or("", String::as_str);
    let key = CacheKey::new(part(0), part(1), part(2));
    let response = header_map(blocks.next().unwrap_or_default());
    let request = header_map(blocks.next().unwrap_or_default());

    check_file_names(&key, &String::from_utf8_lossy(data));

    let names = key::vary_names(&response);
    let mut reversed = HeaderMap::new();
    for (name, value) in response.iter().collect::<Vec<_>>().into_iter().rev() {
        reversed.append(name.clone(), value.clone());
    }
    assert_eq!(key::vary_names(&reversed), names, "order of Vary fields");
    let Some(names) = names else {
        let star = response.get_all("vary").any(|v| {
            v.to_str()
                .map_or(true, |t| t.split(',').any(|n| n.trim() == "*"))
        });
        assert!(star, "None without `*`");
        return;
    };
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "sorted, no duplicates"
    );
    for name in &names {
        assert!(!name.is_empty() && !name.contains(',') && name.trim() == name);
        assert_eq!(*name, name.to_ascii_lowercase());
    }

    let values = key::vary_values(&names, &request);
    assert_eq!(values.len(), names.len());
    let mut normalised = request.clone();
    for ((name, value), expected) in values.iter().zip(&names) {
        assert_eq!(name, expected);
        let present =
            HeaderName::from_bytes(name.as_bytes()).is_ok_and(|n| request.contains_key(n));
        // `Accept-Encoding` always has a value: the one coding selected
        // (identity when absent).
        let always = name == crate::cache::encoding::VARY_NAME;
        assert_eq!(
            value.is_some(),
            present || always,
            "{name}: None only when absent"
        );
        if let (Ok(name), Some(value)) = (HeaderName::from_bytes(name.as_bytes()), value) {
            // `policy_request` hands the policy this value as a field.
            let Ok(value) = HeaderValue::from_bytes(value) else {
                panic!("normalised {name} value {value:?} is no field value");
            };
            normalised.insert(name, value);
        }
    }
    assert_eq!(
        key::vary_values(&names, &normalised),
        values,
        "normalising is idempotent"
    );
    let variant = VariantKey::new(&key, &values);
    assert_eq!(
        VariantKey::from_file_name(&variant.file_name()),
        Some(variant)
    );

    // The policy sees the same normalised values, so it takes both requests
    // for the same variant.
    let mut response = response;
    response.insert(
        HeaderName::from_static("cache-control"),
        HeaderValue::from_static("max-age=60"),
    );
    let now = UNIX_EPOCH + NOW;
    let policy = CachePolicy::new_options(
        &http_compat::policy_request(&key, &request, &values),
        &http_compat::policy_response(StatusCode::OK, &response),
        now,
        policy::options(),
    );
    let fresh = |headers: &HeaderMap| {
        let req = http_compat::policy_request(&key, headers, &values);
        matches!(policy.before_request(&req, now), BeforeRequest::Fresh(_))
    };
    assert_eq!(
        fresh(&request),
        fresh(&normalised),
        "policy and variant disagree"
    );
}

/// `from_file_name` parses exactly what `file_name` makes.
fn check_file_names(key: &CacheKey, text: &str) {
    let vk = VariantKey::new(key, &Vec::new());
    let name = vk.file_name();
    assert_eq!(name.len(), 129);
    assert!(name
        .chars()
        .all(|c| matches!(c, '0'..='9' | 'a'..='f' | '-')));
    assert_eq!(VariantKey::from_file_name(&name), Some(vk));
    for line in text.lines() {
        if let Some(parsed) = VariantKey::from_file_name(line) {
            assert_eq!(parsed.file_name(), line.to_ascii_lowercase());
        }
    }
}
