//! Logging: a `tracing` subscriber filtered by `RUST_LOG`, as text for people
//! or JSON for machines, and the span every request is handled in.

use std::io::IsTerminal;

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

/// Installs the global subscriber; a second call (as in tests) changes nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

/// The root span of a request: tracing-actix-web's fields (request id,
/// method, path, status) plus the host, the cache outcome and the time the
/// origin took. No header that can carry a secret is recorded, and the
/// target is logged without its query, which can carry one too (a token
/// pasted into a URL, a signature): tracing-actix-web's own `root_span!`
/// would log the whole target. The client address is the connection's,
/// never one a client wrote into a forwarding header.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "default".to_owned());
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let client_ip = request
            .peer_addr()
            .map(|peer| peer.ip().to_string())
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.flavor = ?request.version(),
            http.target = %request.path(),
            http.client_ip = %client_ip,
            http.user_agent = %header("user-agent"),
            http.status_code = Empty,
            otel.name = %format!("{} {route}", request.method()),
            otel.kind = "server",
            otel.status_code = Empty,
            request_id = %request_id,
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
