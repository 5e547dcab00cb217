//! The one boundary between actix's `http` 0.2 types and the `http` 1.x
//! types of `http-cache-semantics`.

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;

use crate::cache::key::VaryValues;
use crate::cache::KeyView;
use crate::cache::{directives, policy, status_codes};

/// The request as `CachePolicy` sees it: the normalised host and URL of the
/// key, the request's cache directives as caje reads them (see
/// `cache::directives`), `Authorization` only as a presence (its value is
/// never stored), and the normalised `Vary` values, so the policy and caje's
/// variant selection always agree.
pub fn policy_request<'k>(
    key: impl Into<KeyView<'k>>,
    request_headers: &HeaderMap,
    vary: &VaryValues,
) -> http1::request::Parts {
    let key = key.into();
    let mut headers = http1::HeaderMap::new();
    if let Ok(host) = http1::HeaderValue::from_str(key.host) {
        headers.insert(http1::header::HOST, host);
    }
    let cache_control = directives::request(request_headers).to_field();
    if let (false, Ok(value)) = (
        cache_control.is_empty(),
        http1::HeaderValue::from_str(&cache_control),
    ) {
        headers.insert(http1::header::CACHE_CONTROL, value);
    }
    if request_headers.contains_key("authorization") {
        headers.insert(
            http1::header::AUTHORIZATION,
            http1::HeaderValue::from_static("redacted"),
        );
    }
    for (name, value) in vary {
        let pair = (
            http1::HeaderName::from_bytes(name.as_bytes()),
            value.as_deref().map(http1::HeaderValue::from_bytes),
        );
        if let (Ok(name), Some(Ok(value))) = pair {
            headers.insert(name, value);
        }
    }
    let mut parts = http1::Request::new(()).into_parts().0;
    parts.method = http1::Method::from_bytes(key.method.as_bytes()).unwrap_or_default();
    parts.uri = key.path_and_query.parse().unwrap_or_default();
    parts.headers = headers;
    parts
}

/// An origin response's status and headers as `CachePolicy` sees them:
/// the status as `status_codes::for_library` shows it, `Cache-Control`
/// replaced by the directives caje reads (`CDN-Cache-Control` first, in
/// which case `Expires` and `Pragma` are ignored too), with
/// `must-understand` applied (the library does not know it).
pub fn policy_response(status: StatusCode, response_headers: &HeaderMap) -> http1::response::Parts {
    let mut parts = http1::Response::new(()).into_parts().0;
    parts.status =
        http1::StatusCode::from_u16(status_codes::for_library(status.as_u16())).unwrap_or_default();
    let (mut directives, targeted) = directives::response(response_headers);
    // RFC 9111 §5.2.2.3, §3: with must-understand, a cache that implements
    // the status's requirements ignores no-store; one that does not must
    // not store at all.
    if directives.has("must-understand") {
        directives = if status_codes::understood(status.as_u16()) {
            directives.without("no-store")
        } else {
            directives.with("no-store")
        };
    }
    for (name, value) in response_headers {
        let replaced = match name.as_str() {
            "cache-control" | "cdn-cache-control" | "age" | "date" | "last-modified" => true,
            "expires" => true,
            "pragma" => targeted,
            _ => false,
        };
        if replaced {
            continue;
        }
        let value = http1::HeaderValue::from_bytes(value.as_bytes());
        let pair = (
            http1::HeaderName::from_bytes(name.as_str().as_bytes()),
            value,
        );
        if let (Ok(name), Ok(value)) = pair {
            parts.headers.append(name, value);
        }
    }
    if let Some(age) = response_headers.get("age").and_then(|v| age(v.as_bytes())) {
        parts.headers.insert(http1::header::AGE, age);
    }
    let dates = [
        (http1::header::DATE, "date"),
        (http1::header::LAST_MODIFIED, "last-modified"),
        (http1::header::EXPIRES, "expires"),
    ];
    for (field, name) in dates {
        if name == "expires" && targeted {
            continue;
        }
        let Some(value) = response_headers.get(name) else {
            continue;
        };
        match http_date(value.as_bytes()) {
            Some(date) => {
                parts.headers.insert(field, date);
            }
            // RFC 9111 §5.3: an invalid Expires means "already expired",
            // which the library reads from "0". An invalid Date or
            // Last-Modified is left out, as if absent.
            None if name == "expires" => {
                parts
                    .headers
                    .insert(field, http1::HeaderValue::from_static("0"));
            }
            None => {}
        }
    }
    // For a shared cache proxy-revalidate means must-revalidate, and
    // s-maxage implies it (RFC 9111 §5.2.2.8, §5.2.2.10). The library reads
    // only must-revalidate for stale use, and takes proxy-revalidate as
    // "never fresh", so it is handed must-revalidate instead.
    let revalidate = directives.has("proxy-revalidate") || directives.has("s-maxage");
    let mut field = directives.without("proxy-revalidate").to_field();
    if revalidate && !directives.has("must-revalidate") {
        if !field.is_empty() {
            field.push_str(", ");
        }
        field.push_str("must-revalidate");
    }
    if let (false, Ok(value)) = (field.is_empty(), http1::HeaderValue::from_str(&field)) {
        parts.headers.insert(http1::header::CACHE_CONTROL, value);
    }
    parts
}

