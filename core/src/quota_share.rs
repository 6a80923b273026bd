//! Client quotas held broker-wide across shards: the usage one shard
//! measured and has not yet told the others.
//!
//! Kafka measures a quota per broker: every connection of a client counts
//! against the one window of its user and client id. Here each shard
//! measures the requests of the connections it serves
//! ([`crate::quota::QuotaTracker`]); so that a client with connections on
//! several shards still gets its quota once per broker, each shard also
//! tells the others what it measured, and records what they tell it in the
//! same windows (and `controller_mutation_rate` buckets,
//! [`crate::mutation_quota`]). Between two shares, new usage waits here.
//!
//! Owns: that waiting usage, by quota type and sensor, and when it must go
//! at once (the client measures here at half its quota or more, and its
//! usage since the last share reached what its quota allows in
//! [`SHARE_AT_ONCE_MS`], so the other shards do not let the same client
//! through for long on their side) or may wait for the next periodic share
//! ([`SHARE_INTERVAL_MS`]; a client far below its quota costs no more than
//! that). Pure: no I/O, no clock.
//!
//! Invariants: at most `max` sensors wait at once; usage of a sensor new
//! past that is counted on this shard only (and in [`UnsharedUsage::dropped`]),
//! never held, so memory is bounded by the configuration, not by the number
//! of clients.

use std::collections::HashMap;

use crate::quota::{QuotaType, SensorKey};

/// A share goes at once when a sensor's usage since the last one reached
/// what its quota allows in this many milliseconds.
pub const SHARE_AT_ONCE_MS: f64 = 10.0;

/// Otherwise usage waits at most this long before it is shared.
pub const SHARE_INTERVAL_MS: u64 = 100;

/// One sensor's usage measured on one shard since its last share, and
/// the quota it was measured against (a token bucket refills at it).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedUsage {
    pub kind: QuotaType,
    pub sensor: SensorKey,
    pub value: f64,
    pub quota: f64,
}

/// What changed when usage was added, for whoever sends the shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareNeed {
    /// Already waiting for a share: nothing to do.
    None,
    /// The first usage since the last share: one is due within
    /// [`SHARE_INTERVAL_MS`].
    Soon,
    /// A share must go now.
    Now,
}

/// Usage measured here and not yet shared, by quota type and sensor; on
/// a shard alone, nothing is ever kept.
#[derive(Debug)]
pub struct UnsharedUsage {
    /// Usage, and the quota it was last measured against.
    usage: HashMap<(QuotaType, SensorKey), (f64, f64)>,
    /// 0 on a shard alone.
    max: usize,
    urgent: bool,
    dropped: u64,
}

impl UnsharedUsage {
    /// Holds at most `max` sensors' usage (at least one), for a shard with
    /// others beside it.
    pub fn new(max: usize) -> UnsharedUsage {
        UnsharedUsage {
            usage: HashMap::new(),
            max: max.max(1),
            urgent: false,
            dropped: 0,
        }
    }

    /// For a shard alone: there is no one to share with.
    pub fn alone() -> UnsharedUsage {
        UnsharedUsage {
            usage: HashMap::new(),
            max: 0,
            urgent: false,
            dropped: 0,
        }
    }

    /// Whether there are other shards to share with.
    pub fn is_shared(&self) -> bool {
        self.max > 0
    }

