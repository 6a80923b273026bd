//! Messages between shards over the channel mesh.
//!
//! Owns: the request and response types one shard sends another. They are
//! `Send` values (owned strings, `Bytes`): the only things that cross cores.
//! A request names its origin and a correlation id; the answer goes back to
//! the origin with the same id.

use bytes::Bytes;
use sluice_core::group::consumer;
use sluice_core::group::coordinator::{GroupDescription, GroupListing};
use sluice_core::group::records::CommittedOffset;
use sluice_core::group::{JoinRequest, JoinResponse, SyncRequest, SyncResponse};
use sluice_core::metadata::{MetadataCommand, MetadataState};
use sluice_core::{ErrorCode, Offset, PartitionId};

/// What travels on the mesh.
#[derive(Debug)]
pub enum ShardMsg {
    Request {
        from: u32,
        id: u64,
        request: ShardRequest,
    },
    Response {
        id: u64,
        response: ShardResponse,
    },
}

/// Work one shard asks of another.
#[derive(Debug, Clone)]
pub enum ShardRequest {
    /// Append one partition's batches (the owner checks and assigns
    /// offsets). Answers once they are appended: when the answer's
    /// `durable_at` is set, the producer must not be acknowledged before an
    /// [`ShardRequest::AwaitDurable`] for it succeeds (`log.flush=always`).
    Produce {
        topic: String,
        partition: PartitionId,
        records: Bytes,
        acks: i16,
    },
    /// Answer once every offset below `offset` is durable (fdatasync'd),
    /// flushing the partition if it is not yet: group commit, so one sync
    /// serves every append waiting for it.
    AwaitDurable {
        topic: String,
        partition: PartitionId,
        offset: Offset,
    },
    /// Read the partitions of one Fetch that this shard owns, in the
    /// request's order, within `max_bytes` for all of them together (and
    /// each partition's own limit). When `have_data` is false (nothing was
    /// read for this Fetch yet) the first partition with data may return
    /// one batch larger than the limit, as Kafka does; otherwise a batch
    /// that does not fit is left for the next Fetch. One message per owner
    /// shard, whatever the number of partitions.
    Fetch {
        reads: Vec<PartitionRead>,
        max_bytes: usize,
        have_data: bool,
    },
    /// Long polling: answer once any of `partitions`' high watermark passes
    /// its offset, after `max_wait_ms`, or when a [`ShardRequest::CancelWatch`]
    /// with the same `watch` id arrives, whichever comes first. One per owner
    /// shard per waiting Fetch; the owner forgets it when it answers.
    Watch {
        watch: u64,
        partitions: Vec<(String, PartitionId, Offset)>,
        max_wait_ms: u64,
    },
    /// Ends the [`ShardRequest::Watch`] with this id now, if it still waits.
    CancelWatch { watch: u64 },
    /// ListOffsets for one partition: -1 latest, -2 earliest, -3 max
    /// timestamp, otherwise the first offset at or after the timestamp.
    ListOffsets {
        topic: String,
        partition: PartitionId,
        timestamp: i64,
    },
    /// To shard 0, the controller: plan and commit a metadata change.
    Propose(Proposal),
    /// From the controller to every shard: apply a committed command.
    Apply(MetadataCommand),
    /// From the controller at start-up: the whole replayed metadata.
    Snapshot(Box<MetadataState>),
    /// The shard's counters (for the admin endpoint's metrics).
    Stats,
    /// Work for the coordinator of the groups that `partition` of
    /// `__consumer_offsets` holds (the shard that owns that partition).
    Group {
        partition: PartitionId,
        request: GroupRequest,
    },
    /// ListGroups: every group this shard coordinates.
    ListGroups,
}

impl ShardRequest {
    /// A long poll's watch or its cancellation: bounded by connections, not
    /// by the mesh's task limit.
    pub fn is_long_poll(&self) -> bool {
        matches!(
            self,
            ShardRequest::Watch { .. } | ShardRequest::CancelWatch { .. }
        )
    }
}

