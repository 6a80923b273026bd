//! IncrementalAlterConfigs (0–1): changes a topic's overrides (resource
//! type 2) or a broker's dynamic configs (type 4; the empty name is the
//! cluster default) with SET, DELETE, APPEND and SUBTRACT operations
//! (`kafka-configs.sh --alter`, the throttles `kafka-reassign-partitions.sh`
//! sets and clears).
//!
//! Each resource is checked against this broker's metadata, its result
//! computed with core's [`altered`] and each changed value checked as
//! CreateTopics checks it (INVALID_CONFIG with Kafka's message), then sent
//! to the controller, which resolves the operations against its own state.
//! Errors are per resource: UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG,
//! INVALID_REQUEST for a broker config that cannot change at run time, a
//! repeated key, an unknown operation or resource type.
//!
//! What a change reaches: `min.insync.replicas` and the replication
//! throttles act at once; the other topic overrides a partition's log
//! reads when it opens.

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::config::GroupConfig;
use sluice_core::group::configs::{self as group_configs, GROUP_CONFIG_KEYS};
use sluice_core::metadata::dynamic_config::{
    altered, check_broker_config, check_throttled_replicas, ConfigChange, ConfigOp, ConfigResource,
    FOLLOWER_THROTTLED_REPLICAS, LEADER_THROTTLED_REPLICAS,
};
use sluice_core::types::validate_topic_name;
use sluice_core::ErrorCode;
use sluice_shard::Proposal;

use super::configs::check_topic_config;
use super::topics::propose;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The IncrementalAlterConfigs handler: [`handle`], at versions 0–1.
pub struct IncrementalAlterConfigsHandler;

