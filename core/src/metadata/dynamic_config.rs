//! Configs changed while the cluster runs (Kafka's IncrementalAlterConfigs,
//! `kafka-configs.sh --alter`, the throttles of
//! `kafka-reassign-partitions.sh`): topic overrides and dynamic broker
//! configs, kept in the metadata so every broker sees the same values in
//! the same order.
//!
//! Owns: what a resource is ([`ConfigResource`]), the dynamic broker
//! configs this broker accepts and their checks, and how an alteration's
//! operations (SET, DELETE, APPEND, SUBTRACT) turn a resource's overrides
//! into new ones ([`altered`]). Pure.
//!
//! Invariant: an override map in the metadata holds only keys that passed
//! their check when they were set; a broker's dynamic value wins over the
//! cluster default (the empty broker name), as in Kafka.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BrokerId, MetadataState};
use crate::ErrorCode;

/// What a config belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// One broker, or (`None`) the cluster-wide default of every broker.
    Broker(Option<BrokerId>),
    /// A group's configs (KIP-848, KIP-932): kept whether or not the group
    /// exists, as Kafka keeps them.
    Group(String),
}

/// Kafka's config name of the replication throttle a leader applies.
pub const LEADER_THROTTLED_RATE: &str = "leader.replication.throttled.rate";
/// Kafka's config name of the replication throttle a follower applies.
pub const FOLLOWER_THROTTLED_RATE: &str = "follower.replication.throttled.rate";
/// The topic config naming the replicas a follower throttles.
pub const FOLLOWER_THROTTLED_REPLICAS: &str = "follower.replication.throttled.replicas";
/// The topic config naming the replicas a leader throttles.
pub const LEADER_THROTTLED_REPLICAS: &str = "leader.replication.throttled.replicas";

/// Broker configs that change at run time: (name, documentation). The
/// throttle rates are bytes per second; unset, a rate has no limit
/// (Kafka's default, `Long.MAX_VALUE`). Besides these, the broker
/// defaults of topic configs change at run time
/// ([`crate::topic_config::dynamic_log_config`]).
pub const DYNAMIC_BROKER_CONFIGS: &[(&str, &str)] = &[
    (
        FOLLOWER_THROTTLED_RATE,
        "Bytes per second this broker fetches as a follower of the replicas named in follower.replication.throttled.replicas.",
    ),
    (
        LEADER_THROTTLED_RATE,
        "Bytes per second this broker serves to followers of the replicas named in leader.replication.throttled.replicas.",
    ),
    (
        "replica.alter.log.dirs.io.max.bytes.per.second",
        "Bytes per second of moves between log directories (this broker has one directory per node; accepted for the tools).",
    ),
    (
        super::eligible::UNCLEAN_LEADER_ELECTION,
        "Elect a replica that is neither in sync nor eligible when no other can lead (may lose acknowledged records).",
    ),
    (
        super::eligible::MIN_INSYNC_REPLICAS,
        "In-sync replicas an acks=all produce needs, for topics that do not set it; also when eligible leaders are kept (KIP-966).",
    ),
];

/// Kafka's `AlterConfigOp.OpType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl ConfigOp {
    /// The operation of wire id `id`, if it is one.
    pub fn from_id(id: i8) -> Option<ConfigOp> {
        match id {
            0 => Some(ConfigOp::Set),
            1 => Some(ConfigOp::Delete),
            2 => Some(ConfigOp::Append),
            3 => Some(ConfigOp::Subtract),
            _ => None,
        }
    }
}

/// One operation of an alteration: key, operation, value.
pub type ConfigChange = (String, ConfigOp, Option<String>);

