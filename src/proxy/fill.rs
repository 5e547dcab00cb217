//! A stored miss's body filled by a task of its own (origin to cache,
//! [`tee`]), handing the client a few chunks ahead. A client further behind
//! holds the fill to its pace only while no other request waits for the
//! entry. Once one joins the flight, the client reads on from the cache
//! file as it is written and the fill goes at the origin's pace, keeping the
//! chunks the file does not hold yet: if the store fails, the client gets
//! the rest from them and from the origin, at its own pace again. So one
//! client that reads slowly, or not at all, or goes away, holds neither the
//! entry nor the requests coalesced behind it. (A body of no announced
//! length is let go with its client: it might never end.)

use std::cell::Cell;
use std::collections::VecDeque;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use awc::error::PayloadError;
use bytes::Bytes;
use futures_util::stream::LocalBoxStream;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::{watch, Notify};

use super::body::tee;
use crate::actors::cache_store::{BodyTail, StoreSink, TailError, Written};
use crate::cache::coalesce::Flight;

/// Bodies up to this long are not decoupled: actix-http takes one this
/// small into its write buffer whole, read by the client or not.
pub const DECOUPLE_ABOVE: u64 = 32 * 1024;

/// Chunks handed ahead to a client that reads slower than the origin sends.
const AHEAD: usize = 8;

type Item = Result<Bytes, PayloadError>;

