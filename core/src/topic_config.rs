//! Topic configs under Kafka's names: the one table of every topic config
//! this broker knows, and everything done with them.
//!
//! Owns: the table ([`TOPIC_CONFIGS`]: name, type, the broker config that
//! sets its default, the check a value must pass, the node's value, how it
//! changes a partition's [`LogConfig`]) and the four things done with it:
//! checking an override as CreateTopics receives it
//! ([`check_topic_config`]), applying a topic's overrides to the node's log
//! settings ([`log_config`], what a partition is opened with), describing a
//! topic's effective configs with their sources ([`topic_configs`],
//! DescribeConfigs), and the configs accepted and stored but not acted on.
//! Pure: no I/O.
//!
//! Invariant: a value is applied exactly when it passes its check, so what
//! DescribeConfigs reports as a topic's value is what its partitions use.
//!
//! A value is `DEFAULT_CONFIG` when it equals Kafka's default (our
//! [`LogConfig::default`]), `STATIC_BROKER_CONFIG` when the node's
//! configuration changed it, and `DYNAMIC_TOPIC_CONFIG` when the topic
//! overrides it, as Kafka reports them.

use std::collections::BTreeMap;

use crate::config::LogConfig;

/// Where a value comes from (Kafka's `ConfigSource` ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
    DynamicBrokerLogger = 6,
    /// A group's own config (`kafka-configs.sh --entity-type groups`).
    DynamicGroup = 8,
}

impl ConfigSource {
    /// The wire value.
    pub fn id(self) -> i8 {
        self as i8
    }
}

/// A config's data type (Kafka's `ConfigType` ids, DescribeConfigs v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

impl ConfigType {
    /// The wire value.
    pub fn id(self) -> i8 {
        self as i8
    }
}

/// A lower-precedence definition of the same config (Kafka's synonyms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
}

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
    pub config_type: ConfigType,
    /// True when it cannot be changed while the broker runs.
    pub read_only: bool,
    pub documentation: &'static str,
    /// Every definition that applies, the winning one first (Kafka's order).
    pub synonyms: Vec<Synonym>,
}

/// What values a topic config accepts.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// An i32 at least this.
    Int(i64),
    /// An i64 at least this.
    Long(i64),
    /// A number in this closed range.
    Double(f64, f64),
    /// One of these words; `refused` lists valid Kafka values this broker
    /// does not implement, with the reason.
    OneOf {
        accepted: &'static [&'static str],
        refused: &'static [&'static str],
        reason: &'static str,
    },
}

/// How a checked override value changes a [`LogConfig`].
#[derive(Clone, Copy)]
enum Apply {
    Number(fn(&mut LogConfig, i64)),
    Ratio(fn(&mut LogConfig, f64)),
    Word(fn(&mut LogConfig, &str)),
}

/// A topic config this broker applies or reports.
pub struct TopicConfig {
    pub name: &'static str,
    /// The broker config that sets its default (`log.retention.ms`, …).
    pub broker_name: &'static str,
    pub config_type: ConfigType,
    check: Check,
    /// The node's value, from its log settings.
    node_value: fn(&LogConfig) -> String,
    /// How a (checked) override changes a partition's log settings;
    /// `None` for configs with the one value this broker has.
    apply: Option<Apply>,
    pub documentation: &'static str,
}

