//! The mutating admin endpoints. Each checks the token, sends one message
//! and answers with JSON saying what it did.

use actix_web::http::{StatusCode, Uri};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use crate::actors::cache_store::{Clear, Purge};
use crate::actors::manifest::ClearPages;
use crate::actors::populator::RunNow;
use crate::cache::CacheKey;

fn unavailable(actor: &str, error: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(%error, "{actor} is not answering");
    HttpResponse::ServiceUnavailable().json(json!({ "error": format!("{actor} is not answering") }))
}

/// `POST /_caje/clear_fs`: empties this node's file cache.
pub async fn clear_fs(state: web::Data<AdminState>) -> HttpResponse {
    match state.cache.send(Clear).await {
        Ok(removed) => HttpResponse::Ok().json(json!({ "removed_entries": removed })),
        Err(e) => unavailable("cache store", e),
    }
}

/// `POST /_caje/clear_db`: empties the shared manifest, for every region.
pub async fn clear_db(state: web::Data<AdminState>) -> HttpResponse {
    match state.manifest.send(ClearPages).await {
        Ok(Ok(removed)) => HttpResponse::Ok().json(json!({ "removed_pages": removed })),
        Ok(Err(e)) => HttpResponse::InternalServerError()
            .json(json!({ "error": format!("cannot clear the manifest: {e}") })),
        Err(e) => unavailable("manifest", e),
    }
}

/// `POST /_caje/populate`: runs the populator now; answers what it queued.
pub async fn populate(state: web::Data<AdminState>) -> HttpResponse {
    match state.populator.send(RunNow).await {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(e)) => HttpResponse::InternalServerError()
            .json(json!({ "error": format!("cannot run the populator: {e}") })),
        Err(e) => unavailable("populator", e),
    }
}

#[derive(Deserialize)]
pub struct PurgeRequest {
    /// The absolute URL whose stored responses to drop, e.g.
    /// `http://www.example.com/page?x=1`.
    url: String,
}

/// `POST /_caje/purge` with `url` (JSON or form): drops that URL's stored
/// responses on this node.
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
    let url = match parsed {
        Ok(request) => request.url,
        Err(e) => {
            return HttpResponse::BadRequest().json(json!({
                "error": format!("expected a url, as JSON {{\"url\": …}} or a form field: {e}")
            }))
        }
    };
    let key = match purge_key(&state, &url) {
        Ok(key) => key,
        Err(message) => {
            return HttpResponse::build(StatusCode::BAD_REQUEST).json(json!({ "error": message }))
        }
    };
    match state.cache.send(Purge(key)).await {
        Ok(purged) => HttpResponse::Ok().json(json!({ "url": url, "purged": purged })),
        Err(e) => unavailable("cache store", e),
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
    let origin = state
        .settings
        .origin_for(host)
        .ok_or_else(|| format!("no origin is configured for host {host:?}"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(CacheKey::new("GET", &origin.host, path))
}
