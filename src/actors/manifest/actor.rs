//! The `Manifest` actor: the one SQLite writer, on its own thread
//! (`SyncArbiter`) because diesel and the HALT lock block. Every write goes
//! through [`Manifest::write`], which takes HALT when LiteFS's write policy
//! says so; it also answers with the node's role.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use super::database::{connect, ManifestError};
use super::visits::PageVisit;
use crate::cache::CacheKey;
use crate::litefs::{HaltGuard, Lag, LiteFsWrites, NodeRole};
use crate::metrics::{ActorMeter, ManifestMetrics};

/// First wait before kept rows are written again after a failure; it
/// doubles with each failure in a row, up to `MAX_RETRY_DELAY`, so a long
/// outage (a locked database, a HALT that cannot be had) is not hammered.
pub(super) const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);
pub(super) const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

pub struct Manifest {
    path: PathBuf,
    litefs: LiteFsWrites,
    conn: Option<SqliteConnection>,
    pub(super) metrics: ManifestMetrics,
    pub(super) meter: ActorMeter,
    /// Rows of failed writes, written with the next batch or retry.
    pub(super) unwritten: HashMap<CacheKey, PageVisit>,
    /// Wait before the next retry of `unwritten`.
    pub(super) retry_delay: Duration,
    /// A `RetryUnwritten` is on its way: at most one at a time.
    pub(super) retry_scheduled: bool,
}

impl Manifest {
    /// The connection opens on first use, and again after a failure.
    pub fn new(
        path: PathBuf,
        litefs: LiteFsWrites,
        metrics: ManifestMetrics,
        meter: ActorMeter,
    ) -> Self {
        Self {
            path,
            litefs,
            conn: None,
            metrics,
            meter,
            unwritten: HashMap::new(),
            retry_delay: FIRST_RETRY_DELAY,
            retry_scheduled: false,
        }
    }

    pub(super) fn conn(&mut self) -> Result<&mut SqliteConnection, ManifestError> {
        if self.conn.is_none() {
            self.conn = Some(connect(&self.path)?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ManifestError::Path(self.path.clone()))
    }
    /// Refreshes the role and lag gauges; answers the role.
    fn observe_role(&self) -> Option<NodeRole> {
        let role = self.litefs.role();
        let replica = matches!(role, Some(NodeRole::Replica { .. }));
        if role.is_some() {
            self.metrics
                .role
                .with_label_values(&["primary"])
                .set(i64::from(!replica));
            self.metrics
                .role
                .with_label_values(&["replica"])
                .set(i64::from(replica));
            let lag = match self.litefs.lag() {
                Ok(Some(Lag::Millis(ms))) => ms as f64 / 1000.0,
                Ok(Some(Lag::NotReplicatedYet)) => -1.0,
                _ => 0.0,
            };
            self.metrics.lag_seconds.set(lag);
        }
        role
    }

    /// Runs `change` in one write transaction, under HALT when LiteFS's
    /// write policy says so: on a replica, and again when refused as
    /// read-only without HALT (a replica that lost its primary) rather than
    /// lost.
    pub(super) fn write<T>(
        &mut self,
        change: impl Fn(&mut SqliteConnection) -> QueryResult<T>,
    ) -> Result<T, ManifestError> {
        let halt = self
            .observe_role()
            .as_ref()
            .is_some_and(NodeRole::writes_under_halt);
        match self.write_once(&change, halt) {
            Err(e) if self.litefs.retries_under_halt(halt, e.is_read_only()) => {
                tracing::warn!(error = %e, "manifest write refused as read-only; retrying under HALT");
                self.conn = None;
                self.write_once(&change, true)
            }
            other => other,
        }
    }

    fn write_once<T>(
        &mut self,
        change: &impl Fn(&mut SqliteConnection) -> QueryResult<T>,
        halt: bool,
    ) -> Result<T, ManifestError> {
        let guard = if halt { Some(self.take_halt()?) } else { None };
        let written = self
            .conn()
            .and_then(|conn| Ok(conn.immediate_transaction(|conn| change(conn))?));
        if let Some(guard) = guard {
            self.metrics
                .halt_hold_seconds
                .observe(guard.release().as_secs_f64());
        }
        written
    }

    fn take_halt(&self) -> Result<HaltGuard, ManifestError> {
        match self.litefs.halt() {
            Ok(guard) => {
                self.metrics.halt_acquisitions.inc();
                self.metrics
                    .halt_wait_seconds
                    .observe(guard.waited().as_secs_f64());
                Ok(guard)
            }
            Err(e) => {
                self.metrics.halt_failures.inc();
                Err(e.into())
            }
        }
    }

    /// Counts and logs a failure; drops the connection so the next message reopens it.
    pub(super) fn failed(&mut self, what: &'static str, error: &ManifestError) {
        self.conn = None;
        self.meter.error(what);
        tracing::warn!(%error, "manifest {what} failed");
    }
}

impl Actor for Manifest {
    type Context = SyncContext<Self>;
}

/// This node's LiteFS role, as a health check reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, MessageResponse)]
pub struct RoleReport {
    /// `primary`, `replica`, or `standalone` when LiteFS is not in use.
    pub role: &'static str,
    /// The primary's host name, on a replica.
    pub primary: Option<String>,
}

/// Answers at once with the node's role: also tells a health check that the
/// writer thread is alive.
#[derive(Message)]
#[rtype(result = "RoleReport")]
pub(crate) struct GetRole;

impl Handler<GetRole> for Manifest {
    type Result = RoleReport;

    fn handle(&mut self, _msg: GetRole, _ctx: &mut Self::Context) -> RoleReport {
        let _handling = self.meter.handling("get_role");
        let _span = tracing::debug_span!("manifest.get_role").entered();
        self.observe_role();
        match self.litefs.role() {
            None => RoleReport {
                role: "standalone",
                primary: None,
            },
            Some(NodeRole::Primary) => RoleReport {
                role: "primary",
                primary: None,
            },
            Some(NodeRole::Replica { primary }) => RoleReport {
                role: "replica",
                primary: Some(primary),
            },
        }
    }
}
