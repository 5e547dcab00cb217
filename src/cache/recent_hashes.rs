//! The primary hashes of recently seen URLs, remembered per thread. A key's
//! blake3 hash names its files and finds it in the memory tier, and on a
//! hit it cost more than the rest of the lookup; hot URLs repeat, so each
//! thread keeps the last hash seen in each of a fixed number of slots,
//! chosen by a cheap hash of the URL. A slot holds the URL's bytes and is
//! used only when they are equal, so what it returns is what blake3 would.
//! Bounded, and without allocation once its slots have grown to their URLs.

use std::cell::RefCell;
use std::hash::BuildHasher;

use super::key::Hash;

/// Slots per thread: a few hundred kilobytes with typical URLs.
const SLOTS: usize = 1024;

struct Slot {
    text: Vec<u8>,
    hash: Hash,
}

struct Recent {
    slots: Vec<Slot>,
    /// Fixed per thread: which slot a URL takes is not up to a client.
    choose: foldhash::fast::RandomState,
}

thread_local! {
    static RECENT: RefCell<Recent> = RefCell::new(Recent {
        slots: Vec::new(),
        choose: foldhash::fast::RandomState::default(),
    });
}

/// `hash(text)`, remembered: `text` must hold everything `hash` reads.
pub fn remembered(text: &[u8], hash: impl FnOnce(&[u8]) -> Hash) -> Hash {
    RECENT.with(|recent| {
        let Ok(mut recent) = recent.try_borrow_mut() else {
            return hash(text);
        };
        let recent = &mut *recent;
        if recent.slots.is_empty() {
            recent.slots = (0..SLOTS)
                .map(|_| Slot {
                    text: Vec::new(),
                    hash: [0; 32],
                })
                .collect();
        }
        let at = (recent.choose.hash_one(text) as usize) % SLOTS;
        let slot = &mut recent.slots[at];
        if slot.text != text || slot.text.is_empty() {
            slot.hash = hash(text);
            slot.text.clear();
            slot.text.extend_from_slice(text);
        }
        slot.hash
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blake(text: &[u8]) -> Hash {
        *blake3::hash(text).as_bytes()
    }

    #[test]
    fn gives_what_the_hash_gives_whichever_slots_urls_share() {
        // More URLs than slots, asked twice in turn: slots are shared and
        // replaced, and each answer is still the URL's own hash.
        let urls: Vec<Vec<u8>> = (0..3 * SLOTS)
            .map(|i| format!("GET example.test /{i}").into_bytes())
            .collect();
        for _ in 0..2 {
            for url in &urls {
                assert_eq!(remembered(url, blake), blake(url));
            }
        }
        assert_eq!(remembered(b"", blake), blake(b""));
    }

    #[test]
    fn a_remembered_url_is_not_hashed_again() {
        let url = b"GET example.test /again";
        let mut calls = 0;
        for _ in 0..3 {
            remembered(url, |t| {
                calls += 1;
                blake(t)
            });
        }
        assert_eq!(calls, 1);
    }
}
