//! The shared purge log: every node appends the purges it is asked for
//! (through the `Manifest` writer), and reads those logged since the last it
//! applied (see `PurgeSync`): the reads are functions on a connection, run by
//! `ManifestWatch` on its read-only one, so they never wait behind a write.

use actix::prelude::*;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;

use super::actor::Manifest;
use super::database::ManifestError;
use super::visits::now_ms;
use crate::cache::CacheKey;
use crate::schema::purges;

/// What a purge drops.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) enum PurgeTarget {
    /// Every stored variant of one URL.
    Url(CacheKey),
    /// Every stored response carrying a tag, on any host.
    Tag(String),
}

/// A purge as logged in the shared manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggedPurge {
    pub id: i64,
    pub target: PurgeTarget,
    pub soft: bool,
}

/// Appends a purge to the shared log, for every node to apply; answers its id.
#[derive(Message)]
#[rtype(result = "Result<i64, ManifestError>")]
pub(crate) struct LogPurge {
    pub target: PurgeTarget,
    pub soft: bool,
}

impl Handler<LogPurge> for Manifest {
    type Result = Result<i64, ManifestError>;

    fn handle(&mut self, msg: LogPurge, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("log_purge");
        let _span =
            tracing::info_span!("manifest.log_purge", target = ?msg.target, soft = msg.soft)
                .entered();
        let (kind, host, target) = match &msg.target {
            PurgeTarget::Url(key) => ("url", key.host(), key.path_and_query()),
            PurgeTarget::Tag(tag) => ("tag", "", tag.as_str()),
        };
        let now = now_ms();
        let result = self.write(|conn| {
            diesel::insert_into(purges::table)
                .values((
                    purges::kind.eq(kind),
                    purges::host.eq(host),
                    purges::target.eq(target),
                    purges::soft.eq(msg.soft),
                    purges::created_at.eq(now),
                ))
                .execute(conn)?;
            diesel::select(diesel::dsl::sql::<BigInt>("last_insert_rowid()")).get_result(conn)
        });
        if let Err(e) = &result {
            self.failed("log_purge", e);
        }
        result
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = purges)]
struct PurgeRow {
    id: i32,
    kind: String,
    host: String,
    target: String,
    soft: bool,
}

/// Purges logged after `after`, oldest first (at most 1,000), read on
/// `conn`. Purge reads go through `ManifestWatch`'s read-only connection,
/// never the writer's (see `crate::actors::manifest_watch`).
pub(crate) fn purges_since(
    conn: &mut SqliteConnection,
    after: i64,
) -> Result<Vec<LoggedPurge>, ManifestError> {
    let after = i32::try_from(after).unwrap_or(i32::MAX);
    let rows = purges::table
        .filter(purges::id.gt(after))
        .order(purges::id)
        .limit(1_000)
        .select(PurgeRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let target = match row.kind.as_str() {
                "url" => PurgeTarget::Url(CacheKey::new("GET", &row.host, &row.target)),
                "tag" => PurgeTarget::Tag(row.target),
                _ => return None,
            };
            Some(LoggedPurge {
                id: i64::from(row.id),
                target,
                soft: row.soft,
            })
        })
        .collect())
}

/// The id of the newest logged purge (0 when there is none), read on `conn`.
pub(crate) fn last_purge_id(conn: &mut SqliteConnection) -> Result<i64, ManifestError> {
    let id: Option<i32> = purges::table
        .select(diesel::dsl::max(purges::id))
        .get_result(conn)?;
    Ok(i64::from(id.unwrap_or(0)))
}