/// Topic configs, by name. Those with `apply` change a partition's
/// [`LogConfig`]; the rest have the one value this broker implements (no
/// compaction, no broker-side recompression, no LogAppendTime, one
/// replica).
pub const TOPIC_CONFIGS: &[TopicConfig] = &[
    TopicConfig {
        name: "cleanup.policy",
        broker_name: "log.cleanup.policy",
        config_type: ConfigType::List,
        check: Check::OneOf {
            accepted: &["delete", "compact", "compact,delete", "delete,compact"],
            refused: &[],
            reason: "",
        },
        node_value: |c| c.cleanup_policy.to_string(),
        apply: Some(Apply::Word(|c, v| {
            if let Ok(policy) = v.parse() {
                c.cleanup_policy = policy;
            }
        })),
        documentation: "What happens to old segments: delete them by retention, compact them to the last record of each key, or both.",
    },
    TopicConfig {
        name: "delete.retention.ms",
        broker_name: "log.cleaner.delete.retention.ms",
        config_type: ConfigType::Long,
        check: Check::Long(0),
        node_value: |c| c.delete_retention_ms.to_string(),
        apply: Some(Apply::Number(|c, v| c.delete_retention_ms = v)),
        documentation: "How long a compacted topic keeps a tombstone once the cleaner has seen it.",
    },
    TopicConfig {
        name: "max.compaction.lag.ms",
        broker_name: "log.cleaner.max.compaction.lag.ms",
        config_type: ConfigType::Long,
        check: Check::Long(1),
        node_value: |c| c.max_compaction_lag_ms.to_string(),
        apply: Some(Apply::Number(|c, v| c.max_compaction_lag_ms = v)),
        documentation: "Records older than this are compacted whatever the dirty ratio.",
    },
    TopicConfig {
        name: "min.cleanable.dirty.ratio",
        broker_name: "log.cleaner.min.cleanable.ratio",
        config_type: ConfigType::Double,
        check: Check::Double(0.0, 1.0),
        node_value: |c| format_ratio(c.min_cleanable_dirty_ratio),
        apply: Some(Apply::Ratio(|c, v| c.min_cleanable_dirty_ratio = v)),
        documentation: "Compact once this share of the log was written since its last compaction.",
    },
    TopicConfig {
        name: "min.compaction.lag.ms",
        broker_name: "log.cleaner.min.compaction.lag.ms",
        config_type: ConfigType::Long,
        check: Check::Long(0),
        node_value: |c| c.min_compaction_lag_ms.to_string(),
        apply: Some(Apply::Number(|c, v| c.min_compaction_lag_ms = v)),
        documentation: "Records younger than this stay uncompacted.",
    },
    TopicConfig {
        name: "compression.type",
        broker_name: "compression.type",
        config_type: ConfigType::String,
        check: Check::OneOf {
            accepted: &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
            refused: &[],
            reason: "",
        },
        node_value: |c| c.compression_type.to_string(),
        apply: Some(Apply::Word(|c, v| {
            if let Ok(t) = v.parse() {
                c.compression_type = t;
            }
        })),
        documentation: "The codec batches are stored in: producer keeps each batch as sent; a codec makes the broker recompress every batch in another one.",
    },
    TopicConfig {
        name: "max.message.bytes",
        broker_name: "message.max.bytes",
        config_type: ConfigType::Int,
        check: Check::Int(0),
        node_value: |c| c.max_message_bytes.to_string(),
        apply: Some(Apply::Number(|c, v| c.max_message_bytes = v as u32)),
        documentation: "Largest record batch accepted.",
    },
    TopicConfig {
        name: "message.timestamp.type",
        broker_name: "log.message.timestamp.type",
        config_type: ConfigType::String,
        check: Check::OneOf {
            accepted: &["CreateTime", "LogAppendTime"],
            refused: &[],
            reason: "",
        },
        node_value: |c| c.message_timestamp_type.name().into(),
        apply: Some(Apply::Word(|c, v| {
            c.message_timestamp_type = if v == "LogAppendTime" {
                crate::config::TimestampType::LogAppendTime
            } else {
                crate::config::TimestampType::CreateTime
            }
        })),
        documentation: "Whose time records carry: the producer's (CreateTime) or the broker's at append (LogAppendTime).",
    },
    TopicConfig {
        name: "message.timestamp.after.max.ms",
        broker_name: "log.message.timestamp.after.max.ms",
        config_type: ConfigType::Long,
        check: Check::Long(0),
        node_value: |c| c.message_timestamp_after_max_ms.to_string(),
        apply: Some(Apply::Number(|c, v| c.message_timestamp_after_max_ms = v)),
        documentation: "A CreateTime batch stamped further ahead of the broker's time is refused.",
    },
    TopicConfig {
        name: "message.timestamp.before.max.ms",
        broker_name: "log.message.timestamp.before.max.ms",
        config_type: ConfigType::Long,
        check: Check::Long(0),
        node_value: |c| c.message_timestamp_before_max_ms.to_string(),
        apply: Some(Apply::Number(|c, v| c.message_timestamp_before_max_ms = v)),
        documentation: "A CreateTime batch stamped further behind the broker's time is refused.",
    },
    TopicConfig {
        name: "min.insync.replicas",
        broker_name: "min.insync.replicas",
        config_type: ConfigType::Int,
        check: Check::Int(1),
        node_value: |c| c.min_insync_replicas.to_string(),
        apply: Some(Apply::Number(|c, v| c.min_insync_replicas = v as i32)),
        documentation: "Replicas that must acknowledge an acks=all produce.",
    },
    TopicConfig {
        name: "retention.bytes",
        broker_name: "log.retention.bytes",
        config_type: ConfigType::Long,
        check: Check::Long(i64::MIN),
        node_value: |c| c.retention_bytes.to_string(),
        apply: Some(Apply::Number(|c, v| c.retention_bytes = v)),
        documentation: "Delete old segments while a partition is larger (-1: no limit).",
    },
    TopicConfig {
        name: "retention.ms",
        broker_name: "log.retention.ms",
        config_type: ConfigType::Long,
        check: Check::Long(-1),
        node_value: |c| c.retention_ms.to_string(),
        apply: Some(Apply::Number(|c, v| c.retention_ms = v)),
        documentation: "Delete segments whose newest record is older (-1: keep).",
    },
    TopicConfig {
        name: "segment.bytes",
        broker_name: "log.segment.bytes",
        config_type: ConfigType::Int,
        check: Check::Int(14),
        node_value: |c| c.segment_bytes.to_string(),
        apply: Some(Apply::Number(|c, v| c.segment_bytes = v as u64)),
        documentation: "Roll a new segment when the active one would exceed this.",
    },
    TopicConfig {
        name: "segment.ms",
        broker_name: "log.roll.ms",
        config_type: ConfigType::Long,
        check: Check::Long(1),
        node_value: |c| c.segment_ms.to_string(),
        apply: Some(Apply::Number(|c, v| c.segment_ms = v as u64)),
        documentation: "Roll a segment this old.",
    },
];

