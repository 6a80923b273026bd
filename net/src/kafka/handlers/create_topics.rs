//! CreateTopics (2–7): checks each topic as Kafka's controller does (name,
//! existence, partitions, replication factor, manual assignments, config
//! overrides), then has the controller place and commit it (a replication
//! factor beyond the live brokers is refused there, with Kafka's message).
//!
//! Topics are proposed one after another, so two topics of one request never
//! race each other in the controller. v5+ answers carry the partition count,
//! replication factor and the topic's effective configs; v7 its id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::check_partition_count;
use sluice_core::types::validate_topic_name;
use sluice_core::ErrorCode;
use sluice_shard::Proposal;

use super::configs::{check_topic_config, topic_configs};
use super::topics::{check_manual_assignment, propose, topic_id};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;
use crate::kafka::quotas::MutationQuota;

/// The CreateTopics handler: [`handle`], at versions 2–7.
pub struct CreateTopicsHandler;

impl Handler for CreateTopicsHandler {
    const KEY: ApiKey = ApiKey::CreateTopics;
    const NAME: &'static str = "CreateTopics";
    const MIN_VERSION: i16 = 2;
    const MAX_VERSION: i16 = 7;
    type Request = CreateTopicsRequest;
    type Response = CreateTopicsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let quota = MutationQuota::new(call.header.client_id.as_deref(), call.version, 6);
        Outcome::Answer(handle(call.ctx, request, call.version, quota).await)
    }
}

/// A topic checked and ready to propose.
#[derive(Debug, PartialEq, Eq)]
struct Planned {
    partitions: i32,
    /// As asked (-1: the default).
    replication_factor: i16,
    /// The manual assignment, in partition order (empty: none).
    assignments: Vec<Vec<i32>>,
    configs: BTreeMap<String, String>,
}

impl Planned {
    /// The replication factor the topic gets.
    fn effective_replication_factor(&self, default: i16) -> i16 {
        match (self.assignments.first(), self.replication_factor) {
            (Some(first), _) => i16::try_from(first.len()).unwrap_or(i16::MAX),
            (None, -1) => default,
            (None, factor) => factor,
        }
    }
}

type Refusal = (ErrorCode, String);

fn refuse<T>(error: ErrorCode, message: impl Into<String>) -> Result<T, Refusal> {
    Err((error, message.into()))
}

/// Kafka refuses a name that differs from an existing one only in '.'
/// versus '_' (they collide in metric names).
fn collision<'a>(name: &str, existing: impl Iterator<Item = &'a String>) -> Option<String> {
    let normalized = name.replace('.', "_");
    existing
        .filter(|e| e.as_str() != name)
        .find(|e| e.replace('.', "_") == normalized)
        .cloned()
}

/// Checks a topic that is neither a duplicate in the request nor, as far as
/// this shard knows, existing; `default_partitions` stands in for -1;
/// `known` says which brokers are registered.
fn plan(
    known: &dyn Fn(i32) -> bool,
    default_partitions: i32,
    topic: &CreatableTopic,
) -> Result<Planned, Refusal> {
    let mut assignments = Vec::new();
    let partitions = if topic.assignments.is_empty() {
        if topic.replication_factor != -1 && topic.replication_factor <= 0 {
            return refuse(
                ErrorCode::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.",
            );
        }
        match topic.num_partitions {
            -1 => default_partitions.max(1),
            n if n <= 0 => {
                return refuse(
                    ErrorCode::InvalidPartitions,
                    "Number of partitions was set to an invalid non-positive value.",
                )
            }
            n => n,
        }
    } else {
        if topic.replication_factor != -1 {
            return refuse(
                ErrorCode::InvalidReplicationFactor,
                "A manual partition assignment was specified, but replication factor was not -1.",
            );
        }
        if topic.num_partitions != -1 {
            return refuse(
                ErrorCode::InvalidPartitions,
                "A manual partition assignment was specified, but numPartitions was not -1.",
            );
        }
        let mut seen = HashSet::with_capacity(topic.assignments.len());
        for assignment in &topic.assignments {
            if !seen.insert(assignment.partition_index) {
                return refuse(
                    ErrorCode::InvalidReplicaAssignment,
                    format!(
                        "Found multiple manual partition assignments for partition {}",
                        assignment.partition_index
                    ),
                );
            }
            check_manual_assignment(known, &assignment.broker_ids)
                .or_else(|m| refuse(ErrorCode::InvalidReplicaAssignment, m))?;
        }
        let count = topic.assignments.len();
        if (0..count).any(|p| !i32::try_from(p).is_ok_and(|p| seen.contains(&p))) {
            return refuse(
                ErrorCode::InvalidReplicaAssignment,
                "partitions should be a consecutive 0-based integer sequence",
            );
        }
        let mut ordered: Vec<_> = topic.assignments.iter().collect();
        ordered.sort_by_key(|a| a.partition_index);
        assignments = ordered
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect();
        i32::try_from(count).unwrap_or(i32::MAX)
    };
    check_partition_count(i64::from(partitions))
        .or_else(|m| refuse(ErrorCode::InvalidPartitions, m))?;
    let mut configs = BTreeMap::new();
    for config in &topic.configs {
        let name = config.name.as_str();
        let value = config.value.as_ref().map(|v| v.as_str());
        check_topic_config(name, value).or_else(|m| refuse(ErrorCode::InvalidConfig, m))?;
        if let Some(value) = value {
            configs.insert(name.to_owned(), value.to_owned());
        }
    }
    Ok(Planned {
        partitions,
        replication_factor: topic.replication_factor,
        assignments,
        configs,
    })
}

