//! DescribeConfigs (1–4): a topic's effective configs (resource type 2),
//! this broker's (type 4), its loggers (type 8) or a group's (type 32),
//! under Kafka's names, filtered by the requested
//! keys; the values and their sources come from [`super::configs`].
//!
//! Errors are per resource, as Kafka answers them: an unknown topic is
//! UNKNOWN_TOPIC_OR_PARTITION, another broker's id or an unsupported
//! resource type is INVALID_REQUEST.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::dynamic_config::ConfigResource;
use sluice_core::types::validate_topic_name;
use sluice_core::ErrorCode;

use super::configs::{
    broker_configs, dynamic_broker_configs, group_configs, logger_configs, topic_configs,
    ConfigEntry, ConfigSource,
};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The DescribeConfigs handler: [`handle`], at versions 1–4.
pub struct DescribeConfigsHandler;

impl Handler for DescribeConfigsHandler {
    const KEY: ApiKey = ApiKey::DescribeConfigs;
    const NAME: &'static str = "DescribeConfigs";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 4;
    type Request = DescribeConfigsRequest;
    type Response = DescribeConfigsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request))
    }
}

/// Kafka's `ConfigResource.Type` ids.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_GROUP: i8 = 32;

type Refusal = (ErrorCode, String);

/// What the client asked to see besides names and values.
#[derive(Debug, Clone, Copy)]
struct Detail {
    synonyms: bool,
    documentation: bool,
}

fn configs_of(
    ctx: &Context,
    resource: &DescribeConfigsResource,
) -> Result<Vec<ConfigEntry>, Refusal> {
    let name = resource.resource_name.as_str();
    match resource.resource_type {
        RESOURCE_TOPIC => {
            if let Err(reason) = validate_topic_name(name) {
                return Err((
                    ErrorCode::InvalidTopicException,
                    format!("Topic name {name:?} is illegal: {reason}"),
                ));
            }
            let metadata = ctx.shard.metadata();
            let Some(topic) = metadata.topics.get(name) else {
                return Err((
                    ErrorCode::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                ));
            };
            Ok(topic_configs(
                &ctx.shard.broker_log_config(),
                &topic.configs,
            ))
        }
        RESOURCE_BROKER => {
            // The empty name asks for the cluster-wide dynamic defaults.
            if name.is_empty() {
                return Ok(dynamic_broker_configs(&ctx.shard.metadata(), None));
            }
            match name.parse::<i32>() {
                Ok(id) if id == ctx.node_id => {
                    let mut entries = broker_configs(&ctx.shard.config);
                    // A dynamic value set wins over the static one.
                    for d in dynamic_broker_configs(&ctx.shard.metadata(), Some(id)) {
                        match entries.iter().position(|e| e.name == d.name) {
                            Some(i) if d.source != ConfigSource::Default => entries[i] = d,
                            Some(_) => {}
                            None => entries.push(d),
                        }
                    }
                    Ok(entries)
                }
                Ok(id) => Err((
                    ErrorCode::InvalidRequest,
                    format!(
                        "Unexpected broker id, expected {} or empty string, but received {id}",
                        ctx.node_id
                    ),
                )),
                Err(_) => Err((
                    ErrorCode::InvalidRequest,
                    format!("Broker id must be an integer, but it is: {name}"),
                )),
            }
        }
        RESOURCE_GROUP if name.is_empty() => Err((
            ErrorCode::InvalidRequest,
            "Group name must not be empty".into(),
        )),
        RESOURCE_GROUP => Ok(group_configs(
            &ctx.shard.config,
            &ctx.shard
                .metadata()
                .config_overrides(&ConfigResource::Group(name.to_owned())),
        )),
        RESOURCE_BROKER_LOGGER => match name.parse::<i32>() {
            Ok(id) if id == ctx.node_id => Ok(logger_configs()),
            _ => Err((
                ErrorCode::InvalidRequest,
                format!(
                    "Unexpected broker id, expected {}, but received {name}",
                    ctx.node_id
                ),
            )),
        },
        other => Err((
            ErrorCode::InvalidRequest,
            format!("Unsupported resource type: {other}"),
        )),
    }
}

/// Keeps the entries named in `keys`; no keys (null or empty) keeps all.
fn filtered(entries: Vec<ConfigEntry>, keys: Option<&[StrBytes]>) -> Vec<ConfigEntry> {
    match keys {
        Some(keys) if !keys.is_empty() => entries
            .into_iter()
            .filter(|e| keys.iter().any(|k| k.as_str() == e.name))
            .collect(),
        _ => entries,
    }
}

fn to_wire(entry: ConfigEntry, detail: Detail) -> DescribeConfigsResourceResult {
    let synonyms = if detail.synonyms {
        entry
            .synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(s.name))
                    .with_value(Some(StrBytes::from_string(s.value)))
                    .with_source(s.source.id())
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(entry.name))
        .with_value(Some(StrBytes::from_string(entry.value)))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source.id())
        .with_is_sensitive(false)
        .with_synonyms(synonyms)
        .with_config_type(entry.config_type.id())
        .with_documentation(
            detail
                .documentation
                .then(|| StrBytes::from_static_str(entry.documentation)),
        )
}

/// Answers a DescribeConfigs request.
pub fn handle(ctx: &Context, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let detail = Detail {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
    };
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match configs_of(ctx, &resource) {
                Ok(entries) => {
                    let configs = filtered(entries, resource.configuration_keys.as_deref())
                        .into_iter()
                        .map(|e| to_wire(e, detail))
                        .collect();
                    result
                        .with_error_code(ErrorCode::None.code())
                        .with_error_message(None)
                        .with_configs(configs)
                }
                Err((error, message)) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_core::config::LogConfig;

    use super::*;

    #[test]
    fn requested_keys_filter_the_listing_and_none_or_empty_keeps_all() {
        let all = topic_configs(&LogConfig::default(), &BTreeMap::new());
        let count = all.len();
        let keys = [
            StrBytes::from_static_str("retention.ms"),
            StrBytes::from_static_str("no.such"),
        ];
        let some = filtered(all.clone(), Some(&keys));
        assert_eq!(
            some.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            vec!["retention.ms"]
        );
        assert_eq!(filtered(all.clone(), Some(&[])).len(), count);
        assert_eq!(filtered(all, None).len(), count);
    }

    #[test]
    fn synonyms_and_documentation_only_when_asked() {
        let entry = topic_configs(&LogConfig::default(), &BTreeMap::new()).remove(0);
        let bare = to_wire(
            entry.clone(),
            Detail {
                synonyms: false,
                documentation: false,
            },
        );
        assert!(bare.synonyms.is_empty());
        assert_eq!(bare.documentation, None);
        let full = to_wire(
            entry,
            Detail {
                synonyms: true,
                documentation: true,
            },
        );
        assert!(!full.synonyms.is_empty());
        assert!(full.documentation.is_some());
    }
}
