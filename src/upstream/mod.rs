//! Talking to origins, shared by the proxy and the populator: which header
//! fields cross (and which caje sets itself), sending a request with its
//! metrics, and fetches whose answer goes straight into the cache.

pub mod fetch;
pub mod headers;
pub mod send;

pub use send::{send, OriginRequest, RequestBody, Upstream};
