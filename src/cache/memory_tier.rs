//! The memory tier: small, hot entries held whole in memory, so that a hit
//! on one needs no message to the `CacheStore`, no file and no blocking
//! read. The store is its only writer: it adds an entry when a hit read it
//! from disk, and drops a URL whenever anything about that URL's stored
//! entries changes. Request handlers only read it. It is bounded in bytes;
//! the least recently used URLs go first. It also knows which URLs the
//! store holds at all ([`StoredUrls`]), so that a miss needs no message
//! either.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use lru::LruCache;

use super::key::{self, Hash, KeyView, VariantKey};
use super::response_fields::ResponseFields;
use super::stored_urls::StoredUrls;
use super::EntryHead;
use crate::metrics::CacheMetrics;

/// What an entry costs beyond its body and header bytes: the head's other
/// fields (its `CachePolicy` above all) and the tier's own bookkeeping.
const ENTRY_OVERHEAD: u64 = 1024;

/// A stored response held whole, with its fields ready to answer with.
pub struct HotEntry {
    pub head: Arc<EntryHead>,
    pub fields: Arc<ResponseFields>,
    pub body: Bytes,
}

impl HotEntry {
    pub fn new(head: Arc<EntryHead>, body: Bytes) -> Self {
        Self {
            fields: Arc::new(ResponseFields::new(&head)),
            head,
            body,
        }
    }

    fn footprint(&self) -> u64 {
        let headers: usize = self
            .head
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum();
        self.body.len() as u64 + headers as u64 + ENTRY_OVERHEAD
    }
}

/// The variants of one URL held in memory.
struct HotUrl {
    /// The `Vary` names its variants were selected by.
    vary_names: Vec<String>,
    variants: Vec<HotVariant>,
    bytes: u64,
}

struct HotVariant {
    variant: Hash,
    entry: Arc<HotEntry>,
    /// Whether it is in `Inner::used`: a hit after the first since the
    /// store last asked adds nothing there, and skips hashing its key.
    in_used: bool,
}

struct Inner {
    urls: LruCache<Hash, HotUrl>,
    bytes: u64,
    /// Variants hit since the store last asked: its eviction order must
    /// not mistake an entry served only from memory for a cold one.
    used: HashSet<VariantKey, foldhash::fast::RandomState>,
}

pub struct MemoryTier {
    inner: Mutex<Inner>,
    /// Every URL the store holds, hot or not (kept whether or not the tier
    /// holds bodies); the store updates it.
    pub(crate) held_urls: StoredUrls,
    max_bytes: u64,
    max_object: u64,
    metrics: CacheMetrics,
}

impl MemoryTier {
    /// Holds bodies of at most `max_object` bytes, `max_bytes` in all
    /// (0 turns the tier off).
    pub fn new(max_bytes: u64, max_object: u64, metrics: CacheMetrics) -> Self {
        Self {
            inner: Mutex::new(Inner {
                urls: LruCache::unbounded(),
                bytes: 0,
                used: HashSet::default(),
            }),
            held_urls: StoredUrls::default(),
            max_bytes,
            max_object,
            metrics,
        }
    }

    /// Whether a body of `len` bytes would be held.
    pub fn admits(&self, len: u64) -> bool {
        len <= self.max_object && len < self.max_bytes
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves `Inner` consistent, so a panic elsewhere
        // while it was held does not make it unusable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The variant of `key` that these request headers select, if held.
    pub fn get<'k>(
        &self,
        key: impl Into<KeyView<'k>>,
        primary: Hash,
        request_headers: &HeaderMap,
    ) -> Option<Arc<HotEntry>> {
        if self.max_bytes == 0 {
            return None;
        }
        let key = key.into();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let url = inner.urls.get_mut(&primary)?;
        let names = &url.vary_names;
        let hot = url.variants.iter_mut().find(|hot| {
            let head = &hot.entry.head;
            head.vary.iter().map(|(name, _)| name).eq(names)
                && key::vary_matches(&head.vary, request_headers)
                // Guards against a hash collision serving another URL.
                && head.key.view() == key
        })?;
        let found = hot.entry.clone();
        if !hot.in_used {
            hot.in_used = true;
            inner.used.insert(VariantKey {
                primary,
                variant: hot.variant,
            });
        }
        drop(guard);
        self.metrics.lookups.inc();
        self.metrics.hits.inc();
        self.metrics.memory_hits.inc();
        Some(found)
    }

