//! The proxy request handler. It owns nothing between requests: it asks the
//! `CacheStore` for a stored response, revalidates a stale one with the
//! origin, and streams the origin's answer to the client (and, when
//! storable, to the store).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use http_cache_semantics::BeforeRequest;
use tokio::sync::watch;
use tracing_actix_web::RootSpan;

use super::body::tee;
use super::coalesce::{self, Coalescer, Flight, Outcome, Role};
use super::origin::{self, Upstream};
use super::request_checks::{self, LimitedBody};
use super::respond::{self, plain, with_body};
use super::revalidate::{self, Keep};
use super::store::{begin_store, content_length, storable_head};
use super::{forward, http_compat, invalidate, refresh};
use crate::actors::cache_store::{CacheStore, Hit, Lookup, LookupResult, Purge, UpdateHead};
use crate::actors::manifest::{Manifest, PurgeTarget};
use crate::actors::purge_sync::purge_everywhere;
use crate::actors::Mailbox;
use crate::admin::auth::AdminAuth;
use crate::cache::memory_tier::MemoryTier;
use crate::cache::{directives, stale, CacheKey, CacheStatus, EntryHead, Forward};
use crate::config::{normalize_host, Settings};
use crate::metrics::ProxyMetrics;

/// What every worker's proxy handler shares.
pub struct ProxyState {
    pub settings: Arc<Settings>,
    pub cache: Mailbox<CacheStore>,
    /// Read here, without a message; the `CacheStore` keeps it current.
    pub memory: Arc<MemoryTier>,
    pub manifest: Mailbox<Manifest>,
    pub metrics: ProxyMetrics,
    /// URLs being refreshed in the background (stale-while-revalidate).
    pub refreshing: Mutex<HashSet<CacheKey>>,
    pub coalescer: Arc<Coalescer>,
}

