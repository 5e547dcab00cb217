//! The edge's two ways of removing stored responses: the `PURGE` method on
//! a proxied URL (admin only), and invalidation after an unsafe method.

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::exchange::Exchange;
use super::respond::plain;
use super::state::ProxyState;
use crate::actors::cache_store::Purge;
use crate::actors::manifest::PurgeTarget;
use crate::actors::purge_sync::purge_everywhere;
use crate::admin::auth::AdminAuth;
use crate::cache::{invalidate, CacheKey};

/// `PURGE` on a proxied URL drops every stored variant of it, here at once
/// and on every node through the purge log.
pub async fn purge_method(
    req: &HttpRequest,
    state: &ProxyState,
    auth: &AdminAuth,
    key: CacheKey,
) -> HttpResponse {
    // A cookie-authorised PURGE needs the dashboard's CSRF token, as any write.
    if let Err(refused) = auth.authorize(req, None) {
        return refused.error_response();
    }
    match purge_everywhere(&state.cache, &state.manifest, PurgeTarget::Url(key), false).await {
        Ok(report) if report.purged == 0 => plain(
            StatusCode::NOT_FOUND,
            "caje: nothing stored for that URL here (the purge goes to every node)\n",
        ),
        Ok(report) => plain(
            StatusCode::OK,
            format!("caje: purged {} stored response(s)\n", report.purged),
        ),
        Err(e) => {
            tracing::error!(error = %e, "purge failed");
            plain(StatusCode::SERVICE_UNAVAILABLE, format!("caje: {e}\n"))
        }
    }
}

/// After a non-error answer to an unsafe method, drops what it invalidates
/// (RFC 9111 §4.4). Awaited: once this client has its answer, no hit (not
/// even one from the memory tier, which bypasses the store's mailbox) may
/// serve what it invalidated.
pub async fn invalidate_after(x: &Exchange<'_>, status: StatusCode, response_headers: &HeaderMap) {
    if !invalidate::invalidates(x.req.method(), status) {
        return;
    }
    for target in invalidate::targets(x.key, &x.origin.key_rules, response_headers) {
        let _ = x.state.cache.send(Purge(target)).await;
    }
}