    /// Whether the store may hold any variant of the URL. A "no" is the
    /// answer to this request's lookup, counted as the store counts one.
    pub fn store_may_hold(&self, primary: &Hash) -> bool {
        let held = self.held_urls.may_hold(primary);
        if !held {
            self.metrics.lookups.inc();
        }
        held
    }

    /// Holds an entry just read from disk, if it is small enough.
    pub fn insert(&self, vk: VariantKey, entry: HotEntry) {
        if !self.admits(entry.body.len() as u64) {
            return;
        }
        let size = entry.footprint();
        let vary_names: Vec<String> = entry.head.vary.iter().map(|(n, _)| n.clone()).collect();
        let mut inner = self.lock();
        let inner = &mut *inner;
        if inner
            .urls
            .peek(&vk.primary)
            .is_some_and(|url| url.vary_names != vary_names)
        {
            if let Some(old) = inner.urls.pop(&vk.primary) {
                inner.bytes -= old.bytes;
            }
        }
        let url = inner.urls.get_or_insert_mut(vk.primary, || HotUrl {
            vary_names,
            variants: Vec::new(),
            bytes: 0,
        });
        // A replaced variant may be in `used` already: it stays there.
        let mut in_used = false;
        if let Some(i) = url.variants.iter().position(|v| v.variant == vk.variant) {
            let old = url.variants.swap_remove(i);
            in_used = old.in_used;
            let old_size = old.entry.footprint();
            url.bytes -= old_size;
            inner.bytes -= old_size;
        }
        url.variants.push(HotVariant {
            variant: vk.variant,
            entry: Arc::new(entry),
            in_used,
        });
        url.bytes += size;
        inner.bytes += size;
        while inner.bytes > self.max_bytes {
            match inner.urls.pop_lru() {
                Some((_, old)) => inner.bytes -= old.bytes,
                None => break,
            }
        }
        self.metrics.memory_bytes.set(inner.bytes as i64);
    }

    /// Forgets every variant of a URL; the store calls it before any change
    /// to that URL's entries.
    pub fn remove(&self, primary: &Hash) {
        let mut inner = self.lock();
        if let Some(old) = inner.urls.pop(primary) {
            inner.bytes -= old.bytes;
            self.metrics.memory_bytes.set(inner.bytes as i64);
        }
    }

    /// The variants hit from memory since the last call.
    pub fn take_used(&self) -> Vec<VariantKey> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let used: Vec<VariantKey> = inner.used.drain().collect();
        for vk in &used {
            let Some(url) = inner.urls.peek_mut(&vk.primary) else {
                continue;
            };
            if let Some(hot) = url.variants.iter_mut().find(|v| v.variant == vk.variant) {
                hot.in_used = false;
            }
        }
        used
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use http_cache_semantics::CachePolicy;

    use crate::cache::CacheKey;

    use super::*;
    use crate::cache::{policy, test_headers};
    use crate::metrics::Metrics;

