//! `GET /_caje/health`: 200 with role, version and uptime while every actor
//! answers; 503 naming the ones that do not. Needs no token (load balancers
//! and Fly's checks call it) and answers for any `Host`.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::AdminState;
use crate::actors::cache_store::GetCacheStats;
use crate::actors::manifest::{GetRole, RoleReport};
use crate::actors::populator::GetStatus;

/// How long an actor may take to answer before the node is unhealthy.
const ACTOR_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_seconds: u64,
    #[serde(flatten)]
    role: Option<RoleReport>,
    not_answering: Vec<&'static str>,
}

pub async fn health(state: web::Data<AdminState>) -> HttpResponse {
    let (cache, role, populator) = futures_util::join!(
        tokio::time::timeout(ACTOR_DEADLINE, state.cache.send(GetCacheStats)),
        tokio::time::timeout(ACTOR_DEADLINE, state.manifest.send(GetRole)),
        tokio::time::timeout(ACTOR_DEADLINE, state.populator.send(GetStatus)),
    );
    let mut not_answering = Vec::new();
    if !matches!(cache, Ok(Ok(_))) {
        not_answering.push("cache_store");
    }
    let role = match role {
        Ok(Ok(role)) => Some(role),
        _ => {
            not_answering.push("manifest");
            None
        }
    };
    if !matches!(populator, Ok(Ok(_))) {
        not_answering.push("populator");
    }
    let healthy = not_answering.is_empty();
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" },
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
        role,
        not_answering,
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
