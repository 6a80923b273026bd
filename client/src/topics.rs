//! `sluice topic create | list | describe | delete | alter-config |
//! add-partitions`: topic administration over the Kafka protocol, in the
//! style of rpk and kafka-topics.sh, against any Kafka-compatible broker.
//!
//! Owns: the requests each command sends (CreateTopics, Metadata,
//! DescribeConfigs, DeleteTopics, IncrementalAlterConfigs,
//! CreatePartitions, each to the broker given: Kafka forwards admin
//! requests to its controller) and what it prints: a readable table, or
//! JSON (`--format json`) for scripts. A refusal is an error naming the
//! Kafka error, the broker's message and what to do ([`crate::hint`]).

use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use crate::connection::Client;
use crate::groups::table;
use crate::hint::check_kafka;

/// Deadline of every request, and the timeout the broker is given.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How a command prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document for scripts.
    Json,
}

fn name(n: &str) -> StrBytes {
    StrBytes::from_string(n.to_owned())
}

fn connect(bootstrap: &str) -> anyhow::Result<Client> {
    Client::connect(bootstrap, TIMEOUT)
}

/// `sluice topic create`: `partitions` and `replication_factor` (-1: the
/// broker's defaults) and topic configs `key=value`.
pub fn create(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
    format: Format,
) -> anyhow::Result<String> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(TIMEOUT.as_millis() as i32)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(name(topic)))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(name(k))
                            .with_value(Some(name(v)))
                    })
                    .collect(),
            )]);
    let response = connect(bootstrap)?.send(&request, 5)?;
    let result = response
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("creating {topic}: the broker answered no topic"))?;
    check_kafka(
        &format!("creating topic {topic}"),
        result.error_code,
        result.error_message.as_deref(),
    )?;
    Ok(match format {
        Format::Table => format!(
            "created topic {topic} ({} partitions, replication factor {})\n",
            result.num_partitions, result.replication_factor
        ),
        Format::Json => {
            json!({
                "topic": topic,
                "partitions": result.num_partitions,
                "replication_factor": result.replication_factor,
            })
            .to_string()
                + "\n"
        }
    })
}

fn metadata(client: &mut Client, topics: Option<&[&str]>) -> anyhow::Result<MetadataResponse> {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(name(t)))))
                .collect()
        }));
    client.send(&request, 12)
}

/// `sluice topic list`: every topic (internal ones only with `internal`),
/// with its partition count and replication factor.
pub fn list(bootstrap: &str, internal: bool, format: Format) -> anyhow::Result<String> {
    let response = metadata(&mut connect(bootstrap)?, None)?;
    let mut rows: Vec<(String, usize, usize, bool)> = response
        .topics
        .iter()
        .filter(|t| internal || !t.is_internal)
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let replicas = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
            (name, t.partitions.len(), replicas, t.is_internal)
        })
        .collect();
    rows.sort();
    Ok(match format {
        Format::Table => table(
            &["NAME", "PARTITIONS", "REPLICAS"],
            &rows
                .iter()
                .map(|(n, p, r, _)| [n.clone(), p.to_string(), r.to_string()])
                .collect::<Vec<_>>(),
        ),
        Format::Json => {
            let topics: Vec<_> = rows
                .iter()
                .map(|(n, p, r, i)| {
                    json!({"name": n, "partitions": p, "replication_factor": r, "internal": i})
                })
                .collect();
            serde_json::Value::from(topics).to_string() + "\n"
        }
    })
}

