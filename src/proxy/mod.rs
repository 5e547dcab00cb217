//! The HTTP edge: every request comes in through `front.rs`, where a fresh
//! hit on the memory tier is answered at once; every other request that is
//! not for `/_caje/` comes to the handler, is checked, routed by `Host` to
//! its origin, and answered from the cache when the decisions in `cache/`
//! allow it, else through `upstream/`.

mod answer;
mod body;
mod compressed;
mod exchange;
mod fill;
mod front;
mod handler;
mod hot;
mod partial;
mod peer;
mod purge;
mod refresh;
mod request_checks;
mod respond;
mod state;

pub use front::Front;
pub use handler::proxy;
pub use state::ProxyState;
