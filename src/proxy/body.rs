//! Bodies streaming through caje: the origin's response to the client and,
//! when storable, to the cache at the same time, chunk by chunk (a body is
//! never held whole in memory); and the client's request body to the
//! origin, cut off at the configured limit.

use std::cell::RefCell;
use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use actix_web::body::SizedStream;
use actix_web::error::PayloadError as ClientPayloadError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use awc::error::PayloadError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::request_checks::Refused;
use crate::actors::cache_store::StoreSink;
use crate::cache::coalesce::{Flight, Outcome};

struct Tee<S> {
    origin: S,
    sink: Option<StoreSink>,
    /// Bytes still expected when the origin announced a length.
    remaining: Option<u64>,
    /// Requests waiting for this response to be stored.
    flight: Option<Flight>,
}

impl<S> Tee<S> {
    /// The body is complete: commit it (waiting for the commit only when
    /// coalesced requests wait for it).
    async fn complete(&mut self, sink: StoreSink) {
        match self.flight.take() {
            Some(flight) => {
                let stored = sink.commit().await;
                flight.finish(if stored {
                    Outcome::Stored
                } else {
                    Outcome::NotStored
                });
            }
            None => sink.finish().await,
        }
    }
}

/// Streams `origin` to the client while copying it into `sink`. The entry is
/// committed when the body is complete: at the announced length (the client
/// side may stop polling there) or at the end of a chunked body. An origin
/// error, or the client going away, drops the sink and so abandons the
/// entry; dropping `flight` then lets coalesced requests fetch themselves.
pub fn tee<S>(
    origin: S,
    sink: Option<StoreSink>,
    expected_len: Option<u64>,
    flight: Option<Flight>,
) -> impl Stream<Item = Result<Bytes, PayloadError>>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
    let state = Tee {
        origin,
        sink,
        remaining: expected_len,
        flight,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        match state.origin.next().await {
            Some(Ok(chunk)) => {
                if let Some(sink) = state.sink.take() {
                    if sink.write(chunk.clone()).await {
                        let left = state
                            .remaining
                            .map(|r| r.saturating_sub(chunk.len() as u64));
                        state.remaining = left;
                        if left == Some(0) {
                            state.complete(sink).await;
                        } else {
                            state.sink = Some(sink);
                        }
                    }
                }
                Some((Ok(chunk), state))
            }
            Some(Err(e)) => {
                state.sink = None;
                Some((Err(e), state))
            }
            None => {
                if let Some(sink) = state.sink.take() {
                    state.complete(sink).await;
                }
                None
            }
        }
    })
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("reading the request body: {0}")]
    Client(#[from] ClientPayloadError),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
}

/// The client's body on its way to the origin, ended with an error (which
/// aborts the origin request) instead of the chunk that would pass the
/// limit; the rest is left unread in the [`Overflow`].
pub struct LimitedBody {
    payload: Option<web::Payload>,
    limit: u64,
    received: u64,
    overflow: Overflow,
}

impl LimitedBody {
    pub fn new(payload: web::Payload, limit: u64) -> (Self, Overflow) {
        let overflow = Overflow::default();
        let body = Self {
            payload: Some(payload),
            limit,
            received: 0,
            overflow: overflow.clone(),
        };
        (body, overflow)
    }
}

impl Stream for LimitedBody {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(payload) = self.payload.as_mut() else {
            return Poll::Ready(None);
        };
        let chunk = match ready!(Pin::new(payload).poll_next(cx)) {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            None => return Poll::Ready(None),
        };
        self.received += chunk.len() as u64;
        if self.received > self.limit {
            *self.overflow.0.borrow_mut() = self.payload.take();
            return Poll::Ready(Some(Err(BodyError::TooLarge(self.limit))));
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}

/// The unread rest of a body that passed the limit, once it did.
#[derive(Clone, Default)]
pub struct Overflow(Rc<RefCell<Option<web::Payload>>>);

impl Overflow {
    pub fn happened(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// The 413. It holds the rest of the body until it is sent: actix-http
    /// then closes the connection, where for a dropped chunked body it
    /// would read (drain) the rest, however long, to keep the connection.
    pub fn response(&self, limit: u64) -> HttpResponse {
        let message = Bytes::from(format!("caje: {}\n", Refused::BodyTooLarge { limit }));
        let length = message.len() as u64;
        let body = Unread {
            message: Some(message),
            _rest: self.0.borrow_mut().take(),
        };
        HttpResponse::build(StatusCode::PAYLOAD_TOO_LARGE)
            .content_type("text/plain; charset=utf-8")
            .force_close()
            .body(SizedStream::new(length, body))
    }
}

/// A response body that keeps the request's unread body alive while it is sent.
struct Unread {
    message: Option<Bytes>,
    _rest: Option<web::Payload>,
}

impl Stream for Unread {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.message.take().map(Ok))
    }
}
