//! Configuration structs and the loader that layers their sources.
//!
//! Owns: one struct per component, every field documented, defaults equal to
//! Kafka's (Redpanda's where Kafka has none), and [`load`], which layers
//! defaults < TOML file < environment (`SLUICE_` prefix, `__` between levels,
//! e.g. `SLUICE_LOG__SEGMENT_BYTES`) < command-line overrides; later sources win.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// When appended bytes are fdatasync'd (`log.flush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// Every acknowledged append (acks != 0) is durable first (default).
    #[default]
    Always,
    /// Sync at most every this many milliseconds; acks do not wait for it.
    IntervalMs(u64),
    /// Leave syncing to the kernel and to segment roll and shutdown.
    Never,
}

impl FromStr for FlushPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FlushPolicy::Always),
            "never" => Ok(FlushPolicy::Never),
            _ => s
                .strip_prefix("interval:")
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(FlushPolicy::IntervalMs)
                .ok_or_else(|| {
                    format!("log.flush must be always, never or interval:<ms>, not {s:?}")
                }),
        }
    }
}

impl std::fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlushPolicy::Always => f.write_str("always"),
            FlushPolicy::Never => f.write_str("never"),
            FlushPolicy::IntervalMs(ms) => write!(f, "interval:{ms}"),
        }
    }
}

impl Serialize for FlushPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FlushPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What happens to a partition's old data (`cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Retention deletes whole old segments (Kafka's default).
    #[default]
    Delete,
    /// The cleaner keeps the last record of each key; nothing is deleted
    /// by age or size.
    Compact,
    /// Both: compacted, and old segments deleted by retention.
    CompactDelete,
}

impl CleanupPolicy {
    /// The cleaner compacts this log.
    pub fn compacts(self) -> bool {
        self != CleanupPolicy::Delete
    }
    /// Retention by time and size deletes from this log.
    pub fn deletes(self) -> bool {
        self != CleanupPolicy::Compact
    }
}

impl FromStr for CleanupPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words: Vec<&str> = s.split(',').map(str::trim).collect();
        words.sort_unstable();
        words.dedup();
        match words.as_slice() {
            ["delete"] => Ok(CleanupPolicy::Delete),
            ["compact"] => Ok(CleanupPolicy::Compact),
            ["compact", "delete"] => Ok(CleanupPolicy::CompactDelete),
            _ => Err(format!(
                "cleanup.policy must be delete, compact or compact,delete, not {s:?}"
            )),
        }
    }
}

impl std::fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        })
    }
}

impl Serialize for CleanupPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CleanupPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a topic's batches are stored (`compression.type`): as the producer
/// compressed them, or recompressed by the broker with one codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionType {
    /// As the producer sent them (Kafka's default).
    #[default]
    Producer,
    /// Every batch in this codec (`uncompressed` for none).
    Codec(crate::batch::Compression),
}

impl FromStr for CompressionType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "producer" {
            return Ok(CompressionType::Producer);
        }
        crate::batch::Compression::from_name(s)
            .map(CompressionType::Codec)
            .ok_or_else(|| {
                format!("compression.type must be producer, uncompressed, gzip, snappy, lz4 or zstd, not {s:?}")
            })
    }
}

impl std::fmt::Display for CompressionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompressionType::Producer => f.write_str("producer"),
            CompressionType::Codec(c) => f.write_str(c.name()),
        }
    }
}

impl Serialize for CompressionType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CompressionType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whose time a record's timestamp is (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TimestampType {
    /// The producer's (Kafka's default).
    #[default]
    CreateTime,
    /// The broker's, when it appends the batch.
    LogAppendTime,
}

