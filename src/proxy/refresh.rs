//! Background refreshes for stale-while-revalidate: the stale copy is sent
//! at once and the origin asked afterwards, once per URL at a time. A
//! refresh always fetches with `GET`, whatever the client's method: a
//! stored entry always holds a whole `GET` answer, never a `HEAD`'s empty one.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest};

use super::handler::ProxyState;
use super::origin::{self, Upstream};
use super::revalidate::{self, Keep};
use super::{forward, store};
use crate::actors::cache_store::{Purge, UpdateHead};
use crate::cache::EntryHead;
use crate::config::Origin;

/// Starts refreshing `head`'s entry unless a refresh of it is under way.
pub fn spawn(
    req: HttpRequest,
    state: web::Data<ProxyState>,
    client: web::Data<awc::Client>,
    origin: Origin,
    head: Arc<EntryHead>,
) {
    let started = state
        .refreshing
        .lock()
        .map(|mut keys| keys.insert(head.key.clone()))
        .unwrap_or(false);
    if !started {
        return;
    }
    actix_web::rt::spawn(async move {
        let upstream = Upstream {
            origin: &origin,
            client: &client,
            client_ip_header: state.settings.client_ip_header.as_ref(),
        };
        refresh(&req, &state, &upstream, &head).await;
        if let Ok(mut keys) = state.refreshing.lock() {
            keys.remove(&head.key);
        }
    });
}

#[tracing::instrument(name = "proxy.refresh", skip_all, fields(host = %head.key.host, path = %head.key.path_and_query))]
async fn refresh(req: &HttpRequest, state: &ProxyState, upstream: &Upstream<'_>, head: &EntryHead) {
    let validators = revalidate::validators(head);
    let seen = forward::as_origin_sees(req.headers());
    let started = Instant::now();
    let response = origin::send(req, Method::GET, None, upstream, Some(&validators), true).await;
    origin::record(
        &state.metrics,
        upstream.origin,
        started.elapsed(),
        &response,
    );
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, "background refresh failed");
            return;
        }
    };
    if response.status() == StatusCode::NOT_MODIFIED {
        let now = SystemTime::now();
        match revalidate::updated_head(head, &seen, response.headers(), now) {
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
    let stored = store::store_fully(
        &state.cache,
        &head.key,
        &seen,
        response,
        upstream.origin.cache_set_cookie,
    );
    if let Err(error) = stored.await {
        tracing::warn!(%error, "background refresh body failed");
    }
}
