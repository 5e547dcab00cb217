//! Logging: a `tracing` subscriber filtered by `RUST_LOG`, as text for people
//! or JSON for machines, each request's span and access line
//! (`request_log`). Lines are formatted where they are logged and written
//! to stderr by a thread of their own, in batches: a request does not wait
//! for a write.

mod access_line;
mod request_log;
mod sink;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub use request_log::{note_cache_status, note_origin_ms, Begun, Logged};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps the writer thread going; dropping it writes what is buffered.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: sink::SinkGuard,
}

/// Installs the global subscriber; a second call (as in tests) changes
/// nothing. Keep the guard until the process ends.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = sink::start(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer.clone());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    // Asked of the subscriber just installed (or the one a first call did).
    if tracing::enabled!(target: "caje::access", tracing::Level::INFO) {
        sink::install(writer, format);
    }
    LogGuard { _writer: guard }
}
