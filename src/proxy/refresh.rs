//! Background refreshes for stale-while-revalidate: the stale copy is sent
//! at once and the origin asked afterwards, once per URL at a time (the
//! coalescer owns that). A refresh always fetches the whole response with
//! `GET`, whatever the client's method or range: a stored entry always
//! holds a whole `GET` answer, never a `HEAD`'s empty one.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use actix_web::web;

use super::exchange::Exchange;
use super::state::ProxyState;
use crate::actors::cache_store::{Purge, UpdateHead};
use crate::cache::revalidate::{self, Keep};
use crate::cache::EntryHead;
use crate::upstream::fetch::store_fully;
use crate::upstream::send::NoBody;
use crate::upstream::{self, headers, OriginClients, OriginRequest, RequestBody, Upstream};

/// Starts refreshing `head`'s entry unless a refresh of it is under way.
pub fn spawn(
    x: &Exchange<'_>,
    state: web::Data<ProxyState>,
    client: web::Data<OriginClients>,
    head: Arc<EntryHead>,
) {
    let Some(refresh) = state.coalescer.refresh(&head.key) else {
        return;
    };
    let (req, origin, live) = (x.req.clone(), x.origin.clone(), x.live.clone());
    actix_web::rt::spawn(async move {
        let (client, target) = client.origin(&origin, &live.links);
        let upstream = Upstream {
            origin: &origin,
            client,
            target,
            client_ip_header: live.settings.client_ip_header.as_ref(),
            metrics: &state.metrics,
            cdn_loop: live.cdn_loop.clone(),
        };
        let seen = headers::as_origin_sees(req.headers());
        let validators = revalidate::validators(&head);
        let request = OriginRequest {
            method: Method::GET,
            // As this client asked it; the key may be normalised.
            path_and_query: req.uri().path_and_query().map_or("/", |p| p.as_str()),
            client_headers: req.headers(),
            peer: req.peer_addr(),
            version: req.version(),
            revalidate: Some(&validators),
            whole: true,
            part: None,
        };
        refresh_once(&state, &upstream, request, &seen, &head).await;
        drop(refresh);
    });
}

#[tracing::instrument(name = "proxy.refresh", skip_all, fields(host = %head.key.host(), path = %head.key.path_and_query()))]
async fn refresh_once(
    state: &ProxyState,
    upstream: &Upstream<'_>,
    request: OriginRequest<'_>,
    seen: &HeaderMap,
    head: &EntryHead,
) {
    let sent = upstream::send(upstream, request, None::<RequestBody<NoBody>>).await;
    let response = match sent.result {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, "background refresh failed");
            return;
        }
    };
    if response.status() == StatusCode::NOT_MODIFIED {
        let now = SystemTime::now();
        let passed_on = headers::response_headers(response.headers());
        let rules = upstream.origin.admit_rules();
        match revalidate::updated_head(head, seen, &passed_on, rules, now) {
            Some(updated) => match updated.keep {
                Keep::Update => state.cache.do_send(UpdateHead(updated.head)),
                Keep::AsStored => {}
                Keep::Drop => state.cache.do_send(Purge(head.key.clone())),
            },
            None => {
                tracing::warn!("the origin's 304 is about another response; kept the stale one")
            }
        }
        return;
    }
    let stored = store_fully(
        &state.cache,
        &head.key,
        seen,
        response,
        upstream.origin.admit_rules(),
    );
    if let Err(error) = stored.await {
        tracing::warn!(%error, "background refresh body failed");
    }
}
