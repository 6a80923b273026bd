//! ElectLeaders (0–2): moves leadership back to each partition's preferred
//! replica (`kafka-leader-election.sh --election-type preferred`).
//!
//! Each partition is judged against this broker's metadata first:
//! ELECTION_NOT_NEEDED when its preferred replica leads already,
//! PREFERRED_LEADER_NOT_AVAILABLE when that replica is out of sync or
//! fenced, UNKNOWN_TOPIC_OR_PARTITION when there is no such partition. The
//! rest go to the controller in one proposal; the answer waits (within the
//! request's timeout) until this broker's metadata shows each of them led
//! by its preferred replica. With no partitions named, every partition is
//! elected that can be, and only those appear in the answer. An unclean
//! election (type 1) leads a leaderless partition with an in-sync,
//! eligible (KIP-966) or else any live replica, which may lose
//! acknowledged records: a partition with a leader gets
//! ELECTION_NOT_NEEDED, one with no live replica
//! ELIGIBLE_LEADERS_NOT_AVAILABLE.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::election::preferred_leader;
use sluice_core::metadata::NO_LEADER;
use sluice_core::ErrorCode;
use sluice_shard::Proposal;

use super::topics::propose;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The ElectLeaders handler: [`handle`], at versions 0–2.
pub struct ElectLeadersHandler;

impl Handler for ElectLeadersHandler {
    const KEY: ApiKey = ApiKey::ElectLeaders;
    const NAME: &'static str = "ElectLeaders";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    type Request = ElectLeadersRequest;
    type Response = ElectLeadersResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// How often the answer re-reads the metadata while it waits.
const POLL: Duration = Duration::from_millis(20);
/// Longest the answer waits for the metadata, whatever the timeout.
const WAIT_MAX_MS: u64 = 30_000;

/// Answers an ElectLeaders request.
pub async fn handle(ctx: &Rc<Context>, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let unclean = request.election_type == 1;
    let named = request.topic_partitions.is_some();
    let wanted: Vec<(String, i32)> = match &request.topic_partitions {
        Some(topics) => topics
            .iter()
            .flat_map(|t| {
                let name = t.topic.0.as_str().to_owned();
                t.partitions.iter().map(move |p| (name.clone(), *p))
            })
            .collect(),
        None => {
            let metadata = ctx.shard.metadata();
            metadata
                .topics
                .iter()
                .flat_map(|(name, t)| {
                    (0..t.partitions.len() as i32).map(move |p| (name.clone(), p))
                })
                .collect()
        }
    };
    // Per partition: its result now, or None when it goes to the controller.
    let mut results: Vec<((String, i32), Option<ErrorCode>)> = Vec::with_capacity(wanted.len());
    {
        let metadata = ctx.shard.metadata();
        for (topic, p) in wanted {
            let verdict = match metadata.partition(&topic, p) {
                None => Some(ErrorCode::UnknownTopicOrPartition),
                Some(meta) if unclean => {
                    let live = meta
                        .replicas
                        .iter()
                        .any(|r| metadata.brokers.get(&r.broker).is_some_and(|b| !b.fenced));
                    if meta.leader != NO_LEADER {
                        Some(ErrorCode::ElectionNotNeeded)
                    } else if !live {
                        Some(ErrorCode::EligibleLeadersNotAvailable)
                    } else {
                        None
                    }
                }
                Some(meta) => preferred_leader(&metadata, meta).err(),
            };
            results.push(((topic, p), verdict));
        }
    }
    let electing: Vec<(String, i32)> = results
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(tp, _)| tp.clone())
        .collect();
    if !electing.is_empty() {
        let proposal = if unclean {
            Proposal::UncleanElect {
                partitions: electing.clone(),
            }
        } else {
            Proposal::ElectLeaders {
                partitions: Some(electing.clone()),
            }
        };
        let done = |t: &str, p: i32| {
            if unclean {
                has_leader(ctx, t, p)
            } else {
                led_by_preferred(ctx, t, p)
            }
        };
        let outcome = propose(ctx, proposal).await;
        if let Err((code, message)) = &outcome {
            tracing::info!(%code, message, "preferred-leader election refused");
        }
        let refused = outcome.err().map(|(code, _)| code);
        let timeout_ms = (request.timeout_ms.max(0) as u64).min(WAIT_MAX_MS);
        let deadline = ctx.shard.env().monotonic_ms() + timeout_ms;
        loop {
            let pending = electing.iter().any(|(t, p)| !done(t, *p));
            if refused.is_some() || !pending || ctx.shard.env().monotonic_ms() >= deadline {
                break;
            }
            ctx.shard.env().sleep(POLL).await;
        }
        for ((topic, p), verdict) in results.iter_mut() {
            if verdict.is_none() {
                *verdict = Some(match refused {
                    Some(code) => code,
                    None if done(topic, *p) => ErrorCode::None,
                    None if unclean => ErrorCode::EligibleLeadersNotAvailable,
                    None => ErrorCode::PreferredLeaderNotAvailable,
                });
            }
        }
    }
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, p), verdict) in results {
        let code = verdict.unwrap_or(ErrorCode::None);
        // Asked for all: only the partitions an election was tried for.
        if !named
            && matches!(
                code,
                ErrorCode::ElectionNotNeeded | ErrorCode::PreferredLeaderNotAvailable
            )
        {
            continue;
        }
        let message = (code != ErrorCode::None).then(|| StrBytes::from_string(message_of(code)));
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(p)
                .with_error_code(code.code())
                .with_error_message(message),
        );
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partition_result(partitions)
            })
            .collect(),
    )
}

fn has_leader(ctx: &Context, topic: &str, partition: i32) -> bool {
    let metadata = ctx.shard.metadata();
    metadata
        .partition(topic, partition)
        .is_some_and(|p| p.leader != NO_LEADER)
}

fn led_by_preferred(ctx: &Context, topic: &str, partition: i32) -> bool {
    let metadata = ctx.shard.metadata();
    metadata
        .partition(topic, partition)
        .is_some_and(|p| p.replicas.first().is_some_and(|r| r.broker == p.leader))
}

fn message_of(code: ErrorCode) -> String {
    match code {
        ErrorCode::ElectionNotNeeded => "Leader election not needed for topic partition.".into(),
        ErrorCode::PreferredLeaderNotAvailable => "The preferred leader was not available.".into(),
        ErrorCode::EligibleLeadersNotAvailable => {
            "Eligible topic partition leaders are not available.".into()
        }
        ErrorCode::UnknownTopicOrPartition => {
            "This server does not host this topic-partition.".into()
        }
        other => other.to_string(),
    }
}
