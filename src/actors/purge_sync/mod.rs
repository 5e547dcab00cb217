//! `PurgeSync`: applies the purges logged in the shared manifest by any node
//! to this node's cache, at start, whenever `ManifestWatch` sees a new one
//! (within `sync_interval`), and every `purge_poll_interval` as a safety
//! net, so one purge clears every region. It keeps how far it got in
//! `<cache_dir>/purge-cursor`, so a node that was down applies what it
//! missed when it comes back. One round is [`apply_since`] (`apply.rs`);
//! purging here and logging for the others is [`purge_everywhere`].
//!
//! It reads the log through `ManifestWatch`'s read-only connection, never
//! through the `Manifest` writer: that one thread may be blocked for up to
//! `halt_timeout` waiting for LiteFS's HALT lock to write a batch, and a
//! purge must not wait behind it.

mod apply;
mod everywhere;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;

pub(crate) use self::apply::apply_since;
pub(crate) use self::everywhere::purge_everywhere;
use super::cache_store::CacheStore;
use super::manifest_watch::{ManifestWatch, PurgesLogged};
use super::Mailbox;
use crate::metrics::{ActorMeter, SyncMetrics};

pub(crate) struct PurgeSync {
    cursor_file: PathBuf,
    /// The newest purge applied; `None` until read from the file or the log.
    cursor: Option<i64>,
    /// Reads the purge log (on its own read-only connection).
    log: Mailbox<ManifestWatch>,
    cache: Mailbox<CacheStore>,
    interval: Duration,
    busy: bool,
    /// A round was asked for while one ran: run another when it ends.
    again: bool,
    metrics: Option<SyncMetrics>,
    meter: Option<ActorMeter>,
}

impl PurgeSync {
    pub fn new(
        cache_dir: PathBuf,
        log: Mailbox<ManifestWatch>,
        cache: Mailbox<CacheStore>,
        interval: Duration,
    ) -> Self {
        Self {
            cursor_file: cache_dir.join("purge-cursor"),
            cursor: None,
            log,
            cache,
            interval,
            busy: false,
            again: false,
            metrics: None,
            meter: None,
        }
    }

    /// Counts purges applied and the `SyncNow` messages handled.
    pub fn with_metrics(mut self, metrics: SyncMetrics, meter: ActorMeter) -> Self {
        self.metrics = Some(metrics);
        self.meter = Some(meter);
        self
    }

    fn saved_cursor(&self) -> Option<i64> {
        std::fs::read_to_string(&self.cursor_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
    }

    fn save_cursor(&self, cursor: i64) {
        if let Err(e) = std::fs::write(&self.cursor_file, cursor.to_string()) {
            tracing::warn!(error = %e, file = %self.cursor_file.display(), "cannot save the purge cursor");
        }
    }
}

impl Actor for PurgeSync {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.cursor = self.saved_cursor();
        // At once: a node without a cursor starts from the log's end as it
        // is now, not as it is one interval later (it would skip purges
        // logged meanwhile, after it may have stored what they name).
        self.sync(ctx);
        ctx.run_interval(self.interval, |sync, ctx| sync.sync(ctx));
    }
}

impl PurgeSync {
    /// Runs one round of [`apply_since`], unless the last is still running.
    fn sync(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.again = true;
            return;
        }
        self.busy = true;
        let (log, cache, cursor) = (self.log.clone(), self.cache.clone(), self.cursor);
        let work = async move { apply_since(cursor, &log, &cache).await };
        let work = tracing::Instrument::instrument(work, tracing::debug_span!("purge_sync.sync"));
        ctx.spawn(work.into_actor(self).map(|applied, sync, ctx| {
            sync.busy = false;
            match applied {
                Ok(applied) if sync.cursor != Some(applied) => {
                    if let (Some(metrics), Some(before)) = (&sync.metrics, sync.cursor) {
                        let count = u64::try_from(applied - before).unwrap_or(0);
                        metrics.purges_applied.inc_by(count);
                    }
                    sync.cursor = Some(applied);
                    sync.save_cursor(applied);
                }
                Ok(_) => {}
                // The watch counts its own failures; the next round retries.
                Err(e) => tracing::debug!(error = %e, "purge log not read this round"),
            }
            if std::mem::take(&mut sync.again) {
                sync.sync(ctx);
            }
        }));
    }
}

/// Applies the purges logged since the cursor now: sent by `ManifestWatch`
/// when it sees a new one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SyncNow;

impl PurgesLogged for Mailbox<PurgeSync> {
    fn purges_logged(&self) {
        self.do_send(SyncNow);
    }
}

impl Handler<SyncNow> for PurgeSync {
    type Result = ();

    fn handle(&mut self, _msg: SyncNow, ctx: &mut Self::Context) {
        let _handling = self.meter.as_ref().map(|m| m.handling("sync_now"));
        self.sync(ctx);
    }
}
