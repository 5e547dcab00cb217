//! When a write to a LiteFS-managed database takes the HALT lock: the
//! policy the manifest writer follows, kept beside the lock it is about.
//!
//! A replica takes HALT before each write; the primary writes without it.
//! A write refused as read-only when no HALT was taken is tried once more
//! under HALT, because "no `.primary`" is also what a replica that lost its
//! primary shows, and that write must not be lost.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::halt::{HaltGuard, HaltLock, LiteFsError};
use super::node::{self, Lag, NodeRole};
use crate::config::LiteFsMode;

/// How often start-up looks again at LiteFS's `.lag` while waiting for the
/// initial replication.
const REPLICATION_POLL: Duration = Duration::from_millis(250);

/// How manifest writes reach the database: directly, or under LiteFS's HALT
/// lock when this node is a replica.
#[derive(Debug, Clone)]
pub struct LiteFsWrites {
    mode: LiteFsMode,
    /// The database's directory, where LiteFS keeps `.primary` and `.lag`.
    dir: PathBuf,
    halt: HaltLock,
}

impl LiteFsWrites {
    pub fn new(mode: LiteFsMode, database: &Path, halt_timeout: Duration) -> Self {
        let dir = database
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        Self {
            mode,
            dir,
            halt: HaltLock::new(database).with_timeout(halt_timeout),
        }
    }

    /// Whether LiteFS manages the database: always with `on`, never with
    /// `off`, and with `auto` when its `.primary` or `.lag` file is there.
    pub(crate) fn active(&self) -> bool {
        match self.mode {
            LiteFsMode::Off => false,
            LiteFsMode::On => true,
            LiteFsMode::Auto => node::is_litefs_dir(&self.dir),
        }
    }

    /// The node's role, `None` when LiteFS is not active.
    pub(crate) fn role(&self) -> Option<NodeRole> {
        if !self.active() {
            return None;
        }
        match node::role(&self.dir) {
            Ok(role) => Some(role),
            Err(e) => {
                // Writing as primary is tried first; a refusal retries under HALT.
                tracing::warn!(error = %e, "cannot read the LiteFS role; writing as primary");
                Some(NodeRole::Primary)
            }
        }
    }

    /// This node's replication lag, as LiteFS's `.lag` says.
    pub(crate) fn lag(&self) -> io::Result<Option<Lag>> {
        node::lag(&self.dir)
    }

    /// Blocks while LiteFS has not finished the initial replication of the
    /// database, logging now and then why start-up pauses; returns at once
    /// when LiteFS is not active.
    pub(crate) fn wait_for_initial_replication(&self) {
        if !self.active() {
            return;
        }
        node::wait_for_replication(&self.dir, REPLICATION_POLL, |waits| {
            if waits % 40 == 0 {
                tracing::info!(
                    dir = %self.dir.display(),
                    "waiting for LiteFS to finish the initial replication of the manifest"
                );
            }
        });
    }

    /// Takes the HALT lock, within the configured time limit.
    pub(crate) fn halt(&self) -> Result<HaltGuard, LiteFsError> {
        self.halt.acquire()
    }

    /// Whether a write retries under HALT after a refusal: when it did not
    /// hold HALT, LiteFS manages the database, and the refusal said the
    /// database is read-only here.
    pub(crate) fn retries_under_halt(&self, halted: bool, refused_read_only: bool) -> bool {
        !halted && refused_read_only && self.active()
    }
}

impl NodeRole {
    /// Whether a write in this role takes HALT first: only on a replica.
    pub(crate) fn writes_under_halt(&self) -> bool {
        matches!(self, NodeRole::Replica { .. })
    }
}

/// Whether SQLite's message for a refused write means the database is
/// read-only here, as on a LiteFS replica written without HALT.
pub(crate) fn is_read_only_refusal(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["readonly", "read only", "read-only"]
        .iter()
        .any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_replica_writes_under_halt_first() {
        assert!(!NodeRole::Primary.writes_under_halt());
        let replica = NodeRole::Replica {
            primary: "a".into(),
        };
        assert!(replica.writes_under_halt());
    }

    #[test]
    fn a_read_only_refusal_retries_under_halt_only_with_litefs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = dir.path().join("manifest.db");
        let on = LiteFsWrites::new(LiteFsMode::On, &database, Duration::from_secs(1));
        assert!(on.retries_under_halt(false, true));
        assert!(!on.retries_under_halt(true, true), "already under HALT");
        assert!(!on.retries_under_halt(false, false), "another failure");
        let off = LiteFsWrites::new(LiteFsMode::Off, &database, Duration::from_secs(1));
        assert!(!off.retries_under_halt(false, true));
        assert!(is_read_only_refusal("attempt to write a readonly database"));
        assert!(is_read_only_refusal("read only replica"));
        assert!(!is_read_only_refusal("database is locked"));
    }
}
