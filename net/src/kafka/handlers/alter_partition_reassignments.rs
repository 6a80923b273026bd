//! AlterPartitionReassignments (0–1): moves partitions' replicas to other
//! brokers, or cancels a move in progress (`kafka-reassign-partitions.sh
//! --execute` and `--cancel`).
//!
//! Each partition is judged against this broker's metadata first (core's
//! [`reassignment::check`]: UNKNOWN_TOPIC_OR_PARTITION,
//! NO_REASSIGNMENT_IN_PROGRESS, INVALID_REPLICA_ASSIGNMENT, and with v1's
//! `allow_replication_factor_change` false INVALID_REPLICATION_FACTOR);
//! the rest go to the controller in one proposal. As in Kafka, the answer
//! says the move started, not that it finished: it waits (within the
//! request's timeout) only until this broker's metadata shows it started.
//! ListPartitionReassignments shows the moves in progress.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::{reassignment, BrokerId};
use sluice_core::ErrorCode;
use sluice_shard::Proposal;

use super::topics::propose;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The AlterPartitionReassignments handler: [`handle`], at versions 0–1.
pub struct AlterPartitionReassignmentsHandler;

impl Handler for AlterPartitionReassignmentsHandler {
    const KEY: ApiKey = ApiKey::AlterPartitionReassignments;
    const NAME: &'static str = "AlterPartitionReassignments";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    type Request = AlterPartitionReassignmentsRequest;
    type Response = AlterPartitionReassignmentsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request, call.version).await)
    }
}

/// How often the answer re-reads the metadata while it waits.
const POLL: Duration = Duration::from_millis(20);
/// Longest the answer waits for the metadata, whatever the timeout.
const WAIT_MAX_MS: u64 = 30_000;

type Target = (String, i32, Option<Vec<BrokerId>>);

/// Answers an AlterPartitionReassignments request at `version`.
pub async fn handle(
    ctx: &Rc<Context>,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let allow_change = version < 1 || request.allow_replication_factor_change;
    let wanted: Vec<Target> = request
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.0.as_str().to_owned();
            t.partitions.iter().map(move |p| {
                let target = p
                    .replicas
                    .as_ref()
                    .map(|r| r.iter().map(|b| b.0).collect::<Vec<BrokerId>>());
                (name.clone(), p.partition_index, target)
            })
        })
        .collect();
    let mut results: Vec<(Target, Option<(ErrorCode, String)>)> = {
        let metadata = ctx.shard.metadata();
        wanted
            .into_iter()
            .map(|(topic, p, target)| {
                // `__consumer_offsets` too: its groups follow its leaders.
                let verdict =
                    reassignment::check(&metadata, &topic, p, target.as_deref(), allow_change)
                        .err();
                ((topic, p, target), verdict)
            })
            .collect()
    };
    let moving: Vec<Target> = results
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(t, _)| t.clone())
        .collect();
    if !moving.is_empty() {
        let proposal = Proposal::ReassignPartitions {
            partitions: moving.clone(),
        };
        let refused = propose(ctx, proposal).await.err();
        if let Some((code, message)) = &refused {
            tracing::info!(%code, message, "partition reassignment refused");
        }
        let timeout_ms = (request.timeout_ms.max(0) as u64).min(WAIT_MAX_MS);
        let deadline = ctx.shard.env().monotonic_ms() + timeout_ms;
        while refused.is_none()
            && moving.iter().any(|t| !started(ctx, t))
            && ctx.shard.env().monotonic_ms() < deadline
        {
            ctx.shard.env().sleep(POLL).await;
        }
        for (target, verdict) in results.iter_mut() {
            if verdict.is_none() {
                *verdict = match &refused {
                    Some(e) => Some(e.clone()),
                    None if started(ctx, target) => None,
                    None => Some((
                        ErrorCode::RequestTimedOut,
                        "The reassignment was not seen to start in time.".into(),
                    )),
                };
            }
        }
    }
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for ((topic, p, _), verdict) in results {
        let (code, message) = match verdict {
            Some((code, message)) => (code, Some(StrBytes::from_string(message))),
            None => (ErrorCode::None, None),
        };
        by_topic.entry(topic).or_default().push(
            ReassignablePartitionResponse::default()
                .with_partition_index(p)
                .with_error_code(code.code())
                .with_error_message(message),
        );
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_change)
        .with_responses(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    ReassignableTopicResponse::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// True once this broker's metadata shows `target`'s move started (or
/// finished), or its cancellation done.
fn started(ctx: &Context, (topic, partition, target): &Target) -> bool {
    let metadata = ctx.shard.metadata();
    let Some(p) = metadata.partition(topic, *partition) else {
        return true;
    };
    match target {
        None => !p.reassigning(),
        Some(brokers) => {
            let now: Vec<BrokerId> = p.target_replicas().iter().map(|r| r.broker).collect();
            &now == brokers
        }
    }
}
