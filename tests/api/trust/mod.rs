//! One client never changes what another gets: no unkeyed part of a request
//! reaches the origin, request directives never evict or switch off
//! coalescing, stale serving obeys the response, and a purge wins over
//! every store or rewrite that began before it. Each test is the regression
//! test of one finding of the trust review (README, "Reliability and
//! security").
//!
//! One file per theme: `forwarding` (what of a request reaches the origin),
//! `variants`, `directives` (request directives), `whole_entries` (a stored
//! entry is always a whole `GET` answer), `purges`; `origin` holds the trust
//! origin, and the helpers they share are here.

use std::sync::Arc;

use crate::helpers::{raw_request, spawn_app_in, TestApp, TOKEN};
use origin::TrustOrigin;

mod directives;
mod forwarding;
mod origin;
mod purges;
mod variants;
mod whole_entries;

/// caje in front of the trust origin for [`HOST`], with the admin token.
async fn node(origin: &TrustOrigin) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(&origin.as_test_origin(), dir, |s| {
        s.admin_token = Some(TOKEN.to_owned())
    })
    .await
}

/// Sends a raw request (it must close the connection) and returns the answer.
async fn raw(app: &TestApp, request: &[u8]) -> String {
    raw_request(app.port, request).await
}

fn is_hit(cache_status: &str) -> bool {
    cache_status.starts_with("caje; hit")
}
