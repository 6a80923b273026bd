//! Helpers shared by the transaction APIs: finding a transactional id's
//! coordinator and sending it work.
//!
//! A transactional id is coordinated by the shard that leads its partition
//! of `__transaction_state` (Kafka's `abs(hash(id)) % partitions`). The
//! topic is created the first time any id is looked up, as Kafka does,
//! with `transaction.state.log.num.partitions` partitions, compacted.

use sluice_core::metadata::NO_LEADER;
use sluice_core::ErrorCode;
use sluice_shard::message::{Txn, TxnRequest, TxnResponse};
use sluice_shard::txn::TRANSACTION_STATE_TOPIC;

use super::groups::{internal_coordinator, Coordinator, InternalTopic};
use super::topics::propose;
use crate::kafka::context::Context;
use sluice_shard::Proposal;

/// The coordinator of `transactional_id`, creating `__transaction_state`
/// when it does not exist yet.
pub async fn coordinator_of(
    ctx: &Context,
    transactional_id: &str,
) -> Result<Coordinator, ErrorCode> {
    let config = &ctx.shard.config.transaction;
    let spec = InternalTopic {
        name: TRANSACTION_STATE_TOPIC,
        partitions: config.state_log_num_partitions,
        replication_factor: config.state_log_replication_factor,
        segment_bytes: config.state_log_segment_bytes,
    };
    internal_coordinator(ctx, &spec, transactional_id).await
}

/// Runs `request` on `transactional_id`'s coordinator. Errors finding it
/// come back as `TxnResponse::Error`: NOT_COORDINATOR when another broker
/// coordinates it, COORDINATOR_NOT_AVAILABLE while nobody does.
pub async fn call(ctx: &Context, transactional_id: &str, request: TxnRequest) -> TxnResponse {
    if transactional_id.is_empty() {
        return TxnResponse::Error(ErrorCode::InvalidRequest);
    }
    let (shard, partition) = match coordinator_of(ctx, transactional_id).await {
        Ok(Coordinator {
            shard: Some(shard),
            partition,
            ..
        }) => (shard, partition),
        Ok(Coordinator { broker, .. }) if broker == NO_LEADER => {
            return TxnResponse::Error(ErrorCode::CoordinatorNotAvailable)
        }
        Ok(_) => return TxnResponse::Error(ErrorCode::NotCoordinator),
        Err(e) => return TxnResponse::Error(e),
    };
    ctx.shard
        .call(shard, Txn { partition, request })
        .await
        .unwrap_or(TxnResponse::Error(ErrorCode::CoordinatorNotAvailable))
}

/// Runs `ask(None)` on `transactional_id`'s coordinator; when it answers
/// that it needs a fresh producer id (a new id, or an exhausted epoch),
/// allocates one and runs `ask(Some(id))`. An allocation that fails is its
/// error.
pub async fn call_allocating(
    ctx: &Context,
    transactional_id: &str,
    ask: impl Fn(Option<i64>) -> TxnRequest,
) -> TxnResponse {
    match call(ctx, transactional_id, ask(None)).await {
        TxnResponse::NeedProducerId => match allocate_producer_id(ctx).await {
            Ok(fresh) => call(ctx, transactional_id, ask(Some(fresh))).await,
            Err(error) => TxnResponse::Error(error),
        },
        answer => answer,
    }
}

/// A new producer id from the cluster's durable blocks.
pub async fn allocate_producer_id(ctx: &Context) -> Result<i64, ErrorCode> {
    propose(ctx, Proposal::AllocateProducerId)
        .await
        .map_err(|(error, message)| {
            tracing::warn!(%error, message, "allocating a producer id failed");
            error
        })
}

/// What a client at `version` is told for `error` when a transactional
/// write or offset commit could not be verified as part of its
/// transaction (KIP-890): INVALID_TXN_STATE before `abortable_from`,
/// TRANSACTION_ABORTABLE from it (KIP-1050: the client aborts and goes
/// on), as Kafka answers (Produce from 11, TxnOffsetCommit from 4).
pub fn txn_state_for_version(error: ErrorCode, version: i16, abortable_from: i16) -> ErrorCode {
    match error {
        ErrorCode::InvalidTxnState if version >= abortable_from => ErrorCode::TransactionAbortable,
        error => error,
    }
}

/// What a client at `version` is told for `error`: clients older than
/// `fenced_from` know no PRODUCER_FENCED and get INVALID_PRODUCER_EPOCH,
/// as Kafka answers them.
pub fn for_version(error: ErrorCode, version: i16, fenced_from: i16) -> ErrorCode {
    if error == ErrorCode::ProducerFenced && version < fenced_from {
        ErrorCode::InvalidProducerEpoch
    } else {
        error
    }
}
