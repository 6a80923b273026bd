//! Messages between shards over the channel mesh, and the operations they
//! carry.
//!
//! Owns: the envelope ([`ShardMsg`]), the operations one shard asks of
//! another, each a type that names its answer's type ([`ShardOp`]), and the
//! two enums that carry them across cores ([`ShardRequest`],
//! [`ShardResponse`]). Everything here is `Send` (owned strings, `Bytes`):
//! the only things that cross cores. A request names its origin and a
//! correlation id; the answer goes back to the origin with the same id.
//!
//! Invariant: the enums, [`ShardOp`] for every operation and the shard's
//! dispatch are generated from one list ([`shard_ops!`]), so an operation's
//! answer always comes back in its own variant: a caller gets
//! `Op::Response`, never a "wrong variant" to invent an error for. A
//! request that touches several partitions of one owner is one message
//! (Produce, AwaitDurable, Fetch, ListOffsets, Watch carry lists).

use bytes::{Bytes, BytesMut};
use sluice_core::group::coordinator::{GroupDescription, GroupListing};
use sluice_core::group::records::CommittedOffset;
use sluice_core::group::{consumer, share};
use sluice_core::group::{JoinRequest, JoinResponse, SyncRequest, SyncResponse};
use sluice_core::metadata::{BrokerId, BrokerRegistration, MetadataCommand, MetadataState};
use sluice_core::txn::coordinator::TxnMetadata;
use sluice_core::txn::marker::Marker;
use sluice_core::txn::partition::AbortedTxn;
use sluice_core::{ErrorCode, Offset, PartitionId};
use sluice_log::partition::ActiveProducer;
use sluice_log::SourceBuffer;
pub use sluice_quorum::status::QuorumStatus;

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

/// An operation one shard asks of another, and the type of its answer.
pub trait ShardOp: Into<ShardRequest> {
    type Response;
    /// The answer, out of the envelope it crossed the mesh in.
    fn answer(response: ShardResponse) -> Self::Response;
}

