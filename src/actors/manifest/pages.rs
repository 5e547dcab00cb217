//! The `pages` table: batches of stored pages written in one transaction
//! (failed rows kept and written again with backoff until they land), the
//! pages listed for the populator and the dashboard, and emptying it.

use actix::prelude::*;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel::upsert::excluded;

use super::actor::{Manifest, FIRST_RETRY_DELAY, MAX_RETRY_DELAY};
use super::database::ManifestError;
use super::visits::{merge_visits, Holder, Page, PageVisit};
use crate::actors::Mailbox;
use crate::cache::CacheKey;
use crate::schema::pages;

/// Rows kept for retry after failed writes, or while a replica waits for the
/// manifest to be ready; past it the newest are dropped (and counted in
/// `caje_manifest_rows_dropped_total`). A row is a few hundred bytes.
const MAX_UNWRITTEN_ROWS: usize = 100_000;

/// The next change number, read in the write transaction that uses it.
fn next_seq() -> diesel::expression::SqlLiteral<diesel::sql_types::BigInt> {
    diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT COALESCE(MAX(seq), 0) + 1 FROM pages)")
}

pub(crate) fn upsert(conn: &mut SqliteConnection, rows: &[PageVisit]) -> QueryResult<()> {
    for row in rows {
        diesel::insert_into(pages::table)
            .values((
                pages::method.eq(&row.key.method()),
                pages::host.eq(&row.key.host()),
                pages::path_and_query.eq(&row.key.path_and_query()),
                pages::first_seen.eq(row.first_seen),
                pages::last_seen.eq(row.last_seen),
                pages::times_stored.eq(row.times),
                pages::seq.eq(next_seq()),
                pages::stored_by.eq(&row.holder.stored_by),
                pages::peer_url.eq(&row.holder.peer_url),
            ))
            .on_conflict((pages::method, pages::host, pages::path_and_query))
            .do_update()
            .set((
                pages::last_seen.eq(excluded(pages::last_seen)),
                pages::times_stored.eq(pages::times_stored + excluded(pages::times_stored)),
                pages::seq.eq(next_seq()),
                pages::stored_by.eq(excluded(pages::stored_by)),
                pages::peer_url.eq(excluded(pages::peer_url)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Writes gathered page visits (and any earlier failed ones) in one transaction.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WriteBatch(pub Vec<PageVisit>);

impl Handler<WriteBatch> for Manifest {
    type Result = ();

    fn handle(&mut self, msg: WriteBatch, ctx: &mut Self::Context) {
        let _handling = self.meter.handling("write_batch");
        let _span = tracing::debug_span!("manifest.write_batch", rows = msg.0.len()).entered();
        if self.unwritten.len() + msg.0.len() > MAX_UNWRITTEN_ROWS {
            tracing::error!(
                kept = self.unwritten.len(),
                dropped = msg.0.len(),
                "too many manifest rows wait for a write; dropping the newest"
            );
            self.metrics.rows_dropped.inc_by(msg.0.len() as u64);
        } else {
            merge_visits(&mut self.unwritten, msg.0);
        }
        self.metrics.rows_unwritten.set(self.unwritten.len() as i64);
        self.write_unwritten("write_batch", ctx);
    }
}

/// Writes the rows kept from failed writes again; sent by the actor to
/// itself, with backoff, while a write keeps failing.
#[derive(Message)]
#[rtype(result = "()")]
struct RetryUnwritten;

impl Handler<RetryUnwritten> for Manifest {
    type Result = ();

    fn handle(&mut self, _msg: RetryUnwritten, ctx: &mut Self::Context) {
        let _handling = self.meter.handling("retry_unwritten");
        let _span =
            tracing::debug_span!("manifest.retry_unwritten", rows = self.unwritten.len()).entered();
        self.retry_scheduled = false;
        if !self.unwritten.is_empty() {
            self.metrics.write_retries.inc();
            self.write_unwritten("retry_unwritten", ctx);
        }
    }
}

impl Manifest {
    fn write_rows(&mut self, rows: &[PageVisit]) -> Result<(), ManifestError> {
        self.write(|conn| upsert(conn, rows))?;
        self.metrics.batches.inc();
        self.metrics.batch_rows.observe(rows.len() as f64);
        self.metrics.rows_written.inc_by(rows.len() as u64);
        Ok(())
    }

    /// Writes the kept rows in one transaction. After a failure they stay
    /// kept and a retry is scheduled, so they land once the database or the
    /// HALT lock is free again even if no other page is stored meanwhile.
    pub(super) fn write_unwritten(&mut self, what: &'static str, ctx: &SyncContext<Self>) {
        if self.unwritten.is_empty() {
            return;
        }
        let rows: Vec<PageVisit> = self.unwritten.values().cloned().collect();
        match self.write_rows(&rows) {
            Ok(()) => {
                self.unwritten.clear();
                self.metrics.rows_unwritten.set(0);
                self.retry_delay = FIRST_RETRY_DELAY;
            }
            // Kept; `watch_readiness` writes them once the manifest is ready.
            Err(e) if e.is_not_ready() => {}
            Err(e) => {
                self.metrics.write_errors.inc();
                self.failed(what, &e);
                self.schedule_retry(ctx);
            }
        }
    }

    /// Sends this actor a `RetryUnwritten` after the current backoff. A
    /// `SyncContext` has no timers, so the system arbiter keeps the time.
    fn schedule_retry(&mut self, ctx: &SyncContext<Self>) {
        if self.retry_scheduled {
            return;
        }
        let delay = self.retry_delay;
        let me = Mailbox::new(ctx.address(), self.meter.clone());
        // `false` only while the system shuts down: nothing is left to retry then.
        self.retry_scheduled = System::current().arbiter().spawn(async move {
            actix::clock::sleep(delay).await;
            me.do_send(RetryUnwritten);
        });
        self.retry_delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}

/// Pages of the manifest, oldest first: `limit` of them after `offset`.
#[derive(Message)]
#[rtype(result = "Result<PageList, ManifestError>")]
pub struct ListPages {
    pub offset: usize,
    pub limit: usize,
}

impl ListPages {
    /// Every page.
    pub fn all() -> Self {
        Self {
            offset: 0,
            limit: usize::MAX,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PageList {
    pub total: usize,
    pub pages: Vec<Page>,
}

impl Handler<ListPages> for Manifest {
    type Result = Result<PageList, ManifestError>;

    fn handle(&mut self, msg: ListPages, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("list_pages");
        let _span = tracing::debug_span!("manifest.list_pages").entered();
        let offset = i64::try_from(msg.offset).unwrap_or(i64::MAX);
        let limit = i64::try_from(msg.limit).unwrap_or(i64::MAX);
        let result = self.conn().and_then(|conn| {
            let total: i64 = pages::table.count().get_result(conn)?;
            let pages = pages::table
                .order(pages::id)
                .offset(offset)
                .limit(limit)
                .select(Page::as_select())
                .load(conn)?;
            Ok(PageList {
                total: usize::try_from(total).unwrap_or(0),
                pages,
            })
        });
        if let Err(e) = &result {
            self.failed("list_pages", e);
        }
        result
    }
}

/// The node that stored a page last, as the manifest says; `None` when
/// the page is not listed.
#[derive(Message)]
#[rtype(result = "Result<Option<Holder>, ManifestError>")]
pub struct PageHolder(pub CacheKey);

impl Handler<PageHolder> for Manifest {
    type Result = Result<Option<Holder>, ManifestError>;

    fn handle(&mut self, msg: PageHolder, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("page_holder");
        let _span = tracing::debug_span!("manifest.page_holder").entered();
        let key = msg.0;
        let result = self.conn().and_then(|conn| {
            let found = pages::table
                .filter(pages::method.eq(&key.method()))
                .filter(pages::host.eq(&key.host()))
                .filter(pages::path_and_query.eq(&key.path_and_query()))
                .select((pages::stored_by, pages::peer_url))
                .first::<(Option<String>, Option<String>)>(conn)
                .optional()?;
            Ok(found.map(|(stored_by, peer_url)| Holder {
                stored_by,
                peer_url,
            }))
        });
        if let Err(e) = &result {
            self.failed("page_holder", e);
        }
        result
    }
}

/// Up to `limit` pages with an id above `after`, by id: one slice of the
/// manifest, so a full reconcile streams it instead of loading it whole.
#[derive(Message)]
#[rtype(result = "Result<Vec<(i64, CacheKey)>, ManifestError>")]
pub struct PagesAfter {
    pub after: i64,
    pub limit: usize,
}

impl Handler<PagesAfter> for Manifest {
    type Result = Result<Vec<(i64, CacheKey)>, ManifestError>;

    fn handle(&mut self, msg: PagesAfter, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("pages_after");
        let _span = tracing::debug_span!("manifest.pages_after", after = msg.after).entered();
        let after = i32::try_from(msg.after).unwrap_or(i32::MAX);
        let limit = i64::try_from(msg.limit).unwrap_or(i64::MAX);
        let result = self.conn().and_then(|conn| {
            let rows: Vec<(i32, String, String, String)> = pages::table
                .filter(pages::id.gt(after))
                .order(pages::id)
                .limit(limit)
                .select((pages::id, pages::method, pages::host, pages::path_and_query))
                .load(conn)?;
            Ok(rows
                .into_iter()
                .map(|(id, method, host, path)| {
                    (i64::from(id), CacheKey::new(&method, &host, &path))
                })
                .collect())
        });
        if let Err(e) = &result {
            self.failed("pages_after", e);
        }
        result
    }
}

/// Empties the shared manifest (every region sees it); answers how many
/// pages it held.
#[derive(Message)]
#[rtype(result = "Result<usize, ManifestError>")]
pub(crate) struct ClearPages;

impl Handler<ClearPages> for Manifest {
    type Result = Result<usize, ManifestError>;

    fn handle(&mut self, _msg: ClearPages, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("clear_pages");
        let _span = tracing::info_span!("manifest.clear_pages").entered();
        self.unwritten.clear();
        self.metrics.rows_unwritten.set(0);
        let result = self.write(|conn| diesel::delete(pages::table).execute(conn));
        if let Err(e) = &result {
            self.failed("clear_pages", e);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::actors::manifest::database::prepare;
    use crate::cache::CacheKey;
    use crate::config::LiteFsMode;
    use crate::litefs::LiteFsWrites;

    #[test]
    fn a_write_refused_as_read_only_is_recognised() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("manifest.db");
        let litefs = LiteFsWrites::new(LiteFsMode::Off, &path, Duration::from_secs(1));
        prepare(&path, &litefs).expect("prepared");
        // SQLite itself refuses, as on a LiteFS replica written without HALT.
        let mut read_only =
            SqliteConnection::establish(&format!("file:{}?mode=ro", path.display()))
                .expect("open read-only");
        let visit = PageVisit::now(CacheKey::new("GET", "a", "/x"));
        let refused = ManifestError::from(
            upsert(&mut read_only, &[visit]).expect_err("a read-only database refuses"),
        );
        assert!(refused.is_read_only(), "{refused}");
        let other = ManifestError::from(diesel::result::Error::NotFound);
        assert!(!other.is_read_only());
    }
}
