//! The admin endpoints under `/_caje/`. Nothing under that path is ever
//! forwarded to an origin. All but `health` and the login form need the
//! admin token, checked by `auth::require_token` before their handlers run.

pub mod actions;
pub mod auth;
mod dashboard;
mod headers;
pub mod health;
pub mod history;
pub mod list;
mod login;
mod lookalike;
mod overview;
mod overview_page;
mod provenance;
mod refusal;
mod session;

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::HttpServiceFactory;
use actix_web::middleware::from_fn;
use actix_web::{guard, web, HttpRequest, HttpResponse};

use crate::actors::cache_store::CacheStore;
use crate::actors::manifest::Manifest;
use crate::actors::populator::Populator;
use crate::actors::Mailbox;
use crate::metrics::Metrics;
use crate::reload::{LiveConfig, Reloader};
use history::History;
use lookalike::{classify, AdminPath, MAX_DECODE_ROUNDS};

/// What the admin handlers share.
pub struct AdminState {
    /// The config in force (a reload replaces it).
    pub config: LiveConfig,
    pub reloader: Reloader,
    pub cache: Mailbox<CacheStore>,
    pub manifest: Mailbox<Manifest>,
    pub populator: Mailbox<Populator>,
    pub metrics: Arc<Metrics>,
    /// The last minutes of `metrics`, for the overview's charts.
    pub history: Arc<History>,
    pub started: Instant,
}

/// The `/_caje` scope with every admin route.
pub fn scope() -> impl HttpServiceFactory {
    let protected = |path: &str, route: actix_web::Route| {
        web::resource(path)
            .wrap(from_fn(auth::require_token))
            .route(route)
    };
    web::scope("/_caje")
        .wrap(headers::defaults())
        .route("/health", web::get().to(health::health))
        .route("/login", web::get().to(login::login_form))
        .route("/login", web::post().to(login::login))
        .service(protected("/logout", web::post().to(login::logout)))
        .service(protected("", web::get().to(overview::overview)))
        .service(protected("/", web::get().to(overview::overview)))
        .service(protected("/metrics", web::get().to(metrics)))
        .service(protected("/list", web::get().to(list::list)))
        .service(protected("/clear_fs", web::post().to(actions::clear_fs)))
        .service(protected("/clear_db", web::post().to(actions::clear_db)))
        .service(protected("/populate", web::post().to(actions::populate)))
        .service(protected("/purge", web::post().to(actions::purge)))
        .service(protected("/reload", web::post().to(actions::reload)))
        .default_service(web::to(not_found))
}

/// Whether `path` is the admin surface's (the scope above, or a look-alike
/// of it): the proxy never answers it, not even from the cache.
pub fn claims(path: &str) -> bool {
    classify(path) != AdminPath::Plain
}

/// Requests an origin could read as under `/_caje` though the scope above
/// does not match them (another case, doubled slashes, `;` parameters,
/// encoded characters, dot segments): answered as unknown admin paths, so
/// they never reach an origin, nor does any token they carry. Paths
/// encoded too deep to follow are refused with 400.
pub fn lookalikes() -> impl HttpServiceFactory {
    web::scope("")
        .guard(guard::fn_guard(|ctx| claims(ctx.head().uri.path())))
        .wrap(headers::defaults())
        .default_service(web::to(lookalike))
}

async fn lookalike(req: HttpRequest) -> HttpResponse {
    match classify(req.path()) {
        AdminPath::TooDeep => HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "caje: the path is percent-encoded more than {MAX_DECODE_ROUNDS} levels deep\n"
            )),
        _ => not_found().await,
    }
}

/// The whole app of the private metrics listener (`metrics_listen`):
/// `GET /_caje/metrics` without a token, from the node's one registry;
/// every other path is 404, never the proxy nor another admin endpoint.
/// The app needs `web::Data<Metrics>`.
pub fn private_metrics(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("")
            .wrap(headers::defaults())
            .route("/_caje/metrics", web::get().to(private_metrics_text))
            .default_service(web::to(only_metrics_here)),
    );
}

async fn private_metrics_text(metrics: web::Data<Metrics>) -> HttpResponse {
    render_metrics(&metrics)
}

async fn only_metrics_here() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("caje: this listener serves only GET /_caje/metrics\n")
}

async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    render_metrics(&state.metrics)
}

fn render_metrics(metrics: &Metrics) -> HttpResponse {
    match metrics.render() {
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