    fn entry(path: &str, vary: &[(&str, Option<&str>)], body: usize) -> (VariantKey, HotEntry) {
        let key = CacheKey::new("GET", "a", path);
        let vary: key::VaryValues = vary
            .iter()
            .map(|(n, v)| (n.to_string(), v.map(|v| v.as_bytes().to_vec())))
            .collect();
        let req = http1::Request::get(path).body(()).expect("request");
        let res = http1::Response::builder()
            .header("cache-control", "max-age=60")
            .body(())
            .expect("response");
        let head = EntryHead {
            key: key.clone(),
            vary: vary.clone(),
            status: 200,
            headers: Vec::new(),
            policy: CachePolicy::new_options(&req, &res, SystemTime::now(), policy::options()),
            stored_at_ms: 0,
            tags: Vec::new(),
            invalidated: false,
        };
        let entry = HotEntry::new(Arc::new(head), Bytes::from(vec![b'x'; body]));
        (VariantKey::new(&key, &vary), entry)
    }

    fn tier(max_bytes: u64, max_object: u64) -> MemoryTier {
        let metrics = Metrics::new().expect("metrics").cache;
        MemoryTier::new(max_bytes, max_object, metrics)
    }

    fn holds(tier: &MemoryTier, path: &str, headers: &[(&str, &str)]) -> bool {
        let key = CacheKey::new("GET", "a", path);
        tier.get(&key, key.primary_hash(), &test_headers(headers))
            .is_some()
    }

    #[test]
    fn selects_the_variant_the_request_names() {
        let tier = tier(1 << 20, 1 << 16);
        let (vk, en) = entry("/v", &[("accept-language", Some("en"))], 10);
        tier.insert(vk, en);
        let (vk, fr) = entry("/v", &[("accept-language", Some("fr"))], 10);
        tier.insert(vk, fr);
        assert!(holds(&tier, "/v", &[("accept-language", "fr")]));
        assert!(holds(&tier, "/v", &[("accept-language", "en")]));
        assert!(!holds(&tier, "/v", &[("accept-language", "de")]));
        assert!(!holds(&tier, "/v", &[]));
        assert!(!holds(&tier, "/other", &[("accept-language", "en")]));
    }

    #[test]
    fn stays_within_its_bound_least_recently_used_first() {
        let per_entry = 4096 + ENTRY_OVERHEAD;
        let tier = tier(3 * per_entry, 1 << 16);
        for path in ["/1", "/2", "/3"] {
            let (vk, e) = entry(path, &[], 4096);
            tier.insert(vk, e);
        }
        assert!(holds(&tier, "/1", &[]));
        let (vk, e) = entry("/4", &[], 4096);
        tier.insert(vk, e);
        assert!(holds(&tier, "/1", &[]), "used last, so kept");
        assert!(!holds(&tier, "/2", &[]), "least recently used, so gone");
        assert!(holds(&tier, "/3", &[]) && holds(&tier, "/4", &[]));
        assert_eq!(tier.metrics.memory_bytes.get() as u64, 3 * per_entry);
    }

    #[test]
    fn holds_only_small_bodies_and_nothing_when_off() {
        let tier_small = tier(1 << 20, 100);
        let (vk, e) = entry("/big", &[], 101);
        tier_small.insert(vk, e);
        assert!(!holds(&tier_small, "/big", &[]));
        let off = tier(0, 1 << 16);
        let (vk, e) = entry("/x", &[], 1);
        off.insert(vk, e);
        assert!(!holds(&off, "/x", &[]));
    }

    #[test]
    fn forgets_a_removed_url_and_reports_what_was_used() {
        let tier = tier(1 << 20, 1 << 16);
        let (vk, e) = entry("/r", &[], 10);
        tier.insert(vk, e);
        assert!(holds(&tier, "/r", &[]));
        assert_eq!(tier.take_used(), vec![vk]);
        assert!(tier.take_used().is_empty());
        // Used again after the store asked: reported again, once.
        assert!(holds(&tier, "/r", &[]) && holds(&tier, "/r", &[]));
        assert_eq!(tier.take_used(), vec![vk]);
        assert!(holds(&tier, "/r", &[]));
        tier.remove(&vk.primary);
        assert!(!holds(&tier, "/r", &[]));
        assert_eq!(tier.metrics.memory_bytes.get(), 0);
    }
}