/// Generates [`ShardRequest`], [`ShardResponse`], [`ShardOp`] for each
/// operation, and `Shard::run`, which runs a request with the shard method
/// the list names and wraps its answer in the same variant.
macro_rules! shard_ops {
    ($($(#[$doc:meta])* $name:ident => $method:ident -> $response:ty,)+) => {
        /// Work one shard asks of another: one variant per operation.
        #[derive(Debug, Clone)]
        pub enum ShardRequest {
            $($(#[$doc])* $name($name),)+
        }

        /// Answers to [`ShardRequest`]s, in the variant of their request.
        #[derive(Debug, Clone)]
        pub enum ShardResponse {
            $($name($response),)+
        }

        $(
            impl From<$name> for ShardRequest {
                fn from(op: $name) -> ShardRequest {
                    ShardRequest::$name(op)
                }
            }

            impl ShardOp for $name {
                type Response = $response;
                fn answer(response: ShardResponse) -> $response {
                    match response {
                        ShardResponse::$name(answer) => answer,
                        // `Shard::run` answers every request in its own
                        // variant; anything else is a broken invariant.
                        #[allow(unreachable_patterns)]
                        other => unreachable!(
                            "a {} answered with {other:?}",
                            stringify!($name)
                        ),
                    }
                }
            }
        )+

        impl crate::shard::Shard {
            /// Runs `request` on this shard (its owner): the one dispatch,
            /// generated with the enums.
            pub(crate) async fn run(
                self: std::rc::Rc<Self>,
                request: ShardRequest,
            ) -> ShardResponse {
                match request {
                    $(ShardRequest::$name(op) => ShardResponse::$name(self.$method(op).await),)+
                }
            }
        }
    };
}

shard_ops! {
    /// Append partitions' batches (the owner checks and assigns offsets).
    Produce => produce_many -> Vec<ProduceResult>,
    /// Wait until partitions are durable (group commit).
    AwaitDurable => await_durable_many -> Vec<ErrorCode>,
    /// Read a Fetch's partitions this shard owns, within a byte budget.
    Fetch => fetch_many -> Vec<FetchResult>,
    /// Park a long poll on this shard's partitions.
    Watch => watch -> (),
    /// End a parked long poll.
    CancelWatch => cancel_watch -> (),
    /// ListOffsets for this shard's partitions.
    ListOffsets => list_offsets_many -> Vec<ListedOffset>,
    /// To shard 0, the controller: plan and commit a metadata change.
    Propose => propose -> Proposed,
    /// From the controller to every shard: apply a committed command.
    Apply => apply -> (),
    /// From the controller at start-up: the whole replayed metadata.
    InstallSnapshot => install_snapshot -> (),
    /// The shard's counters (for the admin endpoint's metrics).
    Stats => stats_op -> ShardStats,
    /// The shard's histograms and bytes per topic (for the same).
    Metrics => metrics_op -> crate::metrics::ShardMetrics,
    /// Work for a group coordinator of this shard.
    Group => group -> GroupResponse,
    /// ListGroups: every group this shard coordinates.
    ListGroups => list_groups -> GroupResponse,
    /// To shard 0: the controller quorum's status (None elsewhere).
    DescribeQuorum => describe_quorum -> Option<QuorumStatus>,
    /// OffsetForLeaderEpoch for partitions led here.
    EpochEndOffsets => epoch_end_offsets -> Vec<(ErrorCode, i32, Offset)>,
    /// DescribeLogDirs: the replicas this shard holds, with their sizes.
    LogDirs => log_dirs -> Vec<ReplicaLogDir>,
    /// DeleteRecords for partitions led here: each one's error and low
    /// watermark (its new log start offset).
    DeleteRecords => delete_records_many -> Vec<(ErrorCode, Offset)>,
    /// Transaction markers for partitions led here: one error each.
    WriteTxnMarkers => write_txn_markers -> Vec<ErrorCode>,
    /// Work for the transaction coordinator of this shard.
    Txn => txn -> TxnResponse,
    /// ListTransactions: every transactional id this shard coordinates.
    ListTransactions => list_transactions -> Vec<(String, TxnMetadata)>,
    /// DescribeProducers for partitions led here: each one's producers, or
    /// its error.
    DescribeProducers => describe_producers -> Vec<Result<Vec<ActiveProducer>, ErrorCode>>,
    /// ShareFetch and ShareAcknowledge for partitions led here: one result
    /// each.
    ShareRead => share_read -> Vec<ShareReadResult>,
    /// The share partitions of a group held here (DescribeShareGroupOffsets,
    /// `sluice group describe`).
    DescribeSharePartitions => describe_share_partitions -> Vec<SharePartitionState>,
    /// To the leader of `__share_group_state` partitions: the state stored
    /// there of each share partition of a group (DescribeShareGroupOffsets
    /// of share partitions no broker holds in memory).
    StoredSharePartitions => stored_share_partitions -> Result<Vec<StoredShareState>, ErrorCode>,
    /// A group was deleted: its share partitions here go.
    ForgetShareGroup => forget_share_group -> (),
    /// To the leader of a `__share_group_state` partition: write a share
    /// partition's state durably (Kafka's WriteShareGroupState).
    WriteShareState => write_share_state -> Result<(), ErrorCode>,
    /// To the leader of a `__share_group_state` partition: a share
    /// partition's latest state (Kafka's ReadShareGroupState).
    ReadShareState => read_share_state -> Result<Option<Bytes>, ErrorCode>,
    /// AlterShareGroupOffsets and DeleteShareGroupOffsets for a partition
    /// led here: whether the group had state for it, or the error.
    ResetSharePartition => reset_share_partition -> Result<bool, ErrorCode>,
    /// To the leader of a share group's dead-letter partition: the source
    /// offsets of the group's dead-letter records written there since a
    /// time (a restart's check before writing them again).
    FindDeadLetters => find_dead_letters -> Result<Vec<Offset>, ErrorCode>,
    /// To the leader of a share group's dead-letter partition: append
    /// dead-letter records, durable on every in-sync replica before the
    /// answer.
    AppendDeadLetters => append_dead_letters_here -> Result<(), ErrorCode>,
    /// To every other shard: what this one's connections used against
    /// client quotas since its last share, to count in the same windows.
    QuotaUsage => quota_usage -> (),
}

/// Usage measured against client quotas on one shard, by quota type and
/// sensor ([`sluice_core::quota_share`]).
#[derive(Debug, Clone)]
pub struct QuotaUsage {
    pub usage: Vec<sluice_core::quota_share::SharedUsage>,
}

/// Moves a share partition's start (`Some`: everything in flight is
/// forgotten, the records from there on are new) or deletes its state
/// (`None`), durably. Only for a group without members.
#[derive(Debug, Clone)]
pub struct ResetSharePartition {
    pub group_id: String,
    pub topic: String,
    pub topic_id: [u8; 16],
    pub partition: PartitionId,
    pub start: Option<Offset>,
}

/// Writes one `__share_group_state` record (a ShareSnapshot, or a
/// tombstone with no value) to `partition`, durable on every in-sync
/// replica before the answer.
#[derive(Debug, Clone)]
pub struct WriteShareState {
    pub partition: PartitionId,
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// Reads the value of the last record with `key` in `partition` of
/// `__share_group_state` (`None`: none, or a tombstone).
#[derive(Debug, Clone)]
pub struct ReadShareState {
    pub partition: PartitionId,
    pub key: Bytes,
}

/// Finds which records of `source_topic` [`source_partition`] group
/// `group_id` wrote to dead-letter partition `topic` [`partition`] at or
/// after `since_ms` (KIP-1191): their source offsets.
#[derive(Debug, Clone)]
pub struct FindDeadLetters {
    pub topic: String,
    pub partition: PartitionId,
    pub since_ms: i64,
    pub group_id: String,
    pub source_topic: String,
    pub source_partition: PartitionId,
}

/// Appends a batch of dead-letter records to `topic` [`partition`]
/// (KIP-1191) and makes it durable.
#[derive(Debug, Clone)]
pub struct AppendDeadLetters {
    pub topic: String,
    pub partition: PartitionId,
    pub records: BytesMut,
}

/// Forget the share partitions of `group_id` (DeleteGroups).
#[derive(Debug, Clone)]
pub struct ForgetShareGroup {
    pub group_id: String,
}

/// The share partitions of `group_id` this shard holds.
#[derive(Debug, Clone)]
pub struct DescribeSharePartitions {
    pub group_id: String,
}

/// The share partitions of `group_id` whose state is stored on the
/// `__share_group_state` partitions this shard leads.
#[derive(Debug, Clone)]
pub struct StoredSharePartitions {
    pub group_id: String,
}

/// A share partition's stored state, as the last snapshot written says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredShareState {
    pub topic_id: [u8; 16],
    pub partition: PartitionId,
    /// The share-partition start offset (SPSO).
    pub start_offset: Offset,
    /// Records from the start on that the snapshot names not yet done
    /// (acquired ones are stored as available).
    pub in_flight: usize,
    /// Records from the start on that are done with (Kafka's delivery
    /// complete count; the lag is the high watermark less the start and
    /// these).
    pub done: usize,
}

/// Where one share partition stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartitionState {
    pub topic_id: [u8; 16],
    pub partition: PartitionId,
    /// The share-partition start offset (SPSO).
    pub start_offset: Offset,
    /// The share-partition end offset (SPEO).
    pub end_offset: Offset,
    /// Records between them not yet done (available or acquired).
    pub in_flight: usize,
    /// Of those, acquired by a member now.
    pub acquired: usize,
    /// Records still to be done with: the high watermark less the start
    /// and the records done between the start and the end.
    pub lag: i64,
}

/// A share group member's acknowledgements and fetch for partitions led
/// here (KIP-932): acknowledgements are applied first, then (`acquire`)
/// records are acquired for the member and read.
#[derive(Debug, Clone)]
pub struct ShareRead {
    pub group_id: String,
    pub member_id: String,
    pub partitions: Vec<SharePartitionRead>,
    /// ShareFetch: acquire and return records; ShareAcknowledge: only
    /// acknowledge.
    pub acquire: bool,
    /// Records to acquire at most, over all the partitions.
    pub max_records: usize,
    /// Bytes to return at most, over all the partitions (beyond one batch
    /// when nothing else is returned).
    pub max_bytes: usize,
    /// The member's share session ended: what it still holds goes back
    /// for delivery, after its acknowledgements.
    pub release: bool,
    pub settings: ShareSettings,
    /// Acquire at most `max_records` (ShareFetch v2's record_limit mode),
    /// not whole log batches past it (batch_optimized).
    pub record_limit: bool,
}

/// One partition of a [`ShareRead`].
#[derive(Debug, Clone)]
pub struct SharePartitionRead {
    pub topic: String,
    /// The share partition's key with the group: a topic deleted and made
    /// again starts over.
    pub topic_id: [u8; 16],
    pub partition: PartitionId,
    pub max_bytes: usize,
    /// (first offset, last offset, acknowledge types): one type for the
    /// whole range, or one per offset.
    pub acks: Vec<(Offset, Offset, Vec<i8>)>,
    /// Records are acquired here (a ShareFetch's partition in its session,
    /// not one named only to acknowledge and forgotten).
    pub fetch: bool,
}

/// A share group's settings, as its configs and the broker's resolve them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSettings {
    pub partition: sluice_core::share::partition::ShareConfig,
    /// `share.auto.offset.reset`: where a share partition starts when the
    /// group first reads it.
    pub reset: sluice_core::group::configs::ShareReset,
    /// The group's dead-letter topic (KIP-1191), if it has one.
    pub dead_letter: Option<sluice_core::share::dead_letter::DeadLetter>,
    /// `share.isolation.level=read_committed`.
    pub read_committed: bool,
}

/// One partition's answer to a [`ShareRead`].
#[derive(Debug, Clone)]
pub struct ShareReadResult {
    pub error: ErrorCode,
    /// The acknowledgements' outcome (INVALID_RECORD_STATE when one named
    /// records the member does not hold).
    pub ack_error: ErrorCode,
    pub records: RecordSet,
    /// The offsets acquired for the member, in the batches of `records`.
    pub acquired: Vec<sluice_core::share::partition::Acquired>,
    /// The share-partition end offset: new records are those at or past it.
    pub end_offset: Offset,
    /// As many records are in flight as `max_record_locks` allows: new
    /// ones wait for some to be done.
    pub at_lock_limit: bool,
    /// When the partition's next acquisition lock expires, if one is held.
    pub next_deadline_ms: Option<i64>,
}

impl ShareReadResult {
    /// An answer carrying only `error`.
    pub fn failed(error: ErrorCode) -> ShareReadResult {
        ShareReadResult {
            error,
            ack_error: ErrorCode::None,
            records: RecordSet::default(),
            acquired: Vec::new(),
            end_offset: 0,
            at_lock_limit: false,
            next_deadline_ms: None,
        }
    }
}

/// Every transactional id a shard coordinates.
#[derive(Debug, Clone, Copy)]
pub struct ListTransactions;

/// DescribeProducers: (topic, partition) for partitions led here.
#[derive(Debug, Clone)]
pub struct DescribeProducers {
    pub partitions: Vec<(String, PartitionId)>,
}

/// Transaction markers to append: (topic, partition, marker), from the
/// transaction coordinator (Kafka's WriteTxnMarkers).
#[derive(Debug, Clone)]
pub struct WriteTxnMarkers {
    pub markers: Vec<(String, PartitionId, Marker)>,
}

/// Work for the coordinator of the transactional ids `partition` of
/// `__transaction_state` holds.
#[derive(Debug, Clone)]
pub struct Txn {
    pub partition: PartitionId,
    pub request: TxnRequest,
}

/// A transaction API request, version differences resolved by the handler.
#[derive(Debug, Clone)]
pub enum TxnRequest {
    /// `fresh`: a producer id allocated because the last answer was
    /// [`TxnResponse::NeedProducerId`].
    InitProducerId {
        transactional_id: String,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh: Option<i64>,
    },
    /// AddPartitionsToTxn and AddOffsetsToTxn; `verify_only` asks whether
    /// they are in the transaction already (KIP-890) and adds nothing.
    AddPartitions {
        transactional_id: String,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, PartitionId)>,
        verify_only: bool,
    },
    /// With `version2` (EndTxn v5) the epoch is bumped and the answer is
    /// [`TxnResponse::ProducerId`] (the id and epoch to go on with);
    /// `fresh`: a producer id allocated because the last answer was
    /// [`TxnResponse::NeedProducerId`] (the epoch is exhausted).
    EndTxn {
        transactional_id: String,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        version2: bool,
        fresh: Option<i64>,
    },
    /// DescribeTransactions for these ids.
    Describe { transactional_ids: Vec<String> },
}

/// Answers to [`TxnRequest`]s.
#[derive(Debug, Clone)]
pub enum TxnResponse {
    /// The request as a whole failed (or, for EndTxn, its outcome).
    Error(ErrorCode),
    /// InitProducerId needs a fresh producer id: allocate and ask again.
    NeedProducerId,
    ProducerId {
        producer_id: i64,
        epoch: i16,
    },
    /// One error per partition of an AddPartitions, in order.
    Partitions(Vec<ErrorCode>),
    /// Describe: (id, its state), ids not known left out.
    States(Vec<(String, TxnMetadata)>),
}

/// DeleteRecords for partitions this shard leads: per (topic, partition,
/// offset), the log start moves up to the offset (-1: the high watermark).
#[derive(Debug, Clone)]
pub struct DeleteRecords {
    pub partitions: Vec<(String, PartitionId, Offset)>,
    /// How long to wait for the followers to move their log starts too.
    pub timeout_ms: u64,
}

/// Lists the replicas a shard holds (DescribeLogDirs).
#[derive(Debug, Clone)]
pub struct LogDirs;

/// One replica a shard holds, as DescribeLogDirs reports it.
#[derive(Debug, Clone)]
pub struct ReplicaLogDir {
    pub topic: String,
    pub partition: PartitionId,
    /// Bytes of its segments.
    pub size: u64,
    /// How far its log end is behind its high watermark (Kafka's offset
    /// lag; 0 once caught up).
    pub offset_lag: i64,
}

impl ShardRequest {
    /// A long poll's watch or its cancellation: bounded by connections, not
    /// by the mesh's task limit.
    pub fn is_long_poll(&self) -> bool {
        matches!(self, ShardRequest::Watch(_) | ShardRequest::CancelWatch(_))
    }
}

/// One partition's batches of a [`Produce`].
#[derive(Debug, Clone)]
pub struct PartitionAppend {
    pub topic: String,
    pub partition: PartitionId,
    /// Writable: the log assigns offsets in the batch headers in place.
    pub records: BytesMut,
    /// The request frame `records` were cut from (which they keep alive),
    /// when they were: the log's cache and write buffer count it.
    pub source: Option<SourceBuffer>,
}

/// Appends the batches of several partitions this shard owns, in order.
/// Answers once they are appended, one [`ProduceResult`] per partition:
/// when a result's `durable_at` is set, the producer must not be
/// acknowledged before an [`AwaitDurable`] for it succeeds
/// (`log.flush=always`).
#[derive(Debug, Clone)]
pub struct Produce {
    pub acks: i16,
    /// The request's transactional id: a transactional batch is refused
    /// without one, and its producer's first one in a partition is
    /// verified with this id's coordinator first (KIP-890).
    pub transactional_id: Option<String>,
    /// Transaction version 2 (Produce v12+, KIP-890 part 2): that first
    /// write adds its partition to the transaction instead of being
    /// verified only.
    pub adds_partitions: bool,
    pub appends: Vec<PartitionAppend>,
}

/// Answers once every offset below each partition's offset is durable
/// (fdatasync'd), flushing the partitions that are not yet, all at once:
/// group commit, so one sync serves every append waiting for it. One
/// error per partition (NONE, or why its sync failed).
///
/// With acks=all on a replicated partition the wait is for the high
/// watermark instead: every in-sync replica holds the records (each made
/// them durable under `log.flush=always`); the answer is then
/// NOT_LEADER_OR_FOLLOWER when leadership moved, NOT_ENOUGH_REPLICAS_AFTER_APPEND
/// when the in-sync set fell below `min.insync.replicas`, or
/// REQUEST_TIMED_OUT after `timeout_ms`.
#[derive(Debug, Clone)]
pub struct AwaitDurable {
    /// (topic, partition, offset, leader epoch of the append).
    pub partitions: Vec<(String, PartitionId, Offset, i32)>,
    pub acks: i16,
    pub timeout_ms: u64,
}

/// OffsetForLeaderEpoch: per (topic, partition, current leader epoch,
/// epoch asked about), the error, the epoch and its end offset.
#[derive(Debug, Clone)]
pub struct EpochEndOffsets {
    pub partitions: Vec<(String, PartitionId, i32, i32)>,
}

/// Reads the partitions of one Fetch that this shard owns, in the request's
/// order, within `max_bytes` for all of them together (and each
/// partition's own limit). When `have_data` is false (nothing was read for
/// this Fetch yet) the first partition with data may return one batch
/// larger than the limit, as Kafka does; otherwise a batch that does not
/// fit is left for the next Fetch. One result per read.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub reads: Vec<PartitionRead>,
    pub max_bytes: usize,
    pub have_data: bool,
}

