//! LiteFS support: the HALT lock that lets a replica write, the node's role
//! (primary or replica) and its replication lag.
//!
//! LiteFS replicates one SQLite database from the primary to the replicas
//! through a FUSE mount. On a replica a plain write fails ("read only
//! replica"); to write anyway a process takes the HALT lock: a write lock on
//! byte 72 of `<database>-lock`, taken as an *open-file-description* lock with
//! the blocking `F_OFD_SETLKW`. While it is held the primary stops writing and
//! this node's writes are forwarded to it. Reference: superfly/litefs-go.
//!
//! Facts about the real LiteFS lock that shape this module:
//! - only the blocking `F_OFD_SETLKW` form is implemented (a non-blocking
//!   `F_SETLK` answers `ENOSYS`), so the time limit is enforced by waiting on a
//!   helper thread, not by polling;
//! - it answers `EAGAIN` when the primary could not be halted within its own
//!   10 s ([`LiteFsError::PrimaryBusy`]);
//! - closing any descriptor of the lock file releases the lock;
//! - a HALT older than [`HALT_EXPIRY`] expires on the primary, so hold it only
//!   around one short write;
//! - on the primary the call succeeds at once and does nothing.
//!
//! Never start a child process while holding HALT: the lock file is opened with
//! `O_CLOEXEC` (std always does), so the child's exec closes its copy of the
//! descriptor, and on LiteFS closing any descriptor releases the lock.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SendError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long [`HaltLock::acquire`] waits by default; LiteFS itself gives up
/// halting the primary after 10 s, so waiting longer gains nothing.
pub const DEFAULT_HALT_TIMEOUT: Duration = Duration::from_secs(10);

/// A HALT held longer than this expires on the primary; writes after that fail.
pub const HALT_EXPIRY: Duration = Duration::from_secs(30);

/// The byte of the lock file that LiteFS uses as the HALT lock.
const HALT_BYTE: libc::off_t = 72;

/// Written by LiteFS in a replica's directory; holds the primary's host name.
const PRIMARY_FILE: &str = ".primary";

/// Written by LiteFS in the database's directory; holds the lag in milliseconds.
const LAG_FILE: &str = ".lag";

/// `.lag` value meaning that the initial replication has not finished yet.
const LAG_NOT_REPLICATED: i64 = i32::MAX as i64;

/// Why the HALT lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LiteFsError {
    /// The lock file could not be opened (wrong path, or not a LiteFS mount).
    #[error("cannot open the LiteFS lock file {}: {source}", .path.display())]
    Open { path: PathBuf, source: io::Error },
    /// The lock was not granted within the configured time limit.
    #[error(
        "the HALT lock on {} could not be taken within {:.1} s",
        .path.display(),
        .waited.as_secs_f64()
    )]
    HaltTimeout { path: PathBuf, waited: Duration },
    /// LiteFS answered `EAGAIN`: the primary did not halt within its own 10 s.
    #[error(
        "the HALT lock on {}: LiteFS could not halt the primary in time (EAGAIN); retry later",
        .path.display()
    )]
    PrimaryBusy { path: PathBuf },
    /// Any other failure of the lock call.
    #[error("cannot take the HALT lock on {}: {source}", .path.display())]
    Lock { path: PathBuf, source: io::Error },
}

/// The HALT lock of one LiteFS database.
#[derive(Debug, Clone)]
pub struct HaltLock {
    /// `<database>-lock`.
    path: PathBuf,
    timeout: Duration,
}

impl HaltLock {
    /// The HALT lock of the database at `db_path` (e.g. `/litefs/manifest.db`
    /// → lock file `/litefs/manifest.db-lock`), with [`DEFAULT_HALT_TIMEOUT`].
    pub fn new(db_path: impl AsRef<Path>) -> Self {
        // Append to the OsStr, not via `with_extension`, which would replace `.db`.
        let mut path = OsString::from(db_path.as_ref().as_os_str());
        path.push("-lock");
        Self {
            path: PathBuf::from(path),
            timeout: DEFAULT_HALT_TIMEOUT,
        }
    }

    /// The same lock with another time limit for [`HaltLock::acquire`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The lock file's path.
    pub fn lock_path(&self) -> &Path {
        &self.path
    }

    /// The time limit of [`HaltLock::acquire`].
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Takes the HALT lock, waiting at most [`HaltLock::timeout`].
    ///
    /// Blocks the calling thread; from async code call it in a blocking
    /// context. Past the limit it fails with [`LiteFsError::HaltTimeout`]; the
    /// abandoned attempt keeps waiting on a helper thread and, should it get
    /// the lock later, releases it at once.
    pub fn acquire(&self) -> Result<HaltGuard, LiteFsError> {
        self.acquire_inner().0
    }