/// Checks a dynamic broker config's name and value; the error is Kafka's
/// code and message.
pub fn check_broker_config(name: &str, value: Option<&str>) -> Result<(), (ErrorCode, String)> {
    let is_dynamic = DYNAMIC_BROKER_CONFIGS.iter().any(|(n, _)| *n == name);
    if let (false, Some(log)) = (is_dynamic, crate::topic_config::dynamic_log_config(name)) {
        // A topic default: checked as the topic config it sets.
        let Some(value) = value else { return Ok(()) };
        return crate::topic_config::check_topic_config(log.name, Some(value))
            .map_err(|m| (ErrorCode::InvalidConfig, m.replace(log.name, name)));
    }
    if !is_dynamic {
        return Err((
            ErrorCode::InvalidRequest,
            format!("Cannot update these configs dynamically: Set({name})"),
        ));
    }
    let Some(value) = value else {
        return Ok(());
    };
    let invalid = |why: &str| {
        Err((
            ErrorCode::InvalidConfig,
            format!("Invalid value {value} for configuration {name}: {why}"),
        ))
    };
    if name == super::eligible::UNCLEAN_LEADER_ELECTION {
        return match value.trim() {
            "true" | "false" => Ok(()),
            _ => invalid("Expected value to be either true or false"),
        };
    }
    if name == super::eligible::MIN_INSYNC_REPLICAS {
        return match value.trim().parse::<i32>() {
            Ok(v) if v >= 1 => Ok(()),
            Ok(_) => invalid("Value must be at least 1"),
            Err(_) => invalid("Not a number of type INT"),
        };
    }
    match value.trim().parse::<i64>() {
        Ok(v) if v >= 0 => Ok(()),
        Ok(_) => Err((
            ErrorCode::InvalidConfig,
            format!("Invalid value {value} for configuration {name}: Value must be at least 0"),
        )),
        Err(_) => Err((
            ErrorCode::InvalidConfig,
            format!("Invalid value {value} for configuration {name}: Not a number of type LONG"),
        )),
    }
}

/// Checks a `*.replication.throttled.replicas` value: `*`, or a comma list
/// of `partition:broker` pairs (Kafka's format). The error is the message
/// for INVALID_CONFIG.
pub fn check_throttled_replicas(name: &str, value: &str) -> Result<(), String> {
    if throttled_replicas(value).is_some() {
        return Ok(());
    }
    Err(format!(
        "Invalid value {value} for configuration {name}: Must be a comma separated list of \
         [partitionId]:[brokerId] pairs or the single wildcard character *"
    ))
}

/// The replicas a `*.replication.throttled.replicas` value names: `None`
/// when it does not parse, `Some(None)` for every replica (`*`).
pub fn throttled_replicas(value: &str) -> Option<Option<Vec<(i32, BrokerId)>>> {
    let value = value.trim();
    if value == "*" {
        return Some(None);
    }
    let mut pairs = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (p, b) = item.split_once(':')?;
        pairs.push((p.trim().parse().ok()?, b.trim().parse().ok()?));
    }
    Some(Some(pairs))
}

/// True when `value` (a `*.replication.throttled.replicas` value, if set)
/// names the replica of `partition` on `broker`.
pub fn names_replica(value: Option<&str>, partition: i32, broker: BrokerId) -> bool {
    match value.and_then(throttled_replicas) {
        Some(None) => true,
        Some(Some(pairs)) => pairs.contains(&(partition, broker)),
        None => false,
    }
}

/// `current` overrides after `changes`: SET replaces, DELETE removes,
/// APPEND adds list items not there yet, SUBTRACT removes list items.
pub fn altered(
    current: &BTreeMap<String, String>,
    changes: &[ConfigChange],
) -> BTreeMap<String, String> {
    let mut next = current.clone();
    for (key, op, value) in changes {
        let value = value.as_deref().unwrap_or("");
        let items = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(str::to_owned)
                .collect()
        };
        match op {
            ConfigOp::Set => {
                next.insert(key.clone(), value.to_owned());
            }
            ConfigOp::Delete => {
                next.remove(key);
            }
            ConfigOp::Append => {
                let mut list = next.get(key).map(|v| items(v)).unwrap_or_default();
                for item in items(value) {
                    if !list.contains(&item) {
                        list.push(item);
                    }
                }
                next.insert(key.clone(), list.join(","));
            }
            ConfigOp::Subtract => {
                if let Some(v) = next.get(key) {
                    let remove = items(value);
                    let list: Vec<String> = items(v)
                        .into_iter()
                        .filter(|i| !remove.contains(i))
                        .collect();
                    next.insert(key.clone(), list.join(","));
                }
            }
        }
    }
    next
}