/// A Kafka topic config this broker accepts, stores and reports (with
/// Kafka's default when not overridden) but does not act on, or acts on
/// elsewhere (the replication throttles, unclean election): tiered
/// storage, flush and index tuning, preallocation, recompression levels.
/// Kafka accepts them, so refusing would break clients that set them out
/// of habit (Kafka Streams, Connect).
pub struct ReportedTopicConfig {
    pub name: &'static str,
    /// The broker config that sets its default, if Kafka has one.
    pub broker_name: Option<&'static str>,
    pub config_type: ConfigType,
    /// Kafka's default value.
    pub kafka_default: &'static str,
}

const fn reported(
    name: &'static str,
    broker_name: Option<&'static str>,
    config_type: ConfigType,
    kafka_default: &'static str,
) -> ReportedTopicConfig {
    ReportedTopicConfig {
        name,
        broker_name,
        config_type,
        kafka_default,
    }
}

/// Kafka 4.x's other topic configs, with its defaults.
pub const REPORTED_TOPIC_CONFIGS: &[ReportedTopicConfig] = &[
    reported(
        "compression.gzip.level",
        Some("compression.gzip.level"),
        ConfigType::Int,
        "-1",
    ),
    reported(
        "compression.lz4.level",
        Some("compression.lz4.level"),
        ConfigType::Int,
        "9",
    ),
    reported(
        "compression.zstd.level",
        Some("compression.zstd.level"),
        ConfigType::Int,
        "3",
    ),
    reported(
        "errors.deadletterqueue.group.enable",
        None,
        ConfigType::Boolean,
        "false",
    ),
    reported(
        "file.delete.delay.ms",
        Some("log.segment.delete.delay.ms"),
        ConfigType::Long,
        "60000",
    ),
    reported(
        "flush.messages",
        Some("log.flush.interval.messages"),
        ConfigType::Long,
        "9223372036854775807",
    ),
    reported("flush.ms", None, ConfigType::Long, "9223372036854775807"),
    reported(
        "follower.replication.throttled.replicas",
        None,
        ConfigType::List,
        "",
    ),
    reported(
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        ConfigType::Int,
        "4096",
    ),
    reported(
        "leader.replication.throttled.replicas",
        None,
        ConfigType::List,
        "",
    ),
    reported(
        "local.retention.bytes",
        Some("log.local.retention.bytes"),
        ConfigType::Long,
        "-2",
    ),
    reported(
        "local.retention.ms",
        Some("log.local.retention.ms"),
        ConfigType::Long,
        "-2",
    ),
    reported(
        "max.decompressed.message.bytes",
        Some("max.decompressed.message.bytes"),
        ConfigType::Int,
        "2147483639",
    ),
    reported(
        "preallocate",
        Some("log.preallocate"),
        ConfigType::Boolean,
        "false",
    ),
    reported(
        "remote.copy.lag.bytes",
        Some("log.remote.copy.lag.bytes"),
        ConfigType::Long,
        "-1",
    ),
    reported(
        "remote.copy.lag.ms",
        Some("log.remote.copy.lag.ms"),
        ConfigType::Long,
        "0",
    ),
    reported(
        "remote.log.copy.disable",
        None,
        ConfigType::Boolean,
        "false",
    ),
    reported(
        "remote.log.delete.on.disable",
        None,
        ConfigType::Boolean,
        "false",
    ),
    reported("remote.storage.enable", None, ConfigType::Boolean, "false"),
    reported(
        "segment.index.bytes",
        Some("log.index.size.max.bytes"),
        ConfigType::Int,
        "10485760",
    ),
    reported("segment.jitter.ms", None, ConfigType::Long, "0"),
    reported(
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
        ConfigType::Boolean,
        "false",
    ),
];

