//! The proxy request handler: a request's flow and nothing else. It owns
//! nothing between requests: it asks the `CacheStore` (or the memory tier)
//! for a stored response, lets `cache/` decide what may be sent, and goes
//! to the origin through `upstream/` when nothing may.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use tokio::sync::watch;

use super::answer::{relay, revalidated};
use super::body::LimitedBody;
use super::exchange::{hit_ttl, ttl, Exchange};
use super::request_checks;
use super::respond::{self, plain};
use super::state::ProxyState;
use super::{hot, peer, purge, refresh};
use crate::actors::cache_store::{Compress, Hit, Lookup, LookupResult};
use crate::admin::auth::AdminAuth;
use crate::cache::coalesce::{self, Outcome, Role};
use crate::cache::directives::{self, Directives};
use crate::cache::freshness::{self, Verdict};
use crate::cache::key::Hash;
use crate::cache::memory_tier::HotEntry;
use crate::cache::partial::{self, Plan};
use crate::cache::{range, revalidate};
use crate::cache::{CacheStatus, Forward};
use crate::config::Origin;
use crate::reload::Snapshot;
use crate::telemetry;
use crate::upstream::fetch::content_length;
use crate::upstream::{self, headers, OriginClients, RequestBody};

/// The origin of a request the hot path did not look up, once the
/// request passes its checks; else the refusal (boxed: it is rare).
fn route<'a>(req: &HttpRequest, live: &'a Snapshot) -> Result<&'a Origin, Box<HttpResponse>> {
    let refused = |refused: request_checks::Refused| Box::new(refused.response());
    let host = request_checks::target_host(req.head()).map_err(refused)?;
    let Some((_, origin)) = live.settings.origin_at_named(host) else {
        return Err(Box::new(plain(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "caje: no origin is configured for host {:?}\n",
                host.to_ascii_lowercase()
            ),
        )));
    };
    request_checks::check(req.head(), live.settings.max_request_body).map_err(refused)?;
    Ok(origin)
}

/// What the cache can do for a request.
enum Cached {
    /// A stored response may be sent as it is.
    Fresh(Box<Hit>),
    /// A stored response exists but must be validated first (it is stale,
    /// or the request asked for validation).
    Validate(Box<Hit>, Forward),
    /// Nothing usable is stored.
    Nothing(Forward),
}

