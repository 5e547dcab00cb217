//! The RFC 9211 `Cache-Status` header field caje adds to every response.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::header::HeaderValue;

/// Name caje reports itself under in `Cache-Status`.
pub const CACHE_NAME: &str = "caje";

/// The largest magnitude of a Structured Field integer (RFC 8941 §3.3.1).
pub const MAX_SF_INTEGER: i64 = 999_999_999_999_999;

/// Why a request went forward to the origin (RFC 9211 §2.2 `fwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// The cache held nothing for the URL.
    UriMiss,
    /// The cache held the URL, but not the variant the request selects.
    VaryMiss,
    /// The cache held nothing usable (e.g. a stored entry turned out broken).
    Miss,
    /// The request's method is not answered from cache.
    Method,
    /// The request's own directives (e.g. `no-cache`) ruled the stored copy out.
    Request,
    /// The stored response was stale.
    Stale,
    /// A path rule (`bypass = true`) keeps the cache out of it.
    Bypass,
    /// A stored part was not enough for the request (RFC 9211 §2.2).
    Partial,
}

impl Forward {
    fn as_str(self) -> &'static str {
        match self {
            Self::UriMiss => "uri-miss",
            Self::VaryMiss => "vary-miss",
            Self::Miss => "miss",
            Self::Method => "method",
            Self::Request => "request",
            Self::Stale => "stale",
            Self::Bypass => "bypass",
            Self::Partial => "partial",
        }
    }
}

/// One `Cache-Status` member for caje.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    pub hit: bool,
    pub fwd: Option<Forward>,
    pub fwd_status: Option<u16>,
    pub stored: bool,
    /// Answered with another request's response (request coalescing).
    pub collapsed: bool,
    /// Remaining freshness in seconds, negative once stale.
    pub ttl: Option<i64>,
    /// More on the outcome, as a Structured Field token or string: why the
    /// cache answered without a usable stored response, or which rule gave
    /// the response its freshness.
    pub detail: Option<Cow<'static, str>>,
}

impl CacheStatus {
    pub fn hit(ttl: i64) -> Self {
        Self {
            hit: true,
            ttl: Some(ttl),
            ..Self::default()
        }
    }

    pub fn forward(reason: Forward) -> Self {
        Self {
            fwd: Some(reason),
            ..Self::default()
        }
    }

    /// Short form for logs and metrics: `hit` or the `fwd` reason.
    pub fn outcome(&self) -> &'static str {
        match (self.hit, self.fwd) {
            (true, _) => "hit",
            (false, Some(f)) => f.as_str(),
            (false, None) => "none",
        }
    }
}

impl CacheStatus {
    /// The member under the cache name `name` (`caje-<node_name>` when a
    /// node name is set; `Display` uses [`CACHE_NAME`]).
    pub fn render(&self, name: &str) -> String {
        let mut out = String::with_capacity(name.len() + 64);
        out.push_str(name);
        self.push_params(|text| out.push_str(text));
        out
    }

    /// The member as a field value; `None` if a detail is no field text.
    /// Made on the stack and copied once (every response carries one): a
    /// `String` made into a value costs a second allocation for its room.
    pub fn field_value(&self, name: &str) -> Option<HeaderValue> {
        let mut buffer = [0u8; 192];
        let mut len = 0;
        let mut fits = true;
        let mut push = |text: &str| match buffer.get_mut(len..len + text.len()) {
            Some(room) => {
                room.copy_from_slice(text.as_bytes());
                len += text.len();
            }
            None => fits = false,
        };
        push(name);
        self.push_params(&mut push);
        if fits {
            HeaderValue::from_bytes(&buffer[..len]).ok()
        } else {
            HeaderValue::from_str(&self.render(name)).ok()
        }
    }

    /// The member's parameters, after its cache name (every response has
    /// one: pushed, not formatted).
    fn push_params(&self, mut push: impl FnMut(&str)) {
        let mut number = itoa::Buffer::new();
        if self.hit {
            push("; hit");
        }
        if let Some(fwd) = self.fwd {
            push("; fwd=");
            push(fwd.as_str());
        }
        if let Some(status) = self.fwd_status {
            push("; fwd-status=");
            push(number.format(status));
        }
        if self.stored {
            push("; stored");
        }
        if self.collapsed {
            push("; collapsed");
        }
        if let Some(ttl) = self.ttl {
            // A Structured Field integer has at most 15 digits (RFC 8941
            // §3.3.1); an origin can ask for a longer max-age.
            let ttl = ttl.clamp(-MAX_SF_INTEGER, MAX_SF_INTEGER);
            push("; ttl=");
            push(number.format(ttl));
        }
        if let Some(detail) = &self.detail {
            push("; detail=");
            push(detail);
        }
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(CACHE_NAME))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_under_a_node_s_cache_name() {
        assert_eq!(
            CacheStatus::hit(7).render("caje-ams"),
            "caje-ams; hit; ttl=7"
        );
        assert_eq!(
            CacheStatus::hit(7).render(CACHE_NAME),
            CacheStatus::hit(7).to_string()
        );
        let value = CacheStatus::hit(7).field_value("caje-ams");
        assert_eq!(
            value,
            Some(HeaderValue::from_static("caje-ams; hit; ttl=7"))
        );
        let odd = CacheStatus {
            detail: Some("a\nb".into()),
            ..CacheStatus::default()
        };
        assert_eq!(odd.field_value(CACHE_NAME), None);
        // A member longer than the stack's room is made all the same.
        let long = CacheStatus {
            detail: Some("x".repeat(300).into()),
            ..CacheStatus::hit(1)
        };
        let value = long.field_value(CACHE_NAME).expect("a value");
        assert_eq!(value.to_str().ok(), Some(long.render(CACHE_NAME).as_str()));
    }

    #[test]
    fn formats_as_rfc9211_members() {
        assert_eq!(CacheStatus::hit(42).to_string(), "caje; hit; ttl=42");
        let mut miss = CacheStatus::forward(Forward::UriMiss);
        miss.fwd_status = Some(200);
        miss.stored = true;
        miss.ttl = Some(60);
        assert_eq!(
            miss.to_string(),
            "caje; fwd=uri-miss; fwd-status=200; stored; ttl=60"
        );
        assert_eq!(
            CacheStatus::forward(Forward::Method).to_string(),
            "caje; fwd=method"
        );
    }
}
