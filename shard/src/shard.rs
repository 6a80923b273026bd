//! One shard: a pinned executor's partitions, metadata copy and mesh ends.
//!
//! Owns: the partitions this shard owns (their logs and long-poll signals),
//! its read-only copy of the metadata, routing of partition work to owner
//! shards over the channel mesh, and, on shard 0 (the controller), the
//! node's member of the controller quorum, whose Raft log every change is
//! committed to before it is applied.
//!
//! Invariants: a partition's log is opened only on the shard the metadata
//! gives this broker's replica and only touched from that shard's thread;
//! other shards reach it by message. That shard also runs the replica's
//! side of replication (`replication`, `replica_fetcher`). A
//! metadata command is applied everywhere only after the quorum committed
//! it (on one node: after it is durable in the node's Raft log).

use std::cell::{Cell, Ref, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::sync::Semaphore;
use sluice_core::config::{FlushPolicy, NodeConfig};
use sluice_core::metadata::{MetadataCommand, MetadataState, ShardId};
use sluice_core::{ErrorCode, Offset, PartitionId};
use sluice_log::{BatchCache, LogError};

use crate::env::Env;
use crate::group::{GroupHome, OFFSETS_TOPIC};
use crate::message::{
    self, FetchResult, GroupResponse, ProduceResult, ShardMsg, ShardOp, ShardRequest,
    ShardResponse, ShardStats,
};
use crate::metrics::ShardMetrics;
use crate::notify::Notify;
use crate::runtime::MESH_TASKS_MAX;
use crate::store::{Disk, PartitionStore};
use crate::transport::Transport;
use crate::txn::{TxnHome, TRANSACTION_STATE_TOPIC};
use sluice_core::group::topics::{TopicCatalog, TopicInfo};

mod brokers;
mod cleaner;
pub mod client_quotas;
mod controller;
mod dead_letter;
mod dead_letter_remote;
pub use controller::{controller_id, CONTROLLER_DIR, LEGACY_METADATA_DIR};
mod fetch;
mod partitions;
mod replica_fetcher;
pub mod replication;
mod share;
mod share_state_remote;
mod txn_markers;
mod txn_verify;
pub(crate) use txn_markers::settle_coordinator_write;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Counters the listener of this shard keeps (one thread: plain cells).
#[derive(Debug, Default)]
pub struct ShardCounters {
    pub connections_accepted: Cell<u64>,
    /// Connections accepted and closed at once by a connection limit.
    pub connections_refused: Cell<u64>,
    /// Connections over their address's `connection_creation_rate`,
    /// closed after their throttle without being read.
    pub connections_throttled: Cell<u64>,
    /// Accepts that failed (out of descriptors, say); each is followed by
    /// a pause.
    pub accept_failures: Cell<u64>,
    /// Connections closed for idleness, a stalled request or response, or
    /// a request budget that stayed spent.
    pub connections_timed_out: Cell<u64>,
    pub requests: Cell<u64>,
    /// Connections closed for bad input (oversized or undecodable frames,
    /// unknown APIs or versions).
    pub bad_requests: Cell<u64>,
    /// Compaction passes the log cleaner completed.
    pub cleaner_passes: Cell<u64>,
    /// Bytes compaction passes removed from logs.
    pub cleaner_bytes_removed: Cell<u64>,
    /// Requests whose client went over a quota and was throttled.
    pub throttled_requests: Cell<u64>,
    /// Milliseconds of throttle those requests were given.
    pub throttle_time_ms: Cell<u64>,
    /// Record bytes a Produce copied before the log's write buffer: a
    /// partition's records that could not be cut out of the request frame.
    pub produce_record_bytes_copied: Cell<u64>,
    /// Record bytes a Fetch copied in user space: disk reads answered as
    /// shared bytes, record sets joined, responses encoded contiguously.
    pub fetch_record_bytes_copied: Cell<u64>,
    /// Transactional first writes verified with their coordinator
    /// (KIP-890), and of those the ones refused.
    pub txn_verifications: Cell<u64>,
    pub txn_verification_failures: Cell<u64>,
    /// Share groups' dead-letter records written (KIP-1191), and records
    /// archived without theirs (the topic failed its checks or the write
    /// failed).
    pub share_dead_letters: Cell<u64>,
    pub share_dead_letter_failures: Cell<u64>,
    /// What the logs of partitions removed from this shard (deleted,
    /// moved away) counted: the shard's totals add them, so its counters
    /// never go back when a topic goes.
    pub removed_logs: Cell<sluice_log::LogStats>,
}

impl ShardCounters {
    /// Adds one to `counter`.
    pub fn bump(counter: &Cell<u64>) {
        counter.set(counter.get() + 1);
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &Cell<u64>, n: u64) {
        counter.set(counter.get() + n);
    }
}

/// One partition this shard holds a replica of.
pub struct OwnedPartition {
    pub log: PartitionStore,
    /// Signalled whenever the high watermark moves, when a follower reports
    /// a new log start (DeleteRecords waits on the low watermark), and when
    /// the replica's role changes (waiters re-check who leads).
    pub hw_changed: Notify,
    /// Signalled at every append (followers' long polls wait on it).
    pub appended: Notify,
    flush: FlushPolicy,
    /// In-sync replicas an acks=all produce needs (`min.insync.replicas`).
    min_insync_replicas: Cell<usize>,
    /// Leader or follower, and what each knows (see [`replication`]).
    role: RefCell<replication::Role>,
    /// An in-sync set change is on its way to the controller.
    alter_pending: Cell<bool>,
    /// The shard's metrics (the sync latency histogram).
    metrics: Rc<RefCell<ShardMetrics>>,
}

impl OwnedPartition {
    /// Makes everything appended durable and wakes those waiting for the
    /// high watermark (under `log.flush = always` it moves with the sync).
    pub async fn flush(&self) -> sluice_log::LogResult<Offset> {
        let (started, syncs) = (std::time::Instant::now(), self.log.stats().flush_syncs);
        let durable = self.log.flush().await?;
        if self.log.stats().flush_syncs > syncs {
            self.metrics.borrow_mut().fsync.observe(started.elapsed());
        }
        self.hw_changed.notify_all();
        Ok(durable)
    }

    /// What this replica holds that counts towards the high watermark: under
    /// `log.flush = always` only durable batches, otherwise everything
    /// appended.
    pub fn local_end(&self) -> Offset {
        match self.flush {
            FlushPolicy::Always => self.log.durable_offset(),
            _ => self.log.log_end_offset(),
        }
    }

    /// The leader epoch this replica leads at, if it leads.
    pub(crate) fn leads_at(&self) -> Option<i32> {
        let role = self.role.borrow();
        role.is_leader().then(|| role.leader_epoch())
    }

    /// Waits (at most `timeout_ms`) until the high watermark reaches
    /// `offset` while this replica leads without a break since
    /// `leader_epoch`: every in-sync replica holds what is below it.
    /// NOT_LEADER_OR_FOLLOWER when leadership moves meanwhile,
    /// REQUEST_TIMED_OUT at the timeout.
    /// Cancel-safe: a dropped wait leaves nothing behind.
    pub(crate) async fn await_high_watermark(
        &self,
        offset: Offset,
        leader_epoch: i32,
        timeout_ms: u64,
        env: &dyn Env,
    ) -> ErrorCode {
        let deadline = env.monotonic_ms() + timeout_ms;
        loop {
            // Registered before the check: a move after it still wakes.
            let changed = self.hw_changed.changed();
            if !self.role.borrow().leads_since(leader_epoch) {
                return ErrorCode::NotLeaderOrFollower;
            }
            if self.high_watermark() >= offset {
                return ErrorCode::None;
            }
            let now = env.monotonic_ms();
            if now >= deadline {
                return ErrorCode::RequestTimedOut;
            }
            futures_lite::future::or(changed, env.sleep(Duration::from_millis(deadline - now)))
                .await;
        }
    }

    /// The offset consumers may read up to: on a leader, the least end of
    /// its in-sync replicas (its own counted as [`Self::local_end`]); on a
    /// follower, the leader's as last fetched, within its own log.
    pub fn high_watermark(&self) -> Offset {
        let local_end = self.local_end();
        self.role
            .borrow_mut()
            .high_watermark(local_end, self.log.log_end_offset())
    }
}

type PartitionKey = (String, PartitionId);

/// One owned partition's offsets at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub topic: String,
    pub partition: PartitionId,
    pub log_start_offset: Offset,
    pub high_watermark: Offset,
    pub log_end_offset: Offset,
    pub durable_offset: Offset,
    /// The partition's topic is under `log.flush=always`.
    pub flush_always: bool,
    /// The log went offline after a storage error.
    pub offline: bool,
}

