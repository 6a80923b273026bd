//! The controller quorum: cluster metadata agreed by an openraft group.
//!
//! Owns: the Raft type configuration ([`Controller`]), this node's member
//! of the quorum and a quorum of one as a single node runs it
//! ([`member`]), the voter list ([`voters`]), the internal listener's frames
//! and TCP links ([`wire`], [`tcp`]), openraft's runtime
//! on a glommio executor ([`runtime`]), the durable Raft log and vote over
//! the log crate's storage ([`log_store`]), the metadata state machine and
//! its durable snapshots ([`state_machine`]), the messages between voters
//! and the seam to whatever carries them ([`network`]), and a seeded
//! simulated network for tests and the simulator ([`simulated`]).
//!
//! Invariants: an entry, a vote or a snapshot is acknowledged to openraft
//! only once it is durable (fdatasync'd, or renamed into place and its
//! directory synced); every voter applies the same commands in the same
//! order, so [`sluice_core::metadata::MetadataState`] is the same
//! everywhere at the same applied index.

pub mod log_store;
pub mod member;
pub mod network;
pub mod runtime;
pub mod simulated;
pub mod state_machine;
pub mod status;
pub mod tcp;
pub mod voters;
pub mod wire;

pub use openraft;
use serde::{Deserialize, Serialize};
use sluice_core::metadata::{MetadataCommand, MetadataError};

pub use log_store::RaftLogStore;
pub use network::{Network, PeerLink, RaftRequest, RaftResponse};
pub use state_machine::{Applier, MetadataMachine};

/// A voter's identity: its node id (Kafka's `node.id`).
pub type NodeId = u64;

/// Where a voter listens for other voters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Peer {
    /// `HOST:PORT` of its internal listener (`--rpc-addr`).
    pub rpc_addr: String,
}

/// What applying a committed command gave: nothing, or why it was refused
/// (the same refusal on every voter, as applying is deterministic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied(pub Result<(), MetadataError>);

openraft::declare_raft_types!(
    /// The controller quorum's types: metadata commands over sluice's
    /// runtime adapter.
    pub Controller:
        D = MetadataCommand,
        R = Applied,
        NodeId = NodeId,
        Node = Peer,
        AsyncRuntime = runtime::LocalRuntime,
);

/// A controller quorum member.
pub type Raft = openraft::Raft<Controller, MetadataMachine>;

/// Raft's log position of an entry.
pub type LogId = openraft::alias::LogIdOf<Controller>;
/// A persisted vote.
pub type Vote = openraft::alias::VoteOf<Controller>;
/// One Raft log entry.
pub type Entry = openraft::alias::EntryOf<Controller>;
/// Raft's view of the voters and learners, with the entry that set it.
pub type StoredMembership = openraft::alias::StoredMembershipOf<Controller>;
/// A snapshot's position and membership.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<Controller>;
/// A snapshot with its bytes.
pub type Snapshot = openraft::alias::SnapshotOf<Controller, Vec<u8>>;

/// Timing and snapshot policy of the quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// Leader heartbeat interval (ms).
    pub heartbeat_ms: u64,
    /// Election timeout range (ms); a follower that hears no leader for a
    /// random time in it stands for election.
    pub election_timeout_ms: (u64, u64),
    /// Commands between snapshots (`shard.metadata_snapshot_commands`).
    pub snapshot_commands: u64,
    /// The quorum is this voter alone: it arms no timers (no heartbeats
    /// to send, no election to time out; its owner elects it at start).
    pub alone: bool,
}

impl Default for QuorumConfig {
    fn default() -> Self {
        QuorumConfig {
            heartbeat_ms: 100,
            election_timeout_ms: (600, 1200),
            snapshot_commands: 1024,
            alone: false,
        }
    }
}

impl QuorumConfig {
    /// openraft's configuration for it.
    pub fn raft_config(&self) -> Result<openraft::Config, openraft::ConfigError> {
        openraft::Config {
            cluster_name: "sluice-controller".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_ms.0,
            election_timeout_max: self.election_timeout_ms.1,
            snapshot_policy: if self.snapshot_commands == 0 {
                openraft::SnapshotPolicy::Never
            } else {
                openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_commands)
            },
            // Keep no entries a snapshot covers: a lagging voter gets the
            // snapshot.
            max_in_snapshot_log_to_keep: 0,
            // Purge as soon as a snapshot covers anything: the log holds
            // one snapshot's worth of commands at most.
            purge_batch_size: 1,
            enable_tick: !self.alone,
            enable_heartbeat: !self.alone,
            enable_elect: !self.alone,
            ..Default::default()
        }
        .validate()
    }
}

/// A voter's current metrics: role, term, leader, commit and apply points.
pub fn metrics_of(raft: &Raft) -> openraft::RaftMetrics<Controller> {
    use openraft::async_runtime::WatchReceiver;
    raft.metrics().borrow_watched().clone()
}
