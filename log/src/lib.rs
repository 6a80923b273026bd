//! sluice-log: one partition's durable log, usable on its own.
//!
//! Owns: segments of Kafka RecordBatch v2 bytes exactly as clients send and
//! fetch them ([`segment`]), sparse offset and time indexes ([`index`]),
//! the aborted transactions of sealed segments ([`txn_index`]),
//! append with in-place offset assignment and group-committed fdatasync,
//! roll, retention, compaction, truncation and a movable log start offset
//! ([`partition`]), recovery that scans only the active segment's tail
//! ([`scan`]), atomic rkyv checkpoints ([`checkpoint`]), and the per-shard
//! cache of recent batches ([`cache`]).
//!
//! The disk is reached only through [`storage::Storage`]: glommio DMA files
//! (O_DIRECT) in production, an in-memory disk that tears and drops unsynced
//! writes in tests. Knows nothing about the network.
//!
//! See `log/examples/append_read.rs` for a whole program that appends and
//! reads a partition with no network at all.

pub mod cache;
pub mod checkpoint;
pub mod chunk;
pub mod error;
pub mod index;
pub mod offset_map;
pub mod partition;
pub mod producers;
pub mod read_ahead;
pub mod scan;
pub mod segment;
pub mod storage;
pub mod store;
pub mod txn_index;
pub mod wake;

pub use cache::{BatchCache, SourceBuffer};
pub use chunk::ReadChunk;
pub use error::{LogError, LogResult};
pub use partition::{
    AppendInfo, CleanOutcome, CleanPacer, CleanPlan, LogStats, NoPacing, OpenReport, PartitionLog,
    RetentionOutcome,
};
pub use storage::dma::DmaStorage;
pub use storage::memory::MemoryStorage;
pub use store::{Disk, PartitionStore};