/// Topic configs of older Kafka versions (removed in 4.0) still accepted
/// and stored, so clients written for them keep working; not listed.
pub const LEGACY_TOPIC_CONFIGS: &[&str] = &[
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.difference.max.ms",
];

/// Checks a value of a reported config against its type.
fn check_reported(config: &ReportedTopicConfig, value: &str) -> Result<(), String> {
    let invalid = |why: &str| {
        Err(format!(
            "Invalid value {value} for configuration {}: {why}",
            config.name
        ))
    };
    let v = value.trim();
    match config.config_type {
        ConfigType::Boolean
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
        {
            invalid("Expected value to be either true or false")
        }
        ConfigType::Int if v.parse::<i32>().is_err() => invalid("Not a number of type INT"),
        ConfigType::Long if v.parse::<i64>().is_err() => invalid("Not a number of type LONG"),
        _ => Ok(()),
    }
}

/// Checks one topic config override as CreateTopics receives it; the error
/// is the message for INVALID_CONFIG.
pub fn check_topic_config(name: &str, value: Option<&str>) -> Result<(), String> {
    let Some(value) = value else {
        return Err(format!(
            "Null value not supported for topic configs: {name}"
        ));
    };
    let Some(config) = TOPIC_CONFIGS.iter().find(|c| c.name == name) else {
        if let Some(reported) = REPORTED_TOPIC_CONFIGS.iter().find(|c| c.name == name) {
            return check_reported(reported, value);
        }
        if LEGACY_TOPIC_CONFIGS.contains(&name) {
            return Ok(());
        }
        return Err(format!("Unknown topic config name: {name}"));
    };
    let invalid = |why: &str| {
        Err(format!(
            "Invalid value {value} for configuration {name}: {why}"
        ))
    };
    match config.check {
        Check::Int(min) => match value.trim().parse::<i32>() {
            Ok(v) if i64::from(v) >= min => Ok(()),
            Ok(_) => invalid(&format!("Value must be at least {min}")),
            Err(_) => invalid("Not a number of type INT"),
        },
        Check::Long(min) => match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            Ok(_) => invalid(&format!("Value must be at least {min}")),
            Err(_) => invalid("Not a number of type LONG"),
        },
        Check::Double(min, max) => match value.trim().parse::<f64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(()),
            Ok(v) if v < min => invalid(&format!("Value must be at least {}", format_ratio(min))),
            Ok(_) => invalid(&format!("Value must be no more than {}", format_ratio(max))),
            Err(_) => invalid("Not a number of type DOUBLE"),
        },
        Check::OneOf {
            accepted,
            refused,
            reason,
        } => {
            let normalized: String = value
                .split(',')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(",");
            if accepted.contains(&normalized.as_str()) {
                Ok(())
            } else if refused.contains(&normalized.as_str()) {
                invalid(reason)
            } else {
                invalid(&format!("String must be one of: {}", accepted.join(", ")))
            }
        }
    }
}