/// A group API request, version differences resolved by the handler.
#[derive(Debug, Clone)]
pub enum GroupRequest {
    /// KIP-848's ConsumerGroupHeartbeat.
    ConsumerHeartbeat(consumer::HeartbeatRequest),
    Join(JoinRequest),
    Sync(SyncRequest),
    Heartbeat {
        group_id: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
    },
    /// (member id, instance id) per leaving member.
    Leave {
        group_id: String,
        members: Vec<(String, Option<String>)>,
    },
    Commit {
        group_id: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        /// What a member's commit to an unknown group gets (by version).
        unknown_group_error: ErrorCode,
        /// (topic, partition, offset); an error already decided by the
        /// handler (unknown topic, metadata too large) rides along.
        offsets: Vec<(String, PartitionId, CommittedOffset, ErrorCode)>,
    },
    /// `None`: every partition the group committed.
    FetchOffsets {
        group_id: String,
        partitions: Option<Vec<(String, PartitionId)>>,
    },
    Describe {
        group_id: String,
    },
    Delete {
        group_id: String,
    },
    DeleteOffsets {
        group_id: String,
        partitions: Vec<(String, PartitionId)>,
    },
}

/// Answers to [`GroupRequest`]s.
#[derive(Debug, Clone)]
pub enum GroupResponse {
    ConsumerHeartbeat(consumer::HeartbeatResponse),
    Join(JoinResponse),
    Sync(SyncResponse),
    /// Heartbeat, Delete, or any request refused as a whole.
    Error(ErrorCode),
    /// One error per leaving member, or an error for the whole request.
    Leave(Result<Vec<ErrorCode>, ErrorCode>),
    /// One error per committed partition, in the request's order.
    Commit(Vec<ErrorCode>),
    /// (topic, partition, committed offset if any).
    Offsets(Result<Vec<(String, PartitionId, Option<CommittedOffset>)>, ErrorCode>),
    Described(GroupDescription),
    /// One error per partition, or an error for the whole request.
    DeleteOffsets(Result<Vec<ErrorCode>, ErrorCode>),
    Listed(Result<Vec<GroupListing>, ErrorCode>),
}

/// A metadata change as a client asks for it; the controller turns it into
/// a [`MetadataCommand`] (placement, ids) against the authoritative state.
#[derive(Debug, Clone)]
pub enum Proposal {
    CreateTopic {
        name: String,
        partitions: i32,
        configs: Vec<(String, String)>,
        validate_only: bool,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        total: i32,
        validate_only: bool,
    },
    AllocateProducerId,
}

/// Per-partition result of a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceResult {
    pub error: ErrorCode,
    pub base_offset: Offset,
    pub log_start_offset: Offset,
    /// The log end after this append, when the acknowledgement must wait
    /// until it is durable (`log.flush=always` and acks != 0).
    pub durable_at: Option<Offset>,
}

/// One partition of a [`ShardRequest::Fetch`].
#[derive(Debug, Clone)]
pub struct PartitionRead {
    pub topic: String,
    pub partition: PartitionId,
    pub offset: Offset,
    /// The partition's own limit (`partition_max_bytes`).
    pub max_bytes: usize,
}

/// Per-partition result of a fetch.
#[derive(Debug, Clone)]
pub struct FetchResult {
    pub error: ErrorCode,
    pub high_watermark: Offset,
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
    pub records: Bytes,
}

impl FetchResult {
    /// A partition's answer carrying only `error`: no offsets, no records.
    pub fn failed(error: ErrorCode) -> FetchResult {
        FetchResult {
            error,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Bytes::new(),
        }
    }
}

/// Answers to [`ShardRequest`]s, in the same order of variants.
#[derive(Debug, Clone)]
pub enum ShardResponse {
    Produce(ProduceResult),
    /// The answer to AwaitDurable: NONE, or why the sync failed.
    Durable(ErrorCode),
    /// One result per [`PartitionRead`], in the same order.
    Fetched(Vec<FetchResult>),
    Watched,
    ListOffsets {
        error: ErrorCode,
        offset: Offset,
        timestamp: i64,
    },
    /// The result of a proposal: the committed command's effect (for
    /// AllocateProducerId, the first id in `value`).
    Proposed {
        result: Result<(), (ErrorCode, String)>,
        value: i64,
    },
    Applied,
    Stats(ShardStats),
    Group(GroupResponse),
}

/// A shard's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub shard: u32,
    pub partitions: u64,
    /// Partitions that failed to open or went offline after a storage error.
    pub offline_partitions: u64,
    /// Partitions refusing produce because their disk is full.
    pub storage_full_partitions: u64,
    /// Long polls parked on this shard's partitions (for Fetches of any shard).
    pub parked_watches: u64,
    /// Calls this shard made to others and is still waiting for.
    pub calls_in_flight: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    pub connections_timed_out: u64,
    pub requests: u64,
    pub bad_requests: u64,
    pub appends: u64,
    pub flushes: u64,
    pub flush_syncs: u64,
    pub batch_cache_bytes: u64,
    pub batch_cache_hits: u64,
    pub batch_cache_misses: u64,
}