/// Long polling: answers once any of `partitions`' high watermark passes
/// its offset, after `max_wait_ms`, or when a [`CancelWatch`] with the same
/// `watch` id arrives, whichever comes first. One per owner shard per
/// waiting Fetch; the owner forgets it when it answers.
#[derive(Debug, Clone)]
pub struct Watch {
    pub watch: u64,
    pub partitions: Vec<(String, PartitionId, Offset)>,
    pub max_wait_ms: u64,
    /// A follower's fetch: waits for the log end, not the high watermark.
    pub replica: bool,
    /// A read_committed consumer's: waits for the last stable offset.
    pub read_committed: bool,
}

/// Ends the [`Watch`] with this id now, if it still waits.
#[derive(Debug, Clone, Copy)]
pub struct CancelWatch {
    pub watch: u64,
}

/// ListOffsets for partitions this shard owns: per (topic, partition,
/// timestamp), -1 latest, -2 earliest, -3 max timestamp, otherwise the
/// first offset at or after the timestamp.
#[derive(Debug, Clone)]
pub struct ListOffsets {
    pub partitions: Vec<(String, PartitionId, i64)>,
    /// read_committed: latest is the last stable offset, and a timestamp
    /// finds only offsets below it.
    pub read_committed: bool,
}

/// One partition's answer to a [`ListOffsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub error: ErrorCode,
    pub offset: Offset,
    pub timestamp: i64,
}