/// A shard's state; shared by its tasks as `Rc<Shard>`.
pub struct Shard {
    pub id: ShardId,
    pub shards: u32,
    pub config: Rc<NodeConfig>,
    pub counters: ShardCounters,
    /// Latency histograms and bytes per topic ([`crate::metrics`]).
    pub metrics: Rc<RefCell<ShardMetrics>>,
    /// The Kafka listener's request byte budget
    /// (`kafka.queued_max_request_bytes`), once the listener runs: its
    /// use is reported in the stats.
    pub request_budget: RefCell<Option<Rc<glommio::sync::Semaphore>>>,
    metadata: RefCell<MetadataState>,
    partitions: RefCell<BTreeMap<PartitionKey, Rc<OwnedPartition>>>,
    /// Partitions this shard owns whose log could not be opened: clients
    /// get KAFKA_STORAGE_ERROR for them; the next start tries again.
    offline: RefCell<std::collections::HashSet<PartitionKey>>,
    cache: Rc<RefCell<BatchCache>>,
    env: Rc<dyn Env>,
    disk: Disk,
    transport: Transport,
    /// Requests from other shards running here at once (long polls apart):
    /// at most [`MESH_TASKS_MAX`]; past that receiving waits, the channels
    /// fill and senders wait (backpressure, not a growing task list).
    mesh_tasks: Rc<Semaphore>,
    /// Places for calls to other shards ([`CALLS_MAX`]).
    call_places: Semaphore,
    pending: RefCell<HashMap<u64, LocalSender<ShardResponse>>>,
    next_request_id: Cell<u64>,
    /// Long polls parked on this shard's partitions (for Fetches read on any
    /// shard, this one included), by watch id: the
    /// signal that cancels each. An entry lives only while its watch waits.
    watches: RefCell<HashMap<u64, Rc<Notify>>>,
    next_watch_id: Cell<u64>,
    /// Shard 0 only: the controller quorum member and the ids it hands out.
    controller: Option<Controller>,
    snapshot_installed: Cell<bool>,
    /// The group coordinator for the `__consumer_offsets` partitions here.
    pub groups: Rc<GroupHome>,
    /// The transaction coordinator for the `__transaction_state`
    /// partitions here.
    pub txns: Rc<TxnHome>,
    /// Client quota windows and the usage shared with the other shards.
    pub client_quotas: client_quotas::ClientQuotas,
    /// Brokers a replica fetcher of this shard fetches from.
    fetchers: RefCell<std::collections::HashSet<sluice_core::metadata::BrokerId>>,
    /// This shard's share of the broker's follower replication throttle,
    /// spent by every fetcher here on throttled replicas.
    follower_throttle: RefCell<sluice_core::replication::throttle::Throttle>,
    /// Share partitions of the partitions led here, by group
    /// ([`share`]).
    share_partitions: RefCell<HashMap<sluice_core::share::state::ShareKey, share::ShareEntry>>,
    /// On the leader of `__share_group_state` partitions: the leader epoch
    /// of the last state written here per key (at most
    /// `share_partitions_max`; cleared when full), to fence a stale
    /// writer, and the turn that makes its check and append one step.
    share_state_epochs: RefCell<HashMap<bytes::Bytes, i32>>,
    share_state_turn: glommio::sync::Semaphore,
    /// An idle connection to each broker this shard asks about share
    /// groups: it leads share state read or written here, or holds share
    /// partitions a describe lists (at most one per broker; a call takes
    /// it out, so a dropped call leaves nothing half-used behind).
    share_state_links:
        RefCell<HashMap<sluice_core::metadata::BrokerId, crate::kafka_link::KafkaLink>>,
}

