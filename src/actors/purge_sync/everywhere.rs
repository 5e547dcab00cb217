//! A purge asked of this node: applied here at once, then logged in the
//! shared manifest for every other node's `PurgeSync` to apply.

use super::apply::{purge_here, PurgeSyncError};
use crate::actors::cache_store::CacheStore;
use crate::actors::manifest::{LogPurge, Manifest, PurgeTarget};
use crate::actors::{Mailbox, NotAnswering};

/// What a purge did here, and whether it reached the shared log.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PurgeReport {
    /// Stored responses purged on this node.
    pub purged: usize,
    /// Logged for every other node to apply.
    pub logged: bool,
}

/// Purges on this node at once, then logs the purge in the shared manifest
/// so every node applies it within its `purge_poll_interval`. Fails only
/// when the cache store does not answer; a purge that could not be logged
/// is reported as such.
pub(crate) async fn purge_everywhere(
    cache: &Mailbox<CacheStore>,
    manifest: &Mailbox<Manifest>,
    target: PurgeTarget,
    soft: bool,
) -> Result<PurgeReport, NotAnswering> {
    let purged = purge_here(cache, target.clone(), soft).await?;
    let log = async { Ok::<_, PurgeSyncError>(manifest.send(LogPurge { target, soft }).await??) };
    let logged = match log.await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "purge applied here but not logged for other nodes");
            false
        }
    };
    Ok(PurgeReport { purged, logged })
}
