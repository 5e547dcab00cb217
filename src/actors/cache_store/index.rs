//! The store's in-memory index: URL (primary hash) → its `Vary` names and
//! stored variants, with what each variant is once known. It answers from
//! memory only; reading a head the index lacks is the store's job.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cache::entry::EntryHead;
use crate::cache::key::{CacheKey, Hash, VariantKey};

/// What a stored variant is, as listed and as the populator judges it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct EntryInfo {
    pub key: CacheKey,
    pub size: u64,
    /// Milliseconds since the Unix epoch.
    pub stored_at_ms: u64,
    /// When it stops being fresh, in milliseconds since the Unix epoch.
    pub fresh_until_ms: u64,
    pub tags: Vec<String>,
    /// Soft-purged: must be revalidated before it is used again.
    pub invalidated: bool,
}

impl EntryInfo {
    pub(super) fn from_head(head: &EntryHead, size: u64) -> Self {
        let stored = UNIX_EPOCH + Duration::from_millis(head.stored_at_ms);
        let ttl = head.policy.time_to_live(stored);
        Self {
            key: head.key.clone(),
            size,
            stored_at_ms: head.stored_at_ms,
            fresh_until_ms: head.stored_at_ms.saturating_add(ttl.as_millis() as u64),
            tags: head.tags.clone(),
            invalidated: head.invalidated,
        }
    }

    pub fn is_fresh(&self, now_ms: u64) -> bool {
        !self.invalidated && self.fresh_until_ms > now_ms
    }
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) struct Variant {
    pub(super) size: u64,
    /// `None` after a rebuild until its head is read.
    pub(super) info: Option<EntryInfo>,
}

#[derive(Default)]
pub(super) struct UrlEntry {
    /// `Vary` names of the newest stored variant; `None` after a rebuild
    /// until a lookup reads one head.
    pub(super) vary: Option<Vec<String>>,
    pub(super) variants: HashMap<Hash, Variant>,
}

/// Every stored URL by primary hash.
#[derive(Default)]
pub(super) struct Index {
    urls: HashMap<Hash, UrlEntry>,
}

impl Index {
    pub(super) fn url(&self, primary: &Hash) -> Option<&UrlEntry> {
        self.urls.get(primary)
    }

    pub(super) fn url_mut(&mut self, primary: &Hash) -> Option<&mut UrlEntry> {
        self.urls.get_mut(primary)
    }

    /// The URL's entry, made empty if it has none yet.
    pub(super) fn url_or_default(&mut self, primary: Hash) -> &mut UrlEntry {
        self.urls.entry(primary).or_default()
    }

    pub(super) fn remove_url(&mut self, primary: &Hash) {
        self.urls.remove(primary);
    }

    pub(super) fn variant(&self, vk: &VariantKey) -> Option<&Variant> {
        self.urls.get(&vk.primary)?.variants.get(&vk.variant)
    }

    pub(super) fn variant_mut(&mut self, vk: &VariantKey) -> Option<&mut Variant> {
        self.urls
            .get_mut(&vk.primary)?
            .variants
            .get_mut(&vk.variant)
    }

    pub(super) fn contains(&self, vk: &VariantKey) -> bool {
        self.variant(vk).is_some()
    }

    /// Every stored variant of a URL.
    pub(super) fn variants_of(&self, key: &CacheKey) -> Vec<VariantKey> {
        let primary = key.primary_hash();
        self.urls
            .get(&primary)
            .map(|url| {
                url.variants
                    .keys()
                    .map(|variant| VariantKey {
                        primary,
                        variant: *variant,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every stored variant.
    pub(super) fn variant_keys(&self) -> Vec<VariantKey> {
        self.urls
            .iter()
            .flat_map(|(primary, url)| {
                url.variants.keys().map(|variant| VariantKey {
                    primary: *primary,
                    variant: *variant,
                })
            })
            .collect()
    }

    /// Whether the index holds a variant as soft-purged.
    pub(super) fn marked_invalidated(&self, vk: &VariantKey) -> bool {
        self.variant(vk)
            .and_then(|v| v.info.as_ref())
            .is_some_and(|info| info.invalidated)
    }
}
