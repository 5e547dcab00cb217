//! `ManifestWatch`: notices changes to the shared manifest cheaply and
//! often, so a purge or a new page reaches this node within `sync_interval`
//! instead of at the next slow poll. It has its own read-only SQLite
//! connection (it never writes, so it is safe on a LiteFS replica) on its
//! own thread (`SyncArbiter`: diesel blocks).
//!
//! A tick reads `PRAGMA data_version`, which SQLite changes when another
//! connection (this node's writer, or LiteFS replicating another region's
//! write) commits; when it is unchanged the tick does nothing else. When it
//! changed, the tick reads the newest purge id (one index lookup) and pokes
//! `PurgeSync` if a purge is new, and reads the pages whose change number
//! (`pages.seq`) is above its cursor, at most `page_size` of them, and hands
//! them to the `Populator` to warm. A full page means more may wait: the
//! next tick reads on without waiting for a change.
//!
//! It also answers `PurgeSync`'s reads of the purge log ([`PurgesSince`],
//! [`LastPurgeId`]) on that same connection. They never go through the
//! `Manifest` writer, whose one thread may be blocked for up to
//! `halt_timeout` taking LiteFS's HALT lock for a batch (or answer "not
//! ready" while a replica waits for the primary): a purge logged by another
//! region is read and applied here while a write of this node's waits.
//! The watch runs even with `sync_interval = 0` (then it only answers reads).

use std::path::PathBuf;

use actix::prelude::*;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;

use super::manifest::{last_purge_id, purges_since, LoggedPurge, ManifestError};
use super::populator::{Populator, Warm};
use super::Mailbox;
use crate::cache::CacheKey;
use crate::metrics::{ActorMeter, SyncMetrics};
use crate::schema::pages;

/// Pages read per tick at most: memory stays bounded, however many changed.
pub const PAGE_SIZE: usize = 500;

pub struct ManifestWatch {
    path: PathBuf,
    conn: Option<SqliteConnection>,
    /// `PRAGMA data_version` at the last tick; `None` before the first.
    data_version: Option<i64>,
    /// The change number of the last page handed on. It starts at 0, so
    /// the first ticks hand on the whole manifest, a page at a time: a node
    /// starting (or new) warms what every region stored.
    page_cursor: i64,
    /// The newest purge id seen; `None` before the first read.
    last_purge: Option<i64>,
    /// The last read filled a page: read again without waiting for a change.
    more: bool,
    page_size: usize,
    /// Where changed pages go (`None` in unit tests).
    populator: Option<Mailbox<Populator>>,
    /// Poked on a new purge; set by [`NotifyPurges`] once `PurgeSync`,
    /// which reads through this actor, is started.
    purge_sync: Option<Box<dyn PurgesLogged>>,
    metrics: SyncMetrics,
    meter: ActorMeter,
}

impl ManifestWatch {
    pub(crate) fn new(
        path: PathBuf,
        populator: Option<Mailbox<Populator>>,
        metrics: SyncMetrics,
        meter: ActorMeter,
    ) -> Self {
        Self {
            path,
            conn: None,
            data_version: None,
            page_cursor: 0,
            last_purge: None,
            more: false,
            page_size: PAGE_SIZE,
            populator,
            purge_sync: None,
            metrics,
            meter,
        }
    }

    /// Reads at most `page_size` changed pages per tick (tests make it small).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// The read-only connection, opened on first use and after a failure.
    /// `mode=ro`: it never creates the database (on a replica the primary
    /// does) and cannot write.
    fn conn(&mut self) -> Result<&mut SqliteConnection, ManifestError> {
        if self.conn.is_none() {
            let url = format!("file:{}?mode=ro", self.path.display());
            let mut conn = SqliteConnection::establish(&url)?;
            diesel::sql_query("PRAGMA busy_timeout = 1000").execute(&mut conn)?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ManifestError::Path(self.path.clone()))
    }

