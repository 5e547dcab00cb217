//! `GET /_caje/`: the node at a glance. The last minutes of requests by
//! cache status, hit ratio, origin latency and actors' mailbox depths
//! (from `history`), and the regions: which nodes stored the shared
//! manifest's pages, how many, how recently, and this node's replication
//! lag. JSON for `Accept: application/json`, the page with its charts
//! otherwise.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::history::{Sample, SAMPLE_EVERY};
use super::list::NodeView;
use super::{headers, overview_page, AdminState};
use crate::actors::manifest::{GetRole, NodePages, StoredByNode};

/// A node counts as storing pages "recently" within this window.
pub const RECENT: Duration = Duration::from_secs(15 * 60);
/// The page reloads itself at most this often when asked to.
const MIN_REFRESH_SECONDS: u64 = 2;

#[derive(Deserialize)]
pub struct OverviewQuery {
    /// Reload the page every this many seconds.
    refresh: Option<u64>,
}

#[derive(Serialize)]
pub struct OverviewView {
    pub node: NodeView,
    /// Seconds between two samples.
    pub interval_seconds: u64,
    /// Oldest first.
    pub samples: Vec<Sample>,
    /// Each actor's mailbox depth now, by name.
    pub actors: Vec<(String, i64)>,
    pub regions: RegionsView,
}

#[derive(Serialize)]
pub struct RegionsView {
    /// This node's name in the manifest.
    pub this_node: String,
    /// LiteFS's replication lag in seconds (0 on the primary, -1 before the
    /// initial replication); `None` without LiteFS.
    pub lag_seconds: Option<f64>,
    /// What "recent" means below, in seconds.
    pub recent_seconds: u64,
    pub nodes: Vec<NodePages>,
}

pub async fn overview(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<OverviewQuery>,
) -> HttpResponse {
    let wants_json = super::headers::wants_json(&req);
    let view = match gather(&state).await {
        Ok(view) => view,
        Err(message) => {
            tracing::error!(%message, "cannot build the overview");
            return HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({ "error": message }));
        }
    };
    if wants_json {
        return HttpResponse::Ok().json(view);
    }
    let refresh = query.refresh.map(|s| s.max(MIN_REFRESH_SECONDS));
    let nonce = headers::nonce();
    let html = overview_page::render(&view, refresh, &nonce);
    headers::page(StatusCode::OK, &nonce, html)
}

async fn gather(state: &AdminState) -> Result<OverviewView, String> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let recent_since_ms = now_ms - RECENT.as_millis() as i64;
    let (role, nodes) = futures_util::join!(
        state.manifest.send(GetRole),
        state.manifest.send(StoredByNode { recent_since_ms }),
    );
    let role = role.map_err(|e| e.to_string())?;
    let nodes = nodes
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read the manifest: {e}"))?;
    let mut actors = state.metrics.actors.mailbox_depths();
    actors.sort();
    // `GetRole` has just refreshed the lag gauge.
    let lag_seconds = (role.role != "standalone").then(|| state.metrics.manifest.lag_seconds.get());
    Ok(OverviewView {
        node: NodeView {
            role,
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: state.started.elapsed().as_secs(),
        },
        interval_seconds: SAMPLE_EVERY.as_secs(),
        samples: state.history.samples(),
        actors,
        regions: RegionsView {
            this_node: state.config.settings().stored_by(),
            lag_seconds,
            recent_seconds: RECENT.as_secs(),
            nodes,
        },
    })
}
