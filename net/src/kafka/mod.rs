//! The Kafka wire protocol: listener, API registry, handlers.

pub mod context;
pub mod handlers;
pub mod registry;
pub mod server;
