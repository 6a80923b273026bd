//! sluice-client: a lean Kafka protocol client, for tools that talk to any
//! Kafka-compatible broker.
//!
//! Owns: connections and request framing ([`connection`]): one request at a
//! time for admin commands, or split into a writer and a reader so a load
//! generator keeps several requests in flight; and the consumer group
//! administration behind `sluice group` ([`groups`]). It never knows about
//! the broker's internals: only the wire protocol (kafka-protocol's codec).

pub mod cluster;
pub mod connection;
pub mod groups;

pub use connection::Client;
