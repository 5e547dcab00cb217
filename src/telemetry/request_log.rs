//! Every request's span and access line, begun where a request comes in
//! (`proxy::front`, beneath actix-web's `App`, so a hit answered there is
//! logged like any other request) and ended when its response head is
//! ready.
//!
//! The span (`HTTP request`, with the request's method, path, host,
//! client, cache status and origin time) is at `debug`: at the default
//! `info` a request pays for no span, whose formatting by `tracing`'s
//! formatter cost more than the hit itself. The one `info` line a request
//! leaves is its access line ([`AccessLine`]). Both are skipped, with no
//! allocation, when their level is off.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use actix_web::body::BoxBody;
use actix_web::dev::Response;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, Uri};
use actix_web::{Error, HttpMessage, HttpRequest};
use tracing::field::Empty;
use tracing::Span;

use super::access_line::AccessLine;
use super::sink;

/// What the handler learns of a request for its span and its line; made
/// only when either is recorded, and then kept in the request's extensions
/// for the handler to find.
pub struct Note {
    id: u64,
    span: Span,
    started: Instant,
    cache: Cell<&'static str>,
    origin_ms: Cell<Option<u64>>,
    /// The request as its line names it, kept here since the request itself
    /// goes on to the app. Reference-counted clones: nothing is copied.
    method: Method,
    uri: Uri,
    host: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    client: Option<std::net::IpAddr>,
}

impl Note {
    /// Sets how the cache answered (`hit`, `uri-miss`…), for the span and
    /// the line.
    pub fn cache_status(&self, outcome: &'static str) {
        self.span.record("cache_status", outcome);
        self.cache.set(outcome);
    }
}

/// Request ids: unique in this process, in arrival order.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Sets the request's cache outcome (`hit`, `uri-miss`…) in its span and line.
pub fn note_cache_status(req: &HttpRequest, outcome: &'static str) {
    if let Some(note) = req.extensions().get::<Rc<Note>>() {
        note.cache_status(outcome);
    }
}

/// Sets how long the origin took to answer the request's head.
pub fn note_origin_ms(req: &HttpRequest, ms: u64) {
    if let Some(note) = req.extensions().get::<Rc<Note>>() {
        note.span.record("origin_ms", ms);
        note.origin_ms.set(Some(ms));
    }
}

/// A request's logging from its arrival: its span, and its note when the
/// span or the line is recorded.
pub struct Begun {
    span: Span,
    note: Option<Rc<Note>>,
    line: bool,
}

impl Begun {
    /// Begins logging `req`.
    pub fn request(req: &actix_http::Request) -> Self {
        let line = tracing::enabled!(target: "caje::access", tracing::Level::INFO);
        let span = request_span(req);
        let note = (line || !span.is_disabled()).then(|| {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            span.record("request_id", id);
            Rc::new(Note {
                id,
                span: span.clone(),
                started: Instant::now(),
                cache: Cell::new("-"),
                origin_ms: Cell::new(None),
                method: req.method().clone(),
                uri: req.uri().clone(),
                host: req.headers().get(header::HOST).cloned(),
                user_agent: req.headers().get(header::USER_AGENT).cloned(),
                client: req.peer_addr().map(|peer| peer.ip()),
            })
        });
        Self { span, note, line }
    }

    /// Lends the note (if any) to the app, whose handler finds it in the
    /// request's extensions. A request answered before the app needs no
    /// lending, nor the allocation of its extensions.
    pub fn lend_to(&self, req: &actix_http::Request) {
        if let Some(note) = &self.note {
            req.extensions_mut().insert(note.clone());
        }
    }

    pub fn span(&self) -> &Span {
        &self.span
    }

    pub fn note(&self) -> Option<&Note> {
        self.note.as_deref()
    }

    /// Logs the request when `future`, its answer, is ready.
    pub fn until<F>(self, future: F) -> Logged<F> {
        Logged {
            future,
            span: self.span,
            note: self.note,
            line: self.line,
        }
    }
}

fn request_span(req: &actix_http::Request) -> Span {
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

pin_project_lite::pin_project! {
    /// A request being answered, inside its span; logged when answered.
    pub struct Logged<F> {
        #[pin]
        future: F,
        span: Span,
        note: Option<Rc<Note>>,
        line: bool,
    }
}

impl<F> Future for Logged<F>
where
    F: Future<Output = Result<Response<BoxBody>, Error>>,
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
                write_line(&note, status);
            }
        }
        Poll::Ready(outcome)
    }
}

fn write_line(note: &Note, status: u16) {
    fn text(value: &Option<HeaderValue>) -> &str {
        value.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    let line = AccessLine {
        id: note.id,
        method: note.method.as_str(),
        host: text(&note.host),
        target: note.uri.path(),
        status,
        cache: note.cache.get(),
        elapsed: note.started.elapsed(),
        origin_ms: note.origin_ms.get(),
        client: note.client,
        user_agent: text(&note.user_agent),
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