impl TimestampType {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

/// One partition log's settings (Kafka's `log.*` broker configs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Roll a new segment when the active one would exceed this (`log.segment.bytes`).
    pub segment_bytes: u64,
    /// Roll a segment this old, by its first append (`log.roll.ms`, 7 days).
    pub segment_ms: u64,
    /// Delete old segments while the partition is larger (`log.retention.bytes`; -1 = no limit).
    pub retention_bytes: i64,
    /// Delete segments whose newest record is older (`log.retention.ms`, 7 days; -1 = keep).
    pub retention_ms: i64,
    /// Bytes of log between two sparse index entries (`log.index.interval.bytes`).
    pub index_interval_bytes: u32,
    /// Largest index file; a full index rolls the segment (`log.index.size.max.bytes`).
    pub segment_index_bytes: u32,
    /// Largest record batch accepted (`message.max.bytes`).
    pub max_message_bytes: u32,
    /// When appends are fdatasync'd.
    pub flush: FlushPolicy,
    /// Unflushed bytes a partition buffers before writing them out (not
    /// syncing) on its own; bounds each partition's write buffer.
    pub write_buffer_bytes: u32,
    /// With `flush = always`: most bytes an active segment's file is grown
    /// (fallocate) ahead of its writes, and never more than the segment
    /// holds, since a write into space already allocated syncs faster than
    /// one that extends the file. 0 turns it off. Like Redpanda's
    /// `segment_fallocation_step`.
    pub preallocate_bytes: u64,
    /// Keep the `.log` of one segment retention deleted per partition and
    /// reuse it as the partition's next segment, so its writes go over
    /// blocks already written instead of growing a new file.
    pub recycle_segments: bool,
    /// How often the broker applies retention (`log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// Forget an idempotent producer idle this long (`producer.id.expiration.ms`).
    pub producer_id_expiration_ms: i64,
    /// Appended bytes between two snapshots of the producer state; bounds
    /// how much of the log recovery reads to rebuild it.
    pub producer_snapshot_interval_bytes: u64,
    /// In-sync replicas an acks=all produce needs (`min.insync.replicas`):
    /// fewer, and it is refused with NOT_ENOUGH_REPLICAS.
    pub min_insync_replicas: i32,
    /// Delete old segments, compact, or both (`log.cleanup.policy`).
    pub cleanup_policy: CleanupPolicy,
    /// How long a compacted log keeps a tombstone after the cleaner first
    /// sees it (`log.cleaner.delete.retention.ms`, 1 day).
    pub delete_retention_ms: i64,
    /// Compact a log once this share of it is dirty (written since its last
    /// compaction) (`log.cleaner.min.cleanable.ratio`, 0.5).
    pub min_cleanable_dirty_ratio: f64,
    /// Records younger than this stay uncompacted
    /// (`log.cleaner.min.compaction.lag.ms`, 0).
    pub min_compaction_lag_ms: i64,
    /// Records older than this are compacted whatever the dirty ratio
    /// (`log.cleaner.max.compaction.lag.ms`, unbounded).
    pub max_compaction_lag_ms: i64,
    /// The cleaner runs on this broker (`log.cleaner.enable`).
    pub cleaner_enable: bool,
    /// How long a shard's cleaner sleeps when no log needs cleaning
    /// (`log.cleaner.backoff.ms`).
    pub cleaner_backoff_ms: u64,
    /// Memory for the key-to-offset map of the broker's cleaners, shared
    /// among the shards (`log.cleaner.dedupe.buffer.size`, 128 MiB): a
    /// cleaning pass covers as much dirty log as its share holds.
    pub cleaner_dedupe_buffer_size: u64,
    /// The codec batches are stored in (`compression.type`): `producer`
    /// keeps each batch as sent; a codec makes the broker recompress
    /// batches in another one as they are appended.
    pub compression_type: CompressionType,
    /// Whose time a record carries (`log.message.timestamp.type`):
    /// `CreateTime` (the producer's) or `LogAppendTime` (the broker's,
    /// stamped on each batch as it is appended).
    pub message_timestamp_type: TimestampType,
    /// A CreateTime batch stamped earlier than this before the broker's
    /// time is refused, INVALID_TIMESTAMP (`log.message.timestamp.before.max.ms`).
    pub message_timestamp_before_max_ms: i64,
    /// A CreateTime batch stamped later than this after the broker's time
    /// is refused, INVALID_TIMESTAMP (`log.message.timestamp.after.max.ms`,
    /// one hour).
    pub message_timestamp_after_max_ms: i64,
    /// Bytes per second a shard's cleaner reads and writes at most
    /// (`log.cleaner.io.max.bytes.per.second`; Kafka's default is
    /// unbounded, ours keeps the cleaner to a share of a disk).
    pub cleaner_io_max_bytes_per_second: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            retention_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            max_message_bytes: 1_048_588,
            flush: FlushPolicy::Always,
            write_buffer_bytes: 1024 * 1024,
            preallocate_bytes: 32 * 1024 * 1024,
            recycle_segments: true,
            retention_check_interval_ms: 300_000,
            producer_id_expiration_ms: 86_400_000,
            producer_snapshot_interval_bytes: 16 * 1024 * 1024,
            min_insync_replicas: 1,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            cleaner_enable: true,
            cleaner_backoff_ms: 15_000,
            cleaner_dedupe_buffer_size: 128 * 1024 * 1024,
            cleaner_io_max_bytes_per_second: 100.0 * 1024.0 * 1024.0,
            compression_type: CompressionType::Producer,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 3_600_000,
        }
    }
}

