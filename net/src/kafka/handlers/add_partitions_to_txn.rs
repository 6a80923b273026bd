//! AddPartitionsToTxn (0–5): partitions join a producer's transaction
//! before it writes to them, so the coordinator knows where its markers go.
//!
//! Versions 0–3 carry one transaction (a client's request); 4 and 5 carry
//! several, each possibly `verify_only` (KIP-890: a partition leader asks
//! whether a partition is already in a transaction, adding nothing).
//! A partition of a topic that does not exist gets UNKNOWN_TOPIC_OR_PARTITION
//! and the others of its transaction OPERATION_NOT_ATTEMPTED, as Kafka.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, TransactionalId,
};
use sluice_core::{ErrorCode, PartitionId};
use sluice_shard::message::{TxnRequest, TxnResponse};

use super::txns::{call, for_version};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The AddPartitionsToTxn handler, at versions 0–5.
pub struct AddPartitionsToTxnHandler;

impl Handler for AddPartitionsToTxnHandler {
    const KEY: ApiKey = ApiKey::AddPartitionsToTxn;
    const NAME: &'static str = "AddPartitionsToTxn";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    type Request = AddPartitionsToTxnRequest;
    type Response = AddPartitionsToTxnResponse;

    async fn handle(call_: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let ctx = call_.ctx;
        let version = call_.version;
        if version <= 3 {
            let results = add(
                ctx,
                request.v3_and_below_transactional_id.0.as_str(),
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
                &request.v3_and_below_topics,
                false,
            )
            .await;
            // KIP-588: PRODUCER_FENCED from version 2.
            let results = with_error(results, |e| for_version(e, version, 2));
            return Outcome::Answer(
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
            );
        }
        let mut out = Vec::with_capacity(request.transactions.len());
        for t in &request.transactions {
            let results = add(
                ctx,
                t.transactional_id.0.as_str(),
                t.producer_id.0,
                t.producer_epoch,
                &t.topics,
                t.verify_only,
            )
            .await;
            out.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(TransactionalId(t.transactional_id.0.clone()))
                    .with_topic_results(results),
            );
        }
        Outcome::Answer(AddPartitionsToTxnResponse::default().with_results_by_transaction(out))
    }
}

/// One transaction's partitions added (or verified): an error per
/// partition, by topic.
async fn add(
    ctx: &Context,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let wanted: Vec<(String, PartitionId)> = topics
        .iter()
        .flat_map(|t| {
            let name = t.name.0.as_str().to_owned();
            t.partitions.iter().map(move |p| (name.clone(), *p))
        })
        .collect();
    let unknown: Vec<bool> = {
        let metadata = ctx.shard.metadata();
        wanted
            .iter()
            .map(|(topic, p)| {
                metadata
                    .topics
                    .get(topic)
                    .is_none_or(|t| *p < 0 || *p as usize >= t.partitions.len())
            })
            .collect()
    };
    let errors: Vec<ErrorCode> = if unknown.iter().any(|u| *u) {
        unknown
            .iter()
            .map(|u| {
                if *u {
                    ErrorCode::UnknownTopicOrPartition
                } else {
                    ErrorCode::OperationNotAttempted
                }
            })
            .collect()
    } else {
        let answer = call(
            ctx,
            transactional_id,
            TxnRequest::AddPartitions {
                transactional_id: transactional_id.to_owned(),
                producer_id,
                epoch,
                partitions: wanted.clone(),
                verify_only,
            },
        )
        .await;
        match answer {
            TxnResponse::Partitions(errors) if errors.len() == wanted.len() => errors,
            TxnResponse::Error(e) => vec![e; wanted.len()],
            _ => vec![ErrorCode::UnknownServerError; wanted.len()],
        }
    };
    let mut errors = errors.into_iter();
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(
                                    errors.next().unwrap_or(ErrorCode::None).code(),
                                )
                        })
                        .collect(),
                )
        })
        .collect()
}

/// `results` with every partition's error passed through `map`.
fn with_error(
    mut results: Vec<AddPartitionsToTxnTopicResult>,
    map: impl Fn(ErrorCode) -> ErrorCode,
) -> Vec<AddPartitionsToTxnTopicResult> {
    for t in &mut results {
        for p in &mut t.results_by_partition {
            p.partition_error_code = map(ErrorCode::from_code(p.partition_error_code)).code();
        }
    }
    results
}
