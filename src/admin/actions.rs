//! The mutating admin endpoints. Each checks the token, sends one message
//! (or reloads the config) and answers with JSON saying what it did.

use actix_web::http::{StatusCode, Uri};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use crate::actors::cache_store::Clear;
use crate::actors::manifest::{ClearPages, PurgeTarget};
use crate::actors::populator::RunNow;
use crate::actors::purge_sync::purge_everywhere;
use crate::actors::NotAnswering;
use crate::cache::CacheKey;
use crate::reload::ReloadError;

fn unavailable(error: NotAnswering) -> HttpResponse {
    tracing::error!(%error, "admin action not done");
    HttpResponse::ServiceUnavailable().json(json!({ "error": error.to_string() }))
}

/// `POST /_caje/clear_fs`: empties this node's file cache.
pub async fn clear_fs(state: web::Data<AdminState>) -> HttpResponse {
    match state.cache.send(Clear).await {
        Ok(removed) => HttpResponse::Ok().json(json!({ "removed_entries": removed })),
        Err(e) => unavailable(e),
    }
}

/// `POST /_caje/clear_db`: empties the shared manifest, for every region.
pub async fn clear_db(state: web::Data<AdminState>) -> HttpResponse {
    match state.manifest.send(ClearPages).await {
        Ok(Ok(removed)) => HttpResponse::Ok().json(json!({ "removed_pages": removed })),
        Ok(Err(e)) => HttpResponse::InternalServerError()
            .json(json!({ "error": format!("cannot clear the manifest: {e}") })),
        Err(e) => unavailable(e),
    }
}

/// `POST /_caje/populate`: runs the populator now; answers what it queued.
pub async fn populate(state: web::Data<AdminState>) -> HttpResponse {
    match state.populator.send(RunNow).await {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(e)) => HttpResponse::InternalServerError()
            .json(json!({ "error": format!("cannot run the populator: {e}") })),
        Err(e) => unavailable(e),
    }
}

/// `POST /_caje/reload`: reads the config file again, as `SIGHUP` does.
/// A bad file is 422 with the file / line / key message, and the config
/// in force stays.
pub async fn reload(state: web::Data<AdminState>) -> HttpResponse {
    match state.reloader.reload("admin").await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e @ ReloadError::Config(_)) => HttpResponse::UnprocessableEntity()
            .json(json!({ "error": e.to_string(), "kept": "the running config" })),
        Err(e @ ReloadError::NoFile) => {
            HttpResponse::Conflict().json(json!({ "error": e.to_string() }))
        }
        Err(e @ ReloadError::Task(_)) => {
            HttpResponse::InternalServerError().json(json!({ "error": e.to_string() }))
        }
    }
}

#[derive(Deserialize)]
pub struct PurgeRequest {
    /// The absolute URL whose stored responses to purge, e.g.
    /// `http://www.example.com/page?x=1`.
    url: Option<String>,
    /// Or a tag the origin gave responses (`Surrogate-Key`, `Cache-Tag`).
    tag: Option<String>,
    /// Mark for revalidation instead of dropping.
    #[serde(default)]
    soft: bool,
}

/// `POST /_caje/purge` with `url` or `tag`, and `soft` (JSON or form):
/// purges here at once and logs the purge for every node.
pub async fn purge(
    req: HttpRequest,
    state: web::Data<AdminState>,
    body: web::Bytes,
) -> HttpResponse {
    let json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed: Result<PurgeRequest, String> = if json {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    } else {
        serde_urlencoded::from_bytes(&body).map_err(|e| e.to_string())
    };
    let bad = |message: String| {
        HttpResponse::build(StatusCode::BAD_REQUEST).json(json!({ "error": message }))
    };
    let request = match parsed {
        Ok(request) => request,
        Err(e) => return bad(format!("expected {{\"url\": …}} or {{\"tag\": …}}: {e}")),
    };
    let (target, named) = match (request.url, request.tag) {
        (Some(url), None) => match purge_key(&state, &url) {
            Ok(key) => (PurgeTarget::Url(key), json!({ "url": url })),
            Err(message) => return bad(message),
        },
        (None, Some(tag)) if !tag.trim().is_empty() => (
            PurgeTarget::Tag(tag.trim().to_owned()),
            json!({ "tag": tag.trim() }),
        ),
        _ => return bad("give exactly one of url and tag".to_owned()),
    };
    match purge_everywhere(&state.cache, &state.manifest, target, request.soft).await {
        Ok(report) => {
            let mut answer = named;
            answer["soft"] = json!(request.soft);
            answer["purged"] = json!(report.purged);
            answer["logged"] = json!(report.logged);
            HttpResponse::Ok().json(answer)
        }
        Err(e) => unavailable(e),
    }
}

/// The cache key of an absolute URL on a configured host.
fn purge_key(state: &AdminState, url: &str) -> Result<CacheKey, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("{url:?} is not absolute: give http://host/path"))?;
    let settings = state.config.settings();
    let origin = settings
        .origin_for(host)
        .ok_or_else(|| format!("no origin is configured for host {host:?}"))?;
    // Keyed as a request for this URL is, so the purge finds its entry.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(origin.key(path))
}
