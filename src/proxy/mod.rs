//! The HTTP edge: every request that is not for `/_caje/` comes here, is
//! checked, routed by `Host` to its origin, and answered from the cache
//! when the decisions in `cache/` allow it, else through `upstream/`.

mod answer;
mod body;
mod compressed;
mod exchange;
mod handler;
mod hot;
mod partial;
mod peer;
mod purge;
mod refresh;
mod request_checks;
mod respond;
mod state;

pub use handler::proxy;
pub use state::ProxyState;
