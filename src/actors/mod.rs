//! The owners of caje's state. Handlers never touch disk or database: they
//! send these actors messages, through a [`Mailbox`] that counts them.

pub mod cache_store;
pub mod manifest;
pub mod manifest_batcher;
pub mod manifest_watch;
pub mod populator;
pub mod purge_sync;

use std::future::Future;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};
use futures_util::FutureExt;

use crate::metrics::ActorMeter;

/// An actor's mailbox is closed: the actor stopped or its thread is gone,
/// so a message sent to it gets no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {actor} actor is not answering")]
pub struct NotAnswering {
    /// The actor's name, as its metrics are labelled.
    pub actor: &'static str,
}

/// An actor's address that counts what is sent to it, so its mailbox depth
/// is a metric (the handler counts what it takes out).
pub struct Mailbox<A: Actor> {
    addr: Addr<A>,
    meter: ActorMeter,
}

impl<A: Actor> Clone for Mailbox<A> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            meter: self.meter.clone(),
        }
    }
}

impl<A: Actor> Mailbox<A> {
    pub fn new(addr: Addr<A>, meter: ActorMeter) -> Self {
        Self { addr, meter }
    }

    /// Sends `msg` now, not when the answer is awaited: a caller may rely on
    /// its messages arriving in the order it sent them.
    pub fn send<M>(&self, msg: M) -> impl Future<Output = Result<M::Result, NotAnswering>> + 'static
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        self.meter.queued();
        let actor = self.meter.actor();
        self.addr
            .send(msg)
            .map(move |answer| answer.map_err(|_| NotAnswering { actor }))
    }

    pub fn do_send<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        self.meter.queued();
        self.addr.do_send(msg);
    }
}
