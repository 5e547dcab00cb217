//! What a cached response is: its key, its on-disk format, the caching
//! decision and the `Cache-Status` it is reported with.

pub mod conditional;
pub mod directives;
pub mod entry;
pub mod eviction;
pub mod key;
pub mod memory_tier;
pub mod policy;
pub mod range;
pub mod stale;
pub mod status;

pub use entry::{EntryError, EntryHead};
pub use key::{CacheKey, VariantKey};
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
