//! Where log lines go: appended to one buffer in memory, which a thread of
//! its own writes to stderr. Access lines wait there up to [`FLUSH_EVERY`]
//! (less once it holds [`FLUSH_AT`] bytes): a request never waits for a
//! write, and wakes the thread at most once a full buffer (an idle node's
//! first line aside). `tracing-appender`, used
//! before, sent each line through a channel to a writer thread it woke
//! each time, which cost a logged 1 KiB hit more than the line's
//! formatting (BENCHMARKS.md). Other events (few: warnings, starts,
//! reloads) are written at once. Both share the buffer, so lines never
//! interleave mid-line. Nothing is dropped: past [`MAX_BUFFERED`] bytes a
//! writer waits for room.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, SystemTime};

use tracing_subscriber::fmt::MakeWriter;

use super::access_line::AccessLine;
use super::LogFormat;

/// The longest a line waits in memory.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Written at once from this size, not at the next tick. Each write wakes
/// the writer thread, which on a busy node takes a worker's core: at 1 MiB
/// rather than 64 KiB the thread cost a logged 1 KiB hit 0.09 µs rather
/// than 0.21 (BENCHMARKS.md), for two buffers of about 1 MiB while busy.
const FLUSH_AT: usize = 1024 * 1024;
/// Lines wait for room past this (stderr blocked, say), rather than be lost.
const MAX_BUFFERED: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Buffered {
    bytes: Vec<u8>,
    /// Holds a line to write now, not at the next tick.
    urgent: bool,
    /// The writer thread waits for a line with no tick (nothing came in
    /// its last one): the next line wakes it.
    idle: bool,
    /// The writer thread was woken and has not taken the buffer yet: the
    /// lines after the one that woke it do not wake it again (a wake is a
    /// system call, made for every line until the thread gets the core).
    woken: bool,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    buffered: Mutex<Buffered>,
    /// The writer thread waits on this for a full buffer or the close.
    flush: Condvar,
    /// Writers wait on this for room.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Buffered> {
        // A thread that panicked while appending left whole bytes: keep them.
        self.buffered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event's line, written at once.
    fn append_now(&self, line: &[u8]) {
        self.append_with(true, |bytes| bytes.extend_from_slice(line));
    }

    /// Appends what `write` puts at the buffer's end.
    fn append_with(&self, urgent: bool, write: impl FnOnce(&mut Vec<u8>)) {
        let mut buffered = self.lock();
        if buffered.closed {
            // No writer thread (it could not start, or caje is exiting).
            drop(buffered);
            let mut line = Vec::new();
            write(&mut line);
            let _ = io::stderr().write_all(&line);
            return;
        }
        while buffered.bytes.len() >= MAX_BUFFERED {
            self.flush.notify_one();
            buffered = self.room.wait(buffered).unwrap_or_else(|p| p.into_inner());
        }
        write(&mut buffered.bytes);
        buffered.urgent |= urgent;
        let wake = urgent || buffered.idle || buffered.bytes.len() >= FLUSH_AT;
        if wake && !buffered.woken {
            buffered.idle = false;
            buffered.woken = true;
            self.flush.notify_one();
        }
    }
}

/// A handle on the buffer, given to the `tracing` formatter.
#[derive(Clone)]
pub(super) struct LogSink {
    shared: Arc<Shared>,
}

impl Write for LogSink {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.shared.append_now(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LogSink;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Keeps the writer thread going; dropped, it writes what is buffered.
pub(super) struct SinkGuard {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.flush.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the writer thread over `out`.
pub(super) fn start(out: impl Write + Send + 'static) -> (LogSink, SinkGuard) {
    let shared = Arc::new(Shared::default());
    let thread = thread::Builder::new()
        .name("caje-log".into())
        .spawn({
            let shared = shared.clone();
            move || write_until_closed(&shared, out)
        })
        .ok();
    if thread.is_none() {
        // Lines are then written where they are logged.
        shared.lock().closed = true;
        eprintln!("caje: cannot start the log writer thread; writing log lines directly");
    }
    let sink = LogSink {
        shared: shared.clone(),
    };
    (sink, SinkGuard { shared, thread })
}

fn write_until_closed(shared: &Shared, mut out: impl Write) {
    let mut writing = Vec::new();
    loop {
        let closed = {
            let mut buffered = shared.lock();
            if buffered.bytes.len() < FLUSH_AT && !buffered.urgent && !buffered.closed {
                buffered = shared
                    .flush
                    .wait_timeout(buffered, FLUSH_EVERY)
                    .map_or_else(|p| p.into_inner().0, |(b, _)| b);
            }
            // A quiet tick: no more ticks (an idle node's thread sleeps)
            // until a line comes.
            while buffered.bytes.is_empty() && !buffered.closed {
                buffered.idle = true;
                buffered = shared
                    .flush
                    .wait(buffered)
                    .unwrap_or_else(|p| p.into_inner());
            }
            std::mem::swap(&mut writing, &mut buffered.bytes);
            buffered.urgent = false;
            buffered.woken = false;
            buffered.closed
        };
        shared.room.notify_all();
        if !writing.is_empty() {
            // Nowhere to report a failed write to stderr: the lines are gone.
            let _ = out.write_all(&writing).and_then(|()| out.flush());
            writing.clear();
        }
        if closed && shared.lock().bytes.is_empty() {
            return;
        }
    }
}

static ACCESS: OnceLock<(LogSink, LogFormat)> = OnceLock::new();

/// Makes `sink` the access lines' sink; the first call wins. Called only
/// when the filter lets the lines through, so that no line is made when
/// it would not be written.
pub(super) fn install(sink: LogSink, format: LogFormat) {
    let _ = ACCESS.set((sink, format));
}

/// Whether requests write access lines: decided once, as the filter is set
/// once (asking `tracing` cost every request about 75 instructions).
pub(super) fn access_lines_on() -> bool {
    ACCESS.get().is_some()
}

/// Buffers one access line for the writer thread.
pub(super) fn write_access_line(line: &AccessLine<'_>, now: SystemTime) {
    let Some((sink, format)) = ACCESS.get() else {
        return;
    };
    // Formatted straight into the buffer: no allocation of its own.
    sink.shared.append_with(false, |bytes| match format {
        LogFormat::Text => line.write_text(now, bytes),
        LogFormat::Json => line.write_json(now, bytes),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let out = Captured::default();
        let (sink, guard) = start(out.clone());
        let lines: Vec<String> = (0..20_000).map(|i| format!("line {i}\n")).collect();
        for line in &lines {
            sink.make_writer()
                .write_all(line.as_bytes())
                .expect("write");
        }
        drop(guard);
        assert_eq!(
            String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf-8"),
            lines.concat()
        );
    }

    fn written_soon(out: &Captured, expected: &[u8]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.0.lock().expect("lock").as_slice() != expected {
            assert!(std::time::Instant::now() < deadline, "never written");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn lines_are_written_without_more_lines_or_the_close() {
        let out = Captured::default();
        let (sink, _guard) = start(out.clone());
        sink.make_writer().write_all(b"event\n").expect("write");
        written_soon(&out, b"event\n");
        // An access line waits for the tick, not for more lines.
        sink.shared
            .append_with(false, |b| b.extend_from_slice(b"access\n"));
        written_soon(&out, b"event\naccess\n");
    }
}