struct Controller {
    /// This node's member of the controller quorum: its Raft, the metadata
    /// it applied, its id, whether it is alone, the leader it knows.
    member: sluice_quorum::member::Member,
    /// Calls to other nodes' internal listeners (forwarded proposals).
    link: sluice_quorum::tcp::TcpLink,
    /// Forwards applied commands to every shard once the node is up.
    applier: Rc<controller::ShardApplier>,
    /// One proposal at a time: plan, commit and apply everywhere before the
    /// next one is planned, so every shard applies the same sequence.
    propose_lock: Semaphore,
    /// Producer ids reserved in the metadata log but not yet handed out.
    producer_ids: Cell<(i64, i64)>,
    /// This process's broker incarnation (new at every start).
    incarnation: [u8; 16],
    /// The internal listener's address, as registered.
    rpc_addr: String,
    /// On the leader: which brokers still heartbeat.
    liveness: RefCell<sluice_core::metadata::liveness::Liveness>,
    /// The broker is shutting down: no more heartbeats.
    leaving: Cell<bool>,
}

/// Partitions a stopping shard closes at once.
const CLOSES_AT_ONCE: usize = 32;

/// Producer ids reserved per metadata command.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// What a shard is given from outside: its clock and timers, its disk and
/// its way to the other shards (production or simulated).
pub struct ShardParts {
    pub env: Rc<dyn Env>,
    pub disk: Disk,
    pub transport: Transport,
}

