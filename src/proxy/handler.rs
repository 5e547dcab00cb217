//! The proxy request handler: a request's flow and nothing else. It owns
//! nothing between requests: it asks the `CacheStore` (or the memory tier)
//! for a stored response, lets `cache/` decide what may be sent, and goes
//! to the origin through `upstream/` when nothing may.

use std::time::SystemTime;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use tokio::sync::watch;
use tracing_actix_web::RootSpan;

use super::answer::{relay, revalidated};
use super::body::LimitedBody;
use super::exchange::{ttl, Exchange};
use super::request_checks;
use super::respond::{self, plain};
use super::state::ProxyState;
use super::{peer, purge, refresh};
use crate::actors::cache_store::{Hit, Lookup, LookupResult};
use crate::admin::auth::AdminAuth;
use crate::cache::coalesce::{self, Outcome, Role};
use crate::cache::directives::{self, Directives};
use crate::cache::freshness::{self, Verdict};
use crate::cache::revalidate;
use crate::cache::{CacheKey, CacheStatus, Forward};
use crate::config::normalize_host;
use crate::upstream::fetch::content_length;
use crate::upstream::{self, headers, OriginClients, RequestBody};

/// Stored entries are keyed by `GET`: a `HEAD` is answered from them too.
const STORED_METHOD: &str = "GET";

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

pub async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
    client: web::Data<OriginClients>,
    auth: web::Data<AdminAuth>,
    root_span: RootSpan,
) -> HttpResponse {
    // 1. Checks, and the origin for this host (never an open proxy).
    let raw_host = match request_checks::target_host(&req) {
        Ok(host) => host,
        Err(refused) => return refused.response(),
    };
    let Some(origin) = state.settings.origin_for(&raw_host) else {
        return plain(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "caje: no origin is configured for host {:?}\n",
                normalize_host(&raw_host)
            ),
        );
    };
    if let Err(refused) = request_checks::check(&req, state.settings.max_request_body) {
        return refused.response();
    }
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let key = CacheKey::new(STORED_METHOD, &origin.host, path_and_query);
    if req.method().as_str() == "PURGE" {
        return purge::purge_method(&req, &state, &auth, key).await;
    }
    let seen = headers::as_origin_sees(req.headers());
    let x = Exchange {
        req: &req,
        seen: &seen,
        state: &state,
        span: &root_span,
        key: &key,
        origin,
        client: &client,
    };

    // 2. What the cache holds, and whether it may be sent as it is.
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    let request_directives = directives::request(x.seen);
    let cached = if safe {
        lookup(&x, &request_directives).await
    } else {
        Cached::Nothing(Forward::Method)
    };
    let now = SystemTime::now();
    let (stale, reason) = match cached {
        Cached::Fresh(hit) => {
            x.record("hit");
            let status = CacheStatus {
                detail: hit.fields.freshness_detail,
                ..CacheStatus::hit(ttl(&hit.head, now))
            };
            return x.answer(*hit, &status, now);
        }
        // Stale within stale-while-revalidate: sent now, refreshed after.
        Cached::Validate(hit, Forward::Stale)
            if freshness::within_while_revalidate(&hit.head, now) =>
        {
            x.record("hit");
            refresh::spawn(&x, state.clone(), client.clone(), hit.head.clone());
            let status = CacheStatus {
                detail: Some("stale-while-revalidate"),
                ..CacheStatus::hit(ttl(&hit.head, now))
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
                detail: Some("only-if-cached"),
                ..CacheStatus::default()
            };
            let status = status.render(&state.cache_name);
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
    let role = if miss && *req.method() == Method::GET {
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
    if miss {
        if let Some(answer) = peer::ask(&x).await {
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
    let (body, overflow) = LimitedBody::new(payload, state.settings.max_request_body);
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
    root_span.record("origin_ms", sent.elapsed.as_millis() as u64);
    if overflow.happened() {
        return overflow.response(state.settings.max_request_body);
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
                && freshness::within_if_error(&hit.head, state.settings.stale_if_error, now) =>
        {
            tracing::warn!(host = %key.host, path = %key.path_and_query, failed, "origin failed; served a stale copy");
            let status = CacheStatus {
                // 0: the origin could not be reached at all.
                fwd_status: (failed != 0).then_some(failed),
                ttl: Some(ttl(&hit.head, now)),
                detail: Some("stale-if-error"),
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
            revalidated(&x, *hit, reason, response).await
        }
        _ => relay(&x, reason, response, flight).await,
    }
}

/// What the cache holds for this request (its `request` directives).
async fn lookup(x: &Exchange<'_>, request: &Directives) -> Cached {
    let primary = x.key.primary_hash();
    let hit = match x.state.memory.get(x.key, primary, x.seen) {
        Some(hot) => Box::new(Hit::from_memory(&hot)),
        // Nothing stored for the URL: known without asking the store.
        None if !x.state.memory.store_may_hold(&primary) => {
            return Cached::Nothing(Forward::UriMiss);
        }
        None => {
            let found = x
                .state
                .cache
                .send(Lookup {
                    key: x.key.clone(),
                    request_headers: x.seen.clone(),
                })
                .await;
            match found {
                Ok(LookupResult::Found(hit)) => hit,
                Ok(LookupResult::UriMiss) => return Cached::Nothing(Forward::UriMiss),
                Ok(LookupResult::VaryMiss) => return Cached::Nothing(Forward::VaryMiss),
                Ok(LookupResult::Broken) => return Cached::Nothing(Forward::Miss),
                Err(e) => {
                    tracing::error!(error = %e, "lookup failed; answered as a miss");
                    return Cached::Nothing(Forward::Miss);
                }
            }
        }
    };
    match freshness::judge((x.seen, request), x.key, &hit.head, SystemTime::now()) {
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
    let outcome = coalesce::wait(leader, x.state.settings.coalesce_timeout).await;
    if outcome != Some(Outcome::Stored) {
        return None;
    }
    let Cached::Fresh(hit) = lookup(x, request).await else {
        return None;
    };
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
