//! One integration-test binary: each module covers one feature against a
//! real origin on a loopback port and a real caje on port 0.

mod admin;
mod admin_cli;
mod caching;
mod cli;
mod coalescing;
mod crash;
#[path = "../support/date_forms.rs"]
mod date_forms;
mod deploy;
mod directives;
mod eviction;
mod fast_paths;
mod faults;
mod grafana;
mod helpers;
mod heuristic;
mod hostile;
mod invalidation;
mod keepalive;
mod litefs;
mod logs;
mod manifest;
mod metrics_listen;
mod multinode;
mod peers;
mod populator;
mod proxying;
mod purging;
mod ranges;
mod regions;
mod rfc9111;
mod security;
mod shutdown;
mod soak;
mod stale;
mod storage;
mod sync;
mod tls;
mod trust;
mod validation;