/// A metadata change for the controller to plan and commit.
#[derive(Debug, Clone)]
pub struct Propose(pub Proposal);

/// The result of a proposal: for AllocateProducerId the first id, else 0;
/// or the error and its message.
pub type Proposed = Result<i64, (ErrorCode, String)>;

/// A committed metadata command for every shard to apply.
#[derive(Debug, Clone)]
pub struct Apply(pub MetadataCommand);

/// The controller's replayed metadata, installed at start-up.
#[derive(Debug, Clone)]
pub struct InstallSnapshot(pub Box<MetadataState>);

/// Asks shard 0 how the controller quorum stands.
#[derive(Debug, Clone, Copy)]
pub struct DescribeQuorum;

/// Asks for the shard's counters.
#[derive(Debug, Clone, Copy)]
pub struct Stats;

/// Asks for the shard's histograms and bytes per topic.
#[derive(Debug, Clone, Copy)]
pub struct Metrics;

/// Work for the coordinator of the groups that `partition` of
/// `__consumer_offsets` holds (the shard that owns that partition).
#[derive(Debug, Clone)]
pub struct Group {
    pub partition: PartitionId,
    pub request: GroupRequest,
}

/// Every group this shard coordinates.
#[derive(Debug, Clone, Copy)]
pub struct ListGroups;

