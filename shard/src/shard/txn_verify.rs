//! KIP-890 part 1 on the partition leader: before a transactional
//! producer's first batch in a partition is appended, the leader asks the
//! producer's transaction coordinator whether the partition is in the
//! producer's ongoing transaction (AddPartitionsToTxn, verify only). For a
//! transaction version 2 producer (Produce v12+, TxnOffsetCommit v5+, part
//! 2) it asks the coordinator to add the partition instead (beginning the
//! transaction): such a client sends no AddPartitionsToTxn of its own. A
//! zombie's write (an epoch before the last EndTxn's bump) is fenced by
//! the coordinator's epoch check, and by the partition's once the marker
//! with the bumped epoch is there.
//!
//! Without it a write that arrives after its transaction ended (a retry
//! delayed past the commit, or a client that never added the partition)
//! would open a transaction in the partition that no coordinator knows, so
//! no marker would ever end it: the last stable offset would stop there
//! and every read_committed consumer with it (the "hanging transaction").
//!
//! The group coordinator asks the same before it writes a TxnOffsetCommit's
//! offsets (the group's `__consumer_offsets` partition must be in the
//! transaction), with the guard kept by that partition's [`OffsetsLog`].
//!
//! The coordinator is asked through its owner shard when this broker leads
//! its `__transaction_state` partition, else with an AddPartitionsToTxn v4
//! request to the broker that does. Its answer reaches the client as
//! Kafka's leader passes it on to producers that predate transaction
//! version 2: PRODUCER_FENCED as INVALID_PRODUCER_EPOCH, the retriable
//! coordinator errors as NOT_ENOUGH_REPLICAS (which every client retries
//! without a metadata refresh), the rest (INVALID_TXN_STATE: the partition
//! is not in the transaction) as they are. The guard that keeps a marker
//! from slipping in between the answer and the append is the log's
//! ([`sluice_log::PartitionStore::append_verified`]).
//!
//! [`OffsetsLog`]: crate::group::OffsetsLog

use sluice_core::group::coordinator_partition;

use crate::group::{OffsetsVerification, OFFSETS_TOPIC};
use crate::message::{GroupRequest, GroupResponse, Txn, TxnRequest, TxnResponse};
use crate::txn::TRANSACTION_STATE_TOPIC;

use super::*;

/// How long another broker's coordinator may take to answer.
const REMOTE_VERIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to that broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A transactional write to verify: who writes, and where.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxnWrite<'a> {
    pub transactional_id: &'a str,
    pub producer_id: i64,
    pub epoch: i16,
    pub topic: &'a str,
    pub partition: PartitionId,
    /// Transaction version 2: the coordinator adds the partition to the
    /// transaction (beginning one if none is ongoing) instead of only
    /// checking that it is in it.
    pub adds: bool,
}

/// A produce's transactional producer, as the partition leader checks it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxnProducer<'a> {
    pub transactional_id: Option<&'a str>,
    /// Transaction version 2 (Produce v12+).
    pub adds_partitions: bool,
}

impl Shard {
    /// Asks `write`'s transaction coordinator whether its partition is in
    /// the producer's ongoing transaction: NONE when it is, else the error
    /// the produce is answered with.
    pub(crate) async fn verify_txn_write(self: &Rc<Self>, write: TxnWrite<'_>) -> ErrorCode {
        let answer = match self.locate_txn_coordinator(write.transactional_id) {
            Err(e) => e,
            Ok((partition, Ok(shard))) => self.verify_here(shard, partition, write).await,
            Ok((_, Err(broker))) => self.verify_remote(broker, write).await,
        };
        ShardCounters::bump(&self.counters.txn_verifications);
        let adds = write.adds;
        if answer != ErrorCode::None {
            tracing::debug!(
                transactional_id = write.transactional_id,
                producer_id = write.producer_id,
                topic = write.topic,
                partition = write.partition,
                %answer,
                "a transactional write was not verified"
            );
            ShardCounters::bump(&self.counters.txn_verification_failures);
        }
        for_producer(answer, adds)
    }

    /// KIP-890 for offsets: a TxnOffsetCommit (`request`) for a group of
    /// `partition` of `__consumer_offsets` goes ahead only when that
    /// partition is in the producer's transaction (AddOffsetsToTxn came
    /// first). The verification to write its offsets with (`None` for any
    /// other request), or the answer refusing it.
    pub(crate) async fn verify_txn_offsets(
        self: &Rc<Self>,
        partition: PartitionId,
        request: &GroupRequest,
    ) -> Result<Option<OffsetsVerification>, GroupResponse> {
        let GroupRequest::TxnCommit {
            transactional_id,
            producer_id,
            epoch,
            adds_partition,
            offsets,
            ..
        } = request
        else {
            return Ok(None);
        };
        let Some(log) = self.groups.log(partition) else {
            return Ok(None); // answered as any request for a partition not here
        };
        let verifying = OffsetsVerification::begin(log, *producer_id);
        let write = TxnWrite {
            transactional_id,
            producer_id: *producer_id,
            epoch: *epoch,
            topic: OFFSETS_TOPIC,
            partition,
            adds: *adds_partition,
        };
        match self.verify_txn_write(write).await {
            ErrorCode::None => Ok(Some(verifying)),
            // A commit the coordinator cannot check yet is answered so that
            // the client retries, as Kafka's group coordinator answers.
            ErrorCode::NotEnoughReplicas => Err(GroupResponse::Commit(vec![
                ErrorCode::CoordinatorNotAvailable;
                offsets.len()
            ])),
            refused => Err(GroupResponse::Commit(vec![refused; offsets.len()])),
        }
    }

