//! sluice-core: the domain types every other crate speaks in.
//!
//! Owns: the Kafka RecordBatch v2 view ([`batch`]) and lazy record iteration
//! ([`records`]), Kafka error codes ([`error`]), offsets and topic-partitions
//! ([`types`]), and configuration ([`config`]). Depends on nothing internal and
//! does no I/O beyond reading a configuration file; it never knows about
//! glommio or sockets.

pub mod alloc;
pub mod batch;
pub mod compaction;
pub mod compression;
pub mod config;
pub mod error;
pub mod group;
pub mod metadata;
pub mod mutation_quota;
pub mod producer_state;
pub mod quota;
pub mod quota_share;
pub mod recompress;
pub mod records;
pub mod replication;
pub mod rng;
pub mod share;
pub mod topic_config;
pub mod txn;
pub mod types;
pub mod varint;

pub use error::ErrorCode;
pub use types::{LeaderEpoch, Offset, PartitionId, TopicPartition};
