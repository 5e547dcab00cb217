//! The HALT lock that lets a LiteFS replica write: a write lock on byte 72 of
//! `<database>-lock`, taken as an *open-file-description* lock with the
//! blocking `F_OFD_SETLKW`. While it is held the primary stops writing and
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
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SendError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long [`HaltLock::acquire`] waits by default; LiteFS itself gives up
/// halting the primary after 10 s, so waiting longer gains nothing.
pub(crate) const DEFAULT_HALT_TIMEOUT: Duration = Duration::from_secs(10);

/// A HALT held longer than this expires on the primary; writes after that fail.
const HALT_EXPIRY: Duration = Duration::from_secs(30);

/// The byte of the lock file that LiteFS uses as the HALT lock.
const HALT_BYTE: libc::off_t = 72;

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
pub(crate) struct HaltLock {
    /// `<database>-lock`.
    path: PathBuf,
    timeout: Duration,
}

impl HaltLock {
    /// The HALT lock of the database at `db_path` (e.g. `/litefs/manifest.db`
    /// → lock file `/litefs/manifest.db-lock`), with [`DEFAULT_HALT_TIMEOUT`].
    pub(crate) fn new(db_path: impl AsRef<Path>) -> Self {
        // Append to the OsStr, not via `with_extension`, which would replace `.db`.
        let mut path = OsString::from(db_path.as_ref().as_os_str());
        path.push("-lock");
        Self {
            path: PathBuf::from(path),
            timeout: DEFAULT_HALT_TIMEOUT,
        }
    }

    /// The same lock with another time limit for [`HaltLock::acquire`].
    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The lock file's path.
    #[cfg(test)]
    fn lock_path(&self) -> &Path {
        &self.path
    }

    /// The time limit of [`HaltLock::acquire`].
    #[cfg(test)]
    fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Takes the HALT lock, waiting at most [`HaltLock::timeout`].
    ///
    /// Blocks the calling thread; from async code call it in a blocking
    /// context. Past the limit it fails with [`LiteFsError::HaltTimeout`]; the
    /// abandoned attempt keeps waiting on a helper thread and, should it get
    /// the lock later, releases it at once.
    pub(crate) fn acquire(&self) -> Result<HaltGuard, LiteFsError> {
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
pub(crate) struct HaltGuard {
    file: File,
    path: PathBuf,
    waited: Duration,
    acquired_at: Instant,
}

impl HaltGuard {
    /// How long [`HaltLock::acquire`] waited for the lock.
    pub(crate) fn waited(&self) -> Duration {
        self.waited
    }

    /// How long the lock has been held so far.
    fn held_for(&self) -> Duration {
        self.acquired_at.elapsed()
    }

    /// Releases the lock now; returns how long it was held.
    pub(crate) fn release(self) -> Duration {
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

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::*;

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
}