impl Shard {
    /// Makes shard `id` of `shards`; shard 0 starts the node's controller
    /// quorum member and waits until it applied every committed command.
    /// Partitions open when the metadata snapshot arrives.
    pub async fn new(
        id: ShardId,
        shards: u32,
        config: Rc<NodeConfig>,
        parts: ShardParts,
    ) -> Result<Shard, LogError> {
        let ShardParts {
            env,
            disk,
            transport,
        } = parts;
        let controller = if id == 0 {
            Some(Controller::open(&config, &disk, &env).await?)
        } else {
            None
        };
        let metadata = controller
            .as_ref()
            .map(|c| c.member.machine.state().clone())
            .unwrap_or_default();
        let groups = Rc::new(GroupHome::new(config.group.clone(), env.clone()));
        let txns = Rc::new(TxnHome::new(&config.transaction, env.clone()));
        Ok(Shard {
            groups,
            txns,
            id,
            shards,
            cache: {
                let cache = BatchCache::new(config.shard.batch_cache_bytes);
                let read_ahead = cache.read_ahead_budget();
                read_ahead.set_limit(config.shard.read_ahead_bytes);
                read_ahead.set_min_read_bytes(
                    usize::try_from(config.shard.read_ahead_read_bytes).unwrap_or(usize::MAX),
                );
                Rc::new(RefCell::new(cache))
            },
            config,
            counters: ShardCounters::default(),
            metrics: Rc::default(),
            request_budget: RefCell::new(None),
            metadata: RefCell::new(metadata),
            partitions: RefCell::new(BTreeMap::new()),
            offline: RefCell::new(Default::default()),
            env,
            disk,
            transport,
            mesh_tasks: Rc::new(Semaphore::new(MESH_TASKS_MAX)),
            call_places: Semaphore::new(CALLS_MAX),
            pending: RefCell::new(HashMap::new()),
            next_request_id: Cell::new(0),
            watches: RefCell::new(HashMap::new()),
            next_watch_id: Cell::new(0),
            controller,
            snapshot_installed: Cell::new(false),
            fetchers: RefCell::new(Default::default()),
            client_quotas: client_quotas::ClientQuotas::new(shards),
            follower_throttle: RefCell::new(sluice_core::replication::throttle::Throttle::new(
                u64::MAX,
                0,
            )),
            share_partitions: RefCell::new(HashMap::new()),
            share_state_epochs: RefCell::new(HashMap::new()),
            share_state_turn: glommio::sync::Semaphore::new(1),
            share_state_links: RefCell::new(HashMap::new()),
        })
    }

    /// The clock, timers and ids this shard uses.
    pub fn env(&self) -> &Rc<dyn Env> {
        &self.env
    }

