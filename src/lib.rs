//! caje: a caching CDN node. See README.md for how a request flows.

pub mod actors;
pub(crate) mod admin;
pub mod admin_cli;
pub mod cache;
pub mod codec;
pub mod config;
pub mod demo_origin;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub(crate) mod ip_text;
pub mod litefs;
pub mod metrics;
pub(crate) mod proxy;
pub mod reload;
pub mod schema;
pub mod startup;
pub mod telemetry;
pub(crate) mod upstream;
