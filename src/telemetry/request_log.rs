//! Every request's span and access line, as an actix-web middleware.
//!
//! The span (`HTTP request`, with the request's method, path, host,
//! client, cache status and origin time) is at `debug`: at the default
//! `info` a request pays for no span, whose formatting by `tracing`'s
//! formatter cost more than the hit itself. The one `info` line a request
//! leaves is its access line ([`AccessLine`]), written when the response
//! head is ready. Both are skipped, with no allocation, when their level is
//! off.

use std::cell::Cell;
use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{Error, HttpMessage, HttpRequest};
use tracing::field::Empty;
use tracing::Span;

use super::access_line::AccessLine;
use super::sink;

/// Wraps an app so each request gets its span and its access line.
pub struct RequestLog;

impl<S, B> Transform<S, ServiceRequest> for RequestLog
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestLogService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestLogService { service }))
    }
}

pub struct RequestLogService<S> {
    service: S,
}

/// What the handler learns of a request for its span and its line; in the
/// request's extensions only when either is recorded.
struct Note {
    id: u64,
    span: Span,
    started: Instant,
    cache: Cell<&'static str>,
    origin_ms: Cell<Option<u64>>,
}

/// Request ids: unique in this process, in arrival order.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Sets the request's cache outcome (`hit`, `uri-miss`…) in its span and line.
pub fn note_cache_status(req: &HttpRequest, outcome: &'static str) {
    if let Some(note) = req.extensions().get::<Rc<Note>>() {
        note.span.record("cache_status", outcome);
        note.cache.set(outcome);
    }
}

/// Sets how long the origin took to answer the request's head.
pub fn note_origin_ms(req: &HttpRequest, ms: u64) {
    if let Some(note) = req.extensions().get::<Rc<Note>>() {
        note.span.record("origin_ms", ms);
        note.origin_ms.set(Some(ms));
    }
}

fn request_span(req: &ServiceRequest) -> Span {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    };
    // Field values are worked out inside the macro, which evaluates them
    // only when the span is enabled.
    tracing::debug_span!(
        "HTTP request",
        request_id = Empty,
        http.method = %req.method(),
        http.target = %req.path(),
        http.flavor = ?req.version(),
        http.client_ip = %Lazy(|f: &mut fmt::Formatter<'_>| match req.peer_addr() {
            Some(peer) => fmt::Display::fmt(&peer.ip(), f),
            None => Ok(()),
        }),
        http.user_agent = %header("user-agent"),
        host = %header("host"),
        http.status_code = Empty,
        cache_status = Empty,
        origin_ms = Empty,
    )
}

impl<S, B> Service<ServiceRequest> for RequestLogService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Logged<S::Future>;

    actix_service::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let line = tracing::enabled!(target: "caje::access", tracing::Level::INFO);
        let span = request_span(&req);
        let note = (line || !span.is_disabled()).then(|| {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            span.record("request_id", id);
            let note = Rc::new(Note {
                id,
                span: span.clone(),
                started: Instant::now(),
                cache: Cell::new("-"),
                origin_ms: Cell::new(None),
            });
            req.extensions_mut().insert(note.clone());
            note
        });
        let future = span.in_scope(|| self.service.call(req));
        Logged {
            future,
            span,
            note,
            line,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request being handled, inside its span; logged when answered.
    pub struct Logged<F> {
        #[pin]
        future: F,
        span: Span,
        note: Option<Rc<Note>>,
        line: bool,
    }
}

impl<F, B> Future for Logged<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = {
            let _entered = this.span.enter();
            match this.future.poll(cx) {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => return Poll::Pending,
            }
        };
        if let Some(note) = this.note.take() {
            let status = match &outcome {
                Ok(response) => response.status().as_u16(),
                Err(error) => error.as_response_error().status_code().as_u16(),
            };
            note.span.record("http.status_code", status);
            if *this.line {
                let request = outcome.as_ref().ok().map(|r| r.request());
                write_line(&note, request, status);
            }
        }
        Poll::Ready(outcome)
    }
}

fn write_line(note: &Note, request: Option<&HttpRequest>, status: u16) {
    let header = |name: &str| {
        request
            .and_then(|r| r.headers().get(name))
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    };
    let line = AccessLine {
        id: note.id,
        method: request.map_or("-", |r| r.method().as_str()),
        host: header("host"),
        target: request.map_or("-", |r| r.path()),
        status,
        cache: note.cache.get(),
        elapsed: note.started.elapsed(),
        origin_ms: note.origin_ms.get(),
        client: request.and_then(|r| r.peer_addr()).map(|peer| peer.ip()),
        user_agent: header("user-agent"),
    };
    sink::write_access_line(&line, SystemTime::now());
}

/// A field value written only when a subscriber formats it.
struct Lazy<F>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}
