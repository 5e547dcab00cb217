//! The hot path: a `GET` or `HEAD` that the memory tier answers with a
//! fresh, whole response. It makes the same checks and decisions as the
//! handler's flow, in the same order, and hands every other request to the
//! flow, which starts over (the memory tier's entry, when it found one, goes
//! with it, so nothing is asked or counted twice).

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse};

use super::exchange::Exchange;
use super::request_checks;
use super::state::ProxyState;
use crate::actors::cache_store::Hit;
use crate::cache::directives;
use crate::cache::freshness::{self, Verdict};
use crate::cache::memory_tier::HotEntry;
use crate::cache::partial;
use crate::upstream::{headers, OriginClients};

/// The answer to a fresh hit on the memory tier, or what the memory tier
/// found for a request the flow must handle (`None`: not asked, or nothing).
pub fn answer(
    req: &HttpRequest,
    state: &ProxyState,
    client: &OriginClients,
) -> Result<HttpResponse, Option<Arc<HotEntry>>> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(None);
    }
    let raw_host = request_checks::target_host(req).map_err(|_| None)?;
    let live = state.config.current();
    let origin = live.settings.origin_for(raw_host).ok_or(None)?;
    request_checks::check(req, live.settings.max_request_body).map_err(|_| None)?;
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if origin.freshness.bypass(path_and_query).is_some() {
        return Err(None);
    }
    let key = origin.key(path_and_query);
    let seen = headers::as_origin_sees(req.headers());
    let found = state
        .memory
        .get(&key, key.primary_hash(), &seen)
        .ok_or(None)?;
    // A stored part serves ranges only: the flow plans those.
    if partial::held(&found.head).is_some() {
        return Err(Some(found));
    }
    let request_directives = directives::request(&seen);
    let now = SystemTime::now();
    let freshness = (&*found.head, found.fields.fresh_until);
    let verdict = freshness::judge((&seen, &request_directives), &key, freshness, now);
    if !matches!(verdict, Verdict::Fresh) {
        return Err(Some(found));
    }
    let x = Exchange {
        req,
        seen: &seen,
        state,
        key: &key,
        origin,
        live: &live,
        client,
    };
    Ok(x.fresh_hit(Hit::from_memory(&found), now))
}
