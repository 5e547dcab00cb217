//! Purging: dropping stored variants (a hard purge) or marking them for
//! revalidation (a soft one), by URL, by tag or all at once. Every write to
//! them that began before is cancelled, so a purge wins over it.

use actix::prelude::*;

use super::actor::CacheStore;
use super::in_flight::WriteKind;
use crate::cache::key::{CacheKey, VariantKey};

impl CacheStore {
    /// Every stored variant carrying `tag` (reading heads not known yet).
    fn tagged(&mut self, tag: &str) -> Vec<VariantKey> {
        let keys = self.index.variant_keys();
        keys.into_iter()
            .filter(|vk| {
                self.info_of(vk)
                    .is_some_and(|info| info.tags.iter().any(|t| t == tag))
            })
            .collect()
    }

    /// Drops `keys` (a hard purge) or marks them for revalidation (soft).
    /// Either way every write to them that began before is cancelled.
    fn purge_variants(&mut self, keys: &[VariantKey], soft: bool, ctx: &mut Context<Self>) {
        for vk in keys {
            self.metrics.removed.inc();
            self.in_flight.cancel_variant(vk);
            if soft {
                // Marked in the index at once (its head read first if it
                // is not known yet): the very next lookup must validate.
                self.info_of(vk);
                if let Some(info) = self.index.variant_mut(vk).and_then(|v| v.info.as_mut()) {
                    info.invalidated = true;
                }
                self.rewrite(*vk, WriteKind::Rewrite, ctx, |mut head| {
                    head.invalidated = true;
                    Ok(head)
                });
            } else {
                self.remove(vk);
            }
        }
    }
}

/// Drops every stored variant of a URL and cancels any being written;
/// answers how many there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Purge(pub CacheKey);

impl Handler<Purge> for CacheStore {
    type Result = usize;

    fn handle(&mut self, msg: Purge, ctx: &mut Self::Context) -> usize {
        let _handling = self.meter.handling("purge");
        let _span = tracing::info_span!("cache_store.purge", host = %msg.0.host(), path = %msg.0.path_and_query()).entered();
        let keys = self.index.variants_of(&msg.0);
        self.purge_variants(&keys, false, ctx);
        keys.len() + self.in_flight.cancel_url(&msg.0.primary_hash())
    }
}

/// Marks every stored variant of a URL for revalidation before its next
/// use (a soft purge), cancelling any being written; answers how many
/// there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct SoftPurge(pub CacheKey);

impl Handler<SoftPurge> for CacheStore {
    type Result = usize;

    fn handle(&mut self, msg: SoftPurge, ctx: &mut Self::Context) -> usize {
        let _handling = self.meter.handling("soft_purge");
        let _span = tracing::info_span!("cache_store.soft_purge", host = %msg.0.host(), path = %msg.0.path_and_query()).entered();
        let keys = self.index.variants_of(&msg.0);
        self.purge_variants(&keys, true, ctx);
        keys.len() + self.in_flight.cancel_url(&msg.0.primary_hash())
    }
}

/// Purges every stored response carrying a tag, hard or soft; answers how
/// many there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct PurgeTag {
    pub tag: String,
    pub soft: bool,
}

impl Handler<PurgeTag> for CacheStore {
    type Result = usize;

    fn handle(&mut self, msg: PurgeTag, ctx: &mut Self::Context) -> usize {
        let _handling = self.meter.handling("purge_tag");
        let _span =
            tracing::info_span!("cache_store.purge_tag", tag = %msg.tag, soft = msg.soft).entered();
        let keys = self.tagged(&msg.tag);
        self.purge_variants(&keys, msg.soft, ctx);
        keys.len() + self.in_flight.cancel_tagged(&msg.tag)
    }
}

/// Empties this node's file cache; answers how many entries it removed.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct Clear;

impl Handler<Clear> for CacheStore {
    type Result = usize;

    fn handle(&mut self, _msg: Clear, _ctx: &mut Self::Context) -> usize {
        let _handling = self.meter.handling("clear");
        let _span = tracing::info_span!("cache_store.clear").entered();
        let keys = self.index.variant_keys();
        for vk in &keys {
            self.metrics.removed.inc();
            self.remove(vk);
        }
        keys.len() + self.in_flight.cancel_all()
    }
}
