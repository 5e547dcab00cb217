//! The shared purge log: every node appends the purges it is asked for, and
//! reads those logged since the last it applied (see `PurgeSync`).

use actix::prelude::*;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

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
            PurgeTarget::Url(key) => ("url", key.host.as_str(), key.path_and_query.as_str()),
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

/// Purges logged after `id`, oldest first (at most 1,000).
#[derive(Message)]
#[rtype(result = "Result<Vec<LoggedPurge>, ManifestError>")]
pub(crate) struct PurgesSince(pub i64);

impl Handler<PurgesSince> for Manifest {
    type Result = Result<Vec<LoggedPurge>, ManifestError>;

    fn handle(&mut self, msg: PurgesSince, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("purges_since");
        let _span = tracing::debug_span!("manifest.purges_since", after = msg.0).entered();
        let after = i32::try_from(msg.0).unwrap_or(i32::MAX);
        let rows = self.conn().and_then(|conn| {
            Ok(purges::table
                .filter(purges::id.gt(after))
                .order(purges::id)
                .limit(1_000)
                .select(PurgeRow::as_select())
                .load(conn)?)
        });
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                self.failed("purges_since", &e);
                return Err(e);
            }
        };
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
}

/// The id of the newest logged purge (0 when there is none).
#[derive(Message)]
#[rtype(result = "Result<i64, ManifestError>")]
pub struct LastPurgeId;

impl Handler<LastPurgeId> for Manifest {
    type Result = Result<i64, ManifestError>;

    fn handle(&mut self, _msg: LastPurgeId, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("last_purge_id");
        let result = self.conn().and_then(|conn| {
            let id: Option<i32> = purges::table
                .select(diesel::dsl::max(purges::id))
                .get_result(conn)?;
            Ok(i64::from(id.unwrap_or(0)))
        });
        if let Err(e) = &result {
            self.failed("last_purge_id", e);
        }
        result
    }
}
