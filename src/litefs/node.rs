//! What LiteFS tells a node through files in the database's directory: its
//! role (`.primary` on a replica) and how far it lags (`.lag`).

use std::fs;
use std::io;
use std::path::Path;
use std::thread;
use std::time::Duration;

/// Written by LiteFS in a replica's directory; holds the primary's host name.
const PRIMARY_FILE: &str = ".primary";

/// Written by LiteFS in the database's directory; holds the lag in milliseconds.
const LAG_FILE: &str = ".lag";

/// `.lag` value meaning that the initial replication has not finished yet.
const LAG_NOT_REPLICATED: i64 = i32::MAX as i64;

/// This node's role in the LiteFS cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeRole {
    /// No `.primary` file: this node is the primary (or a replica that
    /// currently knows no primary).
    Primary,
    /// A replica; `primary` is the primary's host name from `.primary`.
    Replica { primary: String },
}

/// The role of this node, read from the database's directory `dir`.
///
/// `.primary` present means replica, its trimmed content being the primary's
/// host name (possibly empty); absent means primary. The answer can change
/// at any time (failover), and "absent" is also what a replica that lost its
/// primary shows: a write refused as read-only must re-check the role and
/// retry under HALT rather than trust an earlier answer.
pub(super) fn role(dir: &Path) -> io::Result<NodeRole> {
    match fs::read_to_string(dir.join(PRIMARY_FILE)) {
        Ok(content) => Ok(NodeRole::Replica {
            primary: content.trim().to_owned(),
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(NodeRole::Primary),
        Err(err) => Err(err),
    }
}

/// Whether `dir` looks like a LiteFS mount: `.primary` (replicas) or `.lag`
/// (every node) exists there. Used for `litefs = "auto"`.
pub(super) fn is_litefs_dir(dir: &Path) -> bool {
    dir.join(PRIMARY_FILE).exists() || dir.join(LAG_FILE).exists()
}

/// How far this node lags behind the primary (0 on the primary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lag {
    /// Milliseconds since the last transaction or heartbeat (one a second)
    /// from the primary.
    Millis(u64),
    /// The initial replication from the primary has not finished yet.
    NotReplicatedYet,
}

impl Lag {
    /// The lag as a duration; `None` while not replicated yet.
    #[cfg(test)]
    fn as_duration(&self) -> Option<Duration> {
        match self {
            Lag::Millis(ms) => Some(Duration::from_millis(*ms)),
            Lag::NotReplicatedYet => None,
        }
    }
}

/// Reads `.lag` in the database's directory `dir` (written as `%+010d`
/// milliseconds, e.g. `+000000042`). `Ok(None)` when there is no such file
/// (not LiteFS); `InvalidData` when its content is not a number.
pub(super) fn lag(dir: &Path) -> io::Result<Option<Lag>> {
    let path = dir.join(LAG_FILE);
    let content = match fs::read_to_string(&path) {
        Ok(content) => content,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    parse_lag(&content).map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: expected a signed millisecond count like +000000042, got {:?}",
                path.display(),
                content.trim()
            ),
        )
    })
}

/// Blocks while `.lag` in `dir` says the initial replication has not
/// finished, polling every `poll`; `on_wait` is called before each wait with
/// the number of waits so far (the first one logs why start-up pauses).
pub(super) fn wait_for_replication(dir: &Path, poll: Duration, mut on_wait: impl FnMut(u32)) {
    let mut waits = 0;
    while matches!(lag(dir), Ok(Some(Lag::NotReplicatedYet))) {
        on_wait(waits);
        waits = waits.saturating_add(1);
        thread::sleep(poll);
    }
}

/// Parses the content of `.lag`.
fn parse_lag(content: &str) -> Option<Lag> {
    let ms: i64 = content.trim().parse().ok()?;
    Some(match ms {
        LAG_NOT_REPLICATED => Lag::NotReplicatedYet,
        // Clock skew between nodes can make the lag negative: count it as none.
        ms => Lag::Millis(u64::try_from(ms).unwrap_or(0)),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn waits_until_initial_replication_is_done() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(LAG_FILE), "+2147483647").expect("write lag");
        let (tx, rx) = mpsc::channel();
        let path = dir.path().to_owned();
        let waiter = thread::spawn(move || {
            wait_for_replication(&path, Duration::from_millis(5), |n| {
                let _ = tx.send(n);
            })
        });
        // Two rounds of waiting prove it is waiting, not done.
        assert_eq!(rx.recv().expect("first wait"), 0);
        assert_eq!(rx.recv().expect("second wait"), 1);
        fs::write(dir.path().join(LAG_FILE), "+000000003").expect("write lag");
        waiter.join().expect("waiter returns once replicated");

        // Without LiteFS (no .lag) it does not wait at all.
        let plain = tempfile::tempdir().expect("temp dir");
        wait_for_replication(plain.path(), Duration::from_millis(5), |_| {
            panic!("waited without LiteFS")
        });
    }

    #[test]
    fn role_from_primary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(role(dir.path()).expect("role"), NodeRole::Primary);
        assert!(!is_litefs_dir(dir.path()));

        fs::write(dir.path().join(".primary"), "host-a\n").expect("write .primary");
        assert_eq!(
            role(dir.path()).expect("role"),
            NodeRole::Replica {
                primary: "host-a".into()
            }
        );
        assert!(is_litefs_dir(dir.path()));
    }

    #[test]
    fn lag_file_alone_marks_a_litefs_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(".lag"), "+000000000").expect("write .lag");
        assert!(is_litefs_dir(dir.path()));
        assert_eq!(role(dir.path()).expect("role"), NodeRole::Primary);
    }

    #[test]
    fn lag_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(lag(dir.path()).expect("missing .lag"), None);

        let file = dir.path().join(".lag");
        fs::write(&file, "+000000042").expect("write .lag");
        let got = lag(dir.path()).expect("lag");
        assert_eq!(got, Some(Lag::Millis(42)));
        assert_eq!(
            got.and_then(|l| l.as_duration()),
            Some(Duration::from_millis(42))
        );

        fs::write(&file, "+2147483647").expect("write .lag");
        assert_eq!(lag(dir.path()).expect("lag"), Some(Lag::NotReplicatedYet));

        fs::write(&file, "-000000005\n").expect("write .lag");
        assert_eq!(lag(dir.path()).expect("lag"), Some(Lag::Millis(0)));

        fs::write(&file, "garbage").expect("write .lag");
        let err = lag(dir.path()).expect_err("garbage must fail");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("garbage"), "{err}");
    }
}
