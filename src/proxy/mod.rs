//! The proxy: every request that is not for `/_caje/` comes here, is routed
//! by `Host` to its origin, and is answered from the cache when RFC 9111
//! allows it.

pub mod body;
mod coalesce;
pub mod forward;
mod handler;
pub mod http_compat;
mod invalidate;
mod origin;
mod refresh;
mod request_checks;
mod respond;
mod revalidate;
pub mod store;

pub use handler::{proxy, ProxyState};
