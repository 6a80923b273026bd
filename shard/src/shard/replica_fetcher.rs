//! The follower's side of replication: one fetcher task per (shard,
//! leading broker) pair fetches every partition this shard follows from
//! that broker, with Kafka's own requests on its Kafka listener.
//!
//! A follower of a new leader epoch first asks the leader, with
//! OffsetForLeaderEpoch, where its latest epoch ends there, and cuts its
//! log at the point core's [`truncation`] gives (KIP-101, KIP-279). Then it
//! fetches from its log end with `replica_id` set: the leader counts that
//! offset as the follower's log end. Batches go into the log as fetched
//! (CRC checked, not re-encoded); under `log.flush=always` they are synced
//! before the next fetch, so a fetch offset the leader sees is durable
//! here.
//!
//! Throttled replicas (those the topic's
//! `follower.replication.throttled.replicas` names on this broker, while
//! the broker has a `follower.replication.throttled.rate` and the replica
//! is not in the in-sync set, as in Kafka) spend a byte
//! budget this shard keeps at its share of the rate (the rate divided by
//! the broker's shards); while the budget is spent they are left out of
//! the fetches, as Kafka's follower quota does.
//!
//! Invariants: a fetcher runs only while this shard follows something from
//! its broker and exits once nothing is left; a partition whose role moved
//! on while an answer was in flight ignores that answer.

use std::collections::BTreeMap;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::dynamic_config::{
    names_replica, FOLLOWER_THROTTLED_RATE, FOLLOWER_THROTTLED_REPLICAS,
};
use sluice_core::metadata::BrokerId;
use sluice_core::replication::truncation;

use super::replication::Role;
use super::*;
use crate::kafka_link::KafkaLink;

/// Fetch version followers send (topic names, `replica_id`, leader epochs).
const FETCH_VERSION: i16 = 12;
/// OffsetForLeaderEpoch version followers send (`replica_id`, flexible).
const EPOCH_VERSION: i16 = 4;
/// Connect timeout to a leader.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// What an answer may take beyond the fetch's own wait.
const ANSWER_SLACK: Duration = Duration::from_secs(10);
/// Pause after a round in which some partition got an error.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// One followed partition as a round sees it.
struct Followed {
    topic: String,
    partition: PartitionId,
    p: Rc<OwnedPartition>,
    leader_epoch: i32,
    truncated: bool,
}

impl Shard {
    /// Starts the fetcher for `leader` unless it runs.
    pub(super) fn ensure_fetcher(self: &Rc<Self>, leader: BrokerId) {
        if !self.fetchers.borrow_mut().insert(leader) {
            return;
        }
        let shard = self.clone();
        glommio::spawn_local(async move {
            shard.clone().fetch_from(leader).await;
            shard.fetchers.borrow_mut().remove(&leader);
        })
        .detach();
    }

    /// The partitions this shard follows from `leader` now.
    fn followed_from(&self, leader: BrokerId) -> Vec<Followed> {
        self.partitions
            .borrow()
            .iter()
            .filter_map(|((topic, partition), p)| match &*p.role.borrow() {
                Role::Follower(f) if f.leader == leader => Some(Followed {
                    topic: topic.clone(),
                    partition: *partition,
                    p: p.clone(),
                    leader_epoch: f.leader_epoch,
                    truncated: f.truncated,
                }),
                _ => None,
            })
            .collect()
    }

    /// The fetcher's loop: truncate what needs it, then fetch, until
    /// nothing here follows `leader`.
    async fn fetch_from(self: Rc<Self>, leader: BrokerId) {
        let backoff = Duration::from_millis(self.config.kafka.replica_fetch_backoff_ms.max(10));
        let mut link: Option<KafkaLink> = None;
        tracing::debug!(shard = self.id, leader, "replica fetcher starts");
        loop {
            let followed = self.followed_from(leader);
            if followed.is_empty() {
                tracing::debug!(shard = self.id, leader, "replica fetcher stops");
                return;
            }
            if link.is_none() {
                let addr = self
                    .metadata()
                    .brokers
                    .get(&leader)
                    .map(|b| (b.registration.host.clone(), b.registration.port));
                let Some((host, port)) = addr.and_then(|(h, p)| Some((h, u16::try_from(p).ok()?)))
                else {
                    self.env.sleep(backoff).await;
                    continue;
                };
                let client_id = format!("sluice-replica-{}-{}", self.config.node_id, self.id);
                match KafkaLink::connect(&host, port, client_id, self.env.clone(), CONNECT_TIMEOUT)
                    .await
                {
                    Ok(l) => link = Some(l),
                    Err(e) => {
                        tracing::debug!(shard = self.id, leader, error = %e, "cannot reach the leader");
                        self.env.sleep(backoff).await;
                        continue;
                    }
                }
            }
            let Some(l) = link.as_mut() else {
                continue;
            };
            let untruncated: Vec<&Followed> = followed.iter().filter(|f| !f.truncated).collect();
            let round = if untruncated.is_empty() {
                self.fetch_round(l, &followed).await
            } else {
                self.truncation_round(l, &untruncated).await
            };
            match round {
                Ok(true) => {}
                Ok(false) => self.env.sleep(ERROR_PAUSE.min(backoff)).await,
                Err(e) => {
                    tracing::debug!(shard = self.id, leader, error = %e, "fetching from the leader failed");
                    link = None;
                    self.env.sleep(backoff).await;
                }
            }
        }
    }

