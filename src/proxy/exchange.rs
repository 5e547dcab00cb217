//! One request's exchange as the handler works on it: the request, its
//! fields as the origin will see them, its cache key, where it goes, and
//! the two things every outcome does once: record itself (span and
//! metric), and answer from a stored response.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::dev::RequestHead;
use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse};

use super::respond;
use super::state::ProxyState;
use crate::actors::cache_store::{EntryBody, Hit};
use crate::cache::response_fields::ResponseFields;
use crate::cache::{freshness, CacheKey, CacheStatus, EntryHead};
use crate::config::Origin;
use crate::reload::Snapshot;
use crate::telemetry;
use crate::upstream::{OriginClients, OriginRequest, Upstream};

pub struct Exchange<'a> {
    pub req: &'a HttpRequest,
    /// The client's fields as the origin will see them: every caching
    /// decision reads these (see `upstream::headers::as_origin_sees`).
    pub seen: &'a HeaderMap,
    pub state: &'a ProxyState,
    pub key: &'a CacheKey,
    pub origin: &'a Origin,
    /// The config this request read when it came (`origin` is of it).
    pub live: &'a Arc<Snapshot>,
    pub client: &'a OriginClients,
}

impl Exchange<'_> {
    /// Records how the request was answered: its span's and access line's
    /// `cache_status`, and `caje_requests_total`. Called once per request,
    /// whatever the path.
    pub fn record(&self, outcome: &'static str) {
        telemetry::note_cache_status(self.req, outcome);
        self.state.metrics.requests_by.inc(outcome);
    }

    /// The URL as the client sent it: what the origin is asked, though the
    /// key may be normalised (`ignore_query`, `sort_query`).
    pub fn path_and_query(&self) -> &str {
        self.req.uri().path_and_query().map_or("/", |p| p.as_str())
    }

    /// The `Cache-Status` `detail` of a stored response for this origin.
    pub fn freshness_detail(&self, head: &EntryHead) -> Option<Cow<'static, str>> {
        freshness_detail(self.origin, head)
    }

    /// Answers with a fresh stored response, as a hit.
    pub fn fresh_hit(&self, hit: Hit, now: SystemTime) -> HttpResponse {
        self.record("hit");
        let Hit { head, fields, body } = hit;
        fresh_hit(
            self.req.head(),
            self.state,
            self.origin,
            (&head, &fields),
            body,
            now,
        )
    }

    /// Answers from a stored response, reported with `status`.
    pub fn answer(&self, hit: Hit, status: &CacheStatus, now: SystemTime) -> HttpResponse {
        let Hit { head, fields, body } = hit;
        answer(
            self.req.head(),
            self.state,
            (&head, &fields),
            body,
            status,
            now,
        )
    }

    /// Where this request's origin requests go.
    pub fn upstream(&self) -> Upstream<'_> {
        let (client, target) = self.client.origin(self.origin, &self.live.links);
        Upstream {
            origin: self.origin,
            client,
            target,
            client_ip_header: self.live.settings.client_ip_header.as_ref(),
            metrics: &self.state.metrics,
            cdn_loop: self.live.cdn_loop.clone(),
        }
    }

    /// The client's request as the origin is asked it; `whole` when the
    /// answer may be stored.
    pub fn origin_request(&self, whole: bool) -> OriginRequest<'_> {
        OriginRequest {
            method: self.req.method().clone(),
            path_and_query: self.path_and_query(),
            client_headers: self.req.headers(),
            peer: self.req.peer_addr(),
            version: self.req.version(),
            revalidate: None,
            whole: whole && *self.req.method() == Method::GET,
            part: None,
        }
    }
}

/// The `Cache-Status` `detail` of a stored response for `origin`.
fn freshness_detail(origin: &Origin, head: &EntryHead) -> Option<Cow<'static, str>> {
    let rules = origin.admit_rules();
    // Most entries have no Last-Modified and most origins no rules:
    // no field map is built for them.
    if rules.freshness.is_empty() && head.field("last-modified").is_none() {
        return None;
    }
    rules.freshness_detail(&head.key, head.status, &head.header_map())
}

/// A stored response's head and the fields it is answered with, borrowed
/// where they are kept: a hit on the memory tier clones neither.
pub type Stored<'a> = (&'a EntryHead, &'a ResponseFields);

/// The answer of a fresh stored response to `req`, as a hit (which the
/// caller records).
pub fn fresh_hit(
    req: &RequestHead,
    state: &ProxyState,
    origin: &Origin,
    stored: Stored<'_>,
    body: EntryBody,
    now: SystemTime,
) -> HttpResponse {
    let (head, fields) = stored;
    // For an origin without rules, the entry's own detail (heuristic or
    // none), found once when it was read.
    let detail = if origin.freshness.is_empty() {
        fields.freshness_detail.map(Cow::Borrowed)
    } else {
        freshness_detail(origin, head)
    };
    let status = CacheStatus {
        detail,
        ..CacheStatus::hit(hit_ttl(stored, now))
    };
    answer(req, state, stored, body, &status, now)
}

/// The answer to `req` from a stored response, reported with `status`.
fn answer(
    req: &RequestHead,
    state: &ProxyState,
    stored: Stored<'_>,
    body: EntryBody,
    status: &CacheStatus,
    now: SystemTime,
) -> HttpResponse {
    let status = status.field_value(&state.cache_name);
    respond::from_cache(req, stored, body, now, status, &state.metrics)
}

/// Remaining freshness of a stored response, negative once stale.
pub fn ttl(head: &EntryHead, now: SystemTime) -> i64 {
    freshness::signed_ttl(&head.policy, head.stored_at_ms, now)
}

/// [`ttl`] of a hit, from when it stops being fresh while it is.
pub fn hit_ttl((head, fields): Stored<'_>, now: SystemTime) -> i64 {
    match fields.fresh_until.map(|until| until.duration_since(now)) {
        Some(Ok(left)) if !left.is_zero() => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        _ => ttl(head, now),
    }
}
