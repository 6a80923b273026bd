//! Consumer groups: Kafka's classic group membership protocol and committed
//! offsets, as a deterministic state machine.
//!
//! Owns: each group's state (Empty → PreparingRebalance →
//! CompletingRebalance → Stable), members and their sessions, generations,
//! static membership, protocol selection, the members' assignments, and
//! committed offsets ([`membership`], [`coordinator`]); the records that persist
//! them in `__consumer_offsets` ([`records`]); which partition of that topic
//! coordinates a group ([`coordinator_partition`]).
//!
//! Invariants: nothing here does I/O or reads a clock. Every operation takes
//! the current time in milliseconds and returns what must happen next:
//! answers to requests that were parked ([`Reply`], keyed by the caller's
//! [`Token`]) and groups whose metadata must be persisted. The shard that
//! runs a coordinator persists those records and reports back
//! ([`coordinator::GroupCoordinator::persisted`]), so tests drive the whole
//! protocol without a runtime.
//!
//! Example: two members join; the second join completes the rebalance.
//!
//! ```
//! use sluice_core::group::coordinator::GroupCoordinator;
//! use sluice_core::group::{JoinRequest, Reply};
//! use sluice_core::config::GroupConfig;
//!
//! let config = GroupConfig { initial_rebalance_delay_ms: 0, ..GroupConfig::default() };
//! let mut c = GroupCoordinator::new(config);
//! let join = |member: &str| JoinRequest {
//!     group_id: "g".into(),
//!     member_id: member.into(),
//!     session_timeout_ms: 10_000,
//!     protocol_type: "consumer".into(),
//!     protocols: vec![("range".into(), bytes::Bytes::new())],
//!     ..JoinRequest::default()
//! };
//! let replies = c.join(join(""), 1, 0);
//! assert!(matches!(&replies[..], [Reply::Join(1, r)] if r.generation == 1));
//! ```

pub mod assignor;
pub mod configs;
pub mod consumer;
pub mod coordinator;
pub mod member_records;
pub mod membership;
pub mod records;
pub mod refusals;
pub mod resolution;
pub mod share;
pub mod subscription;
pub mod topics;
pub mod written;

use bytes::Bytes;

use crate::ErrorCode;

/// Names a parked request (a JoinGroup or SyncGroup waiting for the
/// rebalance); chosen by the caller, echoed in its [`Reply`].
pub type Token = u64;

/// A JoinGroup request, version differences already resolved.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member's first join.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a first join gets MEMBER_ID_REQUIRED and a member id (KIP-394).
    pub require_known_member_id: bool,
    /// v9+: a rejoining static leader may skip the assignment (KIP-814).
    pub supports_skip_assignment: bool,
    /// Unique text for a new member id (the caller's random UUID).
    pub member_id_suffix: String,
}

/// One member as the leader's JoinGroup answer lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: ErrorCode,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Every member, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    /// An answer carrying only `error` (and the member id, which
    /// MEMBER_ID_REQUIRED uses to hand one out).
    pub fn error(error: ErrorCode, member_id: &str) -> JoinResponse {
        JoinResponse {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup request.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// v5+: must match the group's if given.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment: (member id, assignment).
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    /// An answer carrying only `error`.
    pub fn error(error: ErrorCode) -> SyncResponse {
        SyncResponse {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// The answer to a parked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(Token, JoinResponse),
    Sync(Token, SyncResponse),
}

impl Reply {
    /// The token of the request this answers.
    pub fn token(&self) -> Token {
        match self {
            Reply::Join(t, _) | Reply::Sync(t, _) => *t,
        }
    }
}

/// A group's state, as DescribeGroups and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a group coordinator's client is told when writing to
/// `__consumer_offsets` failed with `error`, as Kafka's coordinator tells
/// it: errors of the partition's leadership or storage send the client to
/// find the coordinator again (NOT_COORDINATOR), passing ones have it try
/// again later (COORDINATOR_NOT_AVAILABLE), sizes are the server's fault;
/// every client knows how to act on those, not on the log's own codes.
pub fn write_error_for_client(error: ErrorCode) -> ErrorCode {
    match error {
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::MessageTooLarge
        | ErrorCode::RecordListTooLarge
        | ErrorCode::InvalidFetchSize => ErrorCode::UnknownServerError,
        other => other,
    }
}

/// The partition of `__consumer_offsets` (of `partitions`) that coordinates
/// `group_id`: Kafka's `abs(groupId.hashCode()) % partitions`, with Java's
/// String hash over UTF-16 code units, so a group lands where Kafka would
/// put it.
pub fn coordinator_partition(group_id: &str, partitions: i32) -> i32 {
    let hash = group_id
        .encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32));
    // Kafka's Utils.abs: the absolute value, with i32::MIN mapped to 0.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_partition_matches_javas_string_hash() {
        // "g".hashCode() == 103; "my-group".hashCode() == -1906497762 in Java.
        assert_eq!(coordinator_partition("g", 50), 103 % 50);
        assert_eq!(coordinator_partition("my-group", 50), 1_906_497_762 % 50);
        assert_eq!(coordinator_partition("", 50), 0);
        for g in ["a", "consumer-group-1", "ünïcode", "x".repeat(300).as_str()] {
            assert!((0..50).contains(&coordinator_partition(g, 50)));
        }
    }

    #[test]
    fn a_failed_write_reaches_the_client_as_a_coordinator_error() {
        use ErrorCode::*;
        for (written, told) in [
            (KafkaStorageError, NotCoordinator),
            (NotLeaderOrFollower, NotCoordinator),
            (NotEnoughReplicas, CoordinatorNotAvailable),
            (RequestTimedOut, CoordinatorNotAvailable),
            (UnknownTopicOrPartition, CoordinatorNotAvailable),
            (RecordListTooLarge, UnknownServerError),
            (NotCoordinator, NotCoordinator),
        ] {
            assert_eq!(write_error_for_client(written), told, "{written:?}");
        }
    }
}
