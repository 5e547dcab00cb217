//! The hot path: a `GET` or `HEAD` that the memory tier answers with a
//! fresh, whole response. It makes the same checks and decisions as the
//! handler's flow, in the same order, and hands every other request to the
//! flow, which starts over with what the hot path already had: the config
//! it took and the key it made (so one request keeps one config), and the
//! memory tier's entry when it found one (so nothing is asked or counted
//! twice).

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
use crate::cache::{partial, CacheKey};
use crate::reload::Snapshot;
use crate::upstream::{headers, OriginClients};

/// What the hot path hands the flow of a request it did not answer.
#[derive(Default)]
pub struct Handover {
    /// The config it took and the request's key under it.
    pub taken: Option<(Arc<Snapshot>, CacheKey)>,
    /// The memory tier's entry for the request, when it found one.
    pub found: Option<Arc<HotEntry>>,
}

/// The answer to a fresh hit on the memory tier, or what the flow is
/// handed of any other request.
pub fn answer(
    req: &HttpRequest,
    state: &ProxyState,
    client: &OriginClients,
) -> Result<HttpResponse, Handover> {
    let nothing = |_| Handover::default();
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(Handover::default());
    }
    let raw_host = request_checks::target_host(req).map_err(nothing)?;
    let live = state.config.current();
    let origin = live
        .settings
        .origin_for(raw_host)
        .ok_or_else(Handover::default)?;
    request_checks::check(req, live.settings.max_request_body).map_err(nothing)?;
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if origin.freshness.bypass(path_and_query).is_some() {
        return Err(Handover::default());
    }
    let key = origin.key(path_and_query);
    let seen = headers::as_origin_sees(req.headers());
    let found = state.memory.get(&key, key.primary_hash(), &seen);
    let now = SystemTime::now();
    // A stored part serves ranges only: the flow plans those.
    let fresh = found.as_ref().is_some_and(|found| {
        if partial::held(&found.head).is_some() {
            return false;
        }
        let request_directives = directives::request(&seen);
        let freshness = (&*found.head, found.fields.fresh_until);
        let verdict = freshness::judge((&seen, &request_directives), &key, freshness, now);
        matches!(verdict, Verdict::Fresh)
    });
    let found = match (found, fresh) {
        (Some(found), true) => found,
        (found, _) => {
            return Err(Handover {
                taken: Some((live, key)),
                found,
            })
        }
    };
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
