//! sluice-client: a lean Kafka protocol client, for tools that talk to any
//! Kafka-compatible broker.
//!
//! Owns: connections and request framing ([`connection`]): one request at a
//! time for admin commands, or split into a writer and a reader so a load
//! generator keeps several requests in flight; and the consumer group
//! administration behind `sluice group` ([`groups`]); the topic commands
//! behind `sluice topic` ([`topics`]); `sluice produce` and `sluice
//! consume` ([`produce`], [`consume`]), with the leaders they talk to
//! ([`leaders`]); `sluice txn` ([`txns`]); and the errors they print
//! ([`hint`]). It never knows about
//! the broker's internals: only the wire protocol (kafka-protocol's codec).

pub mod cluster;
pub mod connection;
pub mod consume;
pub mod groups;
pub mod hint;
pub mod leaders;
pub mod produce;
pub mod share_groups;
pub mod topics;
pub mod txns;

pub use connection::Client;