/// `sluice topic describe`: the topic's id, its configs that differ from
/// the defaults, and every partition's leader, replicas and in-sync set.
pub fn describe(bootstrap: &str, topic: &str, format: Format) -> anyhow::Result<String> {
    let mut client = connect(bootstrap)?;
    let response = metadata(&mut client, Some(&[topic]))?;
    let t = response
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("describing {topic}: the broker answered no topic"))?;
    check_kafka(&format!("describing topic {topic}"), t.error_code, None)?;
    let configs = client.send(
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(name(topic))
            .with_configuration_keys(None)]),
        4,
    )?;
    let mut overrides: Vec<(String, String)> = Vec::new();
    if let Some(r) = configs.results.first() {
        check_kafka(
            &format!("describing the configs of {topic}"),
            r.error_code,
            r.error_message.as_deref(),
        )?;
        // Source 1: set on the topic (DYNAMIC_TOPIC_CONFIG).
        for c in r.configs.iter().filter(|c| c.config_source == 1) {
            let value = if c.is_sensitive {
                "(sensitive)".to_owned()
            } else {
                c.value.as_deref().unwrap_or("").to_owned()
            };
            overrides.push((c.name.to_string(), value));
        }
    }
    let mut partitions: Vec<_> = t.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    let ids = |v: &[kafka_protocol::messages::BrokerId]| {
        v.iter()
            .map(|b| b.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let topic_id = sluice_core::types::kafka_uuid(*t.topic_id.as_bytes());
    Ok(match format {
        Format::Table => {
            let mut out = format!(
                "topic: {topic}\nid: {topic_id}\npartitions: {}\n",
                partitions.len()
            );
            if overrides.is_empty() {
                out.push_str("configs: (all defaults)\n");
            } else {
                out.push_str("configs:\n");
                for (k, v) in &overrides {
                    out.push_str(&format!("  {k}={v}\n"));
                }
            }
            out.push('\n');
            let rows: Vec<[String; 5]> = partitions
                .iter()
                .map(|p| {
                    [
                        p.partition_index.to_string(),
                        p.leader_id.0.to_string(),
                        p.leader_epoch.to_string(),
                        ids(&p.replica_nodes),
                        ids(&p.isr_nodes),
                    ]
                })
                .collect();
            out + &table(&["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR"], &rows)
        }
        Format::Json => {
            let parts: Vec<_> = partitions
                .iter()
                .map(|p| {
                    json!({
                        "partition": p.partition_index,
                        "leader": p.leader_id.0,
                        "leader_epoch": p.leader_epoch,
                        "replicas": p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                        "isr": p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let configs: serde_json::Map<String, serde_json::Value> = overrides
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::from(v)))
                .collect();
            json!({"topic": topic, "id": topic_id, "configs": configs, "partitions": parts})
                .to_string()
                + "\n"
        }
    })
}

/// `sluice topic delete`.
pub fn delete(bootstrap: &str, topic: &str) -> anyhow::Result<String> {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(TIMEOUT.as_millis() as i32)
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(TopicName(name(topic))))
        ])
        .with_topic_names(vec![TopicName(name(topic))]);
    let response = connect(bootstrap)?.send(&request, 6)?;
    if let Some(r) = response.responses.first() {
        check_kafka(
            &format!("deleting topic {topic}"),
            r.error_code,
            r.error_message.as_deref(),
        )?;
    }
    Ok(format!("deleted topic {topic}\n"))
}

/// `sluice topic alter-config`: sets `set` (key=value) and removes
/// `delete` (keys, back to their defaults).
pub fn alter_config(
    bootstrap: &str,
    topic: &str,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<String> {
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(name(k))
                .with_config_operation(0)
                .with_value(Some(name(v)))
        })
        .collect();
    configs.extend(delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(name(k))
            .with_config_operation(1)
    }));
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(name(topic))
            .with_configs(configs),
    ]);
    let response = connect(bootstrap)?.send(&request, 1)?;
    if let Some(r) = response.responses.first() {
        check_kafka(
            &format!("altering the configs of {topic}"),
            r.error_code,
            r.error_message.as_deref(),
        )?;
    }
    Ok(format!(
        "altered topic {topic}: {} set, {} deleted\n",
        set.len(),
        delete.len()
    ))
}

/// `sluice topic add-partitions`: grows the topic to `total` partitions.
pub fn add_partitions(bootstrap: &str, topic: &str, total: i32) -> anyhow::Result<String> {
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(TIMEOUT.as_millis() as i32)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(name(topic)))
            .with_count(total)
            .with_assignments(None)]);
    let response = connect(bootstrap)?.send(&request, 3)?;
    if let Some(r) = response.results.first() {
        check_kafka(
            &format!("adding partitions to {topic}"),
            r.error_code,
            r.error_message.as_deref(),
        )?;
    }
    Ok(format!("topic {topic} now has {total} partitions\n"))
}

/// Parses `key=value` arguments.
pub fn key_values(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("{a:?} is not key=value"))
        })
        .collect()
}
