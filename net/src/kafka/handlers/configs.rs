//! Broker, group and broker-logger configs under Kafka's names, for
//! DescribeConfigs; topic configs are core's one table
//! ([`sluice_core::topic_config`]), re-exported here for the handlers.
//!
//! Owns: the broker, group and logger configs this broker reports and
//! where each value comes from. Pure: no I/O and no shard access; handlers pass the state in, so
//! tests drive it directly.

use std::collections::BTreeMap;

use sluice_core::config::NodeConfig;
use sluice_core::metadata::dynamic_config::{broker_key, DYNAMIC_BROKER_CONFIGS};
use sluice_core::metadata::eligible::{MIN_INSYNC_REPLICAS, UNCLEAN_LEADER_ELECTION};
use sluice_core::metadata::{BrokerId, MetadataState};
pub use sluice_core::topic_config::{
    check_topic_config, topic_configs, ConfigEntry, ConfigSource, ConfigType, Synonym,
};
use sluice_core::topic_config::{dynamic_log_config, TOPIC_CONFIGS};

/// The broker's configs under Kafka's names. All are read-only: they come
/// from the node's configuration file and change only on restart.
pub fn broker_configs(config: &NodeConfig) -> Vec<ConfigEntry> {
    let defaults = NodeConfig::default();
    type Value = fn(&NodeConfig) -> String;
    let table: [(&str, ConfigType, Value, &'static str); 20] = [
        (
            "advertised.listeners",
            ConfigType::String,
            |c| {
                format!(
                    "PLAINTEXT://{}",
                    c.advertised_kafka_addr.as_deref().unwrap_or(&c.kafka_addr)
                )
            },
            "Address clients are told to connect to.",
        ),
        (
            "auto.create.topics.enable",
            ConfigType::Boolean,
            |c| c.kafka.auto_create_topics_enable.to_string(),
            "Create unknown topics on Metadata and Produce.",
        ),
        (
            "broker.id",
            ConfigType::Int,
            |c| c.node_id.to_string(),
            "This broker's id.",
        ),
        (
            "compression.type",
            ConfigType::String,
            |c| c.log.compression_type.to_string(),
            "The codec batches are stored in (producer: as sent).",
        ),
        (
            "default.replication.factor",
            ConfigType::Int,
            |_| "1".into(),
            "Replicas of an auto-created topic.",
        ),
        (
            "listeners",
            ConfigType::String,
            |c| format!("PLAINTEXT://{}", c.kafka_addr),
            "Address the Kafka listener binds.",
        ),
        (
            "log.cleanup.policy",
            ConfigType::List,
            |c| c.log.cleanup_policy.to_string(),
            "What happens to old segments: deleted by retention, compacted, or both.",
        ),
        (
            "log.dirs",
            ConfigType::String,
            |c| c.data_dir.display().to_string(),
            "Where partitions and metadata live.",
        ),
        (
            "log.index.interval.bytes",
            ConfigType::Int,
            |c| c.log.index_interval_bytes.to_string(),
            "Bytes of log between two sparse index entries.",
        ),
        (
            "log.index.size.max.bytes",
            ConfigType::Int,
            |c| c.log.segment_index_bytes.to_string(),
            "Largest index file.",
        ),
        (
            "log.message.timestamp.type",
            ConfigType::String,
            |c| c.log.message_timestamp_type.name().into(),
            "Whose time records carry: CreateTime or LogAppendTime.",
        ),
        (
            "log.retention.bytes",
            ConfigType::Long,
            |c| c.log.retention_bytes.to_string(),
            "Default retention.bytes.",
        ),
        (
            "log.retention.ms",
            ConfigType::Long,
            |c| c.log.retention_ms.to_string(),
            "Default retention.ms.",
        ),
        (
            "log.roll.ms",
            ConfigType::Long,
            |c| c.log.segment_ms.to_string(),
            "Default segment.ms.",
        ),
        (
            "log.segment.bytes",
            ConfigType::Int,
            |c| c.log.segment_bytes.to_string(),
            "Default segment.bytes.",
        ),
        (
            "message.max.bytes",
            ConfigType::Int,
            |c| c.log.max_message_bytes.to_string(),
            "Default max.message.bytes.",
        ),
        (
            "min.insync.replicas",
            ConfigType::Int,
            |_| "1".into(),
            "Replicas that must acknowledge an acks=all produce.",
        ),
        (
            "node.id",
            ConfigType::Int,
            |c| c.node_id.to_string(),
            "This broker's id.",
        ),
        (
            "num.partitions",
            ConfigType::Int,
            |c| c.kafka.num_partitions.to_string(),
            "Partitions of an auto-created topic or of a CreateTopics asking for -1.",
        ),
        (
            "socket.request.max.bytes",
            ConfigType::Int,
            |c| c.kafka.socket_request_max_bytes.to_string(),
            "Largest request accepted.",
        ),
    ];
    table
        .iter()
        .map(|(name, config_type, value, documentation)| {
            let value_here = value(config);
            let source = ConfigSource::of_node_value(&value_here, &value(&defaults));
            ConfigEntry {
                name: (*name).into(),
                synonyms: vec![Synonym {
                    name: (*name).into(),
                    value: value_here.clone(),
                    source,
                }],
                value: value_here,
                source,
                config_type: *config_type,
                read_only: true,
                documentation,
            }
        })
        .collect()
}

/// The dynamic broker configs ([`DYNAMIC_BROKER_CONFIGS`]) of `broker`,
/// or (`None`) the cluster defaults set: the broker's own value, else the
/// cluster default, else Kafka's default (no limit); the defaults resource
/// lists only what was set, as Kafka does.
pub fn dynamic_broker_configs(
    metadata: &MetadataState,
    broker: Option<BrokerId>,
) -> Vec<ConfigEntry> {
    let own = |key: Option<BrokerId>, name: &str| {
        metadata
            .broker_configs
            .get(&broker_key(key))
            .and_then(|c| c.get(name))
            .cloned()
    };
    let mut entries = Vec::new();
    for (name, documentation) in DYNAMIC_BROKER_CONFIGS {
        let mut synonyms = Vec::new();
        if let Some(b) = broker {
            if let Some(v) = own(Some(b), name) {
                synonyms.push(Synonym {
                    name: (*name).into(),
                    value: v,
                    source: ConfigSource::DynamicBroker,
                });
            }
        }
        if let Some(v) = own(None, name) {
            synonyms.push(Synonym {
                name: (*name).into(),
                value: v,
                source: ConfigSource::DynamicDefaultBroker,
            });
        }
        let (default, config_type) = match *name {
            UNCLEAN_LEADER_ELECTION => ("false".to_owned(), ConfigType::Boolean),
            MIN_INSYNC_REPLICAS => ("1".to_owned(), ConfigType::Int),
            _ => (i64::MAX.to_string(), ConfigType::Long),
        };
        if broker.is_some() {
            synonyms.push(Synonym {
                name: (*name).into(),
                value: default,
                source: ConfigSource::Default,
            });
        }
        let Some(first) = synonyms.first().cloned() else {
            continue;
        };
        entries.push(ConfigEntry {
            name: (*name).into(),
            value: first.value,
            source: first.source,
            config_type,
            read_only: false,
            documentation,
            synonyms,
        });
    }
    // The broker defaults of topic configs, where set (a broker lists its
    // static value otherwise).
    for topic_config in TOPIC_CONFIGS {
        let name = topic_config.broker_name;
        if DYNAMIC_BROKER_CONFIGS.iter().any(|(n, _)| *n == name)
            || dynamic_log_config(name).is_none()
        {
            continue;
        }
        let mut synonyms = Vec::new();
        if let Some(v) = broker.and_then(|b| own(Some(b), name)) {
            synonyms.push(Synonym {
                name: name.into(),
                value: v,
                source: ConfigSource::DynamicBroker,
            });
        }
        if let Some(v) = own(None, name) {
            synonyms.push(Synonym {
                name: name.into(),
                value: v,
                source: ConfigSource::DynamicDefaultBroker,
            });
        }
        let Some(first) = synonyms.first().cloned() else {
            continue;
        };
        entries.push(ConfigEntry {
            name: name.into(),
            value: first.value,
            source: first.source,
            config_type: topic_config.config_type,
            read_only: false,
            documentation: topic_config.documentation,
            synonyms,
        });
    }
    entries
}

/// A group's configs (resource type 32), as Kafka 4.x lists them: the
/// consumer protocol's session and heartbeat from this node's settings,
/// the others at Kafka's defaults (share and streams groups are not served
/// here, so their settings have nothing to act on). Every group has them;
/// per-group overrides are not kept.
pub fn group_configs(
    config: &NodeConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let mut entries = broker_group_configs(config);
    for e in entries.iter_mut() {
        if let Some(value) = overrides.get(&e.name) {
            e.value = value.clone();
            e.source = ConfigSource::DynamicGroup;
            e.synonyms.insert(
                0,
                Synonym {
                    name: e.name.clone(),
                    value: value.clone(),
                    source: ConfigSource::DynamicGroup,
                },
            );
        }
    }
    entries
}

/// Every group's configs as the broker's settings make them.
fn broker_group_configs(config: &NodeConfig) -> Vec<ConfigEntry> {
    let g = &config.group;
    let defaults = NodeConfig::default().group;
    let entry = |name: &str, broker: Option<&str>, config_type, value: String, default: String| {
        let source = if value == default {
            ConfigSource::Default
        } else {
            ConfigSource::StaticBroker
        };
        let synonyms = broker
            .map(|b| Synonym {
                name: b.into(),
                value: value.clone(),
                source,
            })
            .into_iter()
            .collect();
        ConfigEntry {
            name: name.into(),
            value,
            source,
            config_type,
            read_only: false,
            documentation: "Kafka's group config.",
            synonyms,
        }
    };
    let fixed = |name: &str, broker: Option<&str>, config_type, value: &str| {
        entry(name, broker, config_type, value.into(), value.into())
    };
    vec![
        fixed(
            "consumer.assignment.interval.ms",
            Some("group.consumer.assignment.interval.ms"),
            ConfigType::Int,
            "1000",
        ),
        entry(
            "consumer.heartbeat.interval.ms",
            Some("group.consumer.heartbeat.interval.ms"),
            ConfigType::Int,
            g.consumer_heartbeat_interval_ms.to_string(),
            defaults.consumer_heartbeat_interval_ms.to_string(),
        ),
        entry(
            "consumer.session.timeout.ms",
            Some("group.consumer.session.timeout.ms"),
            ConfigType::Int,
            g.consumer_session_timeout_ms.to_string(),
            defaults.consumer_session_timeout_ms.to_string(),
        ),
        fixed(
            "errors.deadletterqueue.copy.record.enable",
            Some("errors.deadletterqueue.copy.record.enable"),
            ConfigType::Boolean,
            "false",
        ),
        fixed(
            "errors.deadletterqueue.topic.name",
            Some("errors.deadletterqueue.topic.name"),
            ConfigType::String,
            "",
        ),
        fixed(
            "share.assignment.interval.ms",
            Some("group.share.assignment.interval.ms"),
            ConfigType::Int,
            "1000",
        ),
        fixed(
            "share.auto.offset.reset",
            Some("share.auto.offset.reset"),
            ConfigType::String,
            "latest",
        ),
        entry(
            "share.delivery.count.limit",
            Some("group.share.delivery.count.limit"),
            ConfigType::Int,
            g.share_delivery_count_limit.to_string(),
            defaults.share_delivery_count_limit.to_string(),
        ),
        entry(
            "share.heartbeat.interval.ms",
            Some("group.share.heartbeat.interval.ms"),
            ConfigType::Int,
            g.share_heartbeat_interval_ms.to_string(),
            defaults.share_heartbeat_interval_ms.to_string(),
        ),
        fixed(
            "share.isolation.level",
            Some("share.isolation.level"),
            ConfigType::String,
            "read_uncommitted",
        ),
        entry(
            "share.partition.max.record.locks",
            Some("group.share.partition.max.record.locks"),
            ConfigType::Int,
            g.share_partition_max_record_locks.to_string(),
            defaults.share_partition_max_record_locks.to_string(),
        ),
        entry(
            "share.record.lock.duration.ms",
            Some("group.share.record.lock.duration.ms"),
            ConfigType::Int,
            g.share_record_lock_duration_ms.to_string(),
            defaults.share_record_lock_duration_ms.to_string(),
        ),
        fixed(
            "share.renew.acknowledge.enable",
            Some("share.renew.acknowledge.enable"),
            ConfigType::Boolean,
            "true",
        ),
        entry(
            "share.session.timeout.ms",
            Some("group.share.session.timeout.ms"),
            ConfigType::Int,
            g.share_session_timeout_ms.to_string(),
            defaults.share_session_timeout_ms.to_string(),
        ),
        fixed(
            "streams.assignment.interval.ms",
            Some("group.streams.assignment.interval.ms"),
            ConfigType::Int,
            "1000",
        ),
        fixed(
            "streams.assignor.name",
            Some("group.streams.assignors"),
            ConfigType::String,
            "sticky",
        ),
        fixed(
            "streams.heartbeat.interval.ms",
            Some("group.streams.heartbeat.interval.ms"),
            ConfigType::Int,
            "5000",
        ),
        fixed(
            "streams.initial.rebalance.delay.ms",
            Some("group.streams.initial.rebalance.delay.ms"),
            ConfigType::Int,
            "3000",
        ),
        fixed(
            "streams.num.standby.replicas",
            Some("group.streams.num.standby.replicas"),
            ConfigType::Int,
            "0",
        ),
        fixed(
            "streams.rack.aware.assignment.tags",
            Some("group.streams.rack.aware.assignment.tags"),
            ConfigType::List,
            "",
        ),
        fixed(
            "streams.session.timeout.ms",
            Some("group.streams.session.timeout.ms"),
            ConfigType::Int,
            "45000",
        ),
    ]
}

/// The broker's loggers (resource type 8), as Kafka lists its log4j
/// loggers: `root` and each of sluice's crates, at the level in effect
/// (set at start by `RUST_LOG`; not changeable at run time here).
pub fn logger_configs() -> Vec<ConfigEntry> {
    let level = tracing::level_filters::LevelFilter::current()
        .to_string()
        .to_ascii_uppercase();
    [
        "root",
        "sluice",
        "sluice_core",
        "sluice_log",
        "sluice_net",
        "sluice_quorum",
        "sluice_shard",
    ]
    .into_iter()
    .map(|name| ConfigEntry {
        name: name.into(),
        value: level.clone(),
        source: ConfigSource::DynamicBrokerLogger,
        config_type: ConfigType::String,
        read_only: false,
        documentation: "A logger and its level.",
        synonyms: Vec::new(),
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} listed"))
    }

    #[test]
    fn broker_configs_mark_what_the_node_changed() {
        let config = NodeConfig {
            node_id: 3,
            kafka: sluice_core::config::KafkaConfig {
                num_partitions: 6,
                ..Default::default()
            },
            ..NodeConfig::default()
        };
        let entries = broker_configs(&config);
        let partitions = find(&entries, "num.partitions");
        assert_eq!(
            (partitions.value.as_str(), partitions.source),
            ("6", ConfigSource::StaticBroker)
        );
        let segment = find(&entries, "log.segment.bytes");
        assert_eq!(
            (segment.value.as_str(), segment.source),
            ("1073741824", ConfigSource::Default)
        );
        assert_eq!(find(&entries, "auto.create.topics.enable").value, "true");
        assert_eq!(find(&entries, "node.id").value, "3");
        assert!(entries.iter().all(|e| e.read_only));
    }
}