    /// Marks `f` truncated if its role is still the one the round saw.
    fn mark_truncated(f: &Followed) {
        if let Role::Follower(role) = &mut *f.p.role.borrow_mut() {
            if role.leader_epoch == f.leader_epoch {
                role.truncated = true;
            }
        }
    }

    /// One OffsetForLeaderEpoch round for the followers that have not cut
    /// their logs yet. `Ok(false)` when some partition got an error.
    async fn truncation_round(
        &self,
        link: &mut KafkaLink,
        followed: &[&Followed],
    ) -> Result<bool, String> {
        let mut topics: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
        let mut asking = Vec::new();
        for f in followed {
            match f.p.log.latest_epoch() {
                // An empty log has nothing to cut.
                None => Self::mark_truncated(f),
                Some(epoch) => {
                    topics.entry(&f.topic).or_default().push(
                        OffsetForLeaderPartition::default()
                            .with_partition(f.partition)
                            .with_current_leader_epoch(f.leader_epoch)
                            .with_leader_epoch(epoch),
                    );
                    asking.push(*f);
                }
            }
        }
        if asking.is_empty() {
            return Ok(true);
        }
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(WireBrokerId(self.config.node_id))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetForLeaderTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(name.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let answer = link.call(&request, EPOCH_VERSION, ANSWER_SLACK).await?;
        let mut clean = true;
        for topic in answer.topics {
            for part in topic.partitions {
                let Some(f) = asking
                    .iter()
                    .find(|f| f.topic == topic.topic.0.as_str() && f.partition == part.partition)
                else {
                    continue;
                };
                if part.error_code != 0 {
                    clean = false;
                    continue;
                }
                let still = matches!(&*f.p.role.borrow(), Role::Follower(r) if r.leader_epoch == f.leader_epoch);
                if !still {
                    continue;
                }
                let log_end = f.p.log.log_end_offset();
                let cut = truncation(
                    &f.p.log.leader_epochs(),
                    log_end,
                    f.p.high_watermark(),
                    (part.leader_epoch, part.end_offset),
                );
                if cut.to < log_end {
                    tracing::info!(
                        shard = self.id,
                        topic = f.topic,
                        partition = f.partition,
                        from = log_end,
                        to = cut.to,
                        leader_epoch = part.leader_epoch,
                        "truncating a follower's divergent tail"
                    );
                    if let Err(e) = f.p.log.truncate_to(cut.to, self.env.now_ms()).await {
                        tracing::warn!(topic = f.topic, partition = f.partition, error = %e, "truncation failed");
                        clean = false;
                        continue;
                    }
                    f.p.hw_changed.notify_all();
                }
                if !cut.ask_again {
                    Self::mark_truncated(f);
                }
            }
        }
        Ok(clean)
    }

    /// One Fetch round from every followed partition's log end; appends
    /// what comes back. `Ok(false)` when some partition got an error.
    async fn fetch_round(
        &self,
        link: &mut KafkaLink,
        followed: &[Followed],
    ) -> Result<bool, String> {
        let kafka = &self.config.kafka;
        let now = self.env.monotonic_ms() as i64;
        let throttled = self.throttled(followed, now);
        let held_back =
            throttled.iter().any(|t| *t) && !self.follower_throttle.borrow_mut().allows(now);
        if held_back && throttled.iter().all(|t| *t) {
            let wait = self.follower_throttle.borrow_mut().wait_ms(now).min(1000);
            self.env.sleep(Duration::from_millis(wait.max(1))).await;
            return Ok(true);
        }
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for (f, _) in followed
            .iter()
            .zip(&throttled)
            .filter(|(_, t)| !(held_back && **t))
        {
            topics.entry(&f.topic).or_default().push(
                FetchPartition::default()
                    .with_partition(f.partition)
                    .with_current_leader_epoch(f.leader_epoch)
                    .with_fetch_offset(f.p.log.log_end_offset())
                    .with_last_fetched_epoch(f.p.log.latest_epoch().unwrap_or(-1))
                    .with_log_start_offset(f.p.log.log_start_offset())
                    .with_partition_max_bytes(
                        kafka.replica_fetch_max_bytes.min(i32::MAX as u32) as i32
                    ),
            );
        }
        let wait = Duration::from_millis(kafka.replica_fetch_wait_max_ms);
        let request = FetchRequest::default()
            .with_replica_id(WireBrokerId(self.config.node_id))
            .with_max_wait_ms(wait.as_millis() as i32)
            .with_min_bytes(1)
            .with_max_bytes(kafka.replica_fetch_response_max_bytes.min(i32::MAX as u32) as i32)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(name.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let answer = link
            .call(&request, FETCH_VERSION, wait + ANSWER_SLACK)
            .await?;
        // Every partition's records are slices of the answer's one buffer.
        let source = link.last_answer_buffer();
        if answer.error_code != 0 {
            return Ok(false);
        }
        let mut clean = true;
        for topic in answer.responses {
            for part in topic.partitions {
                let Some(i) = followed.iter().position(|f| {
                    f.topic == topic.topic.0.as_str() && f.partition == part.partition_index
                }) else {
                    continue;
                };
                let f = &followed[i];
                if throttled[i] {
                    let bytes = part.records.as_ref().map_or(0, |r| r.len() as u64);
                    self.follower_throttle
                        .borrow_mut()
                        .spend(bytes, self.env.monotonic_ms() as i64);
                }
                let still = matches!(&*f.p.role.borrow(), Role::Follower(r) if r.leader_epoch == f.leader_epoch && r.truncated);
                if !still {
                    continue;
                }
                match part.error_code {
                    0 => {}
                    code if code == ErrorCode::OffsetOutOfRange.code() => {
                        clean = false;
                        self.out_of_range(f, part.log_start_offset).await;
                        continue;
                    }
                    _ => {
                        clean = false;
                        continue;
                    }
                }
                if let Some(records) = part.records.filter(|r| !r.is_empty()) {
                    let now = self.env.now_ms();
                    if let Err(e) = f.p.log.append_as_follower(records, source, now).await {
                        tracing::warn!(topic = f.topic, partition = f.partition, error = %e, "a replicated append failed");
                        clean = false;
                        continue;
                    }
                    f.p.appended.notify_all();
                    if f.p.flush == FlushPolicy::Always {
                        if let Err(e) = f.p.log.flush().await {
                            tracing::warn!(topic = f.topic, partition = f.partition, error = %e, "syncing replicated batches failed");
                            clean = false;
                        }
                    }
                }
                if let Role::Follower(role) = &mut *f.p.role.borrow_mut() {
                    role.high_watermark = role.high_watermark.max(part.high_watermark);
                }
                f.p.hw_changed.notify_all();
                // The leader's log start moved on (its retention, its
                // compaction of `__consumer_offsets`, DeleteRecords): the
                // follower's follows, within its high watermark, as Kafka's
                // followers do.
                let start = part.log_start_offset.min(f.p.high_watermark());
                if start > f.p.log.log_start_offset() {
                    if let Err(e) = f.p.log.set_log_start_offset(start).await {
                        tracing::warn!(topic = f.topic, partition = f.partition, error = %e, "following the leader's log start failed");
                    }
                }
            }
        }
        Ok(clean)
    }

    /// Which of `followed` the follower throttle applies to (all false
    /// without a rate); brings the shard's budget to its share of the
    /// broker's current rate.
    fn throttled(&self, followed: &[Followed], now: i64) -> Vec<bool> {
        let me = self.config.node_id;
        let metadata = self.metadata.borrow();
        let rate = metadata
            .dynamic_broker_config(me, FOLLOWER_THROTTLED_RATE)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(u64::MAX, |r| r / u64::from(self.shards.max(1)));
        {
            let mut throttle = self.follower_throttle.borrow_mut();
            if throttle.rate() != rate {
                throttle.set_rate(rate, now);
            }
        }
        // As Kafka's follower quota: a replica in the in-sync set is never
        // throttled (it must keep up).
        followed
            .iter()
            .map(|f| {
                rate != u64::MAX
                    && metadata
                        .partition(&f.topic, f.partition)
                        .is_some_and(|m| !m.isr.contains(&me))
                    && names_replica(
                        metadata
                            .topics
                            .get(&f.topic)
                            .and_then(|t| t.configs.get(FOLLOWER_THROTTLED_REPLICAS))
                            .map(String::as_str),
                        f.partition,
                        me,
                    )
            })
            .collect()
    }

    /// The leader says the follower's log end is out of its range: behind
    /// its log start (retention moved on), start over there; otherwise the
    /// histories differ and the follower truncates again.
    async fn out_of_range(&self, f: &Followed, leader_log_start: Offset) {
        let log_end = f.p.log.log_end_offset();
        if leader_log_start >= 0 && log_end < leader_log_start {
            tracing::info!(
                topic = f.topic,
                partition = f.partition,
                leader_log_start,
                "follower behind the leader's log start; starting over there"
            );
            if let Err(e) =
                f.p.log
                    .truncate_fully_and_start_at(leader_log_start, self.env.now_ms())
                    .await
            {
                tracing::warn!(topic = f.topic, partition = f.partition, error = %e, "starting over failed");
            }
        } else if let Role::Follower(role) = &mut *f.p.role.borrow_mut() {
            if role.leader_epoch == f.leader_epoch {
                role.truncated = false;
            }
        }
    }
}
