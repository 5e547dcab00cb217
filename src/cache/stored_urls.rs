//! Which URLs the `CacheStore` holds at all, readable by request handlers
//! without a message: a miss on a URL the store does not hold (the usual
//! miss) skips the round trip to the store's thread. The store is its only
//! writer, and updates it where it changes its index.
//!
//! Keys are the first 8 bytes of a URL's primary hash, hashed again with a
//! per-process random seed: a BLAKE3 hash is no secret, so URLs could be
//! made whose hashes share the bits a set indexes by. Two URLs sharing them
//! (odds 2⁻⁶⁴ a pair) only make one look held, which costs the round trip
//! this spares, or, when one of them is removed, look absent, which costs
//! one fetch of a page that was stored.
//!
//! Until the store has built its index at start, every URL may be held:
//! a request then asks the store, whose answer waits for the index, rather
//! than fetching again a page the cache directory holds.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use super::key::Hash;

#[derive(Default)]
pub struct StoredUrls {
    set: RwLock<HashSet<u64, foldhash::fast::RandomState>>,
    /// Whether the set holds every URL the store holds (its index is built).
    complete: AtomicBool,
}

fn short(primary: &Hash) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&primary[..8]);
    u64::from_le_bytes(first)
}

impl StoredUrls {
    /// False only when the store holds no variant of the URL.
    pub fn may_hold(&self, primary: &Hash) -> bool {
        if !self.complete.load(Ordering::Acquire) {
            return true;
        }
        let set = self.set.read().unwrap_or_else(PoisonError::into_inner);
        set.contains(&short(primary))
    }

    /// The set now holds every URL the store holds: the store's index is
    /// built (or, when its directory is unusable, known to be empty).
    pub fn mark_complete(&self) {
        self.complete.store(true, Ordering::Release);
    }

    /// Room for `n` more URLs (the store's rebuild knows how many at once).
    pub fn reserve(&self, n: usize) {
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        set.reserve(n);
    }

    pub fn add(&self, primary: &Hash) {
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        set.insert(short(primary));
    }

    pub fn remove(&self, primary: &Hash) {
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        set.remove(&short(primary));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheKey;

    #[test]
    fn holds_what_was_added_until_it_is_removed() {
        let urls = StoredUrls::default();
        let a = CacheKey::new("GET", "h", "/a").primary_hash();
        let b = CacheKey::new("GET", "h", "/b").primary_hash();
        // Before the store's index is built, anything may be held.
        assert!(urls.may_hold(&a));
        urls.mark_complete();
        assert!(!urls.may_hold(&a));
        urls.add(&a);
        urls.add(&a);
        assert!(urls.may_hold(&a) && !urls.may_hold(&b));
        urls.remove(&a);
        assert!(!urls.may_hold(&a));
    }
}
