//! Headers on every `/_caje/` answer. Proxied pages share the admin pages'
//! origin, so the pages must not be framed (`X-Frame-Options`,
//! `frame-ancestors`), must drop any opener a proxied page has on them
//! (`Cross-Origin-Opener-Policy`), and must leave nothing in caches or
//! `Referer`s. HTML pages run only the scripts and styles they carry,
//! marked with a nonce drawn per response: never `'unsafe-inline'`.

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse};

/// For answers that are not HTML pages: nothing may run or load.
const DATA_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The headers every admin answer gets (a page's own CSP is kept).
pub fn defaults() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CONTENT_SECURITY_POLICY, DATA_CSP))
        .add(("cross-origin-opener-policy", "same-origin"))
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

/// A fresh nonce for one page's `<script>` and `<style>` elements.
pub fn nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An HTML page whose inline script and style carry `nonce`: those run,
/// nothing else does; it talks only to its own origin and posts forms only there.
pub fn page(status: actix_web::http::StatusCode, nonce: &str, html: String) -> HttpResponse {
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .body(html)
}

/// Whether the caller asked for JSON (`Accept: application/json`) rather
/// than the HTML page.
pub fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}
