//! One shard: a pinned executor's partitions, metadata copy and mesh ends.
//!
//! Owns: the partitions this shard owns (their logs and long-poll signals),
//! its read-only copy of the metadata, routing of partition work to owner
//! shards over the channel mesh, and, on shard 0 (the controller), the
//! metadata log that every change is committed to before it is applied.
//!
//! Invariants: a partition's log is opened only on its owner shard and only
//! touched from that shard's thread; other shards reach it by message. A
//! metadata command is applied everywhere only after it is durable in the
//! metadata log.

use std::cell::{Cell, Ref, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use glommio::channels::channel_mesh::Senders;
use glommio::channels::local_channel::{self, LocalSender};
use sluice_core::config::{FlushPolicy, LogConfig, NodeConfig};
use sluice_core::metadata::{MetadataCommand, MetadataState, ShardId};
use sluice_core::{ErrorCode, Offset, PartitionId};
use sluice_log::{BatchCache, DmaStorage, LogError, PartitionLog};

use crate::message::{
    FetchResult, ProduceResult, Proposal, ShardMsg, ShardRequest, ShardResponse, ShardStats,
};
use crate::metadata_log::MetadataLog;
use crate::notify::Notify;

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
    pub requests: Cell<u64>,
    /// Connections closed for bad input (oversized or undecodable frames,
    /// unknown APIs or versions).
    pub bad_requests: Cell<u64>,
}

impl ShardCounters {
    /// Adds one to `counter`.
    pub fn bump(counter: &Cell<u64>) {
        counter.set(counter.get() + 1);
    }
}

/// One partition this shard owns.
pub struct OwnedPartition {
    pub log: PartitionLog<DmaStorage>,
    /// Signalled whenever the high watermark moves.
    pub hw_changed: Notify,
    flush: FlushPolicy,
}

impl OwnedPartition {
    /// The offset consumers may read up to: under `log.flush = always` only
    /// durable batches, otherwise everything appended.
    pub fn high_watermark(&self) -> Offset {
        match self.flush {
            FlushPolicy::Always => self.log.durable_offset(),
            _ => self.log.log_end_offset(),
        }
    }
}

type PartitionKey = (String, PartitionId);

/// A shard's state; shared by its tasks as `Rc<Shard>`.
pub struct Shard {
    pub id: ShardId,
    pub shards: u32,
    pub config: Rc<NodeConfig>,
    pub counters: ShardCounters,
    metadata: RefCell<MetadataState>,
    partitions: RefCell<HashMap<PartitionKey, Rc<OwnedPartition>>>,
    cache: Rc<RefCell<BatchCache>>,
    senders: Senders<ShardMsg>,
    pending: RefCell<HashMap<u64, LocalSender<ShardResponse>>>,
    next_request_id: Cell<u64>,
    /// Shard 0 only: the metadata log and the ids it hands out.
    controller: Option<Controller>,
    snapshot_installed: Cell<bool>,
}

struct Controller {
    log: MetadataLog,
    /// One proposal at a time: plan, commit and apply everywhere before the
    /// next one is planned, so every shard applies the same sequence.
    propose_lock: glommio::sync::Semaphore,
    /// Producer ids reserved in the metadata log but not yet handed out.
    producer_ids: Cell<(i64, i64)>,
}

/// Producer ids reserved per metadata command.
const PRODUCER_ID_BLOCK: i64 = 1000;

impl Shard {
    pub(crate) async fn new(
        id: ShardId,
        shards: u32,
        config: Rc<NodeConfig>,
        senders: Senders<ShardMsg>,
    ) -> Result<Shard, LogError> {
        let controller = if id == 0 {
            let log =
                MetadataLog::open(config.data_dir.join("__sluice_metadata"), now_ms()).await?;
            Some(Controller {
                log,
                propose_lock: glommio::sync::Semaphore::new(1),
                producer_ids: Cell::new((0, 0)),
            })
        } else {
            None
        };
        let metadata = controller
            .as_ref()
            .map(|c| c.log.state().clone())
            .unwrap_or_default();
        Ok(Shard {
            id,
            shards,
            cache: Rc::new(RefCell::new(BatchCache::new(
                config.shard.batch_cache_bytes,
            ))),
            config,
            counters: ShardCounters::default(),
            metadata: RefCell::new(metadata),
            partitions: RefCell::new(HashMap::new()),
            senders,
            pending: RefCell::new(HashMap::new()),
            next_request_id: Cell::new(0),
            controller,
            snapshot_installed: Cell::new(false),
        })
    }