impl ProxyState {
    pub fn new(
        settings: Arc<Settings>,
        cache: Mailbox<CacheStore>,
        memory: Arc<MemoryTier>,
        manifest: Mailbox<Manifest>,
        metrics: ProxyMetrics,
    ) -> Self {
        Self {
            settings,
            cache,
            memory,
            manifest,
            metrics,
            refreshing: Mutex::default(),
            coalescer: Arc::default(),
        }
    }
}

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
    client: web::Data<awc::Client>,
    auth: web::Data<AdminAuth>,
    root_span: RootSpan,
) -> HttpResponse {
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
        return purge(&req, &state, &auth, key).await;
    }
    // Every caching decision reads the request as the origin will see it.
    let seen = forward::as_origin_sees(req.headers());
    let seen: &HeaderMap = &seen;

    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    let cached = if safe {
        lookup(seen, &state, &key).await
    } else {
        Cached::Nothing(Forward::Method)
    };
    let request_directives = directives::request(seen);
    let only_if_cached = request_directives.has("only-if-cached");
    let (stale, reason) = match cached {
        Cached::Fresh(hit) => {
            root_span.record("cache_status", "hit");
            state.metrics.requests.with_label_values(&["hit"]).inc();
            let now = SystemTime::now();
            let ttl = stale::signed_ttl(&hit.head.policy, hit.head.stored_at_ms, now);
            let Hit { head, body } = *hit;
            return respond::from_cache(
                &req,
                &head,
                body,
                now,
                &CacheStatus::hit(ttl),
                &state.metrics,
            );
        }
        // Stale within stale-while-revalidate: sent now, refreshed after.
        Cached::Validate(hit, Forward::Stale) if within_swr(&hit.head) => {
            root_span.record("cache_status", "hit");
            state.metrics.requests.with_label_values(&["hit"]).inc();
            let now = SystemTime::now();
            let ttl = stale::signed_ttl(&hit.head.policy, hit.head.stored_at_ms, now);
            let Hit { head, body } = *hit;
            let status = CacheStatus {
                detail: Some("stale-while-revalidate"),
                ..CacheStatus::hit(ttl)
            };
            let response = respond::from_cache(&req, &head, body, now, &status, &state.metrics);
            refresh::spawn(
                req.clone(),
                state.clone(),
                client.clone(),
                origin.clone(),
                head,
            );
            return response;
        }
        // Nothing usable without the origin, which this client rules out.
        Cached::Validate(..) | Cached::Nothing(_) if only_if_cached => {
            root_span.record("cache_status", "only-if-cached");
            let mut response = plain(
                StatusCode::GATEWAY_TIMEOUT,
                "caje: only-if-cached, and no usable stored response\n",
            );
            let status = CacheStatus {
                detail: Some("only-if-cached"),
                ..CacheStatus::default()
            };
            forward::mark_response(response.headers_mut(), req.version(), &status.to_string());
            return response;
        }
        Cached::Validate(hit, reason) => (Some(hit), reason),
        Cached::Nothing(reason) => (None, reason),
    };
    // A miss joins any fetch of the same URL already under way. A request
    // that forbids storing its answer never leads one: followers would
    // wait for a response that cannot be stored.
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
        Role::Follower(leader) => {
            if let Some(response) = collapsed(&req, seen, &state, &key, reason, leader).await {
                root_span.record("cache_status", "collapsed");
                state
                    .metrics
                    .requests
                    .with_label_values(&["collapsed"])
                    .inc();
                return response;
            }
            None
        }
    };
    let outcome = CacheStatus::forward(reason).outcome();
    root_span.record("cache_status", outcome);
    state.metrics.requests.with_label_values(&[outcome]).inc();

    let validators = stale
        .as_ref()
        .map(|hit| revalidate::validators(&hit.head))
        .filter(|v| !v.is_empty());
    let upstream = Upstream {
        origin,
        client: &client,
        client_ip_header: state.settings.client_ip_header.as_ref(),
    };
    let (body, overflow) = LimitedBody::new(payload, state.settings.max_request_body);
    // A GET or HEAD body ("fat GET") never reaches the origin: the answer is
    // stored under the URL alone, so no client's body may shape it.
    let body = (!safe).then_some(body);
    // Unless this request fetches alone (its answer is known not to be
    // stored), the origin is asked for the whole response.
    let whole = *req.method() == Method::GET && (stale.is_some() || !alone);
    let started = Instant::now();
    let method = req.method().clone();
    let response = origin::send(&req, method, body, &upstream, validators.as_ref(), whole).await;
    root_span.record("origin_ms", started.elapsed().as_millis() as u64);
    origin::record(&state.metrics, origin, started.elapsed(), &response);
    if overflow.happened() {
        return overflow.response(state.settings.max_request_body);
    }
    // The origin failed: a stale copy within stale-if-error is better.
    let failed_status = match &response {
        Ok(r) if r.status().is_server_error() => Some(r.status().as_u16()),
        Ok(_) => None,
        Err(_) => Some(0),
    };
    // Not when the client asked for validation itself (request no-cache).
    let stale = match (failed_status, stale) {
        (Some(failed), Some(hit))
            if reason == Forward::Stale && within_sie(&hit.head, state.settings.stale_if_error) =>
        {
            return serve_stale_on_error(&req, &state, *hit, reason, failed);
        }
        (_, stale) => stale,
    };
    let response = match response {
        Ok(response) => response,
        Err(e) => return origin::failure(origin, &e),
    };
    if invalidate::invalidates(req.method(), response.status()) {
        // Awaited: once this client has its answer, no hit (not even one
        // from the memory tier, which bypasses the store's mailbox) may
        // serve what it invalidated.
        for target in invalidate::targets(&key, response.headers()) {
            let _ = state.cache.send(Purge(target)).await;
        }
    }
    match stale {
        Some(hit) if validators.is_some() && response.status() == StatusCode::NOT_MODIFIED => {
            revalidated(&req, seen, &state, *hit, reason, response, &upstream).await
        }
        _ => relay(&req, seen, &state, key, reason, response, flight).await,
    }
}

fn staleness(head: &EntryHead) -> std::time::Duration {
    stale::staleness(&head.policy, head.stored_at_ms, SystemTime::now())
}

/// Whether a stale entry may be sent while it is refreshed (never a
/// soft-purged one: it must be validated first).
fn within_swr(head: &EntryHead) -> bool {
    let rules = stale::rules(head);
    !head.invalidated && !rules.forbidden && staleness(head) <= rules.while_revalidate
}

/// Whether a stale entry may stand in for a failed origin: within the
/// response's `stale-if-error`, or else the configured default.
fn within_sie(head: &EntryHead, default: std::time::Duration) -> bool {
    let rules = stale::rules(head);
    !rules.forbidden && staleness(head) <= rules.if_error.unwrap_or(default)
}

