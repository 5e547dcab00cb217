//! The owners of caje's state. Handlers never touch disk or database: they
//! send these actors messages.

pub mod cache_store;
pub mod manifest;
pub mod manifest_batcher;