    /// Adds `value` measured against `quota` (per second) for `sensor`,
    /// whose rate here is `near` its quota (at half of it or more).
    pub fn add(
        &mut self,
        kind: QuotaType,
        sensor: SensorKey,
        value: f64,
        quota: f64,
        near: bool,
    ) -> ShareNeed {
        if !self.is_shared() {
            return ShareNeed::None;
        }
        let was_empty = self.usage.is_empty();
        let was_urgent = self.urgent;
        let key = (kind, sensor);
        if self.usage.len() >= self.max && !self.usage.contains_key(&key) {
            self.dropped += 1;
            self.urgent = true;
            return if was_urgent {
                ShareNeed::None
            } else {
                ShareNeed::Now
            };
        }
        let (total, last_quota) = self.usage.entry(key).or_insert((0.0, quota));
        *total += value;
        *last_quota = quota;
        if near && total.abs() >= quota * SHARE_AT_ONCE_MS / 1000.0 {
            self.urgent = true;
        }
        match (self.urgent && !was_urgent, was_empty) {
            (true, _) => ShareNeed::Now,
            (false, true) => ShareNeed::Soon,
            (false, false) => ShareNeed::None,
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.usage.is_empty()
    }

    /// Whether a share must go now.
    pub fn is_urgent(&self) -> bool {
        self.urgent
    }

    /// Whether usage waits to be shared, and whether it must go now.
    pub fn state(&self) -> (bool, bool) {
        (!self.is_empty(), self.urgent)
    }

    /// Usage that could not wait for lack of room, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Everything waiting, in sensor order; nothing waits after.
    pub fn take(&mut self) -> Vec<SharedUsage> {
        self.urgent = false;
        let mut usage: Vec<SharedUsage> = self
            .usage
            .drain()
            .map(|((kind, sensor), (value, quota))| SharedUsage {
                kind,
                sensor,
                value,
                quota,
            })
            .collect();
        usage.sort_by(|a, b| (a.kind, &a.sensor).cmp(&(b.kind, &b.sensor)));
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(client: &str) -> SensorKey {
        SensorKey {
            user: String::new(),
            client_id: client.to_owned(),
        }
    }

    #[test]
    fn usage_adds_up_per_sensor_until_taken() {
        let mut u = UnsharedUsage::new(10);
        assert_eq!(
            u.add(QuotaType::Produce, sensor("a"), 10.0, 1e6, true),
            ShareNeed::Soon
        );
        assert_eq!(
            u.add(QuotaType::Produce, sensor("a"), 5.0, 1e6, true),
            ShareNeed::None
        );
        assert_eq!(
            u.add(QuotaType::Fetch, sensor("a"), -3.0, 1e6, true),
            ShareNeed::None
        );
        assert_eq!(
            u.add(QuotaType::Produce, sensor("b"), 1.0, 1e6, true),
            ShareNeed::None
        );
        assert!(!u.is_urgent());
        let taken = u.take();
        assert_eq!(
            taken
                .iter()
                .map(|s| (s.kind, s.sensor.client_id.as_str(), s.value))
                .collect::<Vec<_>>(),
            vec![
                (QuotaType::Produce, "a", 15.0),
                (QuotaType::Produce, "b", 1.0),
                (QuotaType::Fetch, "a", -3.0),
            ]
        );
        assert!(u.is_empty());
        assert_eq!(
            u.add(QuotaType::Produce, sensor("a"), 1.0, 1e6, true),
            ShareNeed::Soon
        );
    }

    #[test]
    fn a_share_goes_at_once_when_a_sensor_nears_its_quota() {
        // 100,000 per second allows 1,000 in 10 ms.
        let mut u = UnsharedUsage::new(10);
        assert_eq!(
            u.add(QuotaType::Produce, sensor("a"), 600.0, 1e5, true),
            ShareNeed::Soon
        );
        assert_eq!(
            u.add(QuotaType::Produce, sensor("a"), 400.0, 1e5, true),
            ShareNeed::Now
        );
        assert!(u.is_urgent());
        assert_eq!(
            u.add(QuotaType::Produce, sensor("a"), 400.0, 1e5, true),
            ShareNeed::None
        );
        assert_eq!(u.take().len(), 1);
        assert!(!u.is_urgent(), "taking it all is the share");
        // Far below its quota here, a client's usage waits for the period.
        assert_eq!(
            u.add(QuotaType::Produce, sensor("a"), 5_000.0, 1e5, false),
            ShareNeed::Soon
        );
        assert!(!u.is_urgent());
    }

    #[test]
    fn at_most_max_sensors_wait() {
        let mut u = UnsharedUsage::new(2);
        u.add(QuotaType::Produce, sensor("a"), 1.0, 1e6, true);
        u.add(QuotaType::Produce, sensor("b"), 1.0, 1e6, true);
        assert_eq!(
            u.add(QuotaType::Produce, sensor("c"), 1.0, 1e6, true),
            ShareNeed::Now
        );
        assert_eq!(
            u.add(QuotaType::Produce, sensor("d"), 1.0, 1e6, true),
            ShareNeed::None
        );
        assert_eq!(
            u.add(QuotaType::Produce, sensor("a"), 1.0, 1e6, true),
            ShareNeed::None
        );
        assert_eq!(u.dropped(), 2);
        let taken = u.take();
        assert_eq!(taken.len(), 2, "{taken:?}");
        assert_eq!(taken[0].value, 2.0);
    }

    #[test]
    fn a_shard_alone_keeps_nothing() {
        let mut u = UnsharedUsage::alone();
        assert_eq!(
            u.add(QuotaType::Produce, sensor("a"), 1e9, 1.0, true),
            ShareNeed::None
        );
        assert_eq!(u.state(), (false, false));
        assert!(u.take().is_empty());
    }
}
