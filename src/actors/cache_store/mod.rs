//! `CacheStore`: the one owner of the cache directory and its in-memory index.
//!
//! Entries live at `<cache_dir>/<2 hex>/<primary hash>-<variant hash>`; new
//! ones are written under `<cache_dir>/tmp/` and renamed into place when whole,
//! so a crash never leaves a half entry under a real name. The index (URL →
//! its `Vary` names and variants) is rebuilt from file names at start, without
//! reading bodies, so a miss never touches the disk; shard directories
//! unchanged since the index snapshot of a graceful stop are taken from it,
//! unwalked. What a variant is (its key and freshness) is known from the moment it is stored, or read from its
//! head the first time it is needed after a restart. Small entries that are
//! hit are also held in the memory tier, which the store alone fills and
//! empties, and which request handlers read without a message.
//!
//! One file per job: `actor.rs` (the actor and its bookkeeping), `index.rs`,
//! `rebuild.rs` (the index at start), `snapshot.rs` (the format of the
//! index snapshot a graceful stop writes, `write_snapshot.rs`),
//! `sink.rs` (storing), `tail.rs` (a body read back as it is
//! stored), `reads.rs` (lookups and bodies), `compress.rs`
//! (compressed variants made from stored ones), `rewrite.rs` (head
//! rewrites), `purge.rs`, `list.rs`, `stats.rs`, `in_flight.rs` (writes a
//! purge cancels). What other modules name is re-exported here.

mod actor;
mod compress;
mod in_flight;
mod index;
mod list;
mod purge;
mod reads;
mod rebuild;
mod rewrite;
mod sink;
mod snapshot;
mod stats;
mod tail;
mod write_snapshot;

pub use self::actor::CacheStore;
pub use self::compress::Compress;
pub(crate) use self::list::{HoldsFresh, ListEntries};
pub(crate) use self::purge::{Clear, PurgeTag};
pub use self::purge::{Purge, SoftPurge};
pub use self::reads::{EntryBody, Hit, Lookup, LookupResult};
pub use self::rewrite::UpdateHead;
pub(crate) use self::sink::BeginStore;
pub use self::sink::StoreSink;
pub use self::stats::{CacheStats, GetCacheStats};
pub use self::tail::{BodyTail, TailError, Written};
pub use self::write_snapshot::{WriteSnapshot, WriteSnapshotError};