/// A request's whole flow, for every request the hot path (`front.rs`)
/// did not answer, with what the hot path already had of it.
pub async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
    client: web::Data<OriginClients>,
    auth: web::Data<AdminAuth>,
) -> HttpResponse {
    let handover = req
        .extensions_mut()
        .remove::<hot::Handover>()
        .unwrap_or_default();
    // 1. Checks, and the origin for this host (never an open proxy). This
    // request's config, to its end, whatever a reload does meanwhile: the
    // one the hot path took, with the origin whose checks it passed there.
    let (live, origin_at, key, memory) = match handover.taken {
        Some(t) => (t.live, Some(t.origin_at), Some(t.key), Some(t.memory)),
        None => (state.config.current(), None, None, None),
    };
    let origin = match origin_at.and_then(|at| live.settings.origins.get(at)) {
        Some(origin) => origin,
        None => match route(&req, &live) {
            Ok(origin) => origin,
            Err(refused) => return *refused,
        },
    };
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let key = key.unwrap_or_else(|| origin.key(path_and_query));
    if req.method().as_str() == "PURGE" {
        // Rare paths are boxed: the flow's future, allocated for every
        // request that reaches it, stays the size of a miss's.
        return Box::pin(purge::purge_method(&req, &state, &auth, key)).await;
    }
    let seen = headers::as_origin_sees(req.headers());
    let x = Exchange {
        req: &req,
        seen: &seen,
        state: &state,
        key: &key,
        origin,
        live: &live,
        client: &client,
    };

    // 2. What the cache holds, and whether it may be sent as it is.
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    let request_directives = directives::request(x.seen);
    let bypass = origin.freshness.bypass(path_and_query);
    let cached = match (safe, bypass) {
        (true, None) => lookup(&x, &request_directives, memory).await,
        (true, Some(_)) => Cached::Nothing(Forward::Bypass),
        (false, _) => Cached::Nothing(Forward::Method),
    };
    // A stored part (a 206) serves only the ranges it holds.
    let cached = match cached {
        Cached::Fresh(hit) => match partial::held(&hit.head) {
            None => Cached::Fresh(hit),
            Some(held) => match partial_plan(&x, &hit, held) {
                Some(Plan::Covered(_)) => Cached::Fresh(hit),
                // Never past only-if-cached: answered 504 below.
                Some(Plan::Extend { wanted, missing })
                    if !request_directives.has("only-if-cached") =>
                {
                    x.record(CacheStatus::forward(Forward::Partial).outcome());
                    let extend = super::partial::extend(&x, *hit, held, wanted, missing);
                    return Box::pin(extend).await;
                }
                Some(Plan::Extend { .. } | Plan::Refetch) | None => {
                    Cached::Nothing(Forward::Partial)
                }
            },
        },
        // A stale part is fetched again rather than validated.
        Cached::Validate(hit, reason) if partial::held(&hit.head).is_some() => {
            Cached::Nothing(reason)
        }
        other => other,
    };
    let now = SystemTime::now();
    let (stale, reason) = match cached {
        Cached::Fresh(hit) => return x.fresh_hit(*hit, now),
        // Stale within stale-while-revalidate: sent now, refreshed after.
        Cached::Validate(hit, Forward::Stale)
            if freshness::within_while_revalidate(&hit.head, now) =>
        {
            x.record("hit");
            refresh::spawn(&x, state.clone(), client.clone(), hit.head.clone());
            let status = CacheStatus {
                detail: Some("stale-while-revalidate".into()),
                ..CacheStatus::hit(hit_ttl((&hit.head, &hit.fields), now))
            };
            return x.answer(*hit, &status, now);
        }
        // Nothing usable without the origin, which this client rules out.
        Cached::Validate(..) | Cached::Nothing(_) if request_directives.has("only-if-cached") => {
            x.record("only-if-cached");
            let mut response = plain(
                StatusCode::GATEWAY_TIMEOUT,
                "caje: only-if-cached, and no usable stored response\n",
            );
            let status = CacheStatus {
                detail: Some("only-if-cached".into()),
                ..CacheStatus::default()
            };
            let status = status.field_value(&state.cache_name);
            headers::mark_response(response.headers_mut(), req.version(), status);
            return response;
        }
        Cached::Validate(hit, reason) => (Some(hit), reason),
        Cached::Nothing(reason) => (None, reason),
    };

    // 3. A miss joins any fetch of the same URL already under way. A
    // request that forbids storing its answer never leads one: followers
    // would wait for a response that cannot be stored.
    let miss = matches!(reason, Forward::UriMiss | Forward::VaryMiss | Forward::Miss);
    // A miss for one range fetches it alone: the origin's 206 may be stored
    // as a partial entry, which only the ranges it holds are served from.
    let one_range = !req.headers().contains_key(header::IF_RANGE)
        && req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(range::is_single_range);
    let role = if miss && *req.method() == Method::GET && !one_range {
        state
            .coalescer
            .join(&key, !request_directives.has("no-store"))
    } else {
        Role::Alone
    };
    let alone = matches!(role, Role::Alone);
    let flight = match role {
        Role::Leader(flight) => Some(flight),
        Role::Alone => None,
        Role::Follower(leader) => match collapsed(&x, &request_directives, reason, leader).await {
            Some(response) => return response,
            None => None,
        },
    };
    x.record(CacheStatus::forward(reason).outcome());
    // With `peer_fetch = "all"`, the node that stored the page first.
    if miss && peer::may_ask(&x) {
        if let Some(answer) = Box::pin(peer::ask(&x)).await {
            return relay(&x, reason, answer, flight).await;
        }
    }

    // 4. The origin, asked for the whole response unless this request
    // fetches alone (its answer is known not to be stored). A GET or HEAD
    // body ("fat GET") never reaches it: the answer is stored under the
    // URL alone, so no client's body may shape it.
    let validators = stale
        .as_ref()
        .map(|hit| revalidate::validators(&hit.head))
        .filter(|v| !v.is_empty());
    let (body, overflow) = LimitedBody::new(payload, live.settings.max_request_body);
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let body = match (safe, content_length(req.headers()), chunked) {
        (false, Some(length), _) => Some(RequestBody {
            stream: body,
            length: Some(length),
        }),
        (false, None, true) => Some(RequestBody {
            stream: body,
            length: None,
        }),
        _ => None,
    };
    let mut request = x.origin_request(stale.is_some() || !alone);
    request.revalidate = validators.as_ref();
    let sent = upstream::send(&x.upstream(), request, body).await;
    telemetry::note_origin_ms(&req, sent.elapsed.as_millis() as u64);
    if overflow.happened() {
        return overflow.response(live.settings.max_request_body);
    }
    let response = sent.result;

    // 5. A failed origin: a stale copy within stale-if-error is better
    // (not when the client asked for validation itself).
    let failed_status = match &response {
        Ok(r) if r.status().is_server_error() => Some(r.status().as_u16()),
        Ok(_) => None,
        Err(_) => Some(0),
    };
    let now = SystemTime::now();
    let stale = match (failed_status, stale) {
        (Some(failed), Some(hit))
            if reason == Forward::Stale
                && freshness::within_if_error(&hit.head, live.settings.stale_if_error, now) =>
        {
            tracing::warn!(host = %key.host(), path = %key.path_and_query(), failed, "origin failed; served a stale copy");
            let status = CacheStatus {
                // 0: the origin could not be reached at all.
                fwd_status: (failed != 0).then_some(failed),
                ttl: Some(ttl(&hit.head, now)),
                detail: Some("stale-if-error".into()),
                ..CacheStatus::forward(reason)
            };
            return x.answer(*hit, &status, now);
        }
        (_, stale) => stale,
    };
    let response = match response {
        Ok(response) => response,
        Err(e) => return respond::origin_failure(origin, &e),
    };

    // 6. Unsafe methods invalidate; a 304 revalidates; anything else is
    // relayed (and stored when admission allows).
    purge::invalidate_after(&x, response.status(), response.headers()).await;
    match stale {
        Some(hit) if validators.is_some() && response.status() == StatusCode::NOT_MODIFIED => {
            Box::pin(revalidated(&x, *hit, reason, response)).await
        }
        _ => relay(&x, reason, response, flight).await,
    }
}

