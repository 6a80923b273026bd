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
use crate::share::dead_letter::{check_topic_name, DeadLetter, DLQ_TOPIC_NAME};
use crate::share::partition::ShareConfig;

/// `share.auto.offset.reset`: where a share partition starts when its
/// group first reads it.
pub const SHARE_AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
/// `share.record.lock.duration.ms`.
pub const SHARE_RECORD_LOCK_DURATION_MS: &str = "share.record.lock.duration.ms";
/// `share.delivery.count.limit`.
pub const SHARE_DELIVERY_COUNT_LIMIT: &str = "share.delivery.count.limit";
/// `share.renew.acknowledge.enable`.
pub const SHARE_RENEW_ACKNOWLEDGE_ENABLE: &str = "share.renew.acknowledge.enable";
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
    SHARE_ISOLATION_LEVEL,
    SHARE_PARTITION_MAX_RECORD_LOCKS,
    SHARE_RECORD_LOCK_DURATION_MS,
    SHARE_RENEW_ACKNOWLEDGE_ENABLE,
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
        SHARE_AUTO_OFFSET_RESET => match ShareReset::parse(value) {
            Some(_) => Ok(()),
            None => Err(format!(
                "Invalid value {value} for configuration {name}: String must be one of: earliest, latest, by_duration:PnDTnHnMn.nS"
            )),
        },
        SHARE_ISOLATION_LEVEL => match value {
            "read_committed" | "read_uncommitted" => Ok(()),
            v => Err(format!(
                "Invalid value {v} for configuration {name}: String must be one of: read_committed, read_uncommitted"
            )),
        },
        "errors.deadletterqueue.copy.record.enable" | SHARE_RENEW_ACKNOWLEDGE_ENABLE => {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" | "false" => Ok(()),
                _ => Err(format!(
                    "Invalid value {value} for configuration {name}: Expected value to be either true or false"
                )),
            }
        }
        DLQ_TOPIC_NAME => check_topic_name(value),
        "streams.assignor.name" | "streams.rack.aware.assignment.tags" => Ok(()),
        _ => int(value).map(|_| ()),
    }
}

/// Where a share partition starts when its group first reads it
/// (`share.auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareReset {
    /// The log's start.
    Earliest,
    /// The high watermark (Kafka's default).
    Latest,
    /// The first record no older than this many milliseconds
    /// (`by_duration:PnDTnHnMn.nS`), or the high watermark if none is.
    ByDuration(i64),
}

impl ShareReset {
    /// Parses a `share.auto.offset.reset` value.
    pub fn parse(value: &str) -> Option<ShareReset> {
        match value {
            "earliest" => Some(ShareReset::Earliest),
            "latest" => Some(ShareReset::Latest),
            v => v
                .strip_prefix("by_duration:")
                .and_then(parse_iso_duration_ms)
                .map(ShareReset::ByDuration),
        }
    }
}

/// An ISO-8601 duration as Java's `Duration.parse` reads it
/// (`PnDTnHnMn.nS`, days at most, each part optional but one), in
/// milliseconds; `None` if it is not one or is negative.
pub fn parse_iso_duration_ms(text: &str) -> Option<i64> {
    let rest = text.strip_prefix('P').or_else(|| text.strip_prefix('p'))?;
    let (days, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut ms: f64 = 0.0;
    let mut parts = 0;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let unit = units.iter().find(|(u, _)| c.eq_ignore_ascii_case(u))?;
            let n: f64 = number.parse().ok()?;
            ms += n * unit.1;
            parts += 1;
            number.clear();
        }
        number.is_empty().then_some(())
    };
    take(days, &[('D', 86_400_000.0)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        take(time, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1_000.0)])?;
    }
    (parts > 0 && ms.is_finite() && ms >= 0.0 && ms < i64::MAX as f64).then_some(ms as i64)
}

/// `share.isolation.level`.
pub const SHARE_ISOLATION_LEVEL: &str = "share.isolation.level";

/// A share group's settings as its configs and the broker's resolve them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupSettings {
    /// What its share partitions follow.
    pub config: ShareConfig,
    /// `share.auto.offset.reset`: where a share partition starts.
    pub reset: ShareReset,
    /// Its dead-letter topic (KIP-1191), if it has one.
    pub dead_letter: Option<DeadLetter>,
    /// `share.isolation.level=read_committed`: records are acquired only
    /// below the last stable offset, and those of aborted transactions
    /// are never delivered.
    pub read_committed: bool,
}

