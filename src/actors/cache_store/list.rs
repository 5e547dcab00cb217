//! What the store holds, as the admin pages and the populator ask it: which
//! URLs have a fresh copy here, and the entries one page at a time.

use actix::prelude::*;

use super::actor::CacheStore;
use super::index::{now_ms, EntryInfo};
use crate::cache::key::{CacheKey, Hash, VariantKey};

/// Which of these URLs this node holds a fresh copy of (any variant).
#[derive(Message)]
#[rtype(result = "Vec<bool>")]
pub(crate) struct HoldsFresh(pub Vec<CacheKey>);

impl Handler<HoldsFresh> for CacheStore {
    type Result = Vec<bool>;

    fn handle(&mut self, msg: HoldsFresh, _ctx: &mut Self::Context) -> Vec<bool> {
        let _handling = self.meter.handling("holds_fresh");
        let _span = tracing::debug_span!("cache_store.holds_fresh", urls = msg.0.len()).entered();
        let now = now_ms();
        msg.0
            .iter()
            .map(|key| self.holds_fresh(key.primary_hash(), now))
            .collect()
    }
}

/// One page of the cache's entries, in a stable (hash) order.
#[derive(Message)]
#[rtype(result = "EntryList")]
pub(crate) struct ListEntries {
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Clone, serde::Serialize, MessageResponse)]
pub(crate) struct EntryList {
    pub total: usize,
    pub entries: Vec<EntryInfo>,
}

impl Handler<ListEntries> for CacheStore {
    type Result = EntryList;

    fn handle(&mut self, msg: ListEntries, _ctx: &mut Self::Context) -> EntryList {
        let _handling = self.meter.handling("list_entries");
        let _span = tracing::debug_span!("cache_store.list_entries").entered();
        let mut keys = self.index.variant_keys();
        keys.sort_by_key(VariantKey::file_name);
        let total = keys.len();
        let entries = keys
            .iter()
            .skip(msg.offset)
            .take(msg.limit)
            .filter_map(|vk| self.info_of(vk))
            .collect();
        EntryList { total, entries }
    }
}

impl CacheStore {
    /// Whether this node holds a fresh copy of any variant of a URL.
    pub(super) fn holds_fresh(&mut self, primary: Hash, now_ms: u64) -> bool {
        let variants: Vec<Hash> = self
            .index
            .url(&primary)
            .map(|url| url.variants.keys().copied().collect())
            .unwrap_or_default();
        variants.into_iter().any(|variant| {
            self.info_of(&VariantKey { primary, variant })
                .is_some_and(|info| info.is_fresh(now_ms))
        })
    }
}
