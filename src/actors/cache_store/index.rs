//! The store's in-memory index: URL (primary hash) → its `Vary` names and
//! stored variants, with what each variant is once known. It answers from
//! memory only; reading a head the index lacks is the store's job.
//!
//! It is kept small (it holds every stored entry): a B-tree, whose nodes
//! are mostly full, where a hash table's power-of-two size leaves up to
//! half its slots empty; a URL's variants sit in place when there is one
//! (the usual case); what a variant is, once known, is boxed.

use std::collections::BTreeMap;

use smallvec::SmallVec;
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
    pub(super) info: Option<Box<EntryInfo>>,
}

#[derive(Default)]
pub(super) struct UrlEntry {
    /// `Vary` names of the newest stored variant; `None` after a rebuild
    /// until a lookup reads one head.
    pub(super) vary: Option<Vec<String>>,
    pub(super) variants: Variants,
}

/// A URL's variants by variant hash: few, so a list searched in order.
#[derive(Default)]
pub(super) struct Variants(SmallVec<[(Hash, Variant); 1]>);

impl Variants {
    pub(super) fn get(&self, variant: &Hash) -> Option<&Variant> {
        self.0.iter().find(|(v, _)| v == variant).map(|(_, x)| x)
    }

    pub(super) fn get_mut(&mut self, variant: &Hash) -> Option<&mut Variant> {
        self.0
            .iter_mut()
            .find(|(v, _)| v == variant)
            .map(|(_, x)| x)
    }

    /// Adds or replaces a variant; the one replaced, if any.
    pub(super) fn insert(&mut self, variant: Hash, new: Variant) -> Option<Variant> {
        match self.get_mut(&variant) {
            Some(old) => Some(std::mem::replace(old, new)),
            None => {
                self.0.push((variant, new));
                None
            }
        }
    }

    pub(super) fn remove(&mut self, variant: &Hash) -> Option<Variant> {
        let i = self.0.iter().position(|(v, _)| v == variant)?;
        Some(self.0.swap_remove(i).1)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Hash> {
        self.0.iter().map(|(v, _)| v)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every stored URL by primary hash.
#[derive(Default)]
pub(super) struct Index {
    urls: BTreeMap<Hash, UrlEntry>,
}

impl Index {
    /// The index of the entries found at start (any order), every
    /// variant's head still unread.
    pub(super) fn from_found(found: impl IntoIterator<Item = (VariantKey, u64)>) -> Self {
        let mut found: Vec<(VariantKey, u64)> = found.into_iter().collect();
        found.sort_unstable_by_key(|(vk, _)| (vk.primary, vk.variant));
        let mut urls: Vec<(Hash, UrlEntry)> = Vec::new();
        for (vk, size) in found {
            let variant = Variant { size, info: None };
            match urls.last_mut() {
                Some((primary, url)) if *primary == vk.primary => {
                    url.variants.insert(vk.variant, variant);
                }
                _ => {
                    let mut url = UrlEntry::default();
                    url.variants.insert(vk.variant, variant);
                    urls.push((vk.primary, url));
                }
            }
        }
        // From sorted pairs a B-tree is built with full nodes.
        Self {
            urls: urls.into_iter().collect(),
        }
    }

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

    /// Every stored variant with its size, in hash order.
    pub(super) fn sizes(&self) -> impl Iterator<Item = (VariantKey, u64)> + '_ {
        self.urls.iter().flat_map(|(primary, url)| {
            url.variants.0.iter().map(|(variant, v)| {
                (
                    VariantKey {
                        primary: *primary,
                        variant: *variant,
                    },
                    v.size,
                )
            })
        })
    }

    /// Whether the index holds a variant as soft-purged.
    pub(super) fn marked_invalidated(&self, vk: &VariantKey) -> bool {
        self.variant(vk)
            .and_then(|v| v.info.as_deref())
            .is_some_and(|info| info.invalidated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vk(url: &str, variant: u8) -> VariantKey {
        VariantKey {
            primary: CacheKey::new("GET", "a", url).primary_hash(),
            variant: [variant; 32],
        }
    }

    #[test]
    fn an_index_built_from_found_entries_holds_each_of_them() {
        let found = [(vk("/b", 1), 10), (vk("/a", 2), 20), (vk("/a", 1), 30)];
        let index = Index::from_found(found);
        for (key, size) in found {
            assert_eq!(index.variant(&key).map(|v| v.size), Some(size));
        }
        let mut of_a = index.variants_of(&CacheKey::new("GET", "a", "/a"));
        of_a.sort_by_key(|k| k.variant);
        assert_eq!(of_a, [vk("/a", 1), vk("/a", 2)]);
        assert!(!index.contains(&vk("/c", 1)));
        assert_eq!(index.variant_keys().len(), 3);
        let mut sizes: Vec<_> = index.sizes().collect();
        sizes.sort_by_key(|(_, size)| *size);
        assert_eq!(sizes, [found[0], found[1], found[2]]);
    }

    #[test]
    fn variants_are_replaced_and_removed_by_hash() {
        let mut variants = Variants::default();
        let v = |size| Variant { size, info: None };
        assert!(variants.insert([1; 32], v(1)).is_none());
        assert!(variants.insert([2; 32], v(2)).is_none());
        assert_eq!(variants.insert([1; 32], v(3)).map(|old| old.size), Some(1));
        assert_eq!(variants.get(&[1; 32]).map(|x| x.size), Some(3));
        assert_eq!(variants.remove(&[2; 32]).map(|old| old.size), Some(2));
        assert!(variants.remove(&[2; 32]).is_none());
        assert_eq!(variants.keys().count(), 1);
        assert!(!variants.is_empty());
    }
}