/// What a stored part does for this request: only a `GET` is answered
/// from one.
fn partial_plan(x: &Exchange<'_>, hit: &Hit, held: partial::Held) -> Option<Plan> {
    if *x.req.method() != Method::GET {
        return None;
    }
    let text = |name| x.req.headers().get(name).and_then(|v| v.to_str().ok());
    Some(partial::plan(
        held,
        text(header::RANGE),
        text(header::IF_RANGE),
        &hit.head,
    ))
}

/// What the cache holds for this request (its `request` directives);
/// `memory`: the key's hash and the memory tier's answer, when the hot
/// path already asked it.
async fn lookup(
    x: &Exchange<'_>,
    request: &Directives,
    memory: Option<(Hash, Option<Arc<HotEntry>>)>,
) -> Cached {
    let (primary, found) = memory.unwrap_or_else(|| {
        let primary = x.key.primary_hash();
        (primary, x.state.memory.get(x.key, primary, x.seen))
    });
    let hit = match found {
        Some(hot) => Box::new(Hit::from_memory(&hot)),
        // Nothing stored for the URL: known without asking the store.
        None if !x.state.memory.store_may_hold(&primary) => {
            return Cached::Nothing(Forward::UriMiss);
        }
        None => {
            let compress_from = x.origin.admit_rules().compress_from;
            let mut found = x
                .state
                .cache
                .send(Lookup {
                    key: x.key.clone(),
                    request_headers: x.seen.clone(),
                    compress_from,
                })
                .await;
            // The coding this client gets is not made yet: made now, once.
            if let (Ok(LookupResult::Compressible { identity, coding }), Some(min_len)) =
                (&found, compress_from)
            {
                let compress = Compress {
                    key: x.key.clone(),
                    identity: identity.clone(),
                    coding: *coding,
                    min_len,
                };
                found = x.state.cache.send(compress).await;
            }
            match found {
                Ok(LookupResult::Found(hit)) => hit,
                Ok(LookupResult::UriMiss) => return Cached::Nothing(Forward::UriMiss),
                Ok(LookupResult::VaryMiss | LookupResult::Compressible { .. }) => {
                    return Cached::Nothing(Forward::VaryMiss)
                }
                Ok(LookupResult::Broken) => return Cached::Nothing(Forward::Miss),
                Err(e) => {
                    tracing::error!(error = %e, "lookup failed; answered as a miss");
                    return Cached::Nothing(Forward::Miss);
                }
            }
        }
    };
    let freshness = (&*hit.head, hit.fields.fresh_until);
    match freshness::judge((x.seen, request), x.key, freshness, SystemTime::now()) {
        Verdict::Fresh => Cached::Fresh(hit),
        Verdict::Validate(reason) => Cached::Validate(hit, reason),
    }
}

/// Waits for the fetch this request joined; once its response is stored,
/// answers from the cache. `None` when the request must fetch itself.
async fn collapsed(
    x: &Exchange<'_>,
    request: &Directives,
    reason: Forward,
    leader: watch::Receiver<Option<Outcome>>,
) -> Option<HttpResponse> {
    let outcome = coalesce::wait(leader, x.live.settings.coalesce_timeout).await;
    if outcome != Some(Outcome::Stored) {
        return None;
    }
    let Cached::Fresh(hit) = lookup(x, request, None).await else {
        return None;
    };
    // The leader stored a whole answer; a part is someone else's.
    if partial::held(&hit.head).is_some() {
        return None;
    }
    x.record("collapsed");
    let now = SystemTime::now();
    let status = CacheStatus {
        fwd_status: Some(hit.head.status),
        collapsed: true,
        ttl: Some(ttl(&hit.head, now)),
        ..CacheStatus::forward(reason)
    };
    Some(x.answer(*hit, &status, now))
}