    /// [`HaltLock::acquire`], also returning the helper thread so tests can
    /// wait for an abandoned attempt to finish.
    fn acquire_inner(&self) -> (Result<HaltGuard, LiteFsError>, Option<JoinHandle<()>>) {
        let start = Instant::now();
        // Capacity 1: the helper's single send never blocks, even if nobody receives.
        let (tx, rx) = mpsc::sync_channel::<Result<HaltGuard, LiteFsError>>(1);
        let path = self.path.clone();
        // Open and lock on the helper: both can block on a stuck FUSE mount,
        // and the real lock has no non-blocking form to poll with.
        let spawned = thread::Builder::new()
            .name("litefs-halt".into())
            .spawn(move || {
                let result = take_halt(path, start);
                // If the receiver gave up, the guard comes back here and is
                // dropped, which releases the lock it got too late. A guard
                // left in the channel is dropped with the channel as well.
                if let Err(SendError(Ok(late))) = tx.send(result) {
                    tracing::debug!(
                        path = %late.path.display(),
                        waited_ms = late.waited.as_millis() as u64,
                        "HALT lock granted after the caller gave up; releasing it"
                    );
                }
            });
        let handle = match spawned {
            Ok(handle) => handle,
            Err(source) => {
                let source = io::Error::new(
                    source.kind(),
                    format!("cannot start the helper thread: {source}"),
                );
                let path = self.path.clone();
                return (Err(LiteFsError::Lock { path, source }), None);
            }
        };
        let result = match rx.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(LiteFsError::HaltTimeout {
                path: self.path.clone(),
                waited: start.elapsed(),
            }),
            // Only if the helper panicked; nothing was locked then.
            Err(RecvTimeoutError::Disconnected) => Err(LiteFsError::Lock {
                path: self.path.clone(),
                source: io::Error::other("the HALT helper thread ended without an answer"),
            }),
        };
        (result, Some(handle))
    }
}

/// Opens the lock file and takes the HALT lock; runs on the helper thread.
fn take_halt(path: PathBuf, start: Instant) -> Result<HaltGuard, LiteFsError> {
    // No `create`: a missing lock file means a wrong path or no LiteFS mount,
    // and creating a stray file there would hide that.
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(source) => return Err(LiteFsError::Open { path, source }),
    };
    match set_halt_byte(&file, libc::F_WRLCK) {
        Ok(()) => Ok(HaltGuard {
            file,
            path,
            waited: start.elapsed(),
            acquired_at: Instant::now(),
        }),
        Err(source) => Err(lock_error(path, source)),
    }
}

/// Maps the lock call's error: `EAGAIN` is LiteFS saying the primary is busy.
fn lock_error(path: PathBuf, source: io::Error) -> LiteFsError {
    if source.raw_os_error() == Some(libc::EAGAIN) {
        LiteFsError::PrimaryBusy { path }
    } else {
        LiteFsError::Lock { path, source }
    }
}