fn already_exists(name: &str) -> Refusal {
    (
        ErrorCode::TopicAlreadyExists,
        format!("Topic '{name}' already exists."),
    )
}

/// Checks and creates (or, with `validate_only`, only checks) one topic,
/// its partitions taken from `quota` once it passed every other check
/// (validation only too, as Kafka's controller takes them).
async fn create(
    ctx: &Context,
    topic: &CreatableTopic,
    validate_only: bool,
    quota: &mut MutationQuota,
) -> Result<Planned, Refusal> {
    let name = topic.name.0.as_str();
    if let Err(reason) = validate_topic_name(name) {
        return refuse(
            ErrorCode::InvalidTopicException,
            format!("Topic name {name:?} is illegal: {reason}"),
        );
    }
    {
        let metadata = ctx.shard.metadata();
        if metadata.topics.contains_key(name) {
            return Err(already_exists(name));
        }
        if let Some(existing) = collision(name, metadata.topics.keys()) {
            return refuse(
                ErrorCode::InvalidTopicException,
                format!("Topic '{name}' collides with existing topic: {existing}"),
            );
        }
    }
    let known = |id: i32| ctx.shard.metadata().brokers.contains_key(&id);
    let planned = plan(&known, ctx.shard.config.kafka.num_partitions, topic)?;
    quota.take(ctx, planned.partitions)?;
    let proposal = Proposal::CreateTopic {
        name: name.to_owned(),
        partitions: planned.partitions,
        replication_factor: planned.replication_factor,
        assignments: planned.assignments.clone(),
        configs: planned
            .configs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        validate_only,
    };
    let proposed = propose(ctx, proposal).await;
    if proposed.is_err() {
        quota.give_back(ctx, planned.partitions);
    }
    match proposed {
        Ok(_) => Ok(planned),
        // Another request created it since this shard looked.
        Err((ErrorCode::TopicAlreadyExists, _)) => Err(already_exists(name)),
        Err(refusal) => Err(refusal),
    }
}

fn result_configs(
    ctx: &Context,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    topic_configs(&ctx.shard.broker_log_config(), overrides)
        .into_iter()
        .map(|entry| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_string(entry.name))
                .with_value(Some(StrBytes::from_string(entry.value)))
                .with_read_only(entry.read_only)
                .with_config_source(entry.source.id())
                .with_is_sensitive(false)
        })
        .collect()
}