/// The key of a broker resource's overrides in [`MetadataState`]: the
/// broker's id, or the empty string for the cluster default.
pub fn broker_key(broker: Option<BrokerId>) -> String {
    broker.map(|b| b.to_string()).unwrap_or_default()
}

impl MetadataState {
    /// The overrides of `resource` (empty when none, or when a topic does
    /// not exist).
    pub fn config_overrides(&self, resource: &ConfigResource) -> BTreeMap<String, String> {
        match resource {
            ConfigResource::Topic(name) => self
                .topics
                .get(name)
                .map(|t| t.configs.clone())
                .unwrap_or_default(),
            ConfigResource::Broker(b) => self
                .broker_configs
                .get(&broker_key(*b))
                .cloned()
                .unwrap_or_default(),
            ConfigResource::Group(name) => {
                self.group_configs.get(name).cloned().unwrap_or_default()
            }
        }
    }

    /// `broker`'s dynamic value of `name`: its own, else the cluster
    /// default, else none.
    pub fn dynamic_broker_config(&self, broker: BrokerId, name: &str) -> Option<&str> {
        [broker_key(Some(broker)), broker_key(None)]
            .iter()
            .find_map(|k| self.broker_configs.get(k)?.get(name))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_set_delete_append_and_subtract_as_kafka_defines_them() {
        let current = BTreeMap::from([("a".to_owned(), "0:1,0:2".to_owned())]);
        let next = altered(
            &current,
            &[
                ("a".into(), ConfigOp::Append, Some("0:2,1:3".into())),
                ("a".into(), ConfigOp::Subtract, Some("0:1".into())),
                ("b".into(), ConfigOp::Set, Some("5".into())),
                ("c".into(), ConfigOp::Delete, None),
            ],
        );
        assert_eq!(next.get("a").map(String::as_str), Some("0:2,1:3"));
        assert_eq!(next.get("b").map(String::as_str), Some("5"));
        assert_eq!(
            altered(&next, &[("b".into(), ConfigOp::Delete, None)]).get("b"),
            None
        );
    }

    #[test]
    fn throttled_replica_lists_parse_as_kafka_writes_them() {
        assert_eq!(throttled_replicas("*"), Some(None));
        assert_eq!(
            throttled_replicas("0:101, 1:102"),
            Some(Some(vec![(0, 101), (1, 102)]))
        );
        assert_eq!(throttled_replicas("0-101"), None);
        assert!(names_replica(Some("0:1,2:3"), 2, 3));
        assert!(!names_replica(Some("0:1,2:3"), 2, 1));
        assert!(names_replica(Some("*"), 7, 9));
        assert!(!names_replica(None, 0, 1));
        assert!(check_broker_config(FOLLOWER_THROTTLED_RATE, Some("1000")).is_ok());
        assert_eq!(
            check_broker_config(FOLLOWER_THROTTLED_RATE, Some("-1")).map_err(|e| e.0),
            Err(ErrorCode::InvalidConfig)
        );
        assert_eq!(
            check_broker_config("log.dirs", Some("/x")).map_err(|e| e.0),
            Err(ErrorCode::InvalidRequest),
            "a static broker config"
        );
        assert!(check_broker_config("log.retention.ms", Some("1")).is_ok());
        assert_eq!(
            check_broker_config("log.cleanup.policy", Some("shred")).map_err(|e| e.0),
            Err(ErrorCode::InvalidConfig)
        );
    }
}