/// A share group's settings: its overrides where set, else the broker's,
/// where its share partitions start, its dead-letter topic and its
/// isolation level.
pub fn share_settings(
    overrides: Option<&BTreeMap<String, String>>,
    broker: &GroupConfig,
) -> ShareGroupSettings {
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
        dead_letter: false,
        renew_acknowledge: get(SHARE_RENEW_ACKNOWLEDGE_ENABLE)
            .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false")),
    };
    let reset = get(SHARE_AUTO_OFFSET_RESET)
        .and_then(ShareReset::parse)
        .unwrap_or(ShareReset::Latest);
    let dead_letter = DeadLetter::from_configs(|name| get(name).map(str::to_owned));
    let config = ShareConfig {
        dead_letter: dead_letter.is_some(),
        ..config
    };
    ShareGroupSettings {
        config,
        reset,
        dead_letter,
        read_committed: get(SHARE_ISOLATION_LEVEL) == Some("read_committed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_within_the_brokers_bounds() {
        let broker = GroupConfig::default();
        let ShareGroupSettings {
            config,
            reset: earliest,
            dead_letter,
            read_committed,
        } = share_settings(None, &broker);
        assert_eq!(
            (dead_letter, config.dead_letter, read_committed),
            (None, false, false)
        );
        assert_eq!(
            (
                config.lock_duration_ms,
                config.delivery_count_limit,
                earliest
            ),
            (30_000, 5, ShareReset::Latest)
        );
        let overrides: BTreeMap<String, String> = [
            (SHARE_RECORD_LOCK_DURATION_MS, "20000"),
            (SHARE_DELIVERY_COUNT_LIMIT, "3"),
            (SHARE_AUTO_OFFSET_RESET, "earliest"),
            (DLQ_TOPIC_NAME, "dlq.orders"),
            (SHARE_ISOLATION_LEVEL, "read_committed"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let ShareGroupSettings {
            config,
            reset: earliest,
            dead_letter,
            read_committed,
        } = share_settings(Some(&overrides), &broker);
        assert!(config.dead_letter && read_committed);
        assert_eq!(
            dead_letter.map(|d| (d.topic, d.copy_record)),
            Some(("dlq.orders".to_owned(), false))
        );
        assert!(check(DLQ_TOPIC_NAME, "__orders", &broker).is_err());
        assert_eq!(check(DLQ_TOPIC_NAME, "orders-dead", &broker), Ok(()));
        assert_eq!(
            (
                config.lock_duration_ms,
                config.delivery_count_limit,
                earliest
            ),
            (20_000, 3, ShareReset::Earliest)
        );
        assert!(check(SHARE_RECORD_LOCK_DURATION_MS, "1000", &broker)
            .is_err_and(|m| m.contains("group.share.min.record.lock.duration.ms")));
        assert!(check(SHARE_DELIVERY_COUNT_LIMIT, "11", &broker).is_err());
        assert!(check(SHARE_AUTO_OFFSET_RESET, "sometime", &broker).is_err());
        assert!(check("no.such.key", "1", &broker).is_err());
        assert_eq!(check(SHARE_AUTO_OFFSET_RESET, "earliest", &broker), Ok(()));
        assert_eq!(
            check(SHARE_AUTO_OFFSET_RESET, "by_duration:PT1H30M", &broker),
            Ok(())
        );
        assert!(check(SHARE_AUTO_OFFSET_RESET, "by_duration:1h", &broker).is_err());
    }

    #[test]
    fn iso_durations_read_as_java_reads_them() {
        assert_eq!(parse_iso_duration_ms("PT1H"), Some(3_600_000));
        assert_eq!(parse_iso_duration_ms("P1DT2H30M"), Some(95_400_000));
        assert_eq!(parse_iso_duration_ms("PT0.5S"), Some(500));
        assert_eq!(parse_iso_duration_ms("P2D"), Some(172_800_000));
        for bad in ["", "P", "PT", "1H", "PT1X", "PT-1H", "P1H"] {
            assert_eq!(parse_iso_duration_ms(bad), None, "{bad}");
        }
    }
}
