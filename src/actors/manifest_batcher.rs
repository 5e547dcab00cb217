//! `ManifestBatcher`: gathers the pages the `CacheStore` commits for a short
//! window and hands them to the `Manifest` writer as one batch, so a burst of
//! stores costs one transaction (and, on a LiteFS replica, one HALT).

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;

use super::manifest::{merge_visits, Holder, Manifest, PageVisit, WriteBatch};
use super::Mailbox;
use crate::cache::CacheKey;
use crate::metrics::ActorMeter;

/// A batch this large is written at once, without waiting for the window.
const MAX_BATCH_ROWS: usize = 1_000;

pub(crate) struct ManifestBatcher {
    writer: Mailbox<Manifest>,
    meter: ActorMeter,
    window: Duration,
    /// This node, recorded as the page's holder.
    holder: Holder,
    pending: HashMap<CacheKey, PageVisit>,
    flush_scheduled: bool,
}

impl ManifestBatcher {
    pub fn new(
        writer: Mailbox<Manifest>,
        window: Duration,
        holder: Holder,
        meter: ActorMeter,
    ) -> Self {
        Self {
            writer,
            meter,
            window,
            holder,
            pending: HashMap::new(),
            flush_scheduled: false,
        }
    }

    fn flush(&mut self) {
        self.flush_scheduled = false;
        if self.pending.is_empty() {
            return;
        }
        let rows = self.pending.drain().map(|(_, v)| v).collect();
        self.writer.do_send(WriteBatch(rows));
    }
}

impl Actor for ManifestBatcher {
    type Context = Context<Self>;

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.flush();
        Running::Stop
    }
}

/// Writes the gathered rows now and answers once the `Manifest` has handled
/// them: a stopping node sends it, since its actors are not stopped (so
/// `stopping` does not run) before the process exits.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Flush;

impl Handler<Flush> for ManifestBatcher {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("flush");
        self.flush();
        // The writer handles its messages in order on one thread, so this
        // empty batch is answered after the rows just sent; it also retries
        // the rows of any earlier failed write.
        let written = self.writer.send(WriteBatch(Vec::new()));
        Box::pin(async move {
            if let Err(e) = written.await {
                tracing::warn!(error = %e, "pending manifest rows lost at shutdown");
            }
        })
    }
}

/// Records that a page was stored: inserts its row or touches it, soon.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RecordPage {
    pub key: CacheKey,
}

impl Handler<RecordPage> for ManifestBatcher {
    type Result = ();

    fn handle(&mut self, msg: RecordPage, ctx: &mut Self::Context) {
        let _handling = self.meter.handling("record_page");
        let _span = tracing::debug_span!("manifest_batcher.record", host = %msg.key.host(), path = %msg.key.path_and_query()).entered();
        merge_visits(
            &mut self.pending,
            vec![PageVisit::now(msg.key).by(&self.holder)],
        );
        if self.pending.len() >= MAX_BATCH_ROWS {
            self.flush();
        } else if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(self.window, |batcher, _| batcher.flush());
        }
    }
}