    fn tick(&mut self) -> Result<TickReport, ManifestError> {
        self.metrics.ticks.inc();
        let (page_cursor, page_size) = (self.page_cursor, self.page_size);
        let conn = self.conn()?;
        let version: i64 = diesel::dsl::sql::<BigInt>("PRAGMA data_version").get_result(conn)?;
        let mut report = TickReport::default();
        if self.data_version == Some(version) && !self.more {
            return Ok(report);
        }
        report.changed = true;
        let conn = self.conn()?;
        let newest_purge = last_purge_id(conn)?;
        // Change numbers restart after the manifest is emptied (`ClearPages`):
        // read from the start again.
        let newest_page: Option<i64> = pages::table
            .select(diesel::dsl::max(pages::seq))
            .get_result(conn)?;
        let page_cursor = if newest_page.unwrap_or(0) < page_cursor {
            0
        } else {
            page_cursor
        };
        let changed: Vec<(i64, String, String, String)> = pages::table
            .filter(pages::seq.gt(page_cursor))
            .order(pages::seq)
            .limit(i64::try_from(page_size).unwrap_or(i64::MAX))
            .select((
                pages::seq,
                pages::method,
                pages::host,
                pages::path_and_query,
            ))
            .load(conn)?;
        // Only now, with both read: a failed read is read again next tick.
        self.data_version = Some(version);
        self.metrics.changes.inc();
        if self.last_purge.is_some_and(|seen| newest_purge > seen) {
            report.new_purges = true;
            if let Some(purge_sync) = &self.purge_sync {
                purge_sync.purges_logged();
            }
        }
        self.last_purge = Some(newest_purge);
        self.more = changed.len() >= page_size;
        self.page_cursor = changed.last().map_or(page_cursor, |(seq, ..)| *seq);
        let keys: Vec<CacheKey> = changed
            .into_iter()
            .map(|(_, method, host, path)| CacheKey::new(&method, &host, &path))
            .collect();
        report.pages = keys.len();
        report.page_cursor = self.page_cursor;
        if !keys.is_empty() {
            self.metrics.pages_queued.inc_by(keys.len() as u64);
            if let Some(populator) = &self.populator {
                populator.do_send(Warm(keys));
            }
        }
        Ok(report)
    }
}

impl Actor for ManifestWatch {
    type Context = SyncContext<Self>;
}

/// What one tick saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, MessageResponse)]
pub struct TickReport {
    /// `data_version` moved (or a full page was read last time), so the
    /// tick read the tables; `false`: it read nothing else.
    pub changed: bool,
    /// A purge newer than the last seen was logged; `PurgeSync` was poked.
    pub new_purges: bool,
    /// Changed pages handed to the populator.
    pub pages: usize,
    /// The page cursor after the tick (0 when the tick read nothing).
    pub page_cursor: i64,
}

/// Looks for changes once.
#[derive(Message)]
#[rtype(result = "Result<TickReport, ManifestError>")]
pub struct Tick;

impl Handler<Tick> for ManifestWatch {
    type Result = Result<TickReport, ManifestError>;

    fn handle(&mut self, _msg: Tick, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("tick");
        let result = self.tick();
        self.after_failure("tick", &result);
        result
    }
}

impl ManifestWatch {
    /// On a failed read: the connection is reopened on the next message
    /// (the database may have been replaced, or was not there yet). A new
    /// connection's `data_version` says nothing about the old one's.
    fn after_failure<T>(&mut self, what: &'static str, result: &Result<T, ManifestError>) {
        if let Err(e) = result {
            self.conn = None;
            self.data_version = None;
            self.meter.error(what);
            tracing::debug!(error = %e, "manifest watch {what} failed");
        }
    }
}

/// From now on, poke `PurgeSync` when a new purge is logged. Sent once at
/// start-up: `PurgeSync` reads through the watch, so it starts after it.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct NotifyPurges(pub Box<dyn PurgesLogged>);

/// Who is told that a new purge was logged (`PurgeSync`, which then reads
/// the log through this watch): a trait, so the watch need not know it.
pub(crate) trait PurgesLogged: Send {
    fn purges_logged(&self);
}

impl Handler<NotifyPurges> for ManifestWatch {
    type Result = ();

    fn handle(&mut self, msg: NotifyPurges, _ctx: &mut Self::Context) {
        let _handling = self.meter.handling("notify_purges");
        self.purge_sync = Some(msg.0);
    }
}

/// Purges logged after the given id, oldest first (at most 1,000), read on
/// the watch's read-only connection.
#[derive(Message)]
#[rtype(result = "Result<Vec<LoggedPurge>, ManifestError>")]
pub(crate) struct PurgesSince(pub i64);

impl Handler<PurgesSince> for ManifestWatch {
    type Result = Result<Vec<LoggedPurge>, ManifestError>;

    fn handle(&mut self, msg: PurgesSince, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("purges_since");
        let _span = tracing::debug_span!("manifest_watch.purges_since", after = msg.0).entered();
        let result = self.conn().and_then(|conn| purges_since(conn, msg.0));
        self.after_failure("purges_since", &result);
        result
    }
}

/// The id of the newest logged purge (0 when there is none), read on the
/// watch's read-only connection.
#[derive(Message)]
#[rtype(result = "Result<i64, ManifestError>")]
pub struct LastPurgeId;