#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error("reading the origin's body: {0}")]
    Origin(#[from] PayloadError),
    #[error(transparent)]
    Cache(#[from] TailError),
}

/// Stores `origin` through `sink` in a task of its own and returns the
/// client's copy of the body.
pub fn decoupled<S>(
    origin: S,
    sink: StoreSink,
    expected_len: Option<u64>,
    flight: Option<Flight>,
) -> ClientCopy
where
    S: Stream<Item = Item> + Unpin + 'static,
{
    let (to_client, chunks) = mpsc::channel(AHEAD);
    let fell_behind_at = Rc::new(Cell::new(None));
    let fill = Fill {
        joined: flight.as_ref().map(Flight::joined),
        to_client,
        length_known: expected_len.is_some(),
        handed: 0,
        fell_behind_at: fell_behind_at.clone(),
        pace: Pace::Ahead,
        tail: sink.tail(),
    };
    let tail = Some(sink.tail());
    actix_web::rt::spawn(fill.run(tee(origin, Some(sink), expected_len, flight)));
    ClientCopy {
        chunks,
        file: None,
        tail,
        fell_behind_at,
    }
}

/// How the fill serves its client.
enum Pace {
    /// The client is handed every chunk; while no one else waits for the
    /// entry, the fill waits for the client.
    Ahead,
    /// The client reads the file; the chunks from `kept_from` on, which the
    /// file may not hold yet, are kept.
    Behind {
        progress: watch::Receiver<Written>,
        kept: VecDeque<Item>,
        kept_from: u64,
    },
    /// The store failed while the client was behind: it is handed the rest
    /// at its own pace.
    Paced,
    /// The client went away, or has what it needs from the file.
    Done,
}

struct Fill {
    /// Signalled when a request joins the flight to wait for this entry.
    joined: Option<Arc<Notify>>,
    to_client: mpsc::Sender<Item>,
    /// The origin announced a length: the body ends.
    length_known: bool,
    /// Bytes handed to the client while it kept up.
    handed: u64,
    fell_behind_at: Rc<Cell<Option<u64>>>,
    pace: Pace,
    tail: BodyTail,
}

impl Fill {
    /// Reads the origin to the end (the sink commits there), then waits,
    /// if the client is behind, for the store's last word on the file.
    async fn run(mut self, body: impl Stream<Item = Item>) {
        let mut body = pin!(body);
        while let Some(item) = body.next().await {
            self.follow_store(false).await;
            if self.to_client.is_closed() {
                // Gone. The entry is still worth storing, but a body of no
                // announced length might never end: it is let go.
                if !self.length_known {
                    return;
                }
                self.pace = Pace::Done;
            }
            self.pass(item).await;
        }
        self.follow_store(true).await;
    }

    async fn pass(&mut self, item: Item) {
        match &mut self.pace {
            Pace::Ahead => {
                let len = item.as_ref().map_or(0, |chunk| chunk.len() as u64);
                let item = match self.to_client.try_send(item) {
                    Ok(()) => {
                        self.handed += len;
                        return;
                    }
                    Err(TrySendError::Full(item)) => item,
                    Err(TrySendError::Closed(_)) => {
                        self.pace = Pace::Done;
                        return;
                    }
                };
                // The client is behind: the fill waits for it until
                // someone waits for the entry (reading the file back costs
                // a copy, so a client alone keeps the old pace).
                let room = match &self.joined {
                    Some(joined) => tokio::select! {
                        room = self.to_client.reserve() => Some(room),
                        () = joined.notified() => None,
                    },
                    None => Some(self.to_client.reserve().await),
                };
                match room {
                    Some(Ok(room)) => {
                        room.send(item);
                        self.handed += len;
                    }
                    Some(Err(_)) => self.pace = Pace::Done,
                    None => {
                        tracing::debug!(
                            at = self.handed,
                            "client behind its origin while others wait: reading on from the cache file"
                        );
                        self.fell_behind_at.set(Some(self.handed));
                        self.pace = Pace::Behind {
                            progress: self.tail.progress(),
                            kept: VecDeque::from([item]),
                            kept_from: self.handed,
                        };
                    }
                }
            }
            Pace::Behind { kept, .. } => kept.push_back(item),
            Pace::Paced => {
                if self.to_client.send(item).await.is_err() {
                    self.pace = Pace::Done;
                }
            }
            Pace::Done => {}
        }
    }

    /// While the client is behind: drops the kept chunks the file now
    /// holds, or, if the store failed, hands the client what the file
    /// lacks. At the origin's end (`to_end`), waits for the store's end.
    async fn follow_store(&mut self, to_end: bool) {
        loop {
            let Pace::Behind {
                progress,
                kept,
                kept_from,
            } = &mut self.pace
            else {
                return;
            };
            let written = *progress.borrow_and_update();
            let readable = written.readable();
            while let Some(Ok(chunk)) = kept.front() {
                let len = chunk.len() as u64;
                if *kept_from + len > readable {
                    break;
                }
                kept.pop_front();
                *kept_from += len;
            }
            match written {
                Written::Whole(_) => self.pace = Pace::Done,
                Written::Failed(_) => {
                    let rest = std::mem::take(kept);
                    let skip = readable.saturating_sub(*kept_from);
                    self.pace = Pace::Paced;
                    self.hand_over(rest, skip).await;
                }
                Written::Partly(_) if to_end => {
                    if progress.changed().await.is_err() {
                        // Not reached: the writer publishes its end.
                        self.pace = Pace::Done;
                    }
                    continue;
                }
                Written::Partly(_) => {}
            }
            return;
        }
    }

    /// Hands the client the kept chunks past the first `skip` bytes.
    async fn hand_over(&mut self, rest: VecDeque<Item>, mut skip: u64) {
        for item in rest {
            let item = match item {
                Ok(chunk) if skip >= chunk.len() as u64 => {
                    skip -= chunk.len() as u64;
                    continue;
                }
                Ok(chunk) => Ok(chunk.slice(std::mem::take(&mut skip) as usize..)),
                Err(e) => Err(e),
            };
            if self.to_client.send(item).await.is_err() {
                self.pace = Pace::Done;
                return;
            }
        }
    }
}

/// The client's copy of a body being stored: chunks handed by the fill,
/// the cache file once it fell behind, chunks again if the store failed.
pub struct ClientCopy {
    chunks: mpsc::Receiver<Item>,
    file: Option<LocalBoxStream<'static, Result<Bytes, TailError>>>,
    /// Until the client fell behind and reads the file.
    tail: Option<BodyTail>,
    fell_behind_at: Rc<Cell<Option<u64>>>,
}

impl Stream for ClientCopy {
    type Item = Result<Bytes, FillError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(file) = &mut this.file {
                match file.poll_next_unpin(cx) {
                    // The fill hands over the rest.
                    Poll::Ready(Some(Err(TailError::Stopped(_)))) => this.file = None,
                    polled => return polled.map(|item| item.map(|r| r.map_err(FillError::from))),
                }
            }
            let polled = this.chunks.poll_recv(cx);
            if let Poll::Ready(Some(item)) = polled {
                return Poll::Ready(Some(item.map_err(FillError::from)));
            }
            // Every chunk handed is read: on from the file if it fell behind.
            match (this.fell_behind_at.get(), this.tail.take()) {
                (Some(at), Some(tail)) => this.file = Some(tail.read_from(at).boxed_local()),
                (_, tail) => {
                    this.tail = tail;
                    return polled.map(|_| None);
                }
            }
        }
    }
}