    /// This shard's copy of the metadata.
    pub fn metadata(&self) -> Ref<'_, MetadataState> {
        self.metadata.borrow()
    }

    /// The controller's metadata at start-up (shard 0), for every shard to
    /// install; from here on each command the quorum applies is forwarded
    /// to every shard.
    pub fn controller_snapshot(self: &Rc<Self>) -> Option<MetadataState> {
        let controller = self.controller.as_ref()?;
        let state = controller.member.machine.state().clone();
        controller.applier.forward_to(self);
        Some(state)
    }

    /// Number of partitions this shard owns.
    pub fn owned_partitions(&self) -> usize {
        self.partitions.borrow().len()
    }

    fn partition(&self, topic: &str, partition: PartitionId) -> Option<Rc<OwnedPartition>> {
        self.partitions
            .borrow()
            .get(&(topic.to_owned(), partition))
            .cloned()
    }

    /// The error for a partition this shard has no open log for:
    /// KAFKA_STORAGE_ERROR when it failed to open; NOT_LEADER_OR_FOLLOWER
    /// while the metadata already names it but its log is still opening
    /// (Kafka's answer for a replica not created yet: clients retry);
    /// otherwise UNKNOWN_TOPIC_OR_PARTITION.
    fn absence_error(&self, topic: &str, partition: PartitionId) -> ErrorCode {
        if self
            .offline
            .borrow()
            .contains(&(topic.to_owned(), partition))
        {
            ErrorCode::KafkaStorageError
        } else if self.metadata().partition(topic, partition).is_some() {
            ErrorCode::NotLeaderOrFollower
        } else {
            ErrorCode::UnknownTopicOrPartition
        }
    }

    /// The offsets of every partition this shard owns, sorted (the
    /// simulator checks them after every step; metrics may too).
    pub fn partition_offsets(&self) -> Vec<PartitionOffsets> {
        let mut all: Vec<PartitionOffsets> = self
            .partitions
            .borrow()
            .iter()
            .map(|((topic, partition), p)| PartitionOffsets {
                topic: topic.clone(),
                partition: *partition,
                log_start_offset: p.log.log_start_offset(),
                high_watermark: p.high_watermark(),
                log_end_offset: p.log.log_end_offset(),
                durable_offset: p.log.durable_offset(),
                flush_always: p.flush == FlushPolicy::Always,
                offline: p.log.is_offline(),
            })
            .collect();
        all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        all
    }

    /// Partitions of this shard that are offline: failed to open, or their
    /// log went offline after a storage error.
    pub fn offline_partitions(&self) -> usize {
        self.offline.borrow().len()
            + self
                .partitions
                .borrow()
                .values()
                .filter(|p| p.log.is_offline())
                .count()
    }

    fn partition_dir(&self, topic: &str, partition: PartitionId) -> PathBuf {
        self.config.data_dir.join(topic).join(partition.to_string())
    }

    /// Runs `op` on shard `to` (here, or over the mesh) and returns its
    /// answer. `Err` only when `to` cannot be reached (its channel closed:
    /// the node is stopping). Cancel-safe: dropping the future forgets the
    /// call (a late answer is then dropped on arrival).
    ///
    /// At most [`CALLS_MAX`] calls to other shards wait at once (long polls
    /// apart, which connections bound); past that a caller waits for a
    /// place: backpressure, not a growing table.
    pub async fn call<O: ShardOp>(
        self: &Rc<Self>,
        to: ShardId,
        op: O,
    ) -> Result<O::Response, Unreachable> {
        let request: ShardRequest = op.into();
        if to == self.id {
            return Ok(O::answer(Box::pin(self.clone().run(request)).await));
        }
        let _place = if request.is_long_poll() {
            None
        } else {
            Some(
                self.call_places
                    .acquire_permit(1)
                    .await
                    .map_err(|_| Unreachable)?,
            )
        };
        let id = self.next_request_id.get();
        self.next_request_id.set(id + 1);
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, tx);
        let _forget = PendingCall { shard: self, id };
        let msg = ShardMsg::Request {
            from: self.id,
            id,
            request,
        };
        if self.transport.send_to(self.id, to, msg).await.is_err() {
            return Err(Unreachable);
        }
        match rx.recv().await {
            Some(response) => Ok(O::answer(response)),
            None => Err(Unreachable),
        }
    }

    /// Calls in flight from this shard to others (for tests and metrics).
    pub fn calls_in_flight(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Long polls parked on this shard's partitions.
    pub fn parked_watches(&self) -> usize {
        self.watches.borrow().len()
    }

    /// Takes one message from another shard: a request runs as a task of
    /// its own (waiting here first while [`MESH_TASKS_MAX`] others run,
    /// long polls apart), a response goes to the call that waits for it.
    /// Both the runtime's receive loops and the simulator deliver here.
    pub async fn receive(self: &Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Request { from, id, request } => {
                let permit = if request.is_long_poll() {
                    None
                } else {
                    match self.mesh_tasks.acquire_static_permit(1).await {
                        Ok(permit) => Some(permit),
                        Err(_) => return,
                    }
                };
                let shard = self.clone();
                glommio::spawn_local(async move {
                    let response = shard.clone().run(request).await;
                    shard.reply(from, id, response).await;
                    drop(permit);
                })
                .detach();
            }
            ShardMsg::Response { id, response } => self.complete(id, response).await,
        }
    }

    /// Delivers a response that came back over the mesh.
    pub(crate) async fn complete(&self, id: u64, response: ShardResponse) {
        let sender = self.pending.borrow_mut().remove(&id);
        if let Some(sender) = sender {
            let _ = sender.send(response).await;
        }
    }

    pub(crate) async fn reply(&self, to: u32, id: u64, response: ShardResponse) {
        let msg = ShardMsg::Response { id, response };
        if self.transport.send_to(self.id, to, msg).await.is_err() {
            tracing::warn!(
                shard = self.id,
                to,
                "could not deliver a response over the mesh"
            );
        }
    }

    /// The broker-level log settings: the node's configuration with the
    /// dynamic broker configs of this broker (else the cluster default)
    /// that set topic defaults applied; a topic's overrides go on top.
    pub fn broker_log_config(&self) -> sluice_core::config::LogConfig {
        let metadata = self.metadata.borrow();
        sluice_core::topic_config::broker_log_config(&self.config.log, |name| {
            metadata
                .dynamic_broker_config(self.config.node_id, name)
                .map(str::to_owned)
        })
    }

    /// [`message::Metrics`]: this shard's histograms and bytes per topic.
    /// With them, for consumer group lag: the committed offsets of the
    /// groups this shard coordinates and the high watermarks of the
    /// partitions it leads (the admin endpoint joins them).
    pub(crate) async fn metrics_op(&self, _: message::Metrics) -> ShardMetrics {
        let mut metrics = self.metrics.borrow().clone();
        for (key, p) in self.partitions.borrow().iter() {
            if p.leads_at().is_some() && key.0 != OFFSETS_TOPIC {
                metrics
                    .high_watermarks
                    .push((key.0.clone(), key.1, p.high_watermark()));
            }
        }
        let coordinator = self.groups.coordinator().borrow();
        for group in coordinator.list() {
            let Some(offsets) = coordinator.offsets(&group.group_id) else {
                continue;
            };
            for ((topic, partition), committed) in offsets {
                metrics.committed_offsets.push((
                    group.group_id.clone(),
                    topic.clone(),
                    *partition,
                    committed.offset,
                ));
            }
        }
        metrics
    }

    /// [`message::Stats`]: this shard's counters.
    pub(crate) async fn stats_op(&self, _: message::Stats) -> ShardStats {
        self.stats()
    }

    /// [`message::Group`]: work for the coordinator of `partition`'s groups.
    pub(crate) async fn group(self: &Rc<Self>, op: message::Group) -> GroupResponse {
        let message::Group { partition, request } = op;
        let topics = ShardTopics(self);
        let verifying = match self.verify_txn_offsets(partition, &request).await {
            Ok(verifying) => verifying,
            Err(refused) => return refused,
        };
        let verified = verifying.as_ref().map(|v| v.guard);
        let response = self
            .groups
            .handle(partition, request, &topics, verified)
            .await;
        response.unwrap_or_else(|| GroupResponse::Error(self.coordinator_absence(partition)))
    }

    /// [`message::Txn`]: work for the coordinator of `partition`'s
    /// transactional ids.
    pub(crate) async fn txn(self: &Rc<Self>, op: message::Txn) -> message::TxnResponse {
        let message::Txn { partition, request } = op;
        let response = self.txns.clone().handle(self, partition, request).await;
        response.unwrap_or_else(|| {
            message::TxnResponse::Error(self.internal_absence(
                TRANSACTION_STATE_TOPIC,
                partition,
                self.txns.partition_count(),
            ))
        })
    }

    /// [`message::ListGroups`]: every group this shard coordinates.
    pub(crate) async fn list_groups(&self, _: message::ListGroups) -> GroupResponse {
        self.groups.list()
    }

    /// The error for a request about a `__consumer_offsets` partition that
    /// is not loaded here: NOT_COORDINATOR when this shard's metadata gives
    /// the partition to another shard (or the topic is gone), and
    /// COORDINATOR_LOAD_IN_PROGRESS while it is still being created or
    /// replayed here (the caller saw newer metadata than this shard has
    /// applied, or the replay is running), which clients retry, as Kafka
    /// answers during a load.
    fn coordinator_absence(&self, partition: PartitionId) -> ErrorCode {
        self.internal_absence(OFFSETS_TOPIC, partition, self.groups.partition_count())
    }

    /// [`Self::coordinator_absence`] for a partition of internal topic
    /// `topic`, whose coordinator here knows `loaded_count` partitions.
    fn internal_absence(
        &self,
        topic: &str,
        partition: PartitionId,
        loaded_count: i32,
    ) -> ErrorCode {
        let metadata = self.metadata();
        match metadata.topics.get(topic) {
            Some(topic) => match topic
                .partitions
                .get(partition as usize)
                .map(|p| (p.leader == self.config.node_id).then(|| p.shard_on(self.config.node_id)))
            {
                Some(Some(Some(shard))) if shard == self.id => ErrorCode::CoordinatorLoadInProgress,
                Some(_) => ErrorCode::NotCoordinator,
                None => ErrorCode::CoordinatorLoadInProgress,
            },
            None if loaded_count == 0 => ErrorCode::CoordinatorLoadInProgress,
            None => ErrorCode::NotCoordinator,
        }
    }

    /// This shard's counters now.
    pub fn stats(&self) -> ShardStats {
        let mut stats = ShardStats {
            shard: self.id,
            partitions: self.partitions.borrow().len() as u64,
            offline_partitions: self.offline_partitions() as u64,
            storage_full_partitions: self
                .partitions
                .borrow()
                .values()
                .filter(|p| p.log.is_storage_full())
                .count() as u64,
            parked_watches: self.watches.borrow().len() as u64,
            calls_in_flight: self.pending.borrow().len() as u64,
            connections_accepted: self.counters.connections_accepted.get(),
            connections_refused: self.counters.connections_refused.get(),
            connections_throttled: self.counters.connections_throttled.get(),
            accept_failures: self.counters.accept_failures.get(),
            connections_timed_out: self.counters.connections_timed_out.get(),
            requests: self.counters.requests.get(),
            bad_requests: self.counters.bad_requests.get(),
            cleaner_passes: self.counters.cleaner_passes.get(),
            cleaner_bytes_removed: self.counters.cleaner_bytes_removed.get(),
            throttled_requests: self.counters.throttled_requests.get(),
            throttle_time_ms: self.counters.throttle_time_ms.get(),
            quota_usage_unshared: self.client_quotas.unshared_dropped(),
            produce_record_bytes_copied: self.counters.produce_record_bytes_copied.get(),
            txn_verifications: self.counters.txn_verifications.get(),
            txn_verification_failures: self.counters.txn_verification_failures.get(),
            share_dead_letters: self.counters.share_dead_letters.get(),
            share_dead_letter_failures: self.counters.share_dead_letter_failures.get(),
            share_partitions: self.share_partitions.borrow().len() as u64,
            fetch_record_bytes_copied: self.counters.fetch_record_bytes_copied.get(),
            ..ShardStats::default()
        };
        // Removed partitions' counts first: the totals never go back.
        let mut logs = self.counters.removed_logs.get();
        let metadata = self.metadata.borrow();
        for ((topic, partition), p) in self.partitions.borrow().iter() {
            let role = p.role.borrow();
            if role.is_leader() {
                let isr = role.isr_len();
                stats.leader_partitions += 1;
                // Replicas a reassignment is still adding do not count, as
                // in Kafka.
                let replicas = metadata
                    .partition(topic, *partition)
                    .map_or(0, |m| m.replicas.len().saturating_sub(m.adding.len()));
                if isr < replicas {
                    stats.under_replicated_partitions += 1;
                }
            }
            logs += p.log.stats();
            stats.txn_aborted_in_memory += p.log.aborted_in_memory() as u64;
        }
        stats.appends = logs.appends;
        stats.flushes = logs.flushes;
        stats.flush_syncs = logs.flush_syncs;
        stats.segments_recycled = logs.segments_recycled;
        let cache = self.cache.borrow();
        stats.batch_cache_bytes = cache.used_bytes();
        stats.batch_cache_budget_bytes = self.config.shard.batch_cache_bytes;
        if let Some(budget) = self.request_budget.borrow().as_ref() {
            let capacity = self.config.kafka.queued_max_request_bytes;
            stats.request_budget_bytes = capacity;
            stats.request_bytes_queued = capacity.saturating_sub(budget.available());
        }
        (stats.batch_cache_hits, stats.batch_cache_misses) = cache.hit_counts();
        let read_ahead = cache.read_ahead_budget();
        stats.read_ahead_bytes = read_ahead.used_bytes();
        stats.read_ahead_budget_bytes = self.config.shard.read_ahead_bytes;
        let counts = read_ahead.counts();
        stats.read_ahead_started = counts.started;
        stats.read_ahead_kept = counts.kept;
        stats.read_ahead_used = counts.used;
        stats
    }

    /// Flushes every owned partition (the `interval:<ms>` policy's tick and
    /// shutdown).
    pub async fn flush_all(&self) {
        let owned: Vec<_> = self.partitions.borrow().values().cloned().collect();
        for p in owned {
            if let Err(e) = p.flush().await {
                tracing::error!(shard = self.id, error = %e, "flush failed");
            }
        }
    }

    /// Applies retention to every owned partition (the broker's periodic
    /// check); expired producers are forgotten in the same pass.
    pub async fn apply_retention_all(&self) {
        let owned: Vec<_> = self
            .partitions
            .borrow()
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        for ((topic, partition), p) in owned {
            // Transactions stable for good are forgotten here too, also on
            // a partition no read_committed consumer asks about.
            p.log.last_stable_offset(p.high_watermark());
            match p.log.apply_retention(self.env.now_ms()).await {
                Ok(outcome) if outcome.segments_deleted > 0 => tracing::info!(
                    topic,
                    partition,
                    segments = outcome.segments_deleted,
                    log_start_offset = outcome.log_start_offset,
                    "retention deleted segments"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(topic, partition, error = %e, "retention failed"),
            }
        }
    }

    /// Closes every owned partition (flushing it) and stops the controller.
    pub async fn close(&self) {
        self.groups.stop_all();
        self.txns.stop_all();
        // Several at once: each close waits on its own flush and syncs.
        let mut owned = std::mem::take(&mut *self.partitions.borrow_mut()).into_iter();
        loop {
            let closes: Vec<_> = owned
                .by_ref()
                .take(CLOSES_AT_ONCE)
                .map(|((topic, partition), p)| {
                    glommio::spawn_local(async move {
                        if let Err(e) = p.log.close().await {
                            tracing::error!(topic, partition, error = %e, "closing a partition");
                        }
                    })
                })
                .collect();
            if closes.is_empty() {
                break;
            }
            for close in closes {
                close.await;
            }
        }
        if let Some(controller) = &self.controller {
            if let Err(e) = controller.member.raft.shutdown().await {
                tracing::error!(error = %e, "stopping the controller quorum member");
            }
        }
    }
}

/// A call's destination could not be reached (its channel closed: the
/// node is stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shard cannot be reached")]
pub struct Unreachable;

/// Calls from one shard to others that may wait at once (long polls apart).
pub const CALLS_MAX: u64 = 8192;

/// Removes a call's entry from the pending table when the call ends,
/// answered or dropped, so an abandoned call leaves nothing behind.
struct PendingCall<'a> {
    shard: &'a Shard,
    id: u64,
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        self.shard.pending.borrow_mut().remove(&self.id);
    }
}

/// The shard's metadata as a group coordinator reads it: borrowed anew at
/// each look, never across an await of the group's writes.
struct ShardTopics<'a>(&'a Shard);

impl TopicCatalog for ShardTopics<'_> {
    fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.0.metadata().topic(name)
    }

    fn for_each_name(&self, each: &mut dyn FnMut(&str)) {
        self.0.metadata().for_each_name(each)
    }

    fn version(&self) -> u64 {
        self.0.metadata().version()
    }
}
