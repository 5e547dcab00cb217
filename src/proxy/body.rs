//! Response bodies that go to the client and, when storable, to the cache
//! at the same time, chunk by chunk: a body is never held whole in memory.

use awc::error::PayloadError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::coalesce::{Flight, Outcome};
use crate::actors::cache_store::StoreSink;

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
