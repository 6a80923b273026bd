//! The Kafka wire protocol: listener, API registry, handlers.

pub mod connection_limits;
pub mod context;
pub mod features;
pub mod handlers;
pub mod quotas;
pub mod registry;
pub mod response_frame;
pub mod server;
pub mod share_offsets_v1;
pub mod share_sessions;
pub mod share_v2;
pub mod socket;
