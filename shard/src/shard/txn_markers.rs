//! WriteTxnMarkers on the owner shard: a transaction's commit or abort
//! marker appended to partitions this shard leads.
//!
//! A marker is appended as the leader appends a coordinator's batch (no
//! sequence, only the producer's epoch checked), made durable and, as
//! Kafka writes markers with acks=all, replicated to the in-sync replicas
//! before it is answered: a transaction is complete only once every
//! partition's marker can no longer be lost. A marker for a partition of
//! `__consumer_offsets` goes through that partition's group coordinator,
//! so the offsets the transaction committed take effect in order with it.

use std::collections::BTreeMap;

use sluice_core::txn::marker::{ControlType, Marker};

use crate::group::OFFSETS_TOPIC;
use crate::message::WriteTxnMarkers;

use super::*;

/// How long a marker waits for the in-sync replicas.
const MARKER_TIMEOUT_MS: u64 = 30_000;

/// How long a marker request to another broker waits for its answer.
const REMOTE_MARKER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to another broker for markers may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Shard {
    /// Writes `marker` to every one of `partitions`, wherever each is led:
    /// partitions led by this broker through their owner shards, the others
    /// with a WriteTxnMarkers request to their leader. The partitions to
    /// try again (no leader, leadership moving, a leader out of reach);
    /// a partition whose topic is gone, or whose producer moved past the
    /// marker's epoch, needs no marker any more (as Kafka's coordinator
    /// drops it).
    pub(crate) async fn write_markers_anywhere(
        self: &Rc<Self>,
        partitions: Vec<(String, PartitionId)>,
        marker: Marker,
    ) -> Vec<(String, PartitionId)> {
        let me = self.config.node_id;
        let mut local: BTreeMap<ShardId, Vec<(String, PartitionId)>> = BTreeMap::new();
        let mut remote: BTreeMap<i32, Vec<(String, PartitionId)>> = BTreeMap::new();
        let mut left = Vec::new();
        {
            let metadata = self.metadata();
            for (topic, partition) in partitions {
                let Some(t) = metadata.topics.get(&topic) else {
                    continue; // deleted: nothing to mark
                };
                let Some(meta) = t.partitions.get(partition as usize) else {
                    continue;
                };
                if meta.leader == me {
                    match meta.shard_on(me) {
                        Some(owner) => local.entry(owner).or_default().push((topic, partition)),
                        None => left.push((topic, partition)),
                    }
                } else if meta.leader >= 0 {
                    remote
                        .entry(meta.leader)
                        .or_default()
                        .push((topic, partition));
                } else {
                    left.push((topic, partition));
                }
            }
        }
        // A newer coordinator, or a producer past this epoch, has taken
        // over the partition's transaction state: nothing to write there.
        let done = |error: ErrorCode| {
            matches!(
                error,
                ErrorCode::None
                    | ErrorCode::InvalidProducerEpoch
                    | ErrorCode::TransactionCoordinatorFenced
                    | ErrorCode::UnknownTopicOrPartition
            )
        };
        for (owner, wanted) in local {
            let op = WriteTxnMarkers {
                markers: wanted
                    .iter()
                    .map(|(t, p)| (t.clone(), *p, marker))
                    .collect(),
            };
            match self.call(owner, op).await {
                Ok(errors) => {
                    for (tp, error) in wanted.into_iter().zip(errors) {
                        // A partition the owner does not know (yet) while
                        // its topic exists is tried again.
                        let gone = error == ErrorCode::UnknownTopicOrPartition
                            && !self.metadata().topics.contains_key(&tp.0);
                        if !(done(error) && (error != ErrorCode::UnknownTopicOrPartition || gone)) {
                            left.push(tp);
                        }
                    }
                }
                Err(_) => left.extend(wanted),
            }
        }
        for (leader, wanted) in remote {
            match self.write_markers_remote(leader, &wanted, &marker).await {
                Ok(errors) => {
                    for (tp, error) in wanted.into_iter().zip(errors) {
                        if !done(error) {
                            left.push(tp);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(shard = self.id, leader, error = %e, "transaction markers to another broker failed");
                    left.extend(wanted);
                }
            }
        }
        left
    }

    /// One WriteTxnMarkers request to broker `leader`: an error per
    /// partition, in order.
    async fn write_markers_remote(
        &self,
        leader: i32,
        partitions: &[(String, PartitionId)],
        marker: &Marker,
    ) -> Result<Vec<ErrorCode>, String> {
        use kafka_protocol::messages::write_txn_markers_request::{
            WritableTxnMarker, WritableTxnMarkerTopic,
        };
        use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
        use kafka_protocol::protocol::StrBytes;

        let mut link = self.link_to(leader, "txn", CONNECT_TIMEOUT).await?;
        let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
        for (topic, partition) in partitions {
            match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                Some(t) => t.partition_indexes.push(*partition),
                None => topics.push(
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partition_indexes(vec![*partition]),
                ),
            }
        }
        let request =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(marker.producer_id))
                .with_producer_epoch(marker.producer_epoch)
                .with_transaction_result(marker.control == ControlType::Commit)
                .with_coordinator_epoch(marker.coordinator_epoch)
                .with_topics(topics)]);
        let answer = link.call(&request, 1, REMOTE_MARKER_TIMEOUT).await?;
        let results = answer
            .markers
            .into_iter()
            .next()
            .ok_or("an answer without the marker")?;
        Ok(partitions
            .iter()
            .map(|(topic, partition)| {
                results
                    .topics
                    .iter()
                    .find(|t| t.name.0.as_str() == topic)
                    .and_then(|t| {
                        t.partitions
                            .iter()
                            .find(|p| p.partition_index == *partition)
                    })
                    .map_or(ErrorCode::UnknownServerError, |p| {
                        ErrorCode::from_code(p.error_code)
                    })
            })
            .collect())
    }

    /// A Kafka connection to broker `id`'s listener, as it registered,
    /// with client id `sluice-PURPOSE-NODE-SHARD`.
    pub(crate) async fn link_to(
        &self,
        id: i32,
        purpose: &str,
        connect_timeout: Duration,
    ) -> Result<crate::kafka_link::KafkaLink, String> {
        let (host, port) = self
            .metadata()
            .brokers
            .get(&id)
            .and_then(|b| {
                Some((
                    b.registration.host.clone(),
                    u16::try_from(b.registration.port).ok()?,
                ))
            })
            .ok_or_else(|| format!("broker {id} has no listener"))?;
        let client_id = format!("sluice-{purpose}-{}-{}", self.config.node_id, self.id);
        crate::kafka_link::KafkaLink::connect(
            &host,
            port,
            client_id,
            self.env.clone(),
            connect_timeout,
        )
        .await
    }

    /// [`crate::message::ListTransactions`]: every id coordinated here.
    pub(crate) async fn list_transactions(
        &self,
        _: crate::message::ListTransactions,
    ) -> Vec<(String, sluice_core::txn::coordinator::TxnMetadata)> {
        self.txns.list()
    }

    /// [`crate::message::DescribeProducers`]: each partition's producers,
    /// on its leader.
    pub(crate) async fn describe_producers(
        &self,
        op: crate::message::DescribeProducers,
    ) -> Vec<Result<Vec<sluice_log::partition::ActiveProducer>, ErrorCode>> {
        op.partitions
            .iter()
            .map(|(topic, partition)| {
                let p = self
                    .partition(topic, *partition)
                    .ok_or_else(|| self.absence_error(topic, *partition))?;
                if p.leads_at().is_none() {
                    return Err(ErrorCode::NotLeaderOrFollower);
                }
                Ok(p.log.active_producers())
            })
            .collect()
    }

    /// [`WriteTxnMarkers`]: one error per marker, in order.
    pub(crate) async fn write_txn_markers(self: &Rc<Self>, op: WriteTxnMarkers) -> Vec<ErrorCode> {
        let mut out = Vec::with_capacity(op.markers.len());
        for (topic, partition, marker) in op.markers {
            let error = if topic == OFFSETS_TOPIC {
                self.groups.write_marker(partition, marker).await
            } else {
                self.write_marker(&topic, partition, &marker).await
            };
            if error != ErrorCode::None {
                tracing::debug!(topic, partition, producer_id = marker.producer_id, %error, "a transaction marker was refused");
            }
            out.push(error);
        }
        out
    }

    async fn write_marker(
        &self,
        topic: &str,
        partition: PartitionId,
        marker: &Marker,
    ) -> ErrorCode {
        let Some(p) = self.partition(topic, partition) else {
            return self.absence_error(topic, partition);
        };
        let Some(epoch) = p.leads_at() else {
            return ErrorCode::NotLeaderOrFollower;
        };
        if let Err(e) = p.log.append_marker(marker, epoch, self.env.now_ms()).await {
            return e.error_code();
        }
        p.appended.notify_all();
        match settle_coordinator_write(&p, &*self.env, MARKER_TIMEOUT_MS).await {
            Ok(()) => ErrorCode::None,
            Err(e) => e,
        }
    }
}

/// Makes what a coordinator just appended to `p` durable and, as Kafka's
/// coordinators write with acks=all, held by every in-sync replica, within
/// `timeout_ms`: NOT_LEADER_OR_FOLLOWER when leadership moved meanwhile.
/// Waiters on the partition (long polls, the last stable offset) are woken.
pub(crate) async fn settle_coordinator_write(
    p: &OwnedPartition,
    env: &dyn Env,
    timeout_ms: u64,
) -> Result<(), ErrorCode> {
    p.log.flush().await.map_err(|e| e.error_code())?;
    p.appended.notify_all();
    p.hw_changed.notify_all();
    let end = p.log.log_end_offset();
    let epoch = p.leads_at().ok_or(ErrorCode::NotLeaderOrFollower)?;
    match p.await_high_watermark(end, epoch, timeout_ms, env).await {
        ErrorCode::None => Ok(()),
        other => Err(other),
    }
}