/// A partition's log settings: the node's, changed by each of its topic's
/// overrides that passes its check (an override that does not is left
/// out, as DescribeConfigs leaves it out).
pub fn log_config(node: &LogConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let mut config = node.clone();
    for topic_config in TOPIC_CONFIGS {
        if let Some(value) = overrides.get(topic_config.name) {
            apply_value(&mut config, topic_config, value);
        }
    }
    config
}

/// Applies one value of `topic_config` (set on a topic, or as its broker
/// default) to `config`, if it passes the config's check.
fn apply_value(config: &mut LogConfig, topic_config: &TopicConfig, value: &str) {
    let Some(apply) = topic_config.apply else {
        return;
    };
    if check_topic_config(topic_config.name, Some(value)).is_err() {
        return;
    }
    let value = value.trim();
    match apply {
        Apply::Number(apply) => {
            if let Ok(v) = value.parse::<i64>() {
                apply(config, v);
            }
        }
        Apply::Ratio(apply) => {
            if let Ok(v) = value.parse::<f64>() {
                apply(config, v);
            }
        }
        Apply::Word(apply) => apply(config, value),
    }
}

/// The topic config whose default the broker config `broker_name` sets,
/// when that default changes at run time (Kafka's dynamic log configs:
/// `log.retention.ms`, `log.cleanup.policy`, `compression.type`, ...).
pub fn dynamic_log_config(broker_name: &str) -> Option<&'static TopicConfig> {
    TOPIC_CONFIGS
        .iter()
        .find(|c| c.broker_name == broker_name && c.apply.is_some())
}

/// The broker-level log settings: the node's, with each dynamic broker
/// config `dynamic` gives (by broker name: this broker's own value, else
/// the cluster default) that passes its check applied. Topics' overrides
/// go on top of these ([`log_config`]).
pub fn broker_log_config(node: &LogConfig, dynamic: impl Fn(&str) -> Option<String>) -> LogConfig {
    let mut config = node.clone();
    for topic_config in TOPIC_CONFIGS {
        if let Some(value) = dynamic(topic_config.broker_name) {
            apply_value(&mut config, topic_config, &value);
        }
    }
    config
}

