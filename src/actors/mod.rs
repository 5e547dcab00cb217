//! The owners of caje's state. Handlers never touch disk or database: they
//! send these actors messages, through a [`Mailbox`] that counts them.

pub mod cache_store;
pub mod manifest;
pub mod manifest_batcher;
pub mod populator;
pub mod purge_sync;

use actix::dev::{Request, ToEnvelope};
use actix::{Actor, Addr, Handler, Message};

use crate::metrics::ActorMeter;

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

    pub fn send<M>(&self, msg: M) -> Request<A, M>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        self.meter.queued();
        self.addr.send(msg)
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
