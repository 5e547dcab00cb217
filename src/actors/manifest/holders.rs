//! Which nodes stored the manifest's pages: for the dashboard's regions
//! view, from the `stored_by` every node writes with the pages it stores.

use actix::prelude::*;
use diesel::dsl::{count_star, max};
use diesel::prelude::*;

use super::actor::Manifest;
use super::database::ManifestError;
use crate::schema::pages;

/// One node's share of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodePages {
    /// The node's name; `None` for pages written before nodes were recorded.
    pub stored_by: Option<String>,
    /// Pages this node stored last.
    pub pages: u64,
    /// Of those, the ones it stored at or after `StoredByNode::recent_since_ms`.
    pub recent: u64,
    /// When it last stored a page, in milliseconds since the Unix epoch.
    pub last_stored_ms: i64,
}

/// Each node's share of the manifest, the one that stored last first.
#[derive(Message)]
#[rtype(result = "Result<Vec<NodePages>, ManifestError>")]
pub struct StoredByNode {
    pub recent_since_ms: i64,
}

impl Handler<StoredByNode> for Manifest {
    type Result = Result<Vec<NodePages>, ManifestError>;

    fn handle(&mut self, msg: StoredByNode, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("stored_by_node");
        let _span = tracing::debug_span!("manifest.stored_by_node").entered();
        let result = self.conn().and_then(|conn| {
            let all: Vec<(Option<String>, i64, Option<i64>)> = pages::table
                .group_by(pages::stored_by)
                .select((pages::stored_by, count_star(), max(pages::last_seen)))
                .load(conn)?;
            let recent: Vec<(Option<String>, i64)> = pages::table
                .filter(pages::last_seen.ge(msg.recent_since_ms))
                .group_by(pages::stored_by)
                .select((pages::stored_by, count_star()))
                .load(conn)?;
            let mut nodes: Vec<NodePages> = all
                .into_iter()
                .map(|(stored_by, pages, last)| NodePages {
                    recent: recent
                        .iter()
                        .find(|(node, _)| *node == stored_by)
                        .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0)),
                    stored_by,
                    pages: u64::try_from(pages).unwrap_or(0),
                    last_stored_ms: last.unwrap_or(0),
                })
                .collect();
            nodes.sort_by_key(|n| std::cmp::Reverse(n.last_stored_ms));
            Ok(nodes)
        });
        if let Err(e) = &result {
            self.failed("stored_by_node", e);
        }
        result
    }
}