impl Handler for IncrementalAlterConfigsHandler {
    const KEY: ApiKey = ApiKey::IncrementalAlterConfigs;
    const NAME: &'static str = "IncrementalAlterConfigs";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    type Request = IncrementalAlterConfigsRequest;
    type Response = IncrementalAlterConfigsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Kafka's `ConfigResource.Type` ids.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;
/// How long the answer waits for this broker's metadata to show a change.
const SETTLE_MS: u64 = 5_000;
const POLL: Duration = Duration::from_millis(20);

pub(super) type Refusal = (ErrorCode, String);

/// Answers an IncrementalAlterConfigs request.
pub async fn handle(
    ctx: &Rc<Context>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let outcome = alter(ctx, resource, request.validate_only).await;
        let (code, message) = answer(resource.resource_name.as_str(), outcome);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code.code())
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// A resource's error code and message, the refusal logged.
pub(super) fn answer(
    resource: &str,
    outcome: Result<(), Refusal>,
) -> (ErrorCode, Option<StrBytes>) {
    match outcome {
        Ok(()) => (ErrorCode::None, None),
        Err((code, message)) => {
            tracing::info!(resource, %code, message, "config change refused");
            (code, Some(StrBytes::from_string(message)))
        }
    }
}

/// A key named twice in one resource is INVALID_REQUEST, as Kafka has it.
pub(super) fn check_not_repeated(changes: &[ConfigChange], name: &str) -> Result<(), Refusal> {
    if changes.iter().any(|(n, ..)| n == name) {
        return Err((
            ErrorCode::InvalidRequest,
            format!("Error due to duplicate config keys: {name}"),
        ));
    }
    Ok(())
}

/// Checks one resource's changes and, unless only validating, has the
/// controller commit them.
async fn alter(
    ctx: &Rc<Context>,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    let target = resource_of(resource)?;
    let mut changes: Vec<ConfigChange> = Vec::with_capacity(resource.configs.len());
    for c in &resource.configs {
        let name = c.name.as_str().to_owned();
        check_not_repeated(&changes, &name)?;
        let op = ConfigOp::from_id(c.config_operation).ok_or_else(|| {
            (
                ErrorCode::InvalidRequest,
                format!("Unknown config operation {}", c.config_operation),
            )
        })?;
        changes.push((name, op, c.value.as_ref().map(|v| v.as_str().to_owned())));
    }
    commit_changes(ctx, target, changes, validate_only).await
}

/// Checks `changes` to `target` against this broker's metadata and, unless
/// only validating, has the controller commit them, then waits (up to
/// [`SETTLE_MS`]) until this broker's copy shows them.
pub(super) async fn commit_changes(
    ctx: &Rc<Context>,
    target: ConfigResource,
    changes: Vec<ConfigChange>,
    validate_only: bool,
) -> Result<(), Refusal> {
    let expected = {
        let metadata = ctx.shard.metadata();
        if let ConfigResource::Topic(name) = &target {
            if !metadata.topics.contains_key(name) {
                return Err((
                    ErrorCode::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                ));
            }
        }
        let current = metadata.config_overrides(&target);
        let next = altered(&current, &changes);
        for (name, op, value) in &changes {
            check_change(
                &target,
                name,
                *op,
                value.as_deref(),
                next.get(name),
                &ctx.shard.config.group,
            )?;
        }
        next
    };
    if validate_only {
        return Ok(());
    }
    propose(
        ctx,
        Proposal::AlterConfigs {
            resource: target.clone(),
            changes,
        },
    )
    .await?;
    let deadline = ctx.shard.env().monotonic_ms() + SETTLE_MS;
    while ctx.shard.metadata().config_overrides(&target) != expected
        && ctx.shard.env().monotonic_ms() < deadline
    {
        ctx.shard.env().sleep(POLL).await;
    }
    Ok(())
}

fn resource_of(resource: &AlterConfigsResource) -> Result<ConfigResource, Refusal> {
    config_resource(resource.resource_type, resource.resource_name.as_str())
}

/// The resource a request names by Kafka's type id and name.
pub(super) fn config_resource(resource_type: i8, name: &str) -> Result<ConfigResource, Refusal> {
    match resource_type {
        RESOURCE_TOPIC => {
            if let Err(reason) = validate_topic_name(name) {
                return Err((
                    ErrorCode::InvalidTopicException,
                    format!("Topic name {name:?} is illegal: {reason}"),
                ));
            }
            Ok(ConfigResource::Topic(name.to_owned()))
        }
        RESOURCE_BROKER if name.is_empty() => Ok(ConfigResource::Broker(None)),
        RESOURCE_BROKER => match name.parse::<i32>() {
            Ok(id) if id >= 0 => Ok(ConfigResource::Broker(Some(id))),
            _ => Err((
                ErrorCode::InvalidRequest,
                format!("Broker id must be an integer, but it is: {name}"),
            )),
        },
        RESOURCE_GROUP if name.is_empty() => Err((
            ErrorCode::InvalidRequest,
            "Group name must not be empty".into(),
        )),
        RESOURCE_GROUP => Ok(ConfigResource::Group(name.to_owned())),
        other => Err((
            ErrorCode::InvalidRequest,
            format!("Unsupported resource type: {other}"),
        )),
    }
}

/// Checks one change: the key may change on `target`, APPEND and SUBTRACT
/// only on list configs, and the value it leads to (`result`) is valid.
fn check_change(
    target: &ConfigResource,
    name: &str,
    op: ConfigOp,
    value: Option<&str>,
    result: Option<&String>,
    group: &GroupConfig,
) -> Result<(), Refusal> {
    let list = matches!(
        name,
        FOLLOWER_THROTTLED_REPLICAS | LEADER_THROTTLED_REPLICAS | "cleanup.policy"
    );
    if matches!(op, ConfigOp::Append | ConfigOp::Subtract) && !list {
        return Err((
            ErrorCode::InvalidConfig,
            format!("Config value append is not allowed for config key: {name}"),
        ));
    }
    if matches!(op, ConfigOp::Set | ConfigOp::Append) && value.is_none() {
        return Err((
            ErrorCode::InvalidRequest,
            format!("Null value not supported for : {name}"),
        ));
    }
    match target {
        ConfigResource::Group(_) => {
            let checked = if op == ConfigOp::Delete {
                // A deleted key is checked for its name only.
                GROUP_CONFIG_KEYS
                    .contains(&name)
                    .then_some(())
                    .ok_or_else(|| format!("Unknown group config name: {name}"))
            } else {
                group_configs::check(name, result.map_or("", String::as_str), group)
            };
            checked.map_err(|m| (ErrorCode::InvalidConfig, m))
        }
        ConfigResource::Broker(_) => {
            check_broker_config(name, result.map(String::as_str)).map_err(|e| (e.0, e.1))
        }
        ConfigResource::Topic(_) => {
            // A deleted key is checked for its name only.
            if op == ConfigOp::Delete {
                return match check_topic_config(name, Some("")) {
                    Err(m) if m.starts_with("Unknown topic config name") => {
                        Err((ErrorCode::InvalidConfig, m))
                    }
                    _ => Ok(()),
                };
            }
            let checked = result.map_or("", String::as_str);
            check_topic_config(name, Some(checked)).map_err(|m| (ErrorCode::InvalidConfig, m))?;
            if matches!(
                name,
                FOLLOWER_THROTTLED_REPLICAS | LEADER_THROTTLED_REPLICAS
            ) {
                check_throttled_replicas(name, checked)
                    .map_err(|m| (ErrorCode::InvalidConfig, m))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// [`check_change`] under the default broker settings: the error code.
    fn check(
        target: &ConfigResource,
        name: &str,
        op: ConfigOp,
        value: Option<&str>,
        result: Option<&String>,
    ) -> Result<(), ErrorCode> {
        check_change(target, name, op, value, result, &GroupConfig::default()).map_err(|e| e.0)
    }

    /// The overrides a change list leads to from none.
    fn result_of(changes: &[ConfigChange]) -> BTreeMap<String, String> {
        altered(&BTreeMap::new(), changes)
    }

    #[test]
    fn changes_are_checked_as_kafka_checks_them() {
        let topic = ConfigResource::Topic("t".into());
        let set = |n: &str, v: &str| {
            let r = result_of(&[(n.into(), ConfigOp::Set, Some(v.into()))]);
            check(&topic, n, ConfigOp::Set, Some(v), r.get(n))
        };
        assert_eq!(set("retention.ms", "1000"), Ok(()));
        assert_eq!(set("retention.ms", "x"), Err(ErrorCode::InvalidConfig));
        assert_eq!(set("no.such.key", "1"), Err(ErrorCode::InvalidConfig));
        assert_eq!(set(FOLLOWER_THROTTLED_REPLICAS, "0:1,1:2"), Ok(()));
        assert_eq!(
            set(FOLLOWER_THROTTLED_REPLICAS, "zero"),
            Err(ErrorCode::InvalidConfig)
        );
        assert_eq!(
            check(&topic, "retention.ms", ConfigOp::Append, Some("1"), None),
            Err(ErrorCode::InvalidConfig)
        );
        assert_eq!(
            check(&topic, "retention.ms", ConfigOp::Delete, None, None),
            Ok(())
        );
        let broker = ConfigResource::Broker(Some(1));
        let rate = "1048576".to_owned();
        assert_eq!(
            check(
                &broker,
                "follower.replication.throttled.rate",
                ConfigOp::Set,
                Some(&rate),
                Some(&rate)
            ),
            Ok(())
        );
        assert_eq!(
            check(&broker, "log.dirs", ConfigOp::Set, Some("/x"), None),
            Err(ErrorCode::InvalidRequest),
            "a static broker config"
        );
        let day = "86400000".to_owned();
        assert_eq!(
            check(
                &broker,
                "log.retention.ms",
                ConfigOp::Set,
                Some(&day),
                Some(&day)
            ),
            Ok(()),
            "a topic default changes at run time"
        );
        let bad = "x".to_owned();
        assert_eq!(
            check(
                &broker,
                "log.retention.ms",
                ConfigOp::Set,
                Some(&bad),
                Some(&bad)
            ),
            Err(ErrorCode::InvalidConfig)
        );
        let group = ConfigResource::Group("g".into());
        let earliest = "earliest".to_owned();
        let short = "1000".to_owned();
        assert_eq!(
            check(
                &group,
                "share.auto.offset.reset",
                ConfigOp::Set,
                Some(&earliest),
                Some(&earliest)
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &group,
                "share.record.lock.duration.ms",
                ConfigOp::Set,
                Some(&short),
                Some(&short)
            ),
            Err(ErrorCode::InvalidConfig),
            "below group.share.min.record.lock.duration.ms"
        );
        assert_eq!(
            check(&group, "no.such.key", ConfigOp::Delete, None, None),
            Err(ErrorCode::InvalidConfig)
        );
    }
}
