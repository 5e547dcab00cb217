//! The manifest's rows as caje handles them: a page as read back, and the
//! stores of a page gathered for one batch.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::prelude::*;

use crate::cache::CacheKey;
use crate::schema::pages;

/// A row of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = pages)]
pub struct Page {
    pub method: String,
    pub host: String,
    pub path_and_query: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub times_stored: i64,
    /// The node that stored the page last (its `node_name`).
    pub stored_by: Option<String>,
    /// Where other nodes may ask that node for the page; `None`: nowhere.
    pub peer_url: Option<String>,
}

/// The node that stores a page, as the manifest records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub stored_by: Option<String>,
    pub peer_url: Option<String>,
}

/// Stores of one page gathered for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageVisit {
    pub key: CacheKey,
    /// Milliseconds since the Unix epoch.
    pub first_seen: i64,
    pub last_seen: i64,
    pub times: i64,
    /// The node that stored it (the last one, once merged).
    pub holder: Holder,
}

impl PageVisit {
    /// One store of `key`, now.
    pub fn now(key: CacheKey) -> Self {
        let now = now_ms();
        Self {
            key,
            first_seen: now,
            last_seen: now,
            times: 1,
            holder: Holder::default(),
        }
    }

    /// The same visit, made by `holder`.
    pub fn by(self, holder: &Holder) -> Self {
        Self {
            holder: holder.clone(),
            ..self
        }
    }

    /// Adds `other`'s stores of the same page to this one.
    fn absorb(&mut self, other: &PageVisit) {
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.times += other.times;
        if other.last_seen >= self.last_seen {
            self.holder = other.holder.clone();
        }
    }
}

/// Milliseconds since the Unix epoch, as the manifest stores times.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Merges visits into a map keyed by page.
pub(crate) fn merge_visits(into: &mut HashMap<CacheKey, PageVisit>, visits: Vec<PageVisit>) {
    for visit in visits {
        match into.get_mut(&visit.key) {
            Some(existing) => existing.absorb(&visit),
            None => {
                into.insert(visit.key.clone(), visit);
            }
        }
    }
}