/// A ratio as Kafka prints a double config (`0.5`, `1.0`).
fn format_ratio(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

impl ConfigSource {
    /// Where a node-level `value` comes from: Kafka's default, or the
    /// node's configuration.
    pub fn of_node_value(value: &str, kafka_default: &str) -> ConfigSource {
        if value == kafka_default {
            ConfigSource::Default
        } else {
            ConfigSource::StaticBroker
        }
    }
}

/// A topic's effective configs: every known topic config with the node's
/// value or the topic's override, plus any other stored override. Sorted by
/// name.
pub fn topic_configs(node: &LogConfig, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    let kafka_defaults = LogConfig::default();
    let mut entries: Vec<ConfigEntry> = TOPIC_CONFIGS
        .iter()
        .map(|config| {
            let node_value = (config.node_value)(node);
            let kafka_default = (config.node_value)(&kafka_defaults);
            let node_source = ConfigSource::of_node_value(&node_value, &kafka_default);
            let mut synonyms = Vec::with_capacity(3);
            // An override that fails its check is not applied
            // ([`log_config`]), so it is not the effective value either.
            let topic_value = overrides
                .get(config.name)
                .filter(|v| check_topic_config(config.name, Some(v.as_str())).is_ok());
            if let Some(v) = topic_value {
                synonyms.push(Synonym {
                    name: config.name.into(),
                    value: v.clone(),
                    source: ConfigSource::DynamicTopic,
                });
            }
            if node_source == ConfigSource::StaticBroker {
                synonyms.push(Synonym {
                    name: config.broker_name.into(),
                    value: node_value.clone(),
                    source: ConfigSource::StaticBroker,
                });
            }
            synonyms.push(Synonym {
                name: config.broker_name.into(),
                value: kafka_default,
                source: ConfigSource::Default,
            });
            let (value, source) = match topic_value {
                Some(v) => (v.clone(), ConfigSource::DynamicTopic),
                None => (node_value, node_source),
            };
            ConfigEntry {
                name: config.name.into(),
                value,
                source,
                config_type: config.config_type,
                read_only: false,
                documentation: config.documentation,
                synonyms,
            }
        })
        .collect();
    for config in REPORTED_TOPIC_CONFIGS {
        let topic_value = overrides.get(config.name);
        let mut synonyms = Vec::with_capacity(2);
        if let Some(v) = topic_value {
            synonyms.push(Synonym {
                name: config.name.into(),
                value: v.clone(),
                source: ConfigSource::DynamicTopic,
            });
        }
        if let Some(broker_name) = config.broker_name {
            synonyms.push(Synonym {
                name: broker_name.into(),
                value: config.kafka_default.into(),
                source: ConfigSource::Default,
            });
        }
        entries.push(ConfigEntry {
            name: config.name.into(),
            value: topic_value
                .cloned()
                .unwrap_or_else(|| config.kafka_default.into()),
            source: if topic_value.is_some() {
                ConfigSource::DynamicTopic
            } else {
                ConfigSource::Default
            },
            config_type: config.config_type,
            read_only: false,
            documentation: "Kafka's topic config; stored and reported.",
            synonyms,
        });
    }
    for (name, value) in overrides {
        if TOPIC_CONFIGS.iter().any(|c| c.name == name)
            || REPORTED_TOPIC_CONFIGS.iter().any(|c| c.name == name)
        {
            continue;
        }
        entries.push(ConfigEntry {
            name: name.clone(),
            value: value.clone(),
            source: ConfigSource::DynamicTopic,
            config_type: ConfigType::String,
            read_only: false,
            documentation: "Stored; this broker does not act on it.",
            synonyms: vec![Synonym {
                name: name.clone(),
                value: value.clone(),
                source: ConfigSource::DynamicTopic,
            }],
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
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
    fn topic_configs_show_node_values_and_overrides_with_their_sources() {
        let node = LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        };
        let overrides: BTreeMap<String, String> = [("retention.ms", "1000"), ("flush.ms", "5")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let entries = topic_configs(&node, &overrides);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);

        let retention = find(&entries, "retention.ms");
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("1000", ConfigSource::DynamicTopic)
        );
        assert_eq!(retention.synonyms.len(), 2);
        assert_eq!(retention.synonyms[1].name, "log.retention.ms");
        assert_eq!(retention.synonyms[1].value, "604800000");

        let segment = find(&entries, "segment.bytes");
        assert_eq!(
            (segment.value.as_str(), segment.source),
            ("4096", ConfigSource::StaticBroker)
        );
        assert_eq!(segment.config_type, ConfigType::Int);

        let cleanup = find(&entries, "cleanup.policy");
        assert_eq!(
            (cleanup.value.as_str(), cleanup.source),
            ("delete", ConfigSource::Default)
        );
        assert_eq!(find(&entries, "min.insync.replicas").value, "1");
        assert_eq!(find(&entries, "compression.type").value, "producer");
        assert_eq!(find(&entries, "message.timestamp.type").value, "CreateTime");
        assert_eq!(find(&entries, "max.message.bytes").value, "1048588");

        let flush = find(&entries, "flush.ms");
        assert_eq!(
            (flush.value.as_str(), flush.source),
            ("5", ConfigSource::DynamicTopic)
        );
    }

    #[test]
    fn an_unparsable_stored_override_is_not_the_effective_value() {
        let overrides: BTreeMap<String, String> =
            [("segment.ms".to_owned(), "soon".to_owned())].into();
        let entries = topic_configs(&LogConfig::default(), &overrides);
        let segment_ms = find(&entries, "segment.ms");
        assert_eq!(
            (segment_ms.value.as_str(), segment_ms.source),
            ("604800000", ConfigSource::Default)
        );
    }

    #[test]
    fn create_topics_config_checks_follow_kafka_and_refuse_what_is_not_implemented() {
        assert!(check_topic_config("retention.ms", Some("-1")).is_ok());
        assert!(check_topic_config("retention.ms", Some("-2")).is_err());
        assert!(check_topic_config("segment.bytes", Some("13")).is_err());
        assert!(check_topic_config("segment.bytes", Some("3000000000")).is_err());
        assert!(check_topic_config("segment.bytes", Some("1048576")).is_ok());
        assert!(check_topic_config("cleanup.policy", Some("delete")).is_ok());
        assert!(check_topic_config("cleanup.policy", Some("compact")).is_ok());
        assert!(check_topic_config("cleanup.policy", Some("delete, compact")).is_ok());
        assert!(check_topic_config("min.cleanable.dirty.ratio", Some("0.1")).is_ok());
        assert!(check_topic_config("min.cleanable.dirty.ratio", Some("1.5")).is_err());
        let node = LogConfig::default();
        let overrides: BTreeMap<String, String> = [
            ("cleanup.policy", "compact,delete"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "100"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let applied = log_config(&node, &overrides);
        assert_eq!(
            applied.cleanup_policy,
            crate::config::CleanupPolicy::CompactDelete
        );
        assert_eq!(applied.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(applied.delete_retention_ms, 100);
        let described = topic_configs(&node, &BTreeMap::new());
        assert_eq!(find(&described, "min.cleanable.dirty.ratio").value, "0.5");
        assert_eq!(
            find(&described, "max.compaction.lag.ms").value,
            i64::MAX.to_string()
        );
        assert!(check_topic_config("cleanup.policy", Some("shred")).is_err());
        assert!(check_topic_config("compression.type", Some("gzip")).is_ok());
        assert!(check_topic_config("compression.type", Some("brotli")).is_err());
        assert!(check_topic_config("message.timestamp.type", Some("LogAppendTime")).is_ok());
        assert!(check_topic_config("message.timestamp.type", Some("BrokerTime")).is_err());
        assert!(check_topic_config("flush.ms", Some("100")).is_ok());
        assert_eq!(
            check_topic_config("retention.msx", Some("1")).unwrap_err(),
            "Unknown topic config name: retention.msx"
        );
        assert_eq!(
            check_topic_config("retention.ms", None).unwrap_err(),
            "Null value not supported for topic configs: retention.ms"
        );
    }

    #[test]
    fn overrides_that_pass_their_check_change_the_log_settings_and_no_others() {
        let node = LogConfig::default();
        let overrides: BTreeMap<String, String> = [
            ("retention.ms", "1000"),
            ("retention.bytes", "-1"),
            ("segment.bytes", "16384"),
            ("segment.ms", "60000"),
            ("max.message.bytes", "2048"),
            ("flush.ms", "5"),
        ]
        .map(|(k, v)| (k.into(), v.into()))
        .into();
        let config = log_config(&node, &overrides);
        assert_eq!(config.retention_ms, 1000);
        assert_eq!(config.retention_bytes, -1);
        assert_eq!(config.segment_bytes, 16384);
        assert_eq!(config.segment_ms, 60000);
        assert_eq!(config.max_message_bytes, 2048);
        assert_eq!(config.flush, node.flush);
        // Failing values are left out, as DescribeConfigs leaves them out.
        let bad: BTreeMap<String, String> = [("segment.bytes", "13"), ("retention.ms", "soon")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        assert_eq!(log_config(&node, &bad), node);
        for config in TOPIC_CONFIGS {
            let described = topic_configs(&node, &overrides);
            let entry = described.iter().find(|e| e.name == config.name);
            assert!(entry.is_some(), "{} is described", config.name);
        }
    }
}
