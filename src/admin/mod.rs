//! The admin endpoints under `/_caje/`. Nothing under that path is ever
//! forwarded to an origin. All but `health` and the login form need the
//! admin token, checked by `auth::require_token` before their handlers run.

pub mod actions;
pub mod auth;
mod dashboard;
pub mod health;
pub mod list;

use std::sync::Arc;
use std::time::Instant;

use actix_web::middleware::from_fn;
use actix_web::{guard, web, HttpResponse};

use crate::actors::cache_store::CacheStore;
use crate::actors::manifest::Manifest;
use crate::actors::populator::Populator;
use crate::actors::Mailbox;
use crate::config::Settings;
use crate::metrics::Metrics;

/// What the admin handlers share.
pub struct AdminState {
    pub settings: Arc<Settings>,
    pub cache: Mailbox<CacheStore>,
    pub manifest: Mailbox<Manifest>,
    pub populator: Mailbox<Populator>,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
}

/// The `/_caje` scope with every admin route.
pub fn scope() -> actix_web::Scope {
    let protected = |path: &str, route: actix_web::Route| {
        web::resource(path)
            .wrap(from_fn(auth::require_token))
            .route(route)
    };
    web::scope("/_caje")
        .route("/health", web::get().to(health::health))
        .route("/login", web::get().to(auth::login_form))
        .route("/login", web::post().to(auth::login))
        .service(protected("/metrics", web::get().to(metrics)))
        .service(protected("/list", web::get().to(list::list)))
        .service(protected("/clear_fs", web::post().to(actions::clear_fs)))
        .service(protected("/clear_db", web::post().to(actions::clear_db)))
        .service(protected("/populate", web::post().to(actions::populate)))
        .service(protected("/purge", web::post().to(actions::purge)))
        .default_service(web::to(not_found))
}

/// Requests an origin could read as under `/_caje` though the scope above
/// does not match them (another case, doubled slashes, `;` parameters,
/// encoded characters, dot segments): answered as unknown admin paths, so
/// they never reach an origin, nor does any token they carry.
pub fn lookalikes() -> actix_web::Scope {
    web::scope("")
        .guard(guard::fn_guard(|ctx| is_admin_path(ctx.head().uri.path())))
        .default_service(web::to(not_found))
}

/// Whether an origin could take `path` for one under `/_caje`: its first
/// segment is `_caje` in any case, before or after dot segments are
/// resolved, once percent-decoded (again and again, as some servers do),
/// with `\` read as `/`, empty segments skipped and `;` parameters dropped.
pub fn is_admin_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    if !bytes.contains(&b'%') && !bytes.windows(5).any(|w| w.eq_ignore_ascii_case(b"_caje")) {
        return false;
    }
    let mut decoded = path.to_owned();
    // Ends: every round that changes the text shortens it.
    loop {
        let next = percent_decode(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let segments: Vec<&str> = decoded
        .split(['/', '\\'])
        .map(|s| s.split(';').next().unwrap_or(""))
        .filter(|s| !s.is_empty())
        .collect();
    let mut resolved = Vec::new();
    for segment in &segments {
        match *segment {
            "." => {}
            ".." => {
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    let is_caje = |s: &&str| s.eq_ignore_ascii_case("_caje");
    segments.iter().find(|s| **s != ".").is_some_and(is_caje)
        || resolved.first().is_some_and(is_caje)
}

/// `%XX` sequences decoded; anything else, an invalid one included, kept.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            HttpResponse::InternalServerError().body(format!("caje: cannot render metrics: {e}\n"))
        }
    }
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("caje: no such admin endpoint; see /_caje/list\n")
}

#[cfg(test)]
mod tests {
    use super::is_admin_path;

    #[test]
    fn admin_lookalikes_are_recognised() {
        for path in [
            "/_caje",
            "/_CAJE/list",
            "//_caje/list",
            "/%5Fcaje/list",
            "/%255fcaje/list",
            "/_caje%2Flist",
            "/_caje;x=1/purge",
            "/./_caje/list",
            "/x/%2e%2e/_caje/list",
            "/_caje/../x",
            "/_caje/../../%",
            "\\_caje\\list",
        ] {
            assert!(is_admin_path(path), "{path}");
        }
        for path in ["/", "/x/_caje", "/_cajex/list", "/caje/list", "/%zz/_cajé"] {
            assert!(!is_admin_path(path), "{path}");
        }
    }
}
