//! One round of applying the shared purge log to this node's cache, as a
//! step that can run (and be tested) without the `PurgeSync` actor.

use crate::actors::cache_store::{CacheStore, Purge, PurgeTag, SoftPurge};
use crate::actors::manifest::{LoggedPurge, ManifestError, PurgeTarget};
use crate::actors::manifest_watch::{LastPurgeId, ManifestWatch, PurgesSince};
use crate::actors::{Mailbox, NotAnswering};

#[derive(Debug, thiserror::Error)]
pub(crate) enum PurgeSyncError {
    #[error(transparent)]
    NotAnswering(#[from] NotAnswering),
    #[error("cannot read the purge log: {0}")]
    Manifest(#[from] ManifestError),
}

/// Purges `target` from this node's cache, hard or soft; answers how many
/// stored responses (and writes under way) it dropped or marked.
pub(crate) async fn purge_here(
    cache: &Mailbox<CacheStore>,
    target: PurgeTarget,
    soft: bool,
) -> Result<usize, NotAnswering> {
    match (target, soft) {
        (PurgeTarget::Url(key), false) => cache.send(Purge(key)).await,
        (PurgeTarget::Url(key), true) => cache.send(SoftPurge(key)).await,
        (PurgeTarget::Tag(tag), soft) => cache.send(PurgeTag { tag, soft }).await,
    }
}

/// Applies to the cache the purges logged after `cursor` (at most one
/// page of the log, oldest first) and answers the new cursor: the id of the
/// last one applied. Without a cursor it starts from the log's end as it is
/// now: nothing this node holds predates it. A cache that stops answering
/// midway leaves the cursor after the last purge it applied, so the rest
/// are applied next round. The log is read through `log`, the watch's
/// read-only connection: never behind the `Manifest` writer.
pub(crate) async fn apply_since(
    cursor: Option<i64>,
    log: &Mailbox<ManifestWatch>,
    cache: &Mailbox<CacheStore>,
) -> Result<i64, PurgeSyncError> {
    let after = match cursor {
        Some(cursor) => cursor,
        None => log.send(LastPurgeId).await??,
    };
    let purges = log.send(PurgesSince(after)).await??;
    let mut applied = after;
    for LoggedPurge { id, target, soft } in purges {
        if let Err(e) = purge_here(cache, target, soft).await {
            tracing::debug!(error = %e, applied, "purge sync stopped midway");
            break;
        }
        applied = id;
    }
    Ok(applied)
}
