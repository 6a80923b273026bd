//! CreatePartitions (0–3): grows a topic to a new partition count; the
//! controller places the new partitions on shards and commits the change.
//!
//! Checks as Kafka's controller: the topic exists, the count grows, and
//! manual assignments (one per new partition) name only this broker once;
//! then the partitions added are taken from the client's controller
//! mutation quota (strict from v3).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::check_partition_count;
use sluice_core::ErrorCode;
use sluice_shard::Proposal;

use super::topics::{check_manual_assignment, propose};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;
use crate::kafka::quotas::MutationQuota;

/// The CreatePartitions handler: [`handle`], at versions 0–3.
pub struct CreatePartitionsHandler;

impl Handler for CreatePartitionsHandler {
    const KEY: ApiKey = ApiKey::CreatePartitions;
    const NAME: &'static str = "CreatePartitions";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    type Request = CreatePartitionsRequest;
    type Response = CreatePartitionsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let quota = MutationQuota::new(call.header.client_id.as_deref(), call.version, 3);
        Outcome::Answer(handle(call.ctx, request, quota).await)
    }
}

type Refusal = (ErrorCode, String);

/// Checks growing a topic of `current` partitions as `topic` asks.
fn check(
    known: &dyn Fn(i32) -> bool,
    current: i32,
    topic: &CreatePartitionsTopic,
) -> Result<(), Refusal> {
    let count = topic.count;
    if count < current {
        return Err((
            ErrorCode::InvalidPartitions,
            format!("The topic {} currently has {current} partition(s); {count} would not be an increase.", topic.name.0),
        ));
    }
    if count == current {
        return Err((
            ErrorCode::InvalidPartitions,
            format!("Topic already has {current} partition(s)."),
        ));
    }
    check_partition_count(i64::from(count)).map_err(|m| (ErrorCode::InvalidPartitions, m))?;
    if let Some(assignments) = &topic.assignments {
        let added = count - current;
        if usize::try_from(added).ok() != Some(assignments.len()) {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
                    assignments.len()
                ),
            ));
        }
        for assignment in assignments {
            check_manual_assignment(known, &assignment.broker_ids)
                .map_err(|m| (ErrorCode::InvalidReplicaAssignment, m))?;
        }
    }
    Ok(())
}

/// Checks and grows (or, with `validate_only`, only checks) one topic, the
/// partitions it adds taken from `quota` once every other check passed.
async fn create(
    ctx: &Context,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
    quota: &mut MutationQuota,
) -> Result<(), Refusal> {
    let name = topic.name.0.as_str();
    let current = ctx
        .shard
        .metadata()
        .topics
        .get(name)
        .map(|t| t.partitions.len());
    let Some(current) = current else {
        return Err((
            ErrorCode::UnknownTopicOrPartition,
            "This server does not host this topic-partition.".into(),
        ));
    };
    let known = |id: i32| ctx.shard.metadata().brokers.contains_key(&id);
    let current = i32::try_from(current).unwrap_or(i32::MAX);
    check(&known, current, topic)?;
    let added = topic.count - current;
    quota.take(ctx, added)?;
    let assignments = topic
        .assignments
        .iter()
        .flatten()
        .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
        .collect();
    let proposal = Proposal::CreatePartitions {
        name: name.to_owned(),
        total: topic.count,
        assignments,
        validate_only,
    };
    let proposed = propose(ctx, proposal).await.map(|_| ());
    if proposed.is_err() {
        quota.give_back(ctx, added);
    }
    proposed
}

/// Answers a CreatePartitions request, the partitions it adds taken from
/// `quota`.
pub async fn handle(
    ctx: &Rc<Context>,
    request: CreatePartitionsRequest,
    mut quota: MutationQuota,
) -> CreatePartitionsResponse {
    let mut named: HashMap<&str, usize> = HashMap::new();
    for topic in &request.topics {
        *named.entry(topic.name.0.as_str()).or_default() += 1;
    }
    let duplicates: HashSet<String> = named
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, _)| name.to_owned())
        .collect();

    let mut answered = HashSet::new();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let outcome = if duplicates.contains(name) {
            if !answered.insert(name.to_owned()) {
                continue;
            }
            Err((
                ErrorCode::InvalidRequest,
                "Duplicate topic name.".to_owned(),
            ))
        } else {
            create(ctx, topic, request.validate_only, &mut quota).await
        };
        results.push(match outcome {
            Ok(()) => result
                .with_error_code(ErrorCode::None.code())
                .with_error_message(None),
            Err((error, message)) => {
                tracing::debug!(name, %error, message, "refused to create partitions");
                result
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message)))
            }
        });
    }
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(quota.throttle_time_ms())
        .with_results(results)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
    use kafka_protocol::messages::{BrokerId, TopicName};

    use super::*;
    use sluice_core::metadata::PARTITIONS_MAX;

    fn grow(count: i32, assignments: Option<Vec<&[i32]>>) -> CreatePartitionsTopic {
        CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_count(count)
            .with_assignments(assignments.map(|a| {
                a.into_iter()
                    .map(|brokers| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect()
            }))
    }

    fn error(result: Result<(), Refusal>) -> ErrorCode {
        result.expect_err("refused").0
    }

    #[test]
    fn the_count_must_grow() {
        assert_eq!(check(&|b| b == 0, 2, &grow(3, None)), Ok(()));
        assert_eq!(
            error(check(&|b| b == 0, 2, &grow(2, None))),
            ErrorCode::InvalidPartitions
        );
        assert_eq!(
            error(check(&|b| b == 0, 2, &grow(1, None))),
            ErrorCode::InvalidPartitions
        );
        assert_eq!(
            error(check(&|b| b == 0, 2, &grow(PARTITIONS_MAX + 1, None))),
            ErrorCode::InvalidPartitions
        );
    }

    #[test]
    fn assignments_name_only_this_broker_one_per_new_partition() {
        assert_eq!(
            check(&|b| b == 5, 1, &grow(3, Some(vec![&[5], &[5]]))),
            Ok(())
        );
        assert_eq!(
            error(check(&|b| b == 5, 1, &grow(3, Some(vec![&[5]])))),
            ErrorCode::InvalidReplicaAssignment
        );
        assert_eq!(
            error(check(&|b| b == 5, 1, &grow(2, Some(vec![&[6]])))),
            ErrorCode::InvalidReplicaAssignment
        );
        assert_eq!(
            error(check(&|b| b == 5, 1, &grow(2, Some(vec![&[5, 6]])))),
            ErrorCode::InvalidReplicaAssignment
        );
    }
}
