//! `PurgeSync`: applies the purges logged in the shared manifest by any node
//! to this node's cache, every `purge_poll_interval`, so one purge clears
//! every region. It keeps how far it got in `<cache_dir>/purge-cursor`, so a
//! node that was down applies what it missed when it comes back.

use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;

use super::cache_store::{CacheStore, Purge, PurgeTag, SoftPurge};
use super::manifest::{LastPurgeId, LogPurge, LoggedPurge, Manifest, PurgeTarget, PurgesSince};
use super::Mailbox;

/// What a purge did here, and whether it reached the shared log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PurgeReport {
    /// Stored responses purged on this node.
    pub purged: usize,
    /// Logged for every other node to apply.
    pub logged: bool,
}

/// Purges on this node at once, then logs the purge in the shared manifest
/// so every node applies it within its `purge_poll_interval`.
pub async fn purge_everywhere(
    cache: &Mailbox<CacheStore>,
    manifest: &Mailbox<Manifest>,
    target: PurgeTarget,
    soft: bool,
) -> Result<PurgeReport, MailboxError> {
    let purged = match (&target, soft) {
        (PurgeTarget::Url(key), false) => cache.send(Purge(key.clone())).await?,
        (PurgeTarget::Url(key), true) => cache.send(SoftPurge(key.clone())).await?,
        (PurgeTarget::Tag(tag), soft) => {
            cache
                .send(PurgeTag {
                    tag: tag.clone(),
                    soft,
                })
                .await?
        }
    };
    let logged = match manifest.send(LogPurge { target, soft }).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "purge applied here but not logged for other nodes");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "manifest is not answering; purge not logged");
            false
        }
    };
    Ok(PurgeReport { purged, logged })
}

pub struct PurgeSync {
    cursor_file: PathBuf,
    /// The newest purge applied; `None` until read from the file or the log.
    cursor: Option<i64>,
    manifest: Mailbox<Manifest>,
    cache: Mailbox<CacheStore>,
    interval: Duration,
    busy: bool,
}

impl PurgeSync {
    pub fn new(
        cache_dir: PathBuf,
        manifest: Mailbox<Manifest>,
        cache: Mailbox<CacheStore>,
        interval: Duration,
    ) -> Self {
        Self {
            cursor_file: cache_dir.join("purge-cursor"),
            cursor: None,
            manifest,
            cache,
            interval,
            busy: false,
        }
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
    /// Applies the purges logged since the cursor, one round at a time.
    fn sync(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (manifest, cache, cursor) = (self.manifest.clone(), self.cache.clone(), self.cursor);
        let work = async move {
            // A node with no cursor starts from now: nothing it holds predates it.
            let after = match cursor {
                Some(cursor) => cursor,
                None => manifest.send(LastPurgeId).await.ok()?.ok()?,
            };
            let purges = manifest.send(PurgesSince(after)).await.ok()?.ok()?;
            let mut applied = after;
            for LoggedPurge { id, target, soft } in purges {
                let sent = match (target, soft) {
                    (PurgeTarget::Url(key), false) => cache.send(Purge(key)).await,
                    (PurgeTarget::Url(key), true) => cache.send(SoftPurge(key)).await,
                    (PurgeTarget::Tag(tag), soft) => cache.send(PurgeTag { tag, soft }).await,
                };
                if sent.is_err() {
                    break;
                }
                applied = id;
            }
            Some(applied)
        };
        let work = tracing::Instrument::instrument(work, tracing::debug_span!("purge_sync.sync"));
        ctx.spawn(work.into_actor(self).map(|applied, sync, _| {
            sync.busy = false;
            if let Some(applied) = applied {
                if sync.cursor != Some(applied) {
                    sync.cursor = Some(applied);
                    sync.save_cursor(applied);
                }
            }
        }));
    }
}
