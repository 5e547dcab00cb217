//! Writes under way in the cache directory: new entries being stored and
//! heads being rewritten. Each is registered when it begins and may commit
//! only if nothing cancelled it meanwhile, so a purge wins over every store
//! or rewrite that began before it, and a rewrite that read an old body
//! never renames it over a newer entry.

use std::collections::HashMap;

use crate::cache::key::{Hash, VariantKey};

/// What a write does when it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A new entry, renamed into place.
    Store,
    /// An entry's head edited (a soft purge's mark), its body copied from
    /// the stored file.
    Rewrite,
    /// An entry's head replaced by a 304's, its body copied: a newer one
    /// supersedes it.
    Refresh,
}

/// Names one registered write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteId(u64);

struct Write {
    vk: VariantKey,
    kind: WriteKind,
    /// The purge tags of the entry being stored (a rewrite's entry is
    /// indexed, so a tag purge finds it by key).
    tags: Vec<String>,
    cancelled: bool,
}

#[derive(Default)]
pub struct InFlight {
    next: u64,
    writes: HashMap<WriteId, Write>,
}

impl InFlight {
    pub fn begin(&mut self, vk: VariantKey, kind: WriteKind, tags: Vec<String>) -> WriteId {
        self.next += 1;
        let id = WriteId(self.next);
        let write = Write {
            vk,
            kind,
            tags,
            cancelled: false,
        };
        self.writes.insert(id, write);
        id
    }

    /// How many writes are under way.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Ends a write; `true` when it may commit.
    pub fn end(&mut self, id: WriteId) -> bool {
        self.writes.remove(&id).is_some_and(|w| !w.cancelled)
    }

    /// Cancels the writes `which` picks; answers how many new entries
    /// (stores) that cancelled.
    fn cancel(&mut self, which: impl Fn(&Write) -> bool) -> usize {
        let mut stores = 0;
        for write in self.writes.values_mut() {
            if !write.cancelled && which(write) {
                write.cancelled = true;
                stores += usize::from(write.kind == WriteKind::Store);
            }
        }
        stores
    }

    /// Every write to any variant of the URL with this primary hash.
    pub fn cancel_url(&mut self, primary: &Hash) -> usize {
        self.cancel(|w| w.vk.primary == *primary)
    }

    /// Every write to this variant.
    pub fn cancel_variant(&mut self, vk: &VariantKey) -> usize {
        self.cancel(|w| w.vk == *vk)
    }

    /// Rewrites of this variant: they hold a body older than what is
    /// there now.
    pub fn cancel_rewrites(&mut self, vk: &VariantKey) {
        self.cancel(|w| w.kind != WriteKind::Store && w.vk == *vk);
    }

    /// Refreshes of this variant from older 304s: renamed after a newer
    /// one, they would put the older head back.
    pub fn cancel_refreshes(&mut self, vk: &VariantKey) {
        self.cancel(|w| w.kind == WriteKind::Refresh && w.vk == *vk);
    }

    /// Stores of entries carrying this purge tag.
    pub fn cancel_tagged(&mut self, tag: &str) -> usize {
        self.cancel(|w| w.tags.iter().any(|t| t == tag))
    }

    pub fn cancel_all(&mut self) -> usize {
        self.cancel(|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vk(primary: u8, variant: u8) -> VariantKey {
        VariantKey {
            primary: [primary; 32],
            variant: [variant; 32],
        }
    }

    #[test]
    fn a_write_commits_unless_cancelled_after_it_began() {
        let mut writes = InFlight::default();
        let kept = writes.begin(vk(1, 1), WriteKind::Store, vec![]);
        let url = writes.begin(vk(2, 1), WriteKind::Store, vec![]);
        let other_variant = writes.begin(vk(2, 2), WriteKind::Rewrite, vec![]);
        assert_eq!(writes.cancel_url(&[2; 32]), 1, "one store cancelled");
        let later = writes.begin(vk(2, 1), WriteKind::Store, vec![]);
        assert!(writes.end(kept));
        assert!(!writes.end(url));
        assert!(!writes.end(other_variant));
        assert!(writes.end(later), "began after the purge");
        assert!(!writes.end(later), "ends once");
    }

    #[test]
    fn tags_variants_and_rewrites_are_cancelled_apart() {
        let mut writes = InFlight::default();
        let tagged = writes.begin(vk(1, 1), WriteKind::Store, vec!["t".into()]);
        let untagged = writes.begin(vk(1, 2), WriteKind::Store, vec![]);
        let rewrite = writes.begin(vk(3, 1), WriteKind::Rewrite, vec![]);
        let store = writes.begin(vk(3, 1), WriteKind::Store, vec![]);
        assert_eq!(writes.cancel_tagged("t"), 1);
        writes.cancel_rewrites(&vk(3, 1));
        assert!(!writes.end(tagged));
        assert!(writes.end(untagged));
        assert!(!writes.end(rewrite));
        assert!(writes.end(store));
        let a = writes.begin(vk(4, 4), WriteKind::Rewrite, vec![]);
        assert_eq!(writes.cancel_variant(&vk(4, 4)), 0, "no store among them");
        assert!(!writes.end(a));
        let b = writes.begin(vk(5, 5), WriteKind::Store, vec![]);
        assert_eq!(writes.cancel_all(), 1);
        assert!(!writes.end(b));
    }

    #[test]
    fn a_newer_refresh_supersedes_older_ones_but_never_a_mark() {
        let mut writes = InFlight::default();
        let older = writes.begin(vk(6, 1), WriteKind::Refresh, vec![]);
        let mark = writes.begin(vk(6, 1), WriteKind::Rewrite, vec![]);
        let elsewhere = writes.begin(vk(6, 2), WriteKind::Refresh, vec![]);
        writes.cancel_refreshes(&vk(6, 1));
        let newer = writes.begin(vk(6, 1), WriteKind::Refresh, vec![]);
        assert!(!writes.end(older));
        assert!(writes.end(mark));
        assert!(writes.end(elsewhere));
        assert!(writes.end(newer));
        let refresh = writes.begin(vk(7, 1), WriteKind::Refresh, vec![]);
        writes.cancel_rewrites(&vk(7, 1));
        assert!(!writes.end(refresh), "a newer body cancels refreshes too");
    }
}
