//! The `Manifest` actor: the one SQLite writer, on its own thread
//! (`SyncArbiter`) because diesel and the HALT lock block. Every write goes
//! through [`Manifest::write`], which takes HALT when LiteFS's write policy
//! says so; it also answers with the node's role.
//!
//! On a LiteFS replica the manifest may not be there yet (the primary creates
//! and migrates it). Until it is, every message answers
//! [`ManifestError::NotReady`] without touching the database, gathered rows
//! are kept (bounded), and [`watch_readiness`] checks again every
//! [`READINESS_POLL`]; once ready, the kept rows are written.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix::prelude::*;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use super::database::{
    connect, connect_replica, data_version, initial_replication, migrate, replica_readiness,
    ManifestError, Readiness,
};
use super::visits::PageVisit;
use crate::actors::Mailbox;
use crate::cache::CacheKey;
use crate::litefs::{HaltGuard, Lag, LiteFsWrites, NodeRole};
use crate::metrics::{ActorMeter, ManifestMetrics};

/// First wait before kept rows are written again after a failure; it
/// doubles with each failure in a row, up to `MAX_RETRY_DELAY`, so a long
/// outage (a locked database, a HALT that cannot be had) is not hammered.
pub(super) const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);
pub(super) const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// How often a node whose manifest is not ready looks again. A look costs a
/// `stat` and, once the file exists, one `PRAGMA data_version`; the schema
/// is read again only after another connection committed.
pub const READINESS_POLL: Duration = Duration::from_millis(500);

/// While waiting, the reason is logged again at most this often (and at
/// once when it changes).
const WAITING_LOG_EVERY: Duration = Duration::from_secs(60);

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
    /// The database is there and migrated; never false again once true.
    ready: bool,
    /// While not ready: what the node waits for, and when it last said so.
    waiting_for: Option<(String, Instant)>,
    /// While not ready: since when it waits.
    waiting_since: Option<Instant>,
    /// While not ready on a replica: the read connection checks go through,
    /// and the `data_version` it last saw.
    waiting_conn: Option<SqliteConnection>,
    seen_version: Option<i64>,
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
            ready: false,
            waiting_for: None,
            waiting_since: None,
            waiting_conn: None,
            seen_version: None,
        }
    }

    /// The connection, once the manifest is ready. On a replica it is opened
    /// without creating the file or switching its journal mode.
    pub(super) fn conn(&mut self) -> Result<&mut SqliteConnection, ManifestError> {
        self.ensure_ready()?;
        if self.conn.is_none() {
            self.conn = Some(if self.is_replica() {
                connect_replica(&self.path)?
            } else {
                connect(&self.path)?
            });
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ManifestError::Path(self.path.clone()))
    }

    /// Whether this node is a LiteFS replica now (`.primary` present).
    fn is_replica(&self) -> bool {
        self.litefs
            .role()
            .as_ref()
            .is_some_and(NodeRole::writes_under_halt)
    }

    /// `Ok` once the manifest is there and migrated. Until then it looks
    /// again (cheaply) on each call and answers [`ManifestError::NotReady`].
    pub(super) fn ensure_ready(&mut self) -> Result<(), ManifestError> {
        if self.ready {
            return Ok(());
        }
        let why = match self.check_readiness() {
            Ok(Readiness::Ready) => {
                if let Some((why, _)) = self.waiting_for.take() {
                    let since = self.waiting_since.take().unwrap_or_else(Instant::now);
                    tracing::info!(
                        waited_for = %why,
                        waited_s = since.elapsed().as_secs(),
                        "the manifest is ready; writing the rows kept meanwhile"
                    );
                }
                self.ready = true;
                self.metrics.ready.set(1);
                self.conn = self.waiting_conn.take();
                return Ok(());
            }
            Ok(Readiness::Waiting(why)) => why,
            // The primary may be half-way through creating it: wait, reopen.
            Err(ManifestError::NotReady(why)) => why,
            Err(e) if self.is_replica() => {
                self.waiting_conn = None;
                self.seen_version = None;
                format!("a readable manifest database ({e})")
            }
            Err(e) => return Err(e),
        };
        self.metrics.ready.set(0);
        self.waiting_since.get_or_insert_with(Instant::now);
        let log = match &self.waiting_for {
            Some((said, at)) => *said != why || at.elapsed() >= WAITING_LOG_EVERY,
            None => true,
        };
        if log {
            tracing::info!(
                waiting_for = %why,
                kept_rows = self.unwritten.len(),
                poll_ms = READINESS_POLL.as_millis() as u64,
                "manifest not ready on this replica; serving without it and checking again"
            );
            self.waiting_for = Some((why.clone(), Instant::now()));
        }
        Err(ManifestError::NotReady(why))
    }

    /// Looks whether the manifest can be used, writing nothing on a replica.
    fn check_readiness(&mut self) -> Result<Readiness, ManifestError> {
        if !self.is_replica() {
            // The primary (or no LiteFS): start-up prepared it. A replica
            // promoted while it waited readies it itself.
            if self.waiting_for.is_some() {
                migrate(&self.path)?;
            }
            return Ok(Readiness::Ready);
        }
        if let Some(replicating) = initial_replication(&self.litefs) {
            return Ok(replicating);
        }
        if let Some(conn) = self.waiting_conn.as_mut() {
            let version = data_version(conn)?;
            if let (Some(seen), Some((why, _))) = (self.seen_version, &self.waiting_for) {
                if seen == version {
                    return Ok(Readiness::Waiting(why.clone()));
                }
            }
            self.seen_version = Some(version);
        }
        // The version is read before the schema: a commit after that read
        // changes it, so the next look reads the schema again.
        replica_readiness(&self.path, &mut self.waiting_conn)
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
        // Before HALT: a replica waiting for the primary takes no lock.
        self.ensure_ready()?;
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
        if error.is_not_ready() {
            // Logged by `ensure_ready` when it changes; not a failure.
            tracing::debug!(%error, "manifest {what} deferred");
            return;
        }
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
    /// `ready`, or `waiting` while a replica waits for the primary to create
    /// or migrate the manifest (it serves traffic meanwhile).
    pub manifest: &'static str,
    /// While waiting: what for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_waiting_for: Option<String>,
}