/// A group API request, version differences resolved by the handler.
#[derive(Debug, Clone)]
pub enum GroupRequest {
    /// KIP-848's ConsumerGroupHeartbeat.
    ConsumerHeartbeat(consumer::HeartbeatRequest),
    /// KIP-932's ShareGroupHeartbeat.
    ShareHeartbeat(share::ShareHeartbeatRequest),
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
    /// `None`: every partition the group committed. `require_stable`
    /// (OffsetFetch v7+): a partition with an offset committed in an open
    /// transaction answers UNSTABLE_OFFSET_COMMIT. `member_id` and
    /// `member_epoch` (OffsetFetch v9+; `None` and -1 before): a KIP-848
    /// member asking is checked as its commits are, at its epoch.
    FetchOffsets {
        group_id: String,
        partitions: Option<Vec<(String, PartitionId)>>,
        require_stable: bool,
        member_id: Option<String>,
        member_epoch: i32,
    },
    /// TxnOffsetCommit: offsets committed in `producer_id`'s transaction;
    /// answered like [`GroupRequest::Commit`].
    TxnCommit {
        group_id: String,
        /// Verified with its coordinator before the offsets are written
        /// (KIP-890): the group's partition must be in the transaction.
        transactional_id: String,
        producer_id: i64,
        epoch: i16,
        /// Transaction version 2 (v5+): the group's partition joins the
        /// transaction here (no AddOffsetsToTxn came first).
        adds_partition: bool,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        /// What a member's commit to an unknown group gets (by version).
        unknown_group_error: ErrorCode,
        offsets: Vec<(String, PartitionId, CommittedOffset, ErrorCode)>,
    },
    Describe {
        group_id: String,
    },
    /// KIP-848's ConsumerGroupDescribe.
    DescribeConsumerGroup {
        group_id: String,
    },
    /// KIP-932's ShareGroupDescribe.
    DescribeShareGroup {
        group_id: String,
    },
    /// AlterShareGroupOffsets' and DeleteShareGroupOffsets' check that the
    /// share group is empty (`create`: made empty if it does not exist).
    ShareOffsetsCheck {
        group_id: String,
        create: bool,
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
    ShareHeartbeat(share::ShareHeartbeatResponse),
    Join(JoinResponse),
    Sync(SyncResponse),
    /// Heartbeat, Delete, or any request refused as a whole.
    Error(ErrorCode),
    /// One error per leaving member, or an error for the whole request.
    Leave(Result<Vec<ErrorCode>, ErrorCode>),
    /// One error per committed partition, in the request's order.
    Commit(Vec<ErrorCode>),
    /// (topic, partition, committed offset if any, or the partition's
    /// error).
    Offsets(Result<Vec<OffsetRow>, ErrorCode>),
    Described(GroupDescription),
    ConsumerGroupDescribed(Result<consumer::ConsumerGroupDescription, (ErrorCode, String)>),
    ShareGroupDescribed(Result<share::ShareGroupDescription, (ErrorCode, String)>),
    /// One error per partition, or an error for the whole request.
    DeleteOffsets(Result<Vec<ErrorCode>, ErrorCode>),
    Listed(Result<Vec<GroupListing>, ErrorCode>),
}

/// One partition of an OffsetFetch answer: (topic, partition, its
/// committed offset if any, or its error).
pub type OffsetRow = (
    String,
    PartitionId,
    Result<Option<CommittedOffset>, ErrorCode>,
);

/// A metadata change as a client asks for it; the controller turns it into
/// a [`MetadataCommand`] (placement, ids) against the authoritative state.
/// A broker that is not the controller forwards it to the controller over
/// the internal listener (as JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Proposal {
    CreateTopic {
        name: String,
        partitions: i32,
        /// -1: `default.replication.factor`.
        replication_factor: i16,
        /// Manual replica assignment (brokers of each partition), or empty
        /// for the controller's placement.
        assignments: Vec<Vec<BrokerId>>,
        configs: Vec<(String, String)>,
        validate_only: bool,
    },
    DeleteTopic {
        name: String,
    },
    /// New partitions get as many replicas as the topic's first one, or
    /// the manual assignment when one is given.
    CreatePartitions {
        name: String,
        total: i32,
        assignments: Vec<Vec<BrokerId>>,
        validate_only: bool,
    },
    AllocateProducerId,
    /// A broker starting: recorded (again) and unfenced.
    RegisterBroker(BrokerRegistration),
    /// A registered broker is alive; answered STALE_BROKER_EPOCH when the
    /// controller knows no such incarnation (the broker registers again).
    BrokerHeartbeat {
        id: BrokerId,
        incarnation: [u8; 16],
    },
    /// A broker is stopping (controlled shutdown): it is fenced now rather
    /// than after its session times out.
    ShutdownBroker {
        id: BrokerId,
        incarnation: [u8; 16],
    },
    /// Preferred-leader election (Kafka's ElectLeaders): of `partitions`,
    /// or of every partition when `None`; answered with how many moved.
    ElectLeaders {
        partitions: Option<Vec<(String, PartitionId)>>,
    },
    /// Partitions move to the named brokers, or (`None`) a move in progress
    /// is cancelled (Kafka's AlterPartitionReassignments); answered with
    /// how many started.
    ReassignPartitions {
        partitions: Vec<(String, PartitionId, Option<Vec<BrokerId>>)>,
    },
    /// A topic's or a broker's configs change (Kafka's
    /// IncrementalAlterConfigs); the operations are checked by the caller
    /// and resolved against the controller's state.
    AlterConfigs {
        resource: sluice_core::metadata::dynamic_config::ConfigResource,
        changes: Vec<sluice_core::metadata::dynamic_config::ConfigChange>,
    },
    /// Client quotas change (Kafka's AlterClientQuotas): each entity's
    /// changes, checked by the caller, resolved against the controller's
    /// state.
    AlterClientQuotas {
        changes: Vec<(
            sluice_core::quota::QuotaEntity,
            Vec<sluice_core::quota::QuotaChange>,
        )>,
    },
    /// Unclean election of the named leaderless partitions (ElectLeaders'
    /// unclean type); answered with how many were named.
    UncleanElect {
        partitions: Vec<(String, PartitionId)>,
    },
    /// A partition's leader asks to change its in-sync set (Kafka's
    /// AlterPartition).
    AlterPartition {
        topic: String,
        partition: PartitionId,
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<BrokerId>,
    },
}