impl LogConfig {
    /// Rejects settings the log cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 14 || self.segment_bytes > i32::MAX as u64 {
            return Err(format!(
                "segment_bytes must be in 14..=2147483647, not {}",
                self.segment_bytes
            ));
        }
        if self.segment_ms == 0 {
            return Err("segment_ms must be positive".into());
        }
        if self.index_interval_bytes == 0 {
            return Err("index_interval_bytes must be positive".into());
        }
        if self.segment_index_bytes < 4096 {
            return Err("segment_index_bytes must be at least 4096".into());
        }
        if self.write_buffer_bytes < 4096 {
            return Err("write_buffer_bytes must be at least 4096".into());
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err("min_cleanable_dirty_ratio must be in 0..=1".into());
        }
        if self.cleaner_io_max_bytes_per_second.is_nan()
            || self.cleaner_io_max_bytes_per_second <= 0.0
        {
            return Err("cleaner_io_max_bytes_per_second must be positive".into());
        }
        Ok(())
    }
}

/// Per-shard memory budgets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShardConfig {
    /// Bytes of recently appended batches each shard keeps for tailing readers.
    pub batch_cache_bytes: u64,
    /// Bytes each shard may hold or have in flight in disk reads started
    /// ahead of consumers that are behind (a backlog read from disk); the
    /// oldest are dropped past it. 0 turns read-ahead off.
    pub read_ahead_bytes: u64,
    /// The least one read ahead of a reader reads from disk at once (more
    /// when the reader's Fetch asks more of the partition, up to 4 MiB).
    /// `sluice iotune` picks it from the disk: the smallest read within 5%
    /// of the disk's best bandwidth with one read in flight.
    pub read_ahead_read_bytes: u64,
    /// An idle shard polls this long before it sleeps: a completion or a
    /// message from another core then finds it awake instead of waiting
    /// for a wake-up. 0 (the default) sleeps at once: every polling
    /// microsecond is charged to the broker whether anything comes or not,
    /// and takes the core from whatever shares it (README, "Spinning
    /// before sleeping" has the figures). Worth it only on a core given to
    /// the shard alone, at `log.flush = always`.
    pub spin_before_park_us: u64,
    /// Metadata commands committed between snapshots of the metadata log
    /// (at least; a snapshot also waits until the commands since the last
    /// one outweigh it). A snapshot moves the log start past everything
    /// older, so start-up replays one snapshot and fewer commands than
    /// this, however many changes were ever made. 0 turns snapshots off.
    pub metadata_snapshot_commands: u64,
    /// Share partitions (a share group's state of one partition) a shard
    /// keeps in memory. Past it, idle ones (nothing acquired, everything
    /// written) are dropped, least recently used first (read back from
    /// `__share_group_state` at their next use); with none idle, a share
    /// partition new to the shard is refused for now (retriable).
    pub share_partitions_max: usize,
    /// Bytes of memory each shard sets aside for its disk I/O buffers and
    /// registers with io_uring once, at start: a write or read whose
    /// buffer comes from there is neither allocated nor pinned by the
    /// kernel each time (io_uring's fixed buffers). A buffer that does not
    /// fit (the area full, or larger) comes from the heap and costs both.
    /// Buffers come in powers of two, so a write of `log.write_buffer_bytes`
    /// plus its partial page takes twice that. Resident from start; above
    /// the memlock limit (`ulimit -l`) of a process without CAP_IPC_LOCK it
    /// is used without being registered.
    pub io_memory_bytes: u64,
}

impl ShardConfig {
    /// The least io-memory glommio sets aside whatever it is asked.
    pub const IO_MEMORY_MIN_BYTES: u64 = 64 * 1024;
    /// The most io_uring registers as one buffer (1 GiB): a larger area
    /// could not be registered at all.
    pub const IO_MEMORY_MAX_BYTES: u64 = 1 << 30;