/// Looks whether the manifest is ready (see [`Manifest::ensure_ready`]);
/// once it is, writes the rows kept meanwhile. Answers whether it is ready.
#[derive(Message)]
#[rtype(result = "bool")]
pub(crate) struct CheckReady;

impl Handler<CheckReady> for Manifest {
    type Result = bool;

    fn handle(&mut self, _msg: CheckReady, ctx: &mut Self::Context) -> bool {
        let _handling = self.meter.handling("check_ready");
        let ready = self.ensure_ready().is_ok();
        if ready {
            self.write_unwritten("check_ready", ctx);
        }
        ready
    }
}

/// Asks the manifest every [`READINESS_POLL`] whether it is ready, until it
/// is (at once on the primary): a replica started before the primary
/// created the manifest proceeds without a restart.
pub fn watch_readiness(manifest: Mailbox<Manifest>) {
    actix::spawn(async move {
        while let Ok(false) = manifest.send(CheckReady).await {
            actix::clock::sleep(READINESS_POLL).await;
        }
    });
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
        let waiting_for = self.waiting_for.as_ref().map(|(why, _)| why.clone());
        let manifest = if self.ready { "ready" } else { "waiting" };
        let (role, primary) = match self.litefs.role() {
            None => ("standalone", None),
            Some(NodeRole::Primary) => ("primary", None),
            Some(NodeRole::Replica { primary }) => ("replica", Some(primary)),
        };
        RoleReport {
            role,
            primary,
            manifest,
            manifest_waiting_for: waiting_for,
        }
    }
}