/// Per-partition result of a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceResult {
    pub error: ErrorCode,
    pub base_offset: Offset,
    pub log_start_offset: Offset,
    /// The log end after this append, when the acknowledgement must wait
    /// until it is durable (`log.flush=always` and acks != 0) or
    /// replicated (acks=all with followers in sync).
    pub durable_at: Option<Offset>,
    /// The leader epoch the records were appended in.
    pub leader_epoch: i32,
    /// The broker's time stamped on the records (LogAppendTime), else -1.
    pub log_append_time_ms: i64,
}

/// One partition of a [`ShardRequest::Fetch`].
#[derive(Debug, Clone)]
pub struct PartitionRead {
    pub topic: String,
    pub partition: PartitionId,
    pub offset: Offset,
    /// The partition's own limit (`partition_max_bytes`).
    pub max_bytes: usize,
    /// The fetching follower's broker id, or -1 for a consumer.
    pub replica_id: i32,
    /// The fetching follower's log start offset (Fetch v5+), or -1.
    pub log_start_offset: Offset,
    /// The leader epoch the fetcher knows, or -1.
    pub current_leader_epoch: i32,
    /// A read_committed consumer's read: up to the last stable offset, and
    /// told of the aborted transactions it overlaps.
    pub read_committed: bool,
}

