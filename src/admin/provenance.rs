//! Where a cookie-authenticated admin request comes from. Proxied sites are
//! served from the same origin as `/_caje/`, so the session cookie alone
//! proves nothing: a proxied page's scripts would carry it too. Writes must
//! come from this origin (`Sec-Fetch-Site`, `Origin`) and carry the
//! session's CSRF token, which only the dashboard's own pages hold; reads
//! must be top-level navigations, whose answer no script can read (the
//! pages refuse framing and sever their opener, see `headers`).

use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::http::Method;
use actix_web::HttpRequest;

use super::refusal::AuthError;
pub use super::refusal::CSRF_HEADER;

/// Whether `method` changes state (everything but GET, HEAD, OPTIONS).
pub fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn field<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A read must be a navigation to a top-level page: `fetch()`, an
/// `<iframe>`, `<script>` or `<img>` say otherwise in `Sec-Fetch-*`, which
/// scripts cannot set. (Browsers without fetch metadata send neither.)
pub fn check_read(headers: &HeaderMap) -> Result<(), AuthError> {
    let dest = field(headers, "sec-fetch-dest");
    let mode = field(headers, "sec-fetch-mode");
    if dest.is_some_and(|d| !d.eq_ignore_ascii_case("document"))
        || mode.is_some_and(|m| !m.eq_ignore_ascii_case("navigate"))
    {
        return Err(AuthError::NotNavigation);
    }
    Ok(())
}

/// A write must come from this origin: `Sec-Fetch-Site: same-origin` when
/// the browser sends it, and an `Origin` equal to `own_origin` when it
/// names one. `Origin: null` names none: browsers send it for the
/// dashboard's own form posts, since its pages are `no-referrer`; the
/// CSRF token decides then.
pub fn check_write(headers: &HeaderMap, own_origin: &str) -> Result<(), AuthError> {
    if let Some(site) = field(headers, "sec-fetch-site") {
        if !site.eq_ignore_ascii_case("same-origin") {
            return Err(AuthError::CrossSite);
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let same = origin.to_str().is_ok_and(|o| {
            let o = o.trim();
            o == "null" || o.eq_ignore_ascii_case(own_origin)
        });
        if !same {
            return Err(AuthError::ForeignOrigin);
        }
    }
    Ok(())
}

/// The CSRF token in the request's header, if any.
pub fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    field(headers, CSRF_HEADER)
}

/// Whether the client reached caje over https: caje's own listener is
/// plain http, so only the configured header of the TLS-terminating proxy
/// in front of it can say so. Never read from a header caje was not told
/// to trust: a client could write it.
pub fn is_https(req: &HttpRequest, scheme_header: Option<&HeaderName>) -> bool {
    req.app_config().secure()
        || scheme_header
            .and_then(|name| req.headers().get(name))
            .and_then(|v| v.to_str().ok())
            // A proxy chain may append: the first value is the client's.
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// `scheme://host[:port]` of the request as the browser addressed it,
/// which is what it writes into `Origin`.
pub fn own_origin(req: &HttpRequest, https: bool) -> String {
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| field(req.headers(), header::HOST.as_str()))
        .unwrap_or_default();
    format!("{}://{host}", if https { "https" } else { "http" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut req = TestRequest::default();
        for pair in pairs {
            req = req.insert_header(*pair);
        }
        req.to_http_request().headers().clone()
    }

    #[test]
    fn only_top_level_navigations_read() {
        assert!(check_read(&headers(&[])).is_ok());
        let page = [
            ("sec-fetch-dest", "document"),
            ("sec-fetch-mode", "navigate"),
        ];
        assert!(check_read(&headers(&page)).is_ok());
        for refused in [
            [("sec-fetch-dest", "empty"), ("sec-fetch-mode", "cors")],
            [("sec-fetch-dest", "iframe"), ("sec-fetch-mode", "navigate")],
            [
                ("sec-fetch-dest", "document"),
                ("sec-fetch-mode", "no-cors"),
            ],
            [("sec-fetch-dest", "script"), ("sec-fetch-mode", "no-cors")],
        ] {
            assert!(check_read(&headers(&refused)).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn only_this_origin_writes() {
        let own = "http://site.test:8080";
        assert!(check_write(&headers(&[]), own).is_ok());
        let ours = [
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://site.test:8080"),
        ];
        assert!(check_write(&headers(&ours), own).is_ok());
        let form = [("sec-fetch-site", "same-origin"), ("origin", "null")];
        assert!(check_write(&headers(&form), own).is_ok());
        for refused in [
            vec![("sec-fetch-site", "cross-site")],
            vec![("sec-fetch-site", "same-site")],
            vec![("sec-fetch-site", "none")],
            vec![("origin", "http://evil.test")],
            vec![("origin", "http://sub.site.test:8080")],
            vec![("origin", "https://site.test:8080")],
            vec![("origin", "null"), ("sec-fetch-site", "cross-site")],
        ] {
            assert!(check_write(&headers(&refused), own).is_err(), "{refused:?}");
        }
    }
}
