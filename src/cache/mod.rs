//! Every caching decision, and no I/O: what a cached response is (its key,
//! its on-disk format), whether a response is stored (admit), whether a
//! stored one may be sent (freshness, conditional, range), how it is
//! revalidated or invalidated, one fetch per key (coalesce), eviction and
//! the memory tier, and the `Cache-Status` it is reported with.

pub mod admit;
pub mod coalesce;
pub mod conditional;
pub mod directives;
pub mod encoding;
pub mod entry;
pub mod eviction;
pub mod freshness;
pub mod freshness_rules;
pub mod glob;
pub mod http_compat;
pub mod invalidate;
pub mod key;
pub mod memory_tier;
pub mod partial;
pub mod policy;
pub mod query;
pub mod range;
pub mod recent_hashes;
pub mod response_fields;
pub mod revalidate;
pub mod status;
pub mod status_codes;
pub mod stored_urls;

pub use entry::{EntryError, EntryHead};
pub use key::{CacheKey, KeyView, VariantKey};
pub use status::{CacheStatus, Forward};

/// Header maps from name-value pairs, for the unit tests of this module.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> actix_web::http::header::HeaderMap {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}