/// Answers a CreateTopics request, its topics' partitions taken from
/// `quota`.
pub async fn handle(
    ctx: &Rc<Context>,
    request: CreateTopicsRequest,
    version: i16,
    mut quota: MutationQuota,
) -> CreateTopicsResponse {
    let mut named: HashMap<&str, usize> = HashMap::new();
    for topic in &request.topics {
        *named.entry(topic.name.0.as_str()).or_default() += 1;
    }
    let duplicates: HashSet<String> = named
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, _)| name.to_owned())
        .collect();

    let mut answered: HashSet<String> = HashSet::new();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        if duplicates.contains(name) {
            // One answer per name, as Kafka's response is keyed by name.
            if answered.insert(name.to_owned()) {
                results.push(
                    result
                        .with_error_code(ErrorCode::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "Duplicate topic name.",
                        ))),
                );
            }
            continue;
        }
        results.push(
            match create(ctx, topic, request.validate_only, &mut quota).await {
                Ok(planned) => {
                    let mut result = result
                        .with_error_code(ErrorCode::None.code())
                        .with_error_message(None);
                    if version >= 5 {
                        result = result
                            .with_num_partitions(planned.partitions)
                            .with_replication_factor(planned.effective_replication_factor(
                                ctx.shard.config.kafka.default_replication_factor,
                            ))
                            .with_configs(Some(result_configs(ctx, &planned.configs)));
                    }
                    if !request.validate_only {
                        result = result.with_topic_id(topic_id(ctx, name));
                    }
                    result
                }
                Err((error, message)) => {
                    tracing::debug!(name, %error, message, "refused to create a topic");
                    result
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_string(message)))
                }
            },
        );
    }
    CreateTopicsResponse::default()
        .with_throttle_time_ms(quota.throttle_time_ms())
        .with_topics(results)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopicConfig,
    };
    use kafka_protocol::messages::BrokerId;

    use super::*;
    use sluice_core::metadata::PARTITIONS_MAX;

    fn topic(num_partitions: i32, replication_factor: i16) -> CreatableTopic {
        CreatableTopic::default()
            .with_num_partitions(num_partitions)
            .with_replication_factor(replication_factor)
    }

    fn assignment(partition: i32, brokers: &[i32]) -> CreatableReplicaAssignment {
        CreatableReplicaAssignment::default()
            .with_partition_index(partition)
            .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
    }

    fn error(result: Result<Planned, Refusal>) -> ErrorCode {
        result.expect_err("refused").0
    }

    #[test]
    fn partitions_and_replication_factor_are_checked_as_kafka_does() {
        assert_eq!(
            plan(&|b| b == 0, 3, &topic(-1, -1)).map(|p| p.partitions),
            Ok(3)
        );
        assert_eq!(
            plan(&|b| b == 0, 3, &topic(4, 1)).map(|p| p.partitions),
            Ok(4)
        );
        assert_eq!(
            error(plan(&|b| b == 0, 3, &topic(0, 1))),
            ErrorCode::InvalidPartitions
        );
        assert_eq!(
            error(plan(&|b| b == 0, 3, &topic(PARTITIONS_MAX + 1, 1))),
            ErrorCode::InvalidPartitions
        );
        assert_eq!(
            error(plan(&|b| b == 0, 3, &topic(1, 0))),
            ErrorCode::InvalidReplicationFactor
        );
        assert_eq!(
            error(plan(&|b| b == 0, 3, &topic(1, -2))),
            ErrorCode::InvalidReplicationFactor
        );
        // Beyond the live brokers is the controller's to refuse.
        assert_eq!(
            plan(&|b| b == 0, 3, &topic(1, 3)).map(|p| p.replication_factor),
            Ok(3)
        );
    }

    #[test]
    fn manual_assignments_must_name_only_this_broker_for_consecutive_partitions() {
        let ok = topic(-1, -1).with_assignments(vec![assignment(1, &[7]), assignment(0, &[7])]);
        assert_eq!(plan(&|b| b == 7, 1, &ok).map(|p| p.partitions), Ok(2));
        let other = topic(-1, -1).with_assignments(vec![assignment(0, &[8])]);
        assert_eq!(
            error(plan(&|b| b == 7, 1, &other)),
            ErrorCode::InvalidReplicaAssignment
        );
        let gap = topic(-1, -1).with_assignments(vec![assignment(0, &[7]), assignment(2, &[7])]);
        assert_eq!(
            error(plan(&|b| b == 7, 1, &gap)),
            ErrorCode::InvalidReplicaAssignment
        );
        let twice = topic(-1, -1).with_assignments(vec![assignment(0, &[7]), assignment(0, &[7])]);
        assert_eq!(
            error(plan(&|b| b == 7, 1, &twice)),
            ErrorCode::InvalidReplicaAssignment
        );
        let with_count = topic(2, -1).with_assignments(vec![assignment(0, &[7])]);
        assert_eq!(
            error(plan(&|b| b == 7, 1, &with_count)),
            ErrorCode::InvalidPartitions
        );
        let with_rf = topic(-1, 1).with_assignments(vec![assignment(0, &[7])]);
        assert_eq!(
            error(plan(&|b| b == 7, 1, &with_rf)),
            ErrorCode::InvalidReplicationFactor
        );
    }

    #[test]
    fn config_overrides_are_checked_and_kept() {
        let config = |name: &'static str, value: Option<&'static str>| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str(name))
                .with_value(value.map(StrBytes::from_static_str))
        };
        let good = topic(1, 1).with_configs(vec![config("retention.ms", Some("1000"))]);
        let planned = plan(&|b| b == 0, 1, &good).expect("accepted");
        assert_eq!(
            planned.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        let unknown = topic(1, 1).with_configs(vec![config("retention.msx", Some("1"))]);
        assert_eq!(
            error(plan(&|b| b == 0, 1, &unknown)),
            ErrorCode::InvalidConfig
        );
        let null = topic(1, 1).with_configs(vec![config("retention.ms", None)]);
        assert_eq!(error(plan(&|b| b == 0, 1, &null)), ErrorCode::InvalidConfig);
    }

    #[test]
    fn names_differing_only_in_dot_and_underscore_collide() {
        let existing = ["a_b".to_owned(), "c".to_owned()];
        assert_eq!(collision("a.b", existing.iter()), Some("a_b".to_owned()));
        assert_eq!(collision("a_b", existing.iter()), None);
        assert_eq!(collision("c.d", existing.iter()), None);
    }
}