    /// This shard's copy of the metadata.
    pub fn metadata(&self) -> Ref<'_, MetadataState> {
        self.metadata.borrow()
    }

    /// The controller's replayed metadata (shard 0 at start-up).
    pub(crate) fn controller_snapshot(&self) -> Option<MetadataState> {
        self.controller.as_ref().map(|c| c.log.state().clone())
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

    fn partition_dir(&self, topic: &str, partition: PartitionId) -> PathBuf {
        self.config.data_dir.join(topic).join(partition.to_string())
    }

    /// Sends `request` to the shard that must run it (or runs it here) and
    /// returns the answer.
    pub async fn call(self: &Rc<Self>, to: ShardId, request: ShardRequest) -> ShardResponse {
        if to == self.id {
            return Box::pin(self.clone().handle(request)).await;
        }
        let id = self.next_request_id.get();
        self.next_request_id.set(id + 1);
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, tx);
        let msg = ShardMsg::Request {
            from: self.id,
            id,
            request,
        };
        if self.senders.send_to(to as usize, msg).await.is_err() {
            self.pending.borrow_mut().remove(&id);
            return ShardResponse::failed(ErrorCode::UnknownServerError);
        }
        match rx.recv().await {
            Some(response) => response,
            None => ShardResponse::failed(ErrorCode::UnknownServerError),
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
        if self.senders.send_to(to as usize, msg).await.is_err() {
            tracing::warn!(
                shard = self.id,
                to,
                "could not deliver a response over the mesh"
            );
        }
    }

    /// Runs a request on this shard.
    pub async fn handle(self: Rc<Self>, request: ShardRequest) -> ShardResponse {
        match request {
            ShardRequest::Produce {
                topic,
                partition,
                records,
                acks,
            } => ShardResponse::Produce(self.produce_local(&topic, partition, records, acks).await),
            ShardRequest::Fetch {
                topic,
                partition,
                offset,
                max_bytes,
            } => ShardResponse::Fetch(self.fetch_local(&topic, partition, offset, max_bytes).await),
            ShardRequest::Watch {
                topic,
                partition,
                offset,
                max_wait_ms,
            } => {
                if let Some(p) = self.partition(&topic, partition) {
                    if p.high_watermark() <= offset {
                        let timeout = Duration::from_millis(max_wait_ms);
                        let _ = glommio::timer::timeout(timeout, async {
                            p.hw_changed.changed().await;
                            Ok(())
                        })
                        .await;
                    }
                }
                ShardResponse::Watched
            }
            ShardRequest::ListOffsets {
                topic,
                partition,
                timestamp,
            } => self.list_offsets_local(&topic, partition, timestamp).await,
            ShardRequest::Propose(proposal) => self.propose_local(proposal).await,
            ShardRequest::Apply(command) => {
                self.apply_command(&command).await;
                ShardResponse::Applied
            }
            ShardRequest::Snapshot(state) => {
                self.install_snapshot(*state).await;
                ShardResponse::Applied
            }
            ShardRequest::Stats => ShardResponse::Stats(self.stats()),
        }
    }

    async fn produce_local(
        &self,
        topic: &str,
        partition: PartitionId,
        records: Bytes,
        acks: i16,
    ) -> ProduceResult {
        let Some(p) = self.partition(topic, partition) else {
            return ProduceResult {
                error: ErrorCode::UnknownTopicOrPartition,
                base_offset: -1,
                log_start_offset: -1,
            };
        };
        // In-place offset assignment needs the bytes to ourselves; a record
        // set that shares its buffer with others of the request is copied.
        let batches = records
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let appended = p.log.append(batches, 0, now_ms()).await;
        let info = match appended {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(topic, partition, error = %e, "produce rejected");
                return ProduceResult {
                    error: e.error_code(),
                    base_offset: -1,
                    log_start_offset: p.log.log_start_offset(),
                };
            }
        };
        match p.flush {
            FlushPolicy::Always if acks != 0 => {
                if let Err(e) = p.log.flush().await {
                    return ProduceResult {
                        error: e.error_code(),
                        base_offset: -1,
                        log_start_offset: p.log.log_start_offset(),
                    };
                }
                p.hw_changed.notify_all();
            }
            FlushPolicy::Always => {
                // acks=0: nobody waits, but the bytes still become durable
                // (and visible) promptly.
                let p = p.clone();
                glommio::spawn_local(async move {
                    if p.log.flush().await.is_ok() {
                        p.hw_changed.notify_all();
                    }
                })
                .detach();
            }
            _ => p.hw_changed.notify_all(),
        }
        ProduceResult {
            error: ErrorCode::None,
            base_offset: info.base_offset,
            log_start_offset: p.log.log_start_offset(),
        }
    }

    async fn fetch_local(
        &self,
        topic: &str,
        partition: PartitionId,
        offset: Offset,
        max_bytes: usize,
    ) -> FetchResult {
        let Some(p) = self.partition(topic, partition) else {
            return FetchResult {
                error: ErrorCode::UnknownTopicOrPartition,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                records: Bytes::new(),
            };
        };
        let hw = p.high_watermark();
        let mut result = FetchResult {
            error: ErrorCode::None,
            high_watermark: hw,
            last_stable_offset: hw,
            log_start_offset: p.log.log_start_offset(),
            records: Bytes::new(),
        };
        match p.log.read_chunks(offset, max_bytes, hw).await {
            Ok(chunks) if chunks.len() == 1 => {
                result.records = chunks.into_iter().next().expect("one chunk").into_bytes();
            }
            Ok(chunks) => {
                // The response carries one record set: join the chunks.
                let mut joined = BytesMut::with_capacity(chunks.iter().map(|c| c.len()).sum());
                for chunk in &chunks {
                    joined.extend_from_slice(chunk);
                }
                result.records = joined.freeze();
            }
            Err(e) => result.error = e.error_code(),
        }
        result
    }

    async fn list_offsets_local(
        &self,
        topic: &str,
        partition: PartitionId,
        timestamp: i64,
    ) -> ShardResponse {
        let Some(p) = self.partition(topic, partition) else {
            return ShardResponse::ListOffsets {
                error: ErrorCode::UnknownTopicOrPartition,
                offset: -1,
                timestamp: -1,
            };
        };
        let (offset, ts) = match timestamp {
            -1 => (p.high_watermark(), -1),
            -2 => (p.log.log_start_offset(), -1),
            -3 => match p.log.max_timestamp_offset().await {
                Ok(Some((off, ts))) => (off, ts),
                Ok(None) => (-1, -1),
                Err(e) => {
                    return ShardResponse::ListOffsets {
                        error: e.error_code(),
                        offset: -1,
                        timestamp: -1,
                    }
                }
            },
            t => match p.log.offset_for_timestamp(t).await {
                Ok(Some((off, ts))) if off < p.high_watermark() => (off, ts),
                Ok(_) => (-1, -1),
                Err(e) => {
                    return ShardResponse::ListOffsets {
                        error: e.error_code(),
                        offset: -1,
                        timestamp: -1,
                    }
                }
            },
        };
        ShardResponse::ListOffsets {
            error: ErrorCode::None,
            offset,
            timestamp: ts,
        }
    }

    /// Shard 0: turns a proposal into a command, commits it to the metadata
    /// log, then has every shard apply it.
    async fn propose_local(self: &Rc<Self>, proposal: Proposal) -> ShardResponse {
        let Some(controller) = &self.controller else {
            return ShardResponse::failed(ErrorCode::NotController);
        };
        let Ok(_turn) = controller.propose_lock.acquire_permit(1).await else {
            return ShardResponse::failed(ErrorCode::NotController);
        };
        let state = controller.log.state().clone();
        let command = match proposal {
            Proposal::CreateTopic {
                name,
                partitions,
                configs,
                validate_only,
            } => {
                if partitions < 1 {
                    return proposal_error(
                        ErrorCode::InvalidPartitions,
                        "partitions must be at least 1",
                    );
                }
                let command = MetadataCommand::CreateTopic {
                    id: new_topic_id(),
                    partition_shards: state.place_partitions(partitions as usize, self.shards),
                    configs: configs.into_iter().collect(),
                    name,
                };
                if validate_only {
                    return match state.clone().apply(&command) {
                        Ok(()) => ShardResponse::Proposed {
                            result: Ok(()),
                            value: 0,
                        },
                        Err(e) => proposal_error(e.error_code(), &e.to_string()),
                    };
                }
                command
            }
            Proposal::DeleteTopic { name } => MetadataCommand::DeleteTopic { name },
            Proposal::CreatePartitions {
                name,
                total,
                validate_only,
            } => {
                let Some(topic) = state.topics.get(&name) else {
                    return proposal_error(ErrorCode::UnknownTopicOrPartition, "unknown topic");
                };
                let current = topic.partition_shards.len() as i32;
                if total <= current {
                    return proposal_error(
                        ErrorCode::InvalidPartitions,
                        &format!("topic has {current} partitions; the new count must be larger"),
                    );
                }
                let new = state.place_partitions((total - current) as usize, self.shards);
                if validate_only {
                    return ShardResponse::Proposed {
                        result: Ok(()),
                        value: 0,
                    };
                }
                MetadataCommand::CreatePartitions {
                    name,
                    new_partition_shards: new,
                }
            }
            Proposal::AllocateProducerId => {
                let (next, end) = controller.producer_ids.get();
                if next < end {
                    controller.producer_ids.set((next + 1, end));
                    return ShardResponse::Proposed {
                        result: Ok(()),
                        value: next,
                    };
                }
                MetadataCommand::AllocateProducerIds {
                    first: state.next_producer_id,
                    count: PRODUCER_ID_BLOCK,
                }
            }
        };
        if let Err(e) = controller.log.commit(&command, now_ms()).await {
            return proposal_error(e.error_code(), &e.to_string());
        }
        let mut value = 0;
        if let MetadataCommand::AllocateProducerIds { first, count } = &command {
            controller.producer_ids.set((first + 1, first + count));
            value = *first;
        }
        // Every shard applies the committed command (this one included).
        let applies =
            (0..self.shards).map(|shard| self.call(shard, ShardRequest::Apply(command.clone())));
        for apply in applies.collect::<Vec<_>>() {
            apply.await;
        }
        ShardResponse::Proposed {
            result: Ok(()),
            value,
        }
    }

    /// True once the controller's start-up snapshot was installed here.
    pub fn snapshot_installed(&self) -> bool {
        self.snapshot_installed.get()
    }

    async fn install_snapshot(&self, state: MetadataState) {
        *self.metadata.borrow_mut() = state.clone();
        for (name, topic) in &state.topics {
            for (partition, shard) in topic.partition_shards.iter().enumerate() {
                if *shard == self.id {
                    self.open_partition(name, partition as PartitionId, &topic.configs)
                        .await;
                }
            }
        }
        self.snapshot_installed.set(true);
    }

    async fn apply_command(&self, command: &MetadataCommand) {
        let before = self.metadata.borrow().clone();
        if let Err(e) = self.metadata.borrow_mut().apply(command) {
            tracing::error!(shard = self.id, error = %e, "a committed metadata command did not apply");
            return;
        }
        match command {
            MetadataCommand::CreateTopic {
                name,
                partition_shards,
                configs,
                ..
            } => {
                for (partition, shard) in partition_shards.iter().enumerate() {
                    if *shard == self.id {
                        self.open_partition(name, partition as PartitionId, configs)
                            .await;
                    }
                }
            }
            MetadataCommand::CreatePartitions {
                name,
                new_partition_shards,
            } => {
                let first = before
                    .topics
                    .get(name)
                    .map_or(0, |t| t.partition_shards.len());
                let configs = before
                    .topics
                    .get(name)
                    .map(|t| t.configs.clone())
                    .unwrap_or_default();
                for (i, shard) in new_partition_shards.iter().enumerate() {
                    if *shard == self.id {
                        self.open_partition(name, (first + i) as PartitionId, &configs)
                            .await;
                    }
                }
            }
            MetadataCommand::DeleteTopic { name } => {
                let owned: Vec<_> = self
                    .partitions
                    .borrow()
                    .keys()
                    .filter(|(t, _)| t == name)
                    .cloned()
                    .collect();
                for key in owned {
                    let removed = self.partitions.borrow_mut().remove(&key);
                    if let Some(p) = removed {
                        if let Err(e) = p.log.close().await {
                            tracing::warn!(topic = %key.0, partition = key.1, error = %e, "closing a deleted partition");
                        }
                        p.hw_changed.notify_all();
                        let dir = self.partition_dir(&key.0, key.1);
                        if let Err(e) = std::fs::remove_dir_all(&dir) {
                            tracing::warn!(dir = ?dir, error = %e, "removing a deleted partition's files");
                        }
                    }
                }
                let topic_dir = self.config.data_dir.join(name);
                let _ = std::fs::remove_dir(&topic_dir);
            }
            MetadataCommand::AllocateProducerIds { .. } => {}
        }
    }

    async fn open_partition(
        &self,
        topic: &str,
        partition: PartitionId,
        configs: &std::collections::BTreeMap<String, String>,
    ) {
        let config = log_config_for(&self.config.log, configs);
        let flush = config.flush;
        let dir = self.partition_dir(topic, partition);
        match PartitionLog::open(
            DmaStorage,
            dir.clone(),
            config,
            Some(self.cache.clone()),
            now_ms(),
        )
        .await
        {
            Ok(log) => {
                let report = log.open_report();
                if report.active.bytes_cut > 0 {
                    tracing::warn!(
                        topic,
                        partition,
                        bytes_cut = report.active.bytes_cut,
                        "recovery cut a torn tail"
                    );
                }
                let owned = Rc::new(OwnedPartition {
                    log,
                    hw_changed: Notify::default(),
                    flush,
                });
                self.partitions
                    .borrow_mut()
                    .insert((topic.to_owned(), partition), owned);
            }
            Err(e) => {
                tracing::error!(topic, partition, dir = ?dir, error = %e, "could not open a partition")
            }
        }
    }

    /// This shard's counters now.
    pub fn stats(&self) -> ShardStats {
        let mut stats = ShardStats {
            shard: self.id,
            partitions: self.partitions.borrow().len() as u64,
            connections_accepted: self.counters.connections_accepted.get(),
            requests: self.counters.requests.get(),
            bad_requests: self.counters.bad_requests.get(),
            ..ShardStats::default()
        };
        for p in self.partitions.borrow().values() {
            let log = p.log.stats();
            stats.appends += log.appends;
            stats.flushes += log.flushes;
            stats.flush_syncs += log.flush_syncs;
        }
        let cache = self.cache.borrow();
        stats.batch_cache_bytes = cache.used_bytes();
        (stats.batch_cache_hits, stats.batch_cache_misses) = cache.hit_counts();
        stats
    }

    /// Flushes every owned partition (the `interval:<ms>` policy's tick and
    /// shutdown).
    pub async fn flush_all(&self) {
        let owned: Vec<_> = self.partitions.borrow().values().cloned().collect();
        for p in owned {
            match p.log.flush().await {
                Ok(_) => p.hw_changed.notify_all(),
                Err(e) => tracing::error!(shard = self.id, error = %e, "flush failed"),
            }
        }
    }

    /// Closes every owned partition (flushing it) and the metadata log.
    pub async fn close(&self) {
        let owned: Vec<_> = self.partitions.borrow_mut().drain().collect();
        for ((topic, partition), p) in owned {
            if let Err(e) = p.log.close().await {
                tracing::error!(topic, partition, error = %e, "closing a partition");
            }
        }
        if let Some(controller) = &self.controller {
            if let Err(e) = controller.log.close().await {
                tracing::error!(error = %e, "closing the metadata log");
            }
        }
    }
}

