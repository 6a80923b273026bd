//! TxnOffsetCommit (0–5): a transactional producer commits a group's
//! offsets inside its transaction (Kafka Streams' and every
//! read-process-write loop's exactly-once step).
//!
//! Each partition is checked here as OffsetCommit checks it; the group's
//! coordinator checks the member the commit names, as Kafka 4.4 does for
//! these versions (ILLEGAL_GENERATION for a KIP-848 member's stale epoch
//! and for a member's commit to a group that does not exist; see
//! `GroupCoordinator::check_commit`), writes the offsets durably in the
//! producer's name, and they take effect only when the transaction's
//! commit marker reaches the group's partition (dropped at an abort).
//! Before that, the group's coordinator checks with the transaction
//! coordinator that the group's partition is in the transaction (KIP-890:
//! AddOffsetsToTxn came first); offsets sent without it, or after the
//! transaction ended, are refused with INVALID_TXN_STATE
//! (TRANSACTION_ABORTABLE from version 4), as Kafka answers. Version 5
//! belongs to transaction version 2: the commit itself adds the group's
//! partition to the transaction. Version 6 (topics by id) is not served.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::{call, checked_commits, opt};
use super::txns::txn_state_for_version;
use super::{Call, Handler, Outcome};

/// The TxnOffsetCommit handler, at versions 0–5 (5: transaction version
/// 2, the group's partition joins the transaction with the commit).
pub struct TxnOffsetCommitHandler;

impl Handler for TxnOffsetCommitHandler {
    const KEY: ApiKey = ApiKey::TxnOffsetCommit;
    const NAME: &'static str = "TxnOffsetCommit";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    type Request = TxnOffsetCommitRequest;
    type Response = TxnOffsetCommitResponse;

    async fn handle(call_: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let ctx = call_.ctx;
        let version = call_.version;
        let group_id = request.group_id.0.as_str().to_owned();
        let offsets = checked_commits(
            ctx,
            request.topics.iter().map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        (
                            p.partition_index,
                            p.committed_offset,
                            if version >= 2 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            p.committed_metadata.as_ref().map_or("", |m| m.as_str()),
                        )
                    })
                    .collect();
                (topic.name.0.as_str(), partitions)
            }),
        );
        let count = offsets.len();
        let commit = GroupRequest::TxnCommit {
            group_id: group_id.clone(),
            transactional_id: request.transactional_id.0.as_str().to_owned(),
            producer_id: request.producer_id.0,
            epoch: request.producer_epoch,
            adds_partition: version >= 5,
            member_id: request.member_id.as_str().to_owned(),
            instance_id: opt(&request.group_instance_id),
            generation: if version >= 3 {
                request.generation_id
            } else {
                -1
            },
            // GROUP_ID_NOT_FOUND from v6, which is not served.
            unknown_group_error: ErrorCode::IllegalGeneration,
            offsets,
        };
        let errors = match call(ctx, &group_id, commit).await {
            GroupResponse::Commit(errors) if errors.len() == count => errors,
            GroupResponse::Error(e) => vec![e; count],
            _ => vec![ErrorCode::UnknownServerError; count],
        };
        let mut errors = errors.into_iter();
        let topics = request
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(
                                txn_state_for_version(
                                    stale_epoch_for_version(
                                        errors.next().unwrap_or(ErrorCode::None),
                                        version,
                                    ),
                                    version,
                                    4,
                                )
                                .code(),
                            )
                    })
                    .collect();
                TxnOffsetCommitResponseTopic::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::Answer(TxnOffsetCommitResponse::default().with_topics(topics))
    }
}

/// A KIP-848 member's stale epoch as a TxnOffsetCommit of `version`
/// answers it: ILLEGAL_GENERATION before v6, which knows no
/// STALE_MEMBER_EPOCH (as Kafka answers).
fn stale_epoch_for_version(error: ErrorCode, version: i16) -> ErrorCode {
    match error {
        ErrorCode::StaleMemberEpoch if version < 6 => ErrorCode::IllegalGeneration,
        other => other,
    }
}
