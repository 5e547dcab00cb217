//! Talking to origins, shared by the proxy and the populator: which header
//! fields cross (and which caje sets itself), sending a request with its
//! metrics, fetches whose answer goes straight into the cache, and asking a
//! peer node for a page it stored (`peer`).

pub mod clients;
pub mod fetch;
pub mod headers;
pub mod peer;
pub mod send;

pub use clients::{OriginClients, TlsConfigs};
pub use send::{send, OriginRequest, RequestBody, Upstream};
