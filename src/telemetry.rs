//! Logging: a `tracing` subscriber filtered by `RUST_LOG`, as text for people
//! or JSON for machines, and the span every request is handled in. Lines
//! are formatted where they are logged and written to stderr by a thread of
//! their own, in batches: a request does not wait for a write.

use std::fmt;
use std::io::{BufWriter, IsTerminal};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::field::Empty;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Lines waiting for the writer thread; past this a request waits for room
/// rather than a line being dropped. The queue is allocated whole at start
/// (32 bytes a line): tracing-appender's default of 128,000 would add 4 MiB
/// to an idle node.
const QUEUED_LINES: usize = 16_384;

/// Keeps the writer thread going; dropping it writes what is queued.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: tracing_appender::non_blocking::WorkerGuard,
}

/// Installs the global subscriber; a second call (as in tests) changes
/// nothing. Keep the guard until the process ends.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The writer thread writes each batch of queued lines with one write
    // (`BufWriter`), flushing whenever the queue runs empty.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("caje-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    LogGuard { _writer: guard }
}

/// The root span of a request: tracing-actix-web's fields (request id,
/// method, route, path, status; not its `otel.name` and `otel.kind`, which
/// only repeat the method and route for an OpenTelemetry exporter caje does
/// not have) plus the host, the cache outcome and the time the origin took. No header that can carry a secret is recorded, and the
/// target is logged without its query, which can carry one too (a token
/// pasted into a URL, a signature): tracing-actix-web's own `root_span!`
/// would log the whole target. The client address is the connection's,
/// never one a client wrote into a forwarding header.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    // Field values are worked out inside the macro, which evaluates them
    // only when the span is enabled: at a level that records no request
    // span, a request builds no string for it.
    fn on_request_start(request: &ServiceRequest) -> Span {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
        };
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %lazy(|f| match request.match_pattern() {
                Some(pattern) => f.write_str(&pattern),
                None => f.write_str("default"),
            }),
            http.flavor = ?request.version(),
            http.target = %request.path(),
            http.client_ip = %lazy(|f| match request.peer_addr() {
                Some(peer) => fmt::Display::fmt(&peer.ip(), f),
                None => Ok(()),
            }),
            http.user_agent = %header("user-agent"),
            http.status_code = Empty,
            otel.status_code = Empty,
            request_id = %lazy(|f| match request.extensions().get::<RequestId>() {
                Some(id) => fmt::Display::fmt(id, f),
                None => Ok(()),
            }),
            exception.message = Empty,
            exception.details = Empty,
            host = %header("host"),
            cache_status = Empty,
            origin_ms = Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span.clone(), outcome);
        let status = match outcome {
            Ok(response) => response.status().as_u16(),
            Err(error) => error.as_response_error().status_code().as_u16(),
        };
        span.in_scope(|| tracing::info!(status, "request done"));
    }
}

/// A field value written only when a subscriber formats it.
struct Lazy<F>(F);

fn lazy<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result>(write: F) -> Lazy<F> {
    Lazy(write)
}

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}
