//! `Manifest`: the one SQLite writer. It writes batches of stored pages to
//! the `pages` table, which LiteFS shares with every region, and appends to
//! the shared purge log (reading that log is `ManifestWatch`'s, on its own
//! read-only connection, so a read never waits behind a write). On a LiteFS
//! replica each batch is one transaction under one HALT lock (the policy
//! lives in `crate::litefs`). A failure is logged and counted, never
//! returned to a user's request, and the failed rows are kept and written
//! again, with backoff, until they land.
//!
//! `database.rs` opens and migrates the database, `actor.rs` is the writer
//! and its role report, `visits.rs` the rows, `pages.rs` and `purge_log.rs`
//! the two tables' messages, `holders.rs` which node stored how many
//! pages. What other modules name is re-exported here.

mod actor;
mod database;
mod holders;
mod pages;
mod purge_log;
mod visits;

pub(crate) use self::actor::GetRole;
pub use self::actor::{watch_readiness, Manifest, RoleReport, READINESS_POLL};
pub use self::database::{connect, prepare, ManifestError, Readiness};
pub use self::holders::{NodePages, StoredByNode};
#[cfg(test)]
pub(crate) use self::pages::upsert as upsert_pages;
pub(crate) use self::pages::ClearPages;
pub use self::pages::{ListPages, PageHolder, PageList, PagesAfter, WriteBatch};
pub(crate) use self::purge_log::{last_purge_id, purges_since, LogPurge, LoggedPurge, PurgeTarget};
pub(crate) use self::visits::merge_visits;
pub use self::visits::{Holder, Page, PageVisit};
/// Re-exported: whoever calls [`prepare`] or builds a [`Manifest`] needs it.
pub use crate::litefs::LiteFsWrites;