/// Sends a stale entry because the origin failed (`failed` is its 5xx
/// status, or 0 when it could not be reached at all).
fn serve_stale_on_error(
    req: &HttpRequest,
    state: &ProxyState,
    hit: Hit,
    reason: Forward,
    failed: u16,
) -> HttpResponse {
    let now = SystemTime::now();
    let Hit { head, body } = hit;
    let status = CacheStatus {
        fwd_status: (failed != 0).then_some(failed),
        ttl: Some(stale::signed_ttl(&head.policy, head.stored_at_ms, now)),
        detail: Some("stale-if-error"),
        ..CacheStatus::forward(reason)
    };
    tracing::warn!(host = %head.key.host, path = %head.key.path_and_query, failed, "origin failed; served a stale copy");
    respond::from_cache(req, &head, body, now, &status, &state.metrics)
}

/// Waits for the fetch this request joined; once its response is stored,
/// answers from the cache. `None` when the request must fetch itself.
async fn collapsed(
    req: &HttpRequest,
    seen: &HeaderMap,
    state: &ProxyState,
    key: &CacheKey,
    reason: Forward,
    leader: watch::Receiver<Option<Outcome>>,
) -> Option<HttpResponse> {
    let outcome = coalesce::wait(leader, state.settings.coalesce_timeout).await;
    if outcome != Some(Outcome::Stored) {
        return None;
    }
    let Cached::Fresh(hit) = lookup(seen, state, key).await else {
        return None;
    };
    let now = SystemTime::now();
    let Hit { head, body } = *hit;
    let status = CacheStatus {
        fwd_status: Some(head.status),
        collapsed: true,
        ttl: Some(stale::signed_ttl(&head.policy, head.stored_at_ms, now)),
        ..CacheStatus::forward(reason)
    };
    Some(respond::from_cache(
        req,
        &head,
        body,
        now,
        &status,
        &state.metrics,
    ))
}

/// `PURGE` on a proxied URL drops every stored variant of it, here at once
/// and on every node through the purge log.
async fn purge(
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
            tracing::error!(error = %e, "cache store is not answering");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "caje: cache store is not answering\n",
            )
        }
    }
}

/// What the cache holds for a request with these (origin-visible) headers.
async fn lookup(seen: &HeaderMap, state: &ProxyState, key: &CacheKey) -> Cached {
    if let Some(hot) = state.memory.get(key, key.primary_hash(), seen) {
        return judge(seen, key, Box::new(Hit::from_memory(&hot)));
    }
    let found = state
        .cache
        .send(Lookup {
            key: key.clone(),
            request_headers: seen.clone(),
        })
        .await;
    let hit = match found {
        Ok(LookupResult::Found(hit)) => hit,
        Ok(LookupResult::UriMiss) => return Cached::Nothing(Forward::UriMiss),
        Ok(LookupResult::VaryMiss) => return Cached::Nothing(Forward::VaryMiss),
        Ok(LookupResult::Broken) => return Cached::Nothing(Forward::Miss),
        Err(e) => {
            tracing::error!(error = %e, "cache store is not answering");
            return Cached::Nothing(Forward::Miss);
        }
    };
    judge(seen, key, hit)
}

/// Whether a stored response may be sent as it is or must be validated.
fn judge(seen: &HeaderMap, key: &CacheKey, hit: Box<Hit>) -> Cached {
    let now = SystemTime::now();
    if hit.head.invalidated {
        return Cached::Validate(hit, Forward::Stale);
    }
    let stale = hit.head.policy.is_stale(now);
    // The key and the `Vary` selection already match the stored request, so
    // without request directives the policy's answer is its freshness alone;
    // asking it in full would rebuild both requests and the response head.
    if directives::request(seen).is_empty() {
        return if stale {
            Cached::Validate(hit, Forward::Stale)
        } else {
            Cached::Fresh(hit)
        };
    }
    let policy_request = http_compat::policy_request(key, seen, &hit.head.vary);
    match hit.head.policy.before_request(&policy_request, now) {
        // A client's `max-stale` never beats a shared-cache prohibition on
        // serving stale (no-cache, must-revalidate, proxy-revalidate,
        // s-maxage; RFC 9111 §4.2.4): the library checks only must-revalidate.
        BeforeRequest::Fresh(_) if stale && stale::rules(&hit.head).forbidden => {
            Cached::Validate(hit, Forward::Stale)
        }
        BeforeRequest::Fresh(_) => Cached::Fresh(hit),
        BeforeRequest::Stale { .. } if stale => Cached::Validate(hit, Forward::Stale),
        // Fresh, but the request's own directives ask for validation.
        BeforeRequest::Stale { .. } => Cached::Validate(hit, Forward::Request),
    }
}

