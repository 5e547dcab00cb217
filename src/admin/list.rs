//! `GET /_caje/list`: this node's file cache beside the shared manifest
//! (which pages are missing here) and the populator's progress. JSON for
//! `Accept: application/json`, the dashboard otherwise; paginated with
//! `?page=N&per_page=M`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::session::Session;
use super::{dashboard, headers, AdminState};
use crate::actors::cache_store::{HoldsFresh, ListEntries};
use crate::actors::manifest::{GetRole, ListPages, RoleReport};
use crate::actors::populator::{GetStatus, PopulatorStatus};
use crate::cache::CacheKey;

const DEFAULT_PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 500;

#[derive(Deserialize)]
pub struct ListQuery {
    page: Option<usize>,
    per_page: Option<usize>,
}

#[derive(Serialize)]
pub struct ListView {
    pub node: NodeView,
    pub page: usize,
    pub per_page: usize,
    pub cache: CacheView,
    pub manifest: ManifestView,
    pub populator: PopulatorStatus,
}

#[derive(Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub role: RoleReport,
    pub version: &'static str,
    pub uptime_seconds: u64,
}

#[derive(Serialize)]
pub struct CacheView {
    pub total: usize,
    pub entries: Vec<EntryView>,
}

#[derive(Serialize)]
pub struct EntryView {
    pub host: String,
    pub path: String,
    pub size: u64,
    /// HTTP date.
    pub stored_at: String,
    /// Seconds of freshness left (0 when stale).
    pub ttl: u64,
    pub fresh: bool,
}

#[derive(Serialize)]
pub struct ManifestView {
    pub total: usize,
    pub pages: Vec<PageView>,
}

#[derive(Serialize)]
pub struct PageView {
    pub method: String,
    pub host: String,
    pub path: String,
    pub first_seen: String,
    pub last_seen: String,
    pub times_stored: i64,
    /// Whether this node holds a fresh copy.
    pub here: bool,
}

fn http_date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let wants_json = super::headers::wants_json(&req);
    let per_page = query
        .per_page
        .unwrap_or(DEFAULT_PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let page = query.page.unwrap_or(1).max(1);
    let offset = (page - 1).saturating_mul(per_page);
    let view = match gather(&state, page, per_page, offset).await {
        Ok(view) => view,
        Err(message) => {
            tracing::error!(%message, "cannot build the list");
            return HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({ "error": message }));
        }
    };
    if wants_json {
        HttpResponse::Ok().json(view)
    } else {
        // A Bearer client has no session: its page has no working buttons.
        let csrf = req
            .extensions()
            .get::<Session>()
            .map(|s| s.csrf().to_owned())
            .unwrap_or_default();
        let nonce = headers::nonce();
        let html = dashboard::render(&view, &csrf, &nonce);
        headers::page(StatusCode::OK, &nonce, html)
    }
}

async fn gather(
    state: &AdminState,
    page: usize,
    per_page: usize,
    offset: usize,
) -> Result<ListView, String> {
    let (entries, pages, populator, role) = futures_util::join!(
        state.cache.send(ListEntries {
            offset,
            limit: per_page
        }),
        state.manifest.send(ListPages {
            offset,
            limit: per_page
        }),
        state.populator.send(GetStatus),
        state.manifest.send(GetRole),
    );
    let entries = entries.map_err(|e| e.to_string())?;
    let pages = pages
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read the manifest: {e}"))?;
    let populator = populator.map_err(|e| e.to_string())?;
    let role = role.map_err(|e| e.to_string())?;
    let keys: Vec<CacheKey> = pages
        .pages
        .iter()
        .map(|p| CacheKey::new(&p.method, &p.host, &p.path_and_query))
        .collect();
    let here = state
        .cache
        .send(HoldsFresh(keys))
        .await
        .map_err(|e| e.to_string())?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(ListView {
        node: NodeView {
            role,
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: state.started.elapsed().as_secs(),
        },
        page,
        per_page,
        cache: CacheView {
            total: entries.total,
            entries: entries
                .entries
                .into_iter()
                .map(|e| EntryView {
                    fresh: e.is_fresh(now_ms),
                    ttl: e.fresh_until_ms.saturating_sub(now_ms) / 1000,
                    stored_at: http_date(e.stored_at_ms),
                    size: e.size,
                    host: e.key.host().to_owned(),
                    path: e.key.path_and_query().to_owned(),
                })
                .collect(),
        },
        manifest: ManifestView {
            total: pages.total,
            pages: pages
                .pages
                .into_iter()
                .zip(here)
                .map(|(p, here)| PageView {
                    first_seen: http_date(u64::try_from(p.first_seen).unwrap_or(0)),
                    last_seen: http_date(u64::try_from(p.last_seen).unwrap_or(0)),
                    method: p.method,
                    host: p.host,
                    path: p.path_and_query,
                    times_stored: p.times_stored,
                    here,
                })
                .collect(),
        },
        populator,
    })
}
