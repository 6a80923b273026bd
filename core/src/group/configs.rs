//! Group configs (`kafka-configs.sh --entity-type groups`, KIP-848 and
//! KIP-932): the per-group overrides of the broker's group settings, their
//! checks, and what a share group's settings resolve to.
//!
//! Owns: which keys a group may set, the bounds the broker puts on each
//! (Kafka's `group.*.min.*` / `group.*.max.*` broker configs), and the
//! resolution of a share group's settings from its overrides and the
//! broker's defaults ([`share_settings`]). Pure.
//!
//! Invariant: an override that passed [`check`] resolves to a value within
//! the broker's bounds; a value that no longer does (the bounds changed)
//! is clamped, never used as it is.

use std::collections::BTreeMap;

use crate::config::GroupConfig;
use crate::share::partition::ShareConfig;

/// `share.auto.offset.reset`: where a share partition starts when its
/// group first reads it.
pub const SHARE_AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
/// `share.record.lock.duration.ms`.
pub const SHARE_RECORD_LOCK_DURATION_MS: &str = "share.record.lock.duration.ms";
/// `share.delivery.count.limit`.
pub const SHARE_DELIVERY_COUNT_LIMIT: &str = "share.delivery.count.limit";
/// `share.partition.max.record.locks`.
pub const SHARE_PARTITION_MAX_RECORD_LOCKS: &str = "share.partition.max.record.locks";

/// Every key a group may set: Kafka 4.4's `GroupConfig` names.
pub const GROUP_CONFIG_KEYS: &[&str] = &[
    "consumer.assignment.interval.ms",
    "consumer.heartbeat.interval.ms",
    "consumer.session.timeout.ms",
    "errors.deadletterqueue.copy.record.enable",
    "errors.deadletterqueue.topic.name",
    "share.assignment.interval.ms",
    SHARE_AUTO_OFFSET_RESET,
    SHARE_DELIVERY_COUNT_LIMIT,
    "share.heartbeat.interval.ms",
    "share.isolation.level",
    SHARE_PARTITION_MAX_RECORD_LOCKS,
    SHARE_RECORD_LOCK_DURATION_MS,
    "share.renew.acknowledge.enable",
    "share.session.timeout.ms",
    "streams.assignment.interval.ms",
    "streams.assignor.name",
    "streams.heartbeat.interval.ms",
    "streams.initial.rebalance.delay.ms",
    "streams.num.standby.replicas",
    "streams.rack.aware.assignment.tags",
    "streams.session.timeout.ms",
];

/// Checks `value` for group config `name` against the broker's bounds;
/// the message Kafka gives when it is refused.
pub fn check(name: &str, value: &str, broker: &GroupConfig) -> Result<(), String> {
    if !GROUP_CONFIG_KEYS.contains(&name) {
        return Err(format!("Unknown group config name: {name}"));
    }
    let int = |v: &str| -> Result<i64, String> {
        v.trim().parse::<i64>().map_err(|_| {
            format!("Invalid value {v} for configuration {name}: Not a number of type INT")
        })
    };
    let within = |v: i64, min: i64, min_name: &str, max: i64, max_name: &str| {
        if v < min {
            Err(format!(
                "{name} must be greater than or equal to {min_name}"
            ))
        } else if v > max {
            Err(format!("{name} must be less than or equal to {max_name}"))
        } else {
            Ok(())
        }
    };
    match name {
        SHARE_RECORD_LOCK_DURATION_MS => within(
            int(value)?,
            i64::from(broker.share_min_record_lock_duration_ms),
            "group.share.min.record.lock.duration.ms",
            i64::from(broker.share_max_record_lock_duration_ms),
            "group.share.max.record.lock.duration.ms",
        ),
        SHARE_DELIVERY_COUNT_LIMIT => within(
            int(value)?,
            i64::from(broker.share_min_delivery_count_limit),
            "group.share.min.delivery.count.limit",
            i64::from(broker.share_max_delivery_count_limit),
            "group.share.max.delivery.count.limit",
        ),
        SHARE_PARTITION_MAX_RECORD_LOCKS => within(
            int(value)?,
            100,
            "group.share.min.partition.max.record.locks",
            10_000,
            "group.share.max.partition.max.record.locks",
        ),
        SHARE_AUTO_OFFSET_RESET => match value {
            "earliest" | "latest" => Ok(()),
            v if v.starts_with("by_duration:") => Ok(()),
            v => Err(format!(
                "Invalid value {v} for configuration {name}: String must be one of: earliest, latest, by_duration:PnDTnHnMn.nS"
            )),
        },
        "share.isolation.level" => match value {
            "read_committed" | "read_uncommitted" => Ok(()),
            v => Err(format!(
                "Invalid value {v} for configuration {name}: String must be one of: read_committed, read_uncommitted"
            )),
        },
        "errors.deadletterqueue.copy.record.enable" | "share.renew.acknowledge.enable" => {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" | "false" => Ok(()),
                _ => Err(format!(
                    "Invalid value {value} for configuration {name}: Expected value to be either true or false"
                )),
            }
        }
        "errors.deadletterqueue.topic.name"
        | "streams.assignor.name"
        | "streams.rack.aware.assignment.tags" => Ok(()),
        _ => int(value).map(|_| ()),
    }
}

