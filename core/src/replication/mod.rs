//! Partition replication's rules, without I/O: what a leader knows of its
//! followers and the high watermark and in-sync set that follow from it
//! ([`leader`]), where a follower cuts its log when it follows a new
//! leader ([`follower`]), and the map of leader epochs to the offsets they
//! start at that both rely on ([`epochs`]), and how a replica's role
//! follows the metadata ([`role`]), the replication throttle's budget
//! ([`throttle`]), and which replica a consumer reads ([`read_replica`]).
//!
//! Everything here takes offsets and the time as arguments and returns
//! decisions; the shard runtime does the fetching, appending and proposing,
//! and the simulator drives the same functions.

pub mod epochs;
pub mod follower;
pub mod leader;
pub mod read_replica;
pub mod role;
pub mod throttle;

pub use epochs::{EpochCache, UNDEFINED_EPOCH, UNDEFINED_OFFSET};
pub use follower::{truncation, Truncation};
pub use leader::LeaderView;
pub use role::{FollowerRole, Role, RoleChange};

use crate::ErrorCode;

/// Kafka's answer to a request's `current_leader_epoch` against the
/// replica's own: older is FENCED_LEADER_EPOCH, newer than it knows is
/// UNKNOWN_LEADER_EPOCH (the client retries), -1 skips the check.
pub fn check_leader_epoch(requested: i32, current: i32) -> ErrorCode {
    if requested < 0 || requested == current {
        ErrorCode::None
    } else if requested < current {
        ErrorCode::FencedLeaderEpoch
    } else {
        ErrorCode::UnknownLeaderEpoch
    }
}