/// The `Age` the policy is given: the first member of the first field line
/// (RFC 9111 §5.1: `Age` is a singleton, and a recipient may read a list by
/// its first member), taken as [`policy::MAX_AGE_SECONDS`] above that bound;
/// `None` (no `Age`) when that member is not delta-seconds.
fn age(value: &[u8]) -> Option<http1::HeaderValue> {
    let first = value.split(|&b| b == b',').next().unwrap_or_default();
    let digits = first.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if age_too_large(digits) {
        return Some(http1::HeaderValue::from(policy::MAX_AGE_SECONDS));
    }
    http1::HeaderValue::from_bytes(digits).ok()
}

/// An HTTP-date in any of its three forms (IMF-fixdate, RFC 850, asctime;
/// RFC 9110 §5.6.7) as IMF-fixdate, the only form the library reads; `None`
/// when it is none of them (`httpdate` is strict: no extra spaces, no
/// numeric zones).
fn http_date(value: &[u8]) -> Option<http1::HeaderValue> {
    let text = std::str::from_utf8(value).ok()?;
    let time = httpdate::parse_http_date(text.trim_matches([' ', '\t'])).ok()?;
    http1::HeaderValue::from_str(&httpdate::fmt_http_date(time)).ok()
}

/// Whether an `Age` value is a number (of any length) above
/// [`policy::MAX_AGE_SECONDS`], to be taken as that bound.
fn age_too_large(value: &[u8]) -> bool {
    let digits = value.trim_ascii();
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
            .is_none_or(|n| n > policy::MAX_AGE_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheKey;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn authorization_value_never_reaches_the_policy() {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("authorization"),
            HeaderValue::from_static("Bearer secret"),
        );
        h.insert(
            HeaderName::from_static("cache-control"),
            HeaderValue::from_static("max-age=5"),
        );
        h.insert(
            HeaderName::from_static("cookie"),
            HeaderValue::from_static("session=1"),
        );
        let key = CacheKey::new("GET", "example.com", "/a?b=c");
        let vary = vec![("accept".to_owned(), Some(b"text/html".to_vec()))];
        let parts = policy_request(&key, &h, &vary);
        assert_eq!(parts.headers["authorization"], "redacted");
        assert_eq!(parts.headers["cache-control"], "max-age=5");
        assert_eq!(parts.headers["host"], "example.com");
        assert_eq!(parts.headers["accept"], "text/html");
        assert!(!parts.headers.contains_key("cookie"));
        assert_eq!(parts.uri, "/a?b=c");
    }

    fn response(fields: &[(&str, &str)]) -> http1::HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in fields {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        policy_response(StatusCode::OK, &h).headers
    }

    #[test]
    fn age_is_read_by_its_first_member_and_first_line() {
        assert_eq!(response(&[("age", "7200, 0")])["age"], "7200");
        assert_eq!(response(&[("age", "0 ,7200")])["age"], "0");
        let lines = response(&[("age", "5"), ("age", "9")]);
        assert_eq!(lines.get_all("age").iter().collect::<Vec<_>>(), ["5"]);
        assert_eq!(
            response(&[("age", "99999999999999999999")])["age"],
            "2147483648"
        );
        assert!(!response(&[("age", "soon, 5")]).contains_key("age"));
    }

    #[test]
    fn dates_in_any_http_date_form_become_imf_fixdate() {
        let imf = "Sun, 06 Nov 1994 08:49:37 GMT";
        for form in [
            imf,
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            let h = response(&[("expires", form), ("date", form), ("last-modified", form)]);
            for name in ["expires", "date", "last-modified"] {
                assert_eq!(h[name], imf, "{name}: {form}");
            }
        }
        for invalid in [
            "0",
            "Sun,  06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 +0000",
        ] {
            let h = response(&[("expires", invalid), ("date", invalid)]);
            assert_eq!(h["expires"], "0", "{invalid}: already expired");
            assert!(!h.contains_key("date"), "{invalid}");
        }
    }

    #[test]
    fn response_keeps_repeated_fields() {
        let mut h = HeaderMap::new();
        h.append(
            HeaderName::from_static("link"),
            HeaderValue::from_static("</a>"),
        );
        h.append(
            HeaderName::from_static("link"),
            HeaderValue::from_static("</b>"),
        );
        let parts = policy_response(StatusCode::NOT_FOUND, &h);
        assert_eq!(parts.status, 404);
        assert_eq!(parts.headers.get_all("link").iter().count(), 2);
    }
}