    /// Checks the settings that have bounds.
    pub fn validate(&self) -> Result<(), String> {
        let (min, max) = (Self::IO_MEMORY_MIN_BYTES, Self::IO_MEMORY_MAX_BYTES);
        if !(min..=max).contains(&self.io_memory_bytes) {
            return Err(format!(
                "shard.io_memory_bytes must be between {min} and {max}"
            ));
        }
        Ok(())
    }
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            batch_cache_bytes: 64 * 1024 * 1024,
            read_ahead_bytes: 64 * 1024 * 1024,
            read_ahead_read_bytes: 256 * 1024,
            spin_before_park_us: 0,
            metadata_snapshot_commands: 1024,
            share_partitions_max: 10_000,
            io_memory_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Kafka protocol settings (Kafka's broker config names, snake_cased).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Largest request frame accepted; larger ones close the connection
    /// (`socket.request.max.bytes`).
    pub socket_request_max_bytes: u32,
    /// Bytes of requests a shard holds in memory at once; when reached, it
    /// stops reading sockets until requests complete.
    pub queued_max_request_bytes: u64,
    /// Create unknown topics on Metadata and Produce (`auto.create.topics.enable`).
    pub auto_create_topics_enable: bool,
    /// Partitions of an auto-created topic (`num.partitions`).
    pub num_partitions: i32,
    /// Replicas of an auto-created topic, and of one created with
    /// replication factor -1 (`default.replication.factor`).
    pub default_replication_factor: i16,
    /// This broker's rack, for rack-aware placement (`broker.rack`).
    pub broker_rack: Option<String>,
    /// How often a broker heartbeats to the controller
    /// (`broker.heartbeat.interval.ms`).
    pub broker_heartbeat_interval_ms: u64,
    /// A broker not heard from for this long is fenced: clients stop being
    /// told about it and it leads nothing (`broker.session.timeout.ms`).
    pub broker_session_timeout_ms: u64,
    /// Most record bytes one Fetch response carries, whatever the request
    /// asks (`fetch.max.bytes`); with one response in flight per
    /// connection, it bounds what a consumer that stops reading can hold.
    pub fetch_max_bytes: u32,
    /// Most client connections at once, over all shards
    /// (`max.connections`); past it, new connections wait in the listen
    /// backlog until one closes. Unlimited by default, as in Kafka, but
    /// never above what the open-file limit allows (see the README).
    pub max_connections: u64,
    /// Most connections from one client address (`max.connections.per.ip`);
    /// one more is accepted and closed at once, as Kafka does.
    pub max_connections_per_ip: u64,
    /// A connection with no request in progress for this long is closed
    /// (`connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// A request whose bytes stop arriving (or a response the client stops
    /// reading) for this long closes the connection.
    pub request_stall_timeout_ms: u64,
    /// A follower that has not caught up with its leader for this long
    /// leaves the in-sync set (`replica.lag.time.max.ms`).
    pub replica_lag_time_max_ms: u64,
    /// Longest a follower's fetch waits at the leader for new data
    /// (`replica.fetch.wait.max.ms`).
    pub replica_fetch_wait_max_ms: u64,
    /// Record bytes a follower asks for per partition and fetch
    /// (`replica.fetch.max.bytes`).
    pub replica_fetch_max_bytes: u32,
    /// Pause after a failed fetch from a leader (`replica.fetch.backoff.ms`).
    pub replica_fetch_backoff_ms: u64,
    /// Record bytes a follower asks for per fetch, over all partitions
    /// (`replica.fetch.response.max.bytes`).
    pub replica_fetch_response_max_bytes: u32,
    /// The controller moves leadership back to preferred replicas on its
    /// own (`auto.leader.rebalance.enable`).
    pub auto_leader_rebalance_enable: bool,
    /// How a leader picks the replica a consumer should read from
    /// (`replica.selector.class`, KIP-392): unset, consumers read the
    /// leader; Kafka's `org.apache.kafka.common.replica.RackAwareReplicaSelector`
    /// points a consumer that names its rack at an in-sync replica there.
    pub replica_selector_class: Option<String>,
    /// How often it checks (`leader.imbalance.check.interval.seconds`).
    pub leader_imbalance_check_interval_seconds: u64,
    /// A broker not leading more than this share of the partitions it is
    /// the preferred leader of triggers an election
    /// (`leader.imbalance.per.broker.percentage`).
    pub leader_imbalance_per_broker_percentage: u32,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            socket_request_max_bytes: 104_857_600,
            queued_max_request_bytes: 256 * 1024 * 1024,
            auto_create_topics_enable: true,
            num_partitions: 1,
            default_replication_factor: 1,
            broker_rack: None,
            broker_heartbeat_interval_ms: 2000,
            broker_session_timeout_ms: 9000,
            fetch_max_bytes: 57_671_680,
            max_connections: i32::MAX as u64,
            max_connections_per_ip: i32::MAX as u64,
            connections_max_idle_ms: 600_000,
            request_stall_timeout_ms: 30_000,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1_048_576,
            replica_fetch_backoff_ms: 1000,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            auto_leader_rebalance_enable: true,
            replica_selector_class: None,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// Consumer group coordinator settings (Kafka's broker config names,
/// snake_cased, under `group`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupConfig {
    /// Shortest session timeout a member may ask for
    /// (`group.min.session.timeout.ms`).
    pub min_session_timeout_ms: i32,
    /// Longest session timeout a member may ask for
    /// (`group.max.session.timeout.ms`).
    pub max_session_timeout_ms: i32,
    /// How long the first rebalance of an empty group waits for more
    /// members, extended by each new member up to the rebalance timeout
    /// (`group.initial.rebalance.delay.ms`).
    pub initial_rebalance_delay_ms: i32,
    /// Partitions of `__consumer_offsets`, fixed when it is first created
    /// (`offsets.topic.num.partitions`).
    pub offsets_topic_num_partitions: i32,
    /// Replicas of each `__consumer_offsets` partition, at most the live
    /// brokers when it is created (`offsets.topic.replication.factor`).
    pub offsets_topic_replication_factor: i16,
    /// Segment size of `__consumer_offsets` partitions
    /// (`offsets.topic.segment.bytes`): the log cleaner compacts sealed
    /// segments, so this is how much is written before it can.
    pub offsets_topic_segment_bytes: u64,
    /// Longest metadata string a committed offset may carry
    /// (`offset.metadata.max.bytes`).
    pub offset_metadata_max_bytes: usize,
    /// Most members one group may have (`group.max.size`).
    pub max_size: usize,
    /// Committed offsets of a group are deleted once it has been empty
    /// this long (and the offset is at least this old)
    /// (`offsets.retention.minutes`).
    pub offsets_retention_minutes: i64,
    /// How often expired offsets are looked for
    /// (`offsets.retention.check.interval.ms`).
    pub offsets_retention_check_interval_ms: u64,
    /// KIP-848 groups: a member not heard from this long is removed
    /// (`group.consumer.session.timeout.ms`).
    pub consumer_session_timeout_ms: i32,
    /// KIP-848 groups: how often members heartbeat
    /// (`group.consumer.heartbeat.interval.ms`).
    pub consumer_heartbeat_interval_ms: i32,
    /// Share groups: a member not heard from this long is removed
    /// (`group.share.session.timeout.ms`).
    pub share_session_timeout_ms: i32,
    /// Share groups: how often members heartbeat
    /// (`group.share.heartbeat.interval.ms`).
    pub share_heartbeat_interval_ms: i32,
    /// Share groups: members one group holds (`group.share.max.size`).
    pub share_max_size: i32,
    /// Share groups: how long a member holds records it acquired
    /// (`group.share.record.lock.duration.ms`); a group's
    /// `share.record.lock.duration.ms` overrides it within the bounds below.
    pub share_record_lock_duration_ms: i32,
    /// The least a group may set (`group.share.min.record.lock.duration.ms`).
    pub share_min_record_lock_duration_ms: i32,
    /// The most a group may set (`group.share.max.record.lock.duration.ms`).
    pub share_max_record_lock_duration_ms: i32,
    /// Share groups: deliveries of a record before it is archived
    /// (`group.share.delivery.count.limit`); a group's
    /// `share.delivery.count.limit` overrides it within the bounds below.
    pub share_delivery_count_limit: i32,
    /// The least a group may set (`group.share.min.delivery.count.limit`).
    pub share_min_delivery_count_limit: i32,
    /// The most a group may set (`group.share.max.delivery.count.limit`).
    pub share_max_delivery_count_limit: i32,
    /// Share groups: records of one partition in flight at once
    /// (`group.share.partition.max.record.locks`).
    pub share_partition_max_record_locks: i32,
    /// Share sessions a broker keeps at once (`group.share.max.share.sessions`):
    /// a new one past that is refused with SHARE_SESSION_LIMIT_REACHED.
    pub share_max_share_sessions: i32,
    /// Partitions of `__share_group_state`, fixed when it is first created
    /// (`share.coordinator.state.topic.num.partitions`).
    pub share_state_topic_num_partitions: i32,
    /// Replicas of each `__share_group_state` partition, at most the live
    /// brokers when it is created
    /// (`share.coordinator.state.topic.replication.factor`).
    pub share_state_topic_replication_factor: i16,
    /// Segment size of `__share_group_state` partitions
    /// (`share.coordinator.state.topic.segment.bytes`).
    pub share_state_topic_segment_bytes: u64,
    /// The start every share group's dead-letter topic name must have
    /// (`errors.deadletterqueue.topic.name.prefix`, KIP-1191; empty: any).
    pub errors_deadletterqueue_topic_name_prefix: String,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            offset_metadata_max_bytes: 4096,
            max_size: i32::MAX as usize,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            share_session_timeout_ms: 45_000,
            share_heartbeat_interval_ms: 5_000,
            share_max_size: 200,
            share_record_lock_duration_ms: 30_000,
            share_min_record_lock_duration_ms: 15_000,
            share_max_record_lock_duration_ms: 60_000,
            share_delivery_count_limit: 5,
            share_min_delivery_count_limit: 2,
            share_max_delivery_count_limit: 10,
            share_partition_max_record_locks: 2_000,
            share_max_share_sessions: 2_000,
            share_state_topic_num_partitions: 50,
            share_state_topic_replication_factor: 3,
            share_state_topic_segment_bytes: 100 * 1024 * 1024,
            errors_deadletterqueue_topic_name_prefix: "dlq.".to_owned(),
        }
    }
}