/// The origin answered 304 to a revalidation: the stored response, updated
/// with the 304's fields, is sent and its head stored. A 304 about another
/// response than the stored one means asking again, unconditionally.
async fn revalidated(
    req: &HttpRequest,
    seen: &HeaderMap,
    state: &ProxyState,
    hit: Hit,
    reason: Forward,
    not_modified: awc::ClientResponse,
    upstream: &Upstream<'_>,
) -> HttpResponse {
    let now = SystemTime::now();
    let Some(revalidated) = revalidate::updated_head(&hit.head, seen, not_modified.headers(), now)
    else {
        let key = hit.head.key.clone();
        let started = Instant::now();
        let whole = *req.method() == Method::GET;
        let again = origin::send(req, req.method().clone(), None, upstream, None, whole).await;
        origin::record(&state.metrics, upstream.origin, started.elapsed(), &again);
        return match again {
            Ok(response) => relay(req, seen, state, key, reason, response, None).await,
            Err(e) => origin::failure(upstream.origin, &e),
        };
    };
    let mut status = CacheStatus::forward(reason);
    status.fwd_status = Some(StatusCode::NOT_MODIFIED.as_u16());
    let head = revalidated.head;
    match revalidated.keep {
        Keep::Update => {
            status.stored = true;
            status.ttl = Some(stale::signed_ttl(&head.policy, head.stored_at_ms, now));
            state.cache.do_send(UpdateHead(head.clone()));
        }
        // This request may not store (its own directives or credentials):
        // the stored copy stays as it was for everyone else.
        Keep::AsStored => {}
        // The origin now forbids keeping it: this answer is the last one.
        Keep::Drop => state.cache.do_send(Purge(head.key.clone())),
    }
    let mut response = respond::from_cache(req, &head, hit.body, now, &status, &state.metrics);
    // The stored head never keeps a 304's cookies: they are this client's.
    for cookie in not_modified.headers().get_all(header::SET_COOKIE) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    response
}

/// Streams the origin's response to the client, storing it on the way when
/// the caching decision allows.
async fn relay(
    req: &HttpRequest,
    seen: &HeaderMap,
    state: &ProxyState,
    key: CacheKey,
    reason: Forward,
    origin: awc::ClientResponse,
    flight: Option<Flight>,
) -> HttpResponse {
    let status = origin.status();
    let headers = forward::response_headers(origin.headers());
    let content_length = content_length(origin.headers());
    let mut cache_status = CacheStatus::forward(reason);
    cache_status.fwd_status = Some(status.as_u16());

    let cache_set_cookie = state
        .settings
        .origin_for(&key.host)
        .is_some_and(|o| o.cache_set_cookie);
    let storable = if *req.method() == Method::GET {
        storable_head(&key, seen, &origin, &headers, cache_set_cookie)
    } else {
        None
    };
    let sink = match storable {
        Some((head, ttl)) => {
            cache_status.ttl = Some(ttl as i64);
            begin_store(&state.cache, head, content_length).await
        }
        None => None,
    };
    cache_status.stored = sink.is_some();
    let (sink, flight) = match (sink, content_length, flight) {
        // Nothing will flow through an empty body: its entry is complete now.
        (Some(sink), Some(0), flight) => {
            let stored = sink.commit().await;
            if let Some(flight) = flight {
                flight.finish(if stored {
                    Outcome::Stored
                } else {
                    Outcome::NotStored
                });
            }
            (None, None)
        }
        (None, _, Some(flight)) => {
            // Hit-for-miss only when the response could be stored for no
            // client at all, not because of this leader's own request.
            let for_anyone =
                storable_head(&key, &HeaderMap::new(), &origin, &headers, cache_set_cookie);
            flight.finish(if for_anyone.is_some() {
                Outcome::NotStored
            } else {
                Outcome::Uncacheable
            });
            (None, None)
        }
        (sink, _, flight) => (sink, flight),
    };

    let mut response = HttpResponse::build(status);
    for (name, value) in &headers {
        response.append_header((name.clone(), value.clone()));
    }
    let sent = state.metrics.body_bytes.with_label_values(&["origin"]);
    let stream = tee(origin, sink, content_length, flight).inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            sent.inc_by(chunk.len() as u64);
        }
    });
    let mut response = with_body(response, status, req.method(), content_length, stream);
    forward::mark_response(
        response.headers_mut(),
        req.version(),
        &cache_status.to_string(),
    );
    response
}
