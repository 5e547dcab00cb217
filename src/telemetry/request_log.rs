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
/// only when either is recorded and the request goes on to the app, and
/// then kept in the request's extensions for the handler to find.
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

/// A request's logging from its arrival: its span, and what its line
/// needs when the span or the line is recorded.
pub struct Begun {
    span: Span,
    recorded: Option<Recorded>,
    /// Made when the request goes on to the app.
    note: Option<Rc<Note>>,
    line: bool,
}

/// A recorded request's id and arrival.
struct Recorded {
    id: u64,
    started: Instant,
}

impl Begun {
    /// Begins logging `req`.
    pub fn request(req: &actix_http::Request) -> Self {
        let line = sink::access_lines_on();
        let span = request_span(req);
        let recorded = (line || !span.is_disabled()).then(|| {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            if !span.is_disabled() {
                span.record("request_id", id);
            }
            Recorded {
                id,
                started: Instant::now(),
            }
        });
        Self {
            span,
            recorded,
            note: None,
            line,
        }
    }

    /// Logs `req`, answered at once (`cache` says how) with `status`. Its
    /// line is written from the request itself: nothing is cloned for it.
    pub fn answered(&mut self, req: &actix_http::Request, status: u16, cache: &'static str) {
        let Some(Recorded { id, started }) = self.recorded.take() else {
            return;
        };
        if !self.span.is_disabled() {
            self.span.record("cache_status", cache);
            self.span.record("http.status_code", status);
        }
        if self.line {
            let headers = req.headers();
            let asked = Asked {
                method: req.method(),
                target: req.path(),
                host: headers.get(header::HOST),
                user_agent: headers.get(header::USER_AGENT),
                client: req.peer_addr().map(|peer| peer.ip()),
            };
            asked.write_line(id, started, status, cache, None);
        }
    }

    /// Lends a note of the request (when recorded) to the app, whose
    /// handler finds it in the request's extensions. A request answered
    /// before the app needs no note, nor the allocation of its extensions.
    pub fn lend_to(&mut self, req: &actix_http::Request) {
        let Some(Recorded { id, started }) = self.recorded.take() else {
            return;
        };
        let note = Rc::new(Note {
            id,
            span: self.span.clone(),
            started,
            cache: Cell::new("-"),
            origin_ms: Cell::new(None),
            method: req.method().clone(),
            uri: req.uri().clone(),
            host: req.headers().get(header::HOST).cloned(),
            user_agent: req.headers().get(header::USER_AGENT).cloned(),
            client: req.peer_addr().map(|peer| peer.ip()),
        });
        req.extensions_mut().insert(note.clone());
        self.note = Some(note);
    }

    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Logs the request when `future`, its answer, is ready (unless it
    /// was [`answered`](Self::answered) already).
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
                let cache = note.cache.get();
                let origin_ms = note.origin_ms.get();
                Asked::of(&note).write_line(note.id, note.started, status, cache, origin_ms);
            }
        }
        Poll::Ready(outcome)
    }
}

/// A request as its access line names it, borrowed from the request or
/// from its note.
struct Asked<'a> {
    method: &'a Method,
    target: &'a str,
    host: Option<&'a HeaderValue>,
    user_agent: Option<&'a HeaderValue>,
    client: Option<std::net::IpAddr>,
}

impl<'a> Asked<'a> {
    fn of(note: &'a Note) -> Self {
        Self {
            method: &note.method,
            target: note.uri.path(),
            host: note.host.as_ref(),
            user_agent: note.user_agent.as_ref(),
            client: note.client,
        }
    }

    fn write_line(
        &self,
        id: u64,
        started: Instant,
        status: u16,
        cache: &'static str,
        origin_ms: Option<u64>,
    ) {
        fn bytes(value: Option<&HeaderValue>) -> &[u8] {
            value.map_or(b"", HeaderValue::as_bytes)
        }
        let line = AccessLine {
            id,
            method: self.method.as_str(),
            host: bytes(self.host),
            target: self.target,
            status,
            cache,
            elapsed: started.elapsed(),
            origin_ms,
            client: self.client,
            user_agent: bytes(self.user_agent),
        };
        sink::write_access_line(&line, SystemTime::now());
    }
}

/// A field value written only when a subscriber formats it.
struct Lazy<F>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}