/// Transaction coordinator settings (Kafka's broker config names, without
/// their `transaction.` prefix and snake_cased, under `transaction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransactionConfig {
    /// Longest transaction timeout a producer may ask for
    /// (`transaction.max.timeout.ms`).
    pub max_timeout_ms: i32,
    /// Partitions of `__transaction_state`, fixed when it is first created
    /// (`transaction.state.log.num.partitions`).
    pub state_log_num_partitions: i32,
    /// Replicas of each `__transaction_state` partition, at most the live
    /// brokers when it is created (`transaction.state.log.replication.factor`).
    pub state_log_replication_factor: i16,
    /// Segment size of `__transaction_state` partitions
    /// (`transaction.state.log.segment.bytes`).
    pub state_log_segment_bytes: u64,
    /// How long a transactional id with no transaction in progress is
    /// kept after its last use (`transactional.id.expiration.ms`).
    pub transactional_id_expiration_ms: i64,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            max_timeout_ms: 900_000,
            state_log_num_partitions: 50,
            state_log_replication_factor: 3,
            state_log_segment_bytes: 100 * 1024 * 1024,
            transactional_id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
        }
    }
}

/// The whole node's configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where partitions and metadata live.
    pub data_dir: PathBuf,
    /// Address the Kafka listener binds (every shard, SO_REUSEPORT).
    pub kafka_addr: String,
    /// Address clients are told to connect to (default: `kafka_addr`).
    pub advertised_kafka_addr: Option<String>,
    /// Address of the admin HTTP endpoint (metrics, health).
    pub admin_addr: String,
    /// Shards (pinned executors) to run; 0 = one per available core.
    pub cores: usize,
    /// This broker's id in Metadata responses (`node.id`).
    pub node_id: i32,
    /// `HOST:PORT` the internal listener binds (controller quorum calls,
    /// forwarded proposals); default: this node's address in
    /// `controller_voters`. Unused by a single node.
    pub rpc_addr: Option<String>,
    /// The controller quorum's voters, `ID@HOST:PORT,...` (Kafka's
    /// `controller.quorum.voters`); unset: this node alone.
    pub controller_voters: Option<String>,
    /// The disk's properties as `sluice iotune` measured them (default:
    /// [`IO_PROPERTIES_FILE`] in `data_dir`, when it is there). The
    /// settings in its `[chosen]` table stand in for the built-in
    /// defaults; the configuration file, `SLUICE_*` variables and flags
    /// still win over them.
    pub io_properties_file: Option<PathBuf>,
    pub kafka: KafkaConfig,
    pub log: LogConfig,
    pub shard: ShardConfig,
    pub group: GroupConfig,
    pub transaction: TransactionConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::from("./sluice-data"),
            kafka_addr: "127.0.0.1:9092".into(),
            advertised_kafka_addr: None,
            admin_addr: "127.0.0.1:9644".into(),
            cores: 0,
            node_id: 0,
            rpc_addr: None,
            controller_voters: None,
            io_properties_file: None,
            kafka: KafkaConfig::default(),
            log: LogConfig::default(),
            shard: ShardConfig::default(),
            group: GroupConfig::default(),
            transaction: TransactionConfig::default(),
        }
    }
}