    /// The partition of `__transaction_state` coordinating
    /// `transactional_id`, and its owner shard here or the broker leading
    /// it; COORDINATOR_NOT_AVAILABLE while nobody does (or the topic does
    /// not exist yet: no transaction can be ongoing then either).
    fn locate_txn_coordinator(
        &self,
        transactional_id: &str,
    ) -> Result<(PartitionId, Result<ShardId, i32>), ErrorCode> {
        let metadata = self.metadata();
        let topic = metadata
            .topics
            .get(TRANSACTION_STATE_TOPIC)
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        let partition = coordinator_partition(transactional_id, topic.partitions.len() as i32);
        let meta = topic
            .partitions
            .get(partition as usize)
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        let me = self.config.node_id;
        match meta.leader {
            leader if leader == me => meta
                .shard_on(me)
                .map(|shard| (partition, Ok(shard)))
                .ok_or(ErrorCode::CoordinatorNotAvailable),
            leader if leader >= 0 => Ok((partition, Err(leader))),
            _ => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }

    async fn verify_here(
        self: &Rc<Self>,
        shard: ShardId,
        partition: PartitionId,
        write: TxnWrite<'_>,
    ) -> ErrorCode {
        let request = TxnRequest::AddPartitions {
            transactional_id: write.transactional_id.to_owned(),
            producer_id: write.producer_id,
            epoch: write.epoch,
            partitions: vec![(write.topic.to_owned(), write.partition)],
            verify_only: !write.adds,
        };
        match self.call(shard, Txn { partition, request }).await {
            Ok(TxnResponse::Partitions(errors)) => errors
                .first()
                .copied()
                .unwrap_or(ErrorCode::UnknownServerError),
            Ok(TxnResponse::Error(e)) => e,
            Ok(_) => ErrorCode::UnknownServerError,
            Err(_) => ErrorCode::CoordinatorNotAvailable,
        }
    }

    /// AddPartitionsToTxn v4 (verify only, as one broker asks another) to
    /// `broker`; a network failure is NETWORK_EXCEPTION, as Kafka's.
    async fn verify_remote(&self, broker: i32, write: TxnWrite<'_>) -> ErrorCode {
        match self.ask_remote(broker, write).await {
            Ok(error) => error,
            Err(why) => {
                tracing::warn!(broker, why, "verifying a transactional write failed");
                ErrorCode::NetworkException
            }
        }
    }

    async fn ask_remote(&self, broker: i32, write: TxnWrite<'_>) -> Result<ErrorCode, String> {
        use kafka_protocol::messages::add_partitions_to_txn_request::{
            AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
        };
        use kafka_protocol::messages::{
            AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId,
        };
        use kafka_protocol::protocol::StrBytes;

        let mut link = self.link_to(broker, "txn-verify", CONNECT_TIMEOUT).await?;
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    write.transactional_id.to_owned(),
                )))
                .with_producer_id(ProducerId(write.producer_id))
                .with_producer_epoch(write.epoch)
                .with_verify_only(!write.adds)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(write.topic.to_owned())))
                    .with_partitions(vec![write.partition])]),
        ]);
        let version = if write.adds { 5 } else { 4 };
        let answer = link.call(&request, version, REMOTE_VERIFY_TIMEOUT).await?;
        if answer.error_code != 0 {
            return Ok(ErrorCode::from_code(answer.error_code));
        }
        Ok(answer
            .results_by_transaction
            .iter()
            .flat_map(|t| t.topic_results.iter())
            .filter(|t| t.name.0.as_str() == write.topic)
            .flat_map(|t| t.results_by_partition.iter())
            .find(|p| p.partition_index == write.partition)
            .map_or(ErrorCode::UnknownServerError, |p| {
                ErrorCode::from_code(p.partition_error_code)
            }))
    }
}

/// What a producer is told for the coordinator's answer `error` (Kafka's
/// leader): PRODUCER_FENCED as INVALID_PRODUCER_EPOCH; the retriable
/// errors as NOT_ENOUGH_REPLICAS, but CONCURRENT_TRANSACTIONS as it is
/// for a transaction version 2 producer (`adds`), which retries it.
pub(super) fn for_producer(error: ErrorCode, adds: bool) -> ErrorCode {
    match error {
        ErrorCode::ProducerFenced => ErrorCode::InvalidProducerEpoch,
        ErrorCode::ConcurrentTransactions if adds => ErrorCode::ConcurrentTransactions,
        ErrorCode::ConcurrentTransactions
        | ErrorCode::NetworkException
        | ErrorCode::CoordinatorLoadInProgress
        | ErrorCode::CoordinatorNotAvailable
        | ErrorCode::NotCoordinator => ErrorCode::NotEnoughReplicas,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable_coordinator_errors_reach_the_producer_as_not_enough_replicas() {
        for e in [
            ErrorCode::ConcurrentTransactions,
            ErrorCode::CoordinatorLoadInProgress,
            ErrorCode::CoordinatorNotAvailable,
            ErrorCode::NotCoordinator,
            ErrorCode::NetworkException,
        ] {
            assert_eq!(for_producer(e, false), ErrorCode::NotEnoughReplicas, "{e}");
        }
        assert_eq!(
            for_producer(ErrorCode::ProducerFenced, false),
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            for_producer(ErrorCode::InvalidTxnState, false),
            ErrorCode::InvalidTxnState
        );
        assert_eq!(for_producer(ErrorCode::None, false), ErrorCode::None);
        assert_eq!(
            for_producer(ErrorCode::ConcurrentTransactions, true),
            ErrorCode::ConcurrentTransactions,
            "transaction version 2 clients retry it"
        );
    }
}