/// A share group's settings: its overrides where set, else the broker's.
/// The second value is `share.auto.offset.reset=earliest`.
pub fn share_settings(
    overrides: Option<&BTreeMap<String, String>>,
    broker: &GroupConfig,
) -> (ShareConfig, bool) {
    let get = |name: &str| overrides.and_then(|o| o.get(name)).map(String::as_str);
    let int = |name: &str, default: i32, min: i32, max: i32| -> i64 {
        get(name)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(i64::from(default))
            .clamp(i64::from(min), i64::from(max.max(min)))
    };
    let config = ShareConfig {
        lock_duration_ms: int(
            SHARE_RECORD_LOCK_DURATION_MS,
            broker.share_record_lock_duration_ms,
            broker.share_min_record_lock_duration_ms,
            broker.share_max_record_lock_duration_ms,
        ),
        delivery_count_limit: int(
            SHARE_DELIVERY_COUNT_LIMIT,
            broker.share_delivery_count_limit,
            broker.share_min_delivery_count_limit.max(1),
            broker.share_max_delivery_count_limit,
        ) as u16,
        max_record_locks: int(
            SHARE_PARTITION_MAX_RECORD_LOCKS,
            broker.share_partition_max_record_locks,
            1,
            i32::MAX,
        ) as usize,
    };
    (config, get(SHARE_AUTO_OFFSET_RESET) == Some("earliest"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_within_the_brokers_bounds() {
        let broker = GroupConfig::default();
        let (config, earliest) = share_settings(None, &broker);
        assert_eq!(
            (
                config.lock_duration_ms,
                config.delivery_count_limit,
                earliest
            ),
            (30_000, 5, false)
        );
        let overrides: BTreeMap<String, String> = [
            (SHARE_RECORD_LOCK_DURATION_MS, "20000"),
            (SHARE_DELIVERY_COUNT_LIMIT, "3"),
            (SHARE_AUTO_OFFSET_RESET, "earliest"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (config, earliest) = share_settings(Some(&overrides), &broker);
        assert_eq!(
            (
                config.lock_duration_ms,
                config.delivery_count_limit,
                earliest
            ),
            (20_000, 3, true)
        );
        assert!(check(SHARE_RECORD_LOCK_DURATION_MS, "1000", &broker)
            .is_err_and(|m| m.contains("group.share.min.record.lock.duration.ms")));
        assert!(check(SHARE_DELIVERY_COUNT_LIMIT, "11", &broker).is_err());
        assert!(check(SHARE_AUTO_OFFSET_RESET, "sometime", &broker).is_err());
        assert!(check("no.such.key", "1", &broker).is_err());
        assert_eq!(check(SHARE_AUTO_OFFSET_RESET, "earliest", &broker), Ok(()));
    }
}