impl Handler<LastPurgeId> for ManifestWatch {
    type Result = Result<i64, ManifestError>;

    fn handle(&mut self, _msg: LastPurgeId, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("last_purge_id");
        let result = self.conn().and_then(last_purge_id);
        self.after_failure("last_purge_id", &result);
        result
    }
}

/// Ticks `watch` every `interval` on the current arbiter, one at a time
/// (a slow tick delays the next, ticks never pile up in the mailbox).
pub fn tick_every(watch: Mailbox<ManifestWatch>, interval: std::time::Duration) {
    actix_web::rt::spawn(async move {
        loop {
            actix_web::rt::time::sleep(interval).await;
            if watch.send(Tick).await.is_err() {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::actors::manifest::{self, upsert_pages, LiteFsWrites, PageVisit};
    use crate::config::LiteFsMode;
    use crate::metrics::Metrics;

    fn visit(path: &str) -> PageVisit {
        PageVisit::now(CacheKey::new("GET", "a", path))
    }

    #[test]
    fn a_tick_reads_only_what_changed_and_nothing_when_nothing_did() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("manifest.db");
        let litefs = LiteFsWrites::new(LiteFsMode::Off, &path, Duration::from_secs(1));
        manifest::prepare(&path, &litefs).expect("prepared");
        let mut writer = manifest::connect(&path).expect("writer");
        let five: Vec<PageVisit> = ["/1", "/2", "/3", "/4", "/5"]
            .into_iter()
            .map(visit)
            .collect();
        upsert_pages(&mut writer, &five).expect("written");
        let metrics = Metrics::new().expect("metrics");
        let meter = metrics.actors.meter("manifest_watch");
        let mut watch =
            ManifestWatch::new(path.clone(), None, metrics.sync.clone(), meter).with_page_size(2);
        let mut tick = || watch.tick().expect("tick");

        // Five changed pages, two a tick: the cursor moves over what was read.
        let read: Vec<(bool, usize, i64)> = (0..3)
            .map(|_| tick())
            .map(|r| (r.changed, r.pages, r.page_cursor))
            .collect();
        assert_eq!(read, [(true, 2, 2), (true, 2, 4), (true, 1, 5)]);
        // Nothing changed since: the tick reads data_version and stops.
        assert_eq!(tick(), TickReport::default());
        assert_eq!(tick(), TickReport::default());
        assert_eq!(metrics.sync.changes.get(), 3);
        assert_eq!(metrics.sync.ticks.get(), 5);
        assert_eq!(metrics.sync.pages_queued.get(), 5);

        // Stored again elsewhere: only that page, with its new change number.
        upsert_pages(&mut writer, &[visit("/3")]).expect("written");
        let again = tick();
        assert_eq!(
            (again.changed, again.pages, again.page_cursor),
            (true, 1, 6)
        );
        assert_eq!(tick(), TickReport::default());
        assert_eq!(metrics.sync.pages_queued.get(), 6);

        // Emptied, then stored again: change numbers restart, and so does the cursor.
        diesel::delete(pages::table)
            .execute(&mut writer)
            .expect("cleared");
        upsert_pages(&mut writer, &[visit("/new")]).expect("written");
        let after_clear = tick();
        assert_eq!((after_clear.pages, after_clear.page_cursor), (1, 1));
    }

    /// What an idle tick costs, over a manifest of 10,000 pages:
    /// `cargo test --release --lib -- --ignored --nocapture idle_tick`.
    #[test]
    #[ignore = "a measurement"]
    fn measure_idle_tick() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("manifest.db");
        let litefs = LiteFsWrites::new(LiteFsMode::Off, &path, Duration::from_secs(1));
        manifest::prepare(&path, &litefs).expect("prepared");
        let mut writer = manifest::connect(&path).expect("writer");
        let pages: Vec<PageVisit> = (0..10_000).map(|n| visit(&format!("/{n}"))).collect();
        upsert_pages(&mut writer, &pages).expect("written");
        let metrics = Metrics::new().expect("metrics");
        let meter = metrics.actors.meter("manifest_watch");
        let mut watch = ManifestWatch::new(path, None, metrics.sync.clone(), meter);
        while watch.tick().expect("tick").changed {}
        let n = 10_000;
        let started = std::time::Instant::now();
        for _ in 0..n {
            assert!(!watch.tick().expect("tick").changed);
        }
        let each = started.elapsed() / n;
        println!("idle tick over 10,000 pages: {each:?} each ({n} ticks)");
    }
}
