//! sluice-shard: the per-core runtime.
//!
//! Owns: one pinned glommio executor per core ([`runtime`]), each a
//! [`shard::Shard`] that owns a disjoint set of partitions and a read-only
//! copy of the metadata; the message types shards exchange over the channel
//! mesh ([`message`]) and the mesh itself ([`mesh`]); the controller role
//! on shard 0 (its member of the controller quorum, `sluice-quorum`); the
//! metadata log format from before the quorum, read once to move it over
//! ([`metadata_log`]); and the per-partition long-poll signal ([`notify`]).
//! No locks or shared mutable state on the request path: work for another
//! shard's partition is a message to that shard.

pub mod env;
pub mod fatal;
pub mod group;
pub mod kafka_link;
pub mod mesh;
pub mod message;
pub mod metadata_log;
pub mod metrics;
pub mod notify;
pub mod runtime;
pub mod shard;
pub mod simulated;
pub use sluice_log::store;
pub mod transport;
pub mod txn;

pub use env::{BrokenRule, Env, SystemEnv};
pub use fatal::{fatal, FATAL_EXIT_CODE};
pub use message::{
    DeleteRecords, FetchResult, GroupRequest, GroupResponse, LogDirs, PartitionRead, ProduceResult,
    Proposal, Proposed, ReplicaLogDir, ShardOp, ShardRequest, ShardResponse, ShardStats,
};
pub use notify::Notify;
pub use runtime::{run, ServeFn, ShutdownFlag};
pub use shard::{now_ms, PartitionOffsets, Shard, ShardCounters, ShardParts, Unreachable};
pub use store::Disk;
pub use transport::{Link, Transport};