/// Sets (`F_WRLCK`) or clears (`F_UNLCK`) the OFD lock on the HALT byte with
/// the blocking `F_OFD_SETLKW`, the only form LiteFS implements, for unlocking
/// too. Retries on `EINTR`.
fn set_halt_byte(file: &File, l_type: libc::c_int) -> io::Result<()> {
    let mut lock = halt_flock(l_type);
    loop {
        // SAFETY: the descriptor is valid while `file` is borrowed, and `lock`
        // is a fully initialised `struct flock` that outlives the call.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLKW, &mut lock) };
        if rc != -1 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `struct flock` for the HALT byte: from `SEEK_SET`, start 72, length 1.
fn halt_flock(l_type: libc::c_int) -> libc::flock {
    // SAFETY: `struct flock` is plain C data; all-zero is a valid value, and
    // zeroing covers the padding fields some targets have. `l_pid` must stay 0
    // for OFD locks (the kernel answers EINVAL otherwise).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = l_type as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = HALT_BYTE;
    lock.l_len = 1;
    lock.l_pid = 0;
    lock
}

/// A held HALT lock. Dropping it releases the lock (`F_UNLCK` on the same open
/// file description, then close), so an error or a panic during the write
/// can never leave the primary halted.
#[must_use = "the HALT lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct HaltGuard {
    file: File,
    path: PathBuf,
    waited: Duration,
    acquired_at: Instant,
}

impl HaltGuard {
    /// How long [`HaltLock::acquire`] waited for the lock.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// How long the lock has been held so far.
    pub fn held_for(&self) -> Duration {
        self.acquired_at.elapsed()
    }

    /// The lock file's path.
    pub fn lock_path(&self) -> &Path {
        &self.path
    }

    /// Releases the lock now; returns how long it was held.
    pub fn release(self) -> Duration {
        let held = self.held_for();
        drop(self);
        held
    }
}

impl Drop for HaltGuard {
    fn drop(&mut self) {
        // Errors are ignored: closing the file right after releases the lock
        // anyway, and LiteFS answers a no-op on the primary or after expiry.
        if let Err(err) = set_halt_byte(&self.file, libc::F_UNLCK) {
            tracing::debug!(path = %self.path.display(), error = %err, "HALT unlock failed; closing releases it");
        }
        let held = self.held_for();
        if held >= HALT_EXPIRY / 2 {
            tracing::warn!(
                path = %self.path.display(),
                held_ms = held.as_millis() as u64,
                "HALT lock held for long; LiteFS expires it after {} s",
                HALT_EXPIRY.as_secs()
            );
        }
        // `self.file` closes after this body, which also releases the lock.
    }
}

/// This node's role in the LiteFS cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
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
pub fn role(dir: &Path) -> io::Result<Role> {
    match fs::read_to_string(dir.join(PRIMARY_FILE)) {
        Ok(content) => Ok(Role::Replica {
            primary: content.trim().to_owned(),
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Role::Primary),
        Err(err) => Err(err),
    }
}

/// Whether `dir` looks like a LiteFS mount: `.primary` (replicas) or `.lag`
/// (every node) exists there. Used for `litefs = "auto"`.
pub fn is_litefs_dir(dir: &Path) -> bool {
    dir.join(PRIMARY_FILE).exists() || dir.join(LAG_FILE).exists()
}

/// How far this node lags behind the primary (0 on the primary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// Milliseconds since the last transaction or heartbeat (one a second)
    /// from the primary.
    Millis(u64),
    /// The initial replication from the primary has not finished yet.
    NotReplicatedYet,
}

impl Lag {
    /// The lag as a duration; `None` while not replicated yet.
    pub fn as_duration(&self) -> Option<Duration> {
        match self {
            Lag::Millis(ms) => Some(Duration::from_millis(*ms)),
            Lag::NotReplicatedYet => None,
        }
    }
}

/// Reads `.lag` in the database's directory `dir` (written as `%+010d`
/// milliseconds, e.g. `+000000042`). `Ok(None)` when there is no such file
/// (not LiteFS); `InvalidData` when its content is not a number.
pub fn lag(dir: &Path) -> io::Result<Option<Lag>> {
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
pub fn wait_for_replication(dir: &Path, poll: Duration, mut on_wait: impl FnMut(u32)) {
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
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// A temp dir holding an empty `manifest.db-lock`; returns the HALT lock.
    fn lock_in(dir: &tempfile::TempDir, timeout: Duration) -> HaltLock {
        let lock = HaltLock::new(dir.path().join("manifest.db")).with_timeout(timeout);
        File::create(lock.lock_path()).expect("create lock file");
        lock
    }

    /// Asks, through a separate open file description, which lock type would
    /// block a write lock on the HALT byte: `F_UNLCK` when none.
    fn probe(path: &Path) -> libc::c_int {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open lock file for probing");
        let mut lock = halt_flock(libc::F_WRLCK);
        // SAFETY: valid descriptor, initialised flock with l_pid 0 as OFD requires.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
        assert_eq!(rc, 0, "F_OFD_GETLK: {}", io::Error::last_os_error());
        libc::c_int::from(lock.l_type)
    }

    /// Takes the HALT byte with a non-blocking OFD lock on a fresh descriptor.
    fn block(path: &Path) -> File {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open lock file for blocking");
        let mut lock = halt_flock(libc::F_WRLCK);
        // SAFETY: as in `probe`.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) };
        assert_eq!(rc, 0, "F_OFD_SETLK: {}", io::Error::last_os_error());
        file
    }

    fn unblock(file: File) {
        let mut lock = halt_flock(libc::F_UNLCK);
        // SAFETY: as in `probe`.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) };
        assert_eq!(rc, 0, "F_OFD_SETLK unlock: {}", io::Error::last_os_error());
    }

    #[test]
    fn lock_path_appends_to_the_file_name() {
        let lock = HaltLock::new("/litefs/manifest.db");
        assert_eq!(lock.lock_path(), Path::new("/litefs/manifest.db-lock"));
        assert_eq!(lock.timeout(), DEFAULT_HALT_TIMEOUT);
    }

    #[test]
    fn guard_holds_the_lock_until_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = lock_in(&dir, Duration::from_secs(5));
        assert_eq!(probe(lock.lock_path()), libc::F_UNLCK);

        let guard = lock.acquire().expect("acquire");
        assert_eq!(probe(lock.lock_path()), libc::F_WRLCK);
        assert!(guard.waited() < Duration::from_secs(5));

        let held = guard.release();
        assert!(held < Duration::from_secs(60));
        assert_eq!(probe(lock.lock_path()), libc::F_UNLCK);

        // Released for real: our own API can take it again straight away.
        let again = lock.acquire().expect("acquire again");
        assert_eq!(probe(lock.lock_path()), libc::F_WRLCK);
        drop(again);
        assert_eq!(probe(lock.lock_path()), libc::F_UNLCK);
    }

    #[test]
    fn panic_while_holding_releases_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = lock_in(&dir, Duration::from_secs(5));
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _guard = lock.acquire().expect("acquire");
            assert_eq!(probe(lock.lock_path()), libc::F_WRLCK);
            panic!("write failed while halted (expected by this test)");
        }));
        assert!(result.is_err());
        assert_eq!(probe(lock.lock_path()), libc::F_UNLCK);
    }

    #[test]
    fn second_guard_in_the_same_process_times_out() {
        // OFD locks conflict per open file description, even within a process.
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = lock_in(&dir, Duration::from_millis(200));
        let first = lock.acquire().expect("first acquire");
        let (second, helper) = lock.acquire_inner();
        assert!(matches!(second, Err(LiteFsError::HaltTimeout { .. })));
        drop(first);
        // The abandoned attempt gets the lock now and must give it back.
        helper.expect("helper thread").join().expect("helper exits");
        assert_eq!(probe(lock.lock_path()), libc::F_UNLCK);
    }

    #[test]
    fn lock_held_elsewhere_times_out_then_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = lock_in(&dir, Duration::from_millis(200));
        let blocker = block(lock.lock_path());

        let (result, helper) = lock.acquire_inner();
        let err = result.expect_err("must time out while blocked");
        match &err {
            LiteFsError::HaltTimeout { path, waited } => {
                assert_eq!(path, lock.lock_path());
                assert!(*waited >= Duration::from_millis(200), "{waited:?}");
            }
            other => panic!("expected HaltTimeout, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains("could not be taken within"), "{message}");
        assert!(
            message.contains(&lock.lock_path().display().to_string()),
            "{message}"
        );

        unblock(blocker);
        // The timed-out attempt now gets the lock late; once its thread has
        // finished, it must have released it again.
        helper.expect("helper thread").join().expect("helper exits");
        assert_eq!(probe(lock.lock_path()), libc::F_UNLCK);

        let guard = lock
            .with_timeout(Duration::from_secs(5))
            .acquire()
            .expect("acquire after the blocker released");
        assert!(
            guard.waited() < Duration::from_secs(2),
            "{:?}",
            guard.waited()
        );
    }

    #[test]
    fn missing_lock_file_is_an_open_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = HaltLock::new(dir.path().join("absent.db"));
        match lock.acquire() {
            Err(LiteFsError::Open { path, source }) => {
                assert_eq!(path, dir.path().join("absent.db-lock"));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected Open error, got {other:?}"),
        }
    }

    #[test]
    fn eagain_means_primary_busy() {
        let path = PathBuf::from("/litefs/manifest.db-lock");
        let busy = lock_error(path.clone(), io::Error::from_raw_os_error(libc::EAGAIN));
        assert!(matches!(busy, LiteFsError::PrimaryBusy { .. }));
        let other = lock_error(path, io::Error::from_raw_os_error(libc::ENOSYS));
        assert!(matches!(other, LiteFsError::Lock { .. }));
    }

    #[test]
    fn role_from_primary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(role(dir.path()).expect("role"), Role::Primary);
        assert!(!is_litefs_dir(dir.path()));

        fs::write(dir.path().join(".primary"), "host-a\n").expect("write .primary");
        assert_eq!(
            role(dir.path()).expect("role"),
            Role::Replica {
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
        assert_eq!(role(dir.path()).expect("role"), Role::Primary);
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