/// Per-partition result of a fetch.
#[derive(Debug, Clone)]
pub struct FetchResult {
    pub error: ErrorCode,
    pub high_watermark: Offset,
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
    pub records: RecordSet,
    /// For a read_committed read: the aborted transactions it overlaps.
    pub aborted: Vec<AbortedTxn>,
}

/// A partition's fetched batches as the log holds them: whole batches in
/// pieces (batch-cache entries, disk reads), never joined, so a response
/// can send them without copying.
#[derive(Debug, Clone, Default)]
pub struct RecordSet {
    pieces: Vec<Bytes>,
    len: usize,
}

impl RecordSet {
    pub fn new(pieces: Vec<Bytes>) -> RecordSet {
        let len = pieces.iter().map(Bytes::len).sum();
        RecordSet { pieces, len }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    pub fn into_pieces(self) -> Vec<Bytes> {
        self.pieces
    }

    /// The batches in one buffer: a copy unless in one piece.
    pub fn to_bytes(&self) -> Bytes {
        match &self.pieces[..] {
            [one] => one.clone(),
            pieces => Bytes::from(pieces.concat()),
        }
    }
}

impl FetchResult {
    /// A partition's answer carrying only `error`: no offsets, no records.
    pub fn failed(error: ErrorCode) -> FetchResult {
        FetchResult {
            error,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: RecordSet::default(),
            aborted: Vec::new(),
        }
    }
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
    /// Aborted transactions held in memory: those whose markers are in
    /// their partition's active segment (sealed segments' are on disk).
    pub txn_aborted_in_memory: u64,
    /// Long polls parked on this shard's partitions (for Fetches of any shard).
    pub parked_watches: u64,
    /// Calls this shard made to others and is still waiting for.
    pub calls_in_flight: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    pub connections_throttled: u64,
    pub accept_failures: u64,
    pub connections_timed_out: u64,
    pub requests: u64,
    pub bad_requests: u64,
    pub cleaner_passes: u64,
    pub cleaner_bytes_removed: u64,
    pub throttled_requests: u64,
    pub throttle_time_ms: u64,
    /// Client quota measurements never shared with the other shards: more
    /// users and client ids at once than a share holds.
    pub quota_usage_unshared: u64,
    /// Record bytes copied on the produce path before the log's write buffer.
    pub produce_record_bytes_copied: u64,
    /// Record bytes copied in user space on the fetch path.
    pub fetch_record_bytes_copied: u64,
    /// Transactional first writes verified with their coordinator, and
    /// the ones refused.
    pub txn_verifications: u64,
    pub txn_verification_failures: u64,
    /// Share groups' dead-letter records written, and records archived
    /// without theirs.
    pub share_dead_letters: u64,
    pub share_dead_letter_failures: u64,
    /// Share partitions held in memory (at most `shard.share_partitions_max`
    /// when a new one comes).
    pub share_partitions: u64,
    /// Partitions this shard leads.
    pub leader_partitions: u64,
    /// Of those, the ones whose in-sync set lacks a replica.
    pub under_replicated_partitions: u64,
    /// Bytes the batch cache may hold (`shard.batch_cache_bytes`).
    pub batch_cache_budget_bytes: u64,
    /// Bytes of requests read and not yet answered, and the budget they
    /// are held to (`kafka.queued_max_request_bytes`; 0 before the
    /// listener runs).
    pub request_bytes_queued: u64,
    pub request_budget_bytes: u64,
    pub appends: u64,
    pub flushes: u64,
    pub flush_syncs: u64,
    /// Rolls whose new segment reused a spare file (`log.recycle_segments`).
    pub segments_recycled: u64,
    pub batch_cache_bytes: u64,
    pub batch_cache_hits: u64,
    pub batch_cache_misses: u64,
    /// Bytes held or in flight in reads started ahead of consumers, and
    /// their limit (`shard.read_ahead_bytes`).
    pub read_ahead_bytes: u64,
    pub read_ahead_budget_bytes: u64,
    /// Reads started ahead, read-aheads made of what a read left over (kept
    /// for the next), and the read-aheads of either kind a Fetch then used.
    pub read_ahead_started: u64,
    pub read_ahead_kept: u64,
    pub read_ahead_used: u64,
}
