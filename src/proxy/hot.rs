//! The hot path: a `GET` or `HEAD` that the memory tier answers with a
//! fresh, whole response, answered where the request comes in
//! (`front.rs`), before actix-web's `App` builds anything for it. It makes
//! the same checks and decisions as the handler's flow, in the same order,
//! and hands every other request to the app, whose flow starts over with
//! what the hot path already had: the config it took, the origin whose
//! checks the request passed and the key it made (so one request keeps one
//! config), and the memory tier's answer, entry or none (so nothing is
//! checked, asked, hashed or counted twice).

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::dev::RequestHead;
use actix_web::http::Method;
use actix_web::HttpResponse;

use super::exchange;
use super::request_checks;
use super::state::ProxyState;
use crate::actors::cache_store::EntryBody;
use crate::admin;
use crate::cache::directives;
use crate::cache::freshness::{self, Verdict};
use crate::cache::key::Hash;
use crate::cache::memory_tier::HotEntry;
use crate::cache::{partial, CacheKey};
use crate::reload::Snapshot;
use crate::upstream::headers;

/// What the hot path hands the flow of a request it did not answer.
#[derive(Default)]
pub struct Handover {
    /// What it had when it got as far as the memory tier.
    pub taken: Option<Taken>,
}

/// A request the hot path looked up in the memory tier.
pub struct Taken {
    /// The config it took, the request's origin in it (its place in
    /// `origins`: the request passed that origin's checks), and the
    /// request's key under it.
    pub live: Arc<Snapshot>,
    pub origin_at: usize,
    pub key: CacheKey,
    /// The memory tier's answer (the key's hash and the entry found, if
    /// any): the flow asks neither again.
    pub memory: (Hash, Option<Arc<HotEntry>>),
}

/// The answer to a fresh hit on the memory tier, or what the flow is
/// handed of any other request.
// The handover is moved once, into the request's extensions (which box
// it): boxing it here too would cost a miss a second allocation.
#[allow(clippy::result_large_err)]
pub fn answer(req: &RequestHead, state: &ProxyState) -> Result<HttpResponse, Handover> {
    let nothing = |_| Handover::default();
    if !matches!(req.method, Method::GET | Method::HEAD) || admin::claims(req.uri.path()) {
        return Err(Handover::default());
    }
    let host = request_checks::target_host(req).map_err(nothing)?;
    let live = state.config.current();
    let (origin_at, origin) = live
        .settings
        .origin_at_named(host)
        .ok_or_else(Handover::default)?;
    request_checks::check(req, live.settings.max_request_body).map_err(nothing)?;
    let path_and_query = req.uri.path_and_query().map_or("/", |p| p.as_str());
    if origin.freshness.bypass(path_and_query).is_some() {
        return Err(Handover::default());
    }
    // The key borrowed: made only for a request the flow goes on with.
    let normalised = origin.key_rules.normalise(path_and_query);
    let key = origin.key_view(&normalised);
    let seen = headers::as_origin_sees(req.headers());
    let primary = key.primary_hash();
    let found = state.memory.get(key, primary, &seen);
    let now = SystemTime::now();
    // A stored part serves ranges only: the flow plans those.
    let fresh = found.as_ref().is_some_and(|found| {
        if partial::held(&found.head).is_some() {
            return false;
        }
        let request_directives = directives::request(&seen);
        let freshness = (&*found.head, found.fields.fresh_until);
        let verdict = freshness::judge((&seen, &request_directives), key, freshness, now);
        matches!(verdict, Verdict::Fresh)
    });
    let found = match (found, fresh) {
        (Some(found), true) => found,
        (found, _) => {
            let key = key.to_key();
            return Err(Handover {
                taken: Some(Taken {
                    live,
                    origin_at,
                    key,
                    memory: (primary, found),
                }),
            });
        }
    };
    // Counted as the flow's `Exchange::record` does; `front.rs` logs it.
    state.metrics.requests_by.inc("hit");
    Ok(exchange::fresh_hit(
        req,
        state,
        origin,
        (&found.head, &found.fields),
        EntryBody::Memory(found.body.clone()),
        now,
    ))
}
