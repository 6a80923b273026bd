//! Partition replication's rules, without I/O: what a leader knows of its
//! followers and the high watermark and in-sync set that follow from it
//! ([`leader`]), where a follower cuts its log when it follows a new
//! leader ([`follower`]), and the map of leader epochs to the offsets they
//! start at that both rely on ([`epochs`]).
//!
//! Everything here takes offsets and the time as arguments and returns
//! decisions; the shard runtime does the fetching, appending and proposing,
//! and the simulator drives the same functions.

pub mod epochs;
pub mod follower;
pub mod leader;

pub use epochs::{EpochCache, UNDEFINED_EPOCH, UNDEFINED_OFFSET};
pub use follower::{truncation, Truncation};
pub use leader::LeaderView;