impl ShardResponse {
    /// A response of the right shape carrying only an error.
    pub fn failed(error: ErrorCode) -> ShardResponse {
        ShardResponse::Proposed {
            result: Err((error, error.to_string())),
            value: 0,
        }
    }
}

fn proposal_error(error: ErrorCode, message: &str) -> ShardResponse {
    ShardResponse::Proposed {
        result: Err((error, message.to_owned())),
        value: 0,
    }
}

/// A new random topic id (a version-4 UUID, as Kafka makes them).
fn new_topic_id() -> [u8; 16] {
    uuid::Uuid::new_v4().into_bytes()
}

/// A partition's log config: the node's, overridden by the topic's configs
/// (Kafka's topic-level names).
pub fn log_config_for(
    node: &LogConfig,
    topic: &std::collections::BTreeMap<String, String>,
) -> LogConfig {
    let mut config = node.clone();
    for (key, value) in topic {
        let parsed_i64 = value.parse::<i64>().ok();
        match key.as_str() {
            "retention.ms" => config.retention_ms = parsed_i64.unwrap_or(config.retention_ms),
            "retention.bytes" => {
                config.retention_bytes = parsed_i64.unwrap_or(config.retention_bytes)
            }
            "segment.bytes" => {
                config.segment_bytes = parsed_i64.map_or(config.segment_bytes, |v| v.max(14) as u64)
            }
            "segment.ms" => {
                config.segment_ms = parsed_i64.map_or(config.segment_ms, |v| v.max(1) as u64)
            }
            "max.message.bytes" => {
                config.max_message_bytes =
                    parsed_i64.map_or(config.max_message_bytes, |v| v.max(0) as u32)
            }
            _ => {}
        }
    }
    config
}
