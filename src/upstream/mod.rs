//! Talking to origins, shared by the proxy and the populator: which header
//! fields cross (and which caje sets itself), sending a request with its
//! metrics, fetches whose answer goes straight into the cache, and asking a
//! peer node for a page it stored (`peer`); and origin connections as the
//! client reads them (`connector`, `origin_io`, `response_head`,
//! `transfer_coding`): interim responses dropped, odd transfer codings decoded.

pub mod clients;
pub mod connector;
pub mod fetch;
pub mod headers;
pub mod origin_io;
pub mod peer;
pub mod response_head;
pub mod send;
pub mod target;
pub mod transfer_coding;

pub use clients::{OriginClients, OriginLinks};
pub use send::{send, OriginRequest, RequestBody, Upstream};