impl NodeConfig {
    /// The host and port clients are told to connect to
    /// (`advertised_kafka_addr`, else `kafka_addr`), brackets of an IPv6
    /// host removed.
    pub fn advertised_kafka(&self) -> Result<(String, i32), String> {
        let advertised = self
            .advertised_kafka_addr
            .as_deref()
            .unwrap_or(&self.kafka_addr);
        let (host, port) = advertised
            .rsplit_once(':')
            .ok_or_else(|| format!("advertised address {advertised:?} is not HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("advertised port in {advertised:?}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok((host.to_owned(), i32::from(port)))
    }
}

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
}

/// The file `sluice iotune` writes in the data directory and the broker
/// reads at start (see [`NodeConfig::io_properties_file`]).
pub const IO_PROPERTIES_FILE: &str = "io-properties.toml";

/// The table of an io-properties file whose settings the broker takes.
pub const IO_PROPERTIES_CHOSEN: &str = "chosen";

/// Loads a [`NodeConfig`]: defaults, then the `[chosen]` settings of the
/// io-properties file (when there is one, see
/// [`NodeConfig::io_properties_file`]), then `file` (TOML) if given, then
/// `SLUICE_*` environment variables, then `overrides` (the CLI's flags, as a
/// serializable struct holding only the flags the user set).
pub fn load<O: Serialize>(
    file: Option<&Path>,
    overrides: Option<&O>,
) -> Result<NodeConfig, ConfigError> {
    // The data directory (and so the io-properties file) comes from the
    // same sources, so they are read once without it to find it.
    let config = extract(layers(None, file, overrides))?;
    let config = match io_properties_path(&config) {
        Some(io) => extract(layers(Some(&io), file, overrides))?,
        None => config,
    };
    validated(config)
}

/// [`load`] without the io-properties file: what `sluice iotune` reads to
/// find where to measure and write it, so a missing or broken file is
/// something it can replace rather than an error.
pub fn load_without_io_properties<O: Serialize>(
    file: Option<&Path>,
    overrides: Option<&O>,
) -> Result<NodeConfig, ConfigError> {
    validated(extract(layers(None, file, overrides))?)
}

/// `config`, once its settings are checked together.
fn validated(config: NodeConfig) -> Result<NodeConfig, ConfigError> {
    config.log.validate().map_err(ConfigError::Invalid)?;
    config.shard.validate().map_err(ConfigError::Invalid)?;
    Ok(config)
}

/// The io-properties file `config` names, or the one in its data
/// directory when that exists.
pub fn io_properties_path(config: &NodeConfig) -> Option<PathBuf> {
    config.io_properties_file.clone().or_else(|| {
        let default = config.data_dir.join(IO_PROPERTIES_FILE);
        default.is_file().then_some(default)
    })
}

fn layers<O: Serialize>(
    io_properties: Option<&Path>,
    file: Option<&Path>,
    overrides: Option<&O>,
) -> Figment {
    let mut figment = Figment::from(Serialized::defaults(NodeConfig::default()));
    if let Some(io) = io_properties {
        figment = figment.merge(Figment::from(Toml::file_exact(io)).focus(IO_PROPERTIES_CHOSEN));
    }
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment = figment.merge(Env::prefixed("SLUICE_").split("__"));
    if let Some(overrides) = overrides {
        figment = figment.merge(Serialized::defaults(overrides));
    }
    figment
}

fn extract(figment: Figment) -> Result<NodeConfig, ConfigError> {
    figment
        .extract()
        .map_err(|e| ConfigError::Parse(Box::new(e)))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn flush_policy_parses_kafka_style_strings() {
        assert_eq!("always".parse(), Ok(FlushPolicy::Always));
        assert_eq!("never".parse(), Ok(FlushPolicy::Never));
        assert_eq!("interval:250".parse(), Ok(FlushPolicy::IntervalMs(250)));
        assert!("interval:0".parse::<FlushPolicy>().is_err());
        assert!("sometimes".parse::<FlushPolicy>().is_err());
    }

    #[test]
    fn later_sources_win() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sluice.toml",
                "data_dir = \"/from-file\"\n[log]\nsegment_bytes = 4096000\nflush = \"never\"\n",
            )?;
            jail.set_env("SLUICE_LOG__SEGMENT_BYTES", "8192000");
            #[derive(Serialize)]
            struct Flags {
                data_dir: &'static str,
            }
            let c = load(
                Some(Path::new("sluice.toml")),
                Some(&Flags {
                    data_dir: "/from-flag",
                }),
            )
            .expect("loads");
            assert_eq!(c.data_dir, PathBuf::from("/from-flag"));
            assert_eq!(c.log.segment_bytes, 8_192_000);
            assert_eq!(c.log.flush, FlushPolicy::Never);
            assert_eq!(c.log.index_interval_bytes, 4096);
            Ok(())
        });
    }

    #[test]
    fn io_properties_stand_in_for_defaults_and_yield_to_every_setting() {
        figment::Jail::expect_with(|jail| {
            std::fs::create_dir("data").map_err(|e| e.to_string())?;
            jail.create_file(
                "data/io-properties.toml",
                "[chosen.log]\nwrite_buffer_bytes = 262144\n\
                 [chosen.shard]\nread_ahead_read_bytes = 1048576\n\
                 [measured]\nwrite_bandwidth = 1\n",
            )?;
            #[derive(Serialize)]
            struct Flags {
                data_dir: &'static str,
            }
            let flags = Flags { data_dir: "data" };
            let c = load::<Flags>(None, Some(&flags)).expect("loads");
            assert_eq!(c.log.write_buffer_bytes, 262_144);
            assert_eq!(c.shard.read_ahead_read_bytes, 1_048_576);
            // The configuration file and the environment win over it.
            jail.create_file("sluice.toml", "[log]\nwrite_buffer_bytes = 524288\n")?;
            jail.set_env("SLUICE_SHARD__READ_AHEAD_READ_BYTES", "2097152");
            let c = load(Some(Path::new("sluice.toml")), Some(&flags)).expect("loads");
            assert_eq!(c.log.write_buffer_bytes, 524_288);
            assert_eq!(c.shard.read_ahead_read_bytes, 2_097_152);
            // Without the file, the defaults.
            let c = load::<()>(None, None).expect("loads");
            assert_eq!(
                c.log.write_buffer_bytes,
                LogConfig::default().write_buffer_bytes
            );
            Ok(())
        });
    }

    #[test]
    fn a_named_io_properties_file_must_exist_and_hold_known_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SLUICE_IO_PROPERTIES_FILE", "missing.toml");
            let err = load::<()>(None, None).unwrap_err();
            assert!(err.to_string().contains("missing.toml"), "{err}");
            jail.create_file("typo.toml", "[chosen.log]\nwrite_bufer_bytes = 4096\n")?;
            jail.set_env("SLUICE_IO_PROPERTIES_FILE", "typo.toml");
            let err = load::<()>(None, None).unwrap_err();
            assert!(err.to_string().contains("write_bufer_bytes"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[log]\nsegmnet_bytes = 1\n")?;
            let err = load::<()>(Some(Path::new("bad.toml")), None).unwrap_err();
            assert!(err.to_string().contains("segmnet_bytes"), "{err}");
            jail.create_file("small.toml", "[log]\nsegment_bytes = 1\n")?;
            let err = load::<()>(Some(Path::new("small.toml")), None).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
            jail.create_file("good.toml", "[log]\nflush = \"interval:5\"\n")?;
            let ok = load::<()>(Some(Path::new("good.toml")), None).expect("loads");
            assert_eq!(ok.log.flush, FlushPolicy::IntervalMs(5));
            jail.set_env("SLUICE_SHARD__IO_MEMORY_BYTES", "4096");
            let err = load::<()>(None, None).unwrap_err();
            assert!(err.to_string().contains("io_memory_bytes"), "{err}");
            jail.set_env("SLUICE_SHARD__IO_MEMORY_BYTES", "2147483648");
            let err = load::<()>(None, None).unwrap_err();
            assert!(err.to_string().contains("io_memory_bytes"), "{err}");
            jail.set_env("SLUICE_SHARD__IO_MEMORY_BYTES", "65536");
            let ok = load::<()>(None, None).expect("the least io-memory loads");
            assert_eq!(ok.shard.io_memory_bytes, 65_536);
            Ok(())
        });
    }
}
