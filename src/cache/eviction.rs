//! Eviction, as its own piece: which entries go when the cache directory
//! would outgrow `max_size`. Least recently used first; the `CacheStore`
//! tells it of every entry added, used and removed, and removes what it
//! names.

use lru::LruCache;

use super::key::VariantKey;

pub struct Evictor {
    /// Every entry with its size and its file's mtime (nanoseconds since
    /// the Unix epoch, which orders the next start), least recently used first.
    order: LruCache<VariantKey, (u64, i64)>,
    bytes: u64,
    max_bytes: Option<u64>,
}

impl Evictor {
    /// `max_bytes`: the bound, or `None` for an unbounded cache.
    pub fn new(max_bytes: Option<u64>) -> Self {
        Self {
            order: LruCache::unbounded(),
            bytes: 0,
            max_bytes,
        }
    }

    /// An entry was stored (or replaced), its file last written at
    /// `modified_ns`; answers what must go to stay within the bound. The
    /// new entry itself goes only when it alone is larger than the bound.
    pub fn added(&mut self, key: VariantKey, size: u64, modified_ns: i64) -> Vec<VariantKey> {
        // An unbounded cache never evicts: no order kept (it would cost
        // about a hundred bytes an entry).
        let Some(max) = self.max_bytes else {
            return Vec::new();
        };
        if let Some((old, _)) = self.order.put(key, (size, modified_ns)) {
            self.bytes -= old;
        }
        self.bytes += size;
        let mut victims = Vec::new();
        while self.bytes > max {
            match self.order.pop_lru() {
                Some((victim, (size, _))) => {
                    self.bytes -= size;
                    victims.push(victim);
                }
                None => break,
            }
        }
        victims
    }

    /// An entry was used: it becomes the most recently used.
    pub fn is_bounded(&self) -> bool {
        self.max_bytes.is_some()
    }

    pub fn used(&mut self, key: &VariantKey) {
        self.order.promote(key);
    }

    pub fn removed(&mut self, key: &VariantKey) {
        if let Some((size, _)) = self.order.pop(key) {
            self.bytes -= size;
        }
    }

    /// When an entry's file was last written, as given to [`Evictor::added`];
    /// `None` for an entry it does not hold (any, when unbounded).
    pub fn modified_ns(&self, key: &VariantKey) -> Option<i64> {
        self.order.peek(key).map(|(_, modified)| *modified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheKey;

    fn key(n: u8) -> VariantKey {
        VariantKey::new(&CacheKey::new("GET", "a", &format!("/{n}")), &vec![])
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut e = Evictor::new(Some(300));
        assert!(e.added(key(1), 100, 0).is_empty());
        assert!(e.added(key(2), 100, 0).is_empty());
        assert!(e.added(key(3), 100, 0).is_empty());
        e.used(&key(1));
        assert_eq!(e.added(key(4), 100, 0), [key(2)]);
        assert_eq!(e.added(key(5), 150, 0), [key(3), key(1)]);
        e.removed(&key(4));
        assert!(e.added(key(6), 100, 42).is_empty());
        assert_eq!(
            e.modified_ns(&key(6)),
            Some(42),
            "kept for the next start's order"
        );
        assert_eq!(e.modified_ns(&key(4)), None);
    }

    #[test]
    fn replacing_counts_the_new_size_and_unbounded_never_evicts() {
        let mut e = Evictor::new(Some(250));
        e.added(key(1), 100, 0);
        e.added(key(2), 100, 0);
        assert!(e.added(key(1), 150, 0).is_empty(), "100 + 150 fits");
        assert_eq!(e.added(key(1), 200, 0), [key(2)]);
        assert_eq!(
            e.added(key(3), 400, 0),
            [key(1), key(3)],
            "larger than the bound alone"
        );
        let mut unbounded = Evictor::new(None);
        for n in 0..100 {
            assert!(unbounded.added(key(n), 1 << 30, 0).is_empty());
        }
    }
}
