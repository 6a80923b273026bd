//! Kafka's controller mutation quota (KIP-599): how many partitions a
//! client may create or delete per second (`controller_mutation_rate`).
//!
//! Owns: the token bucket of one client ([`TokenBucket`]), refilled at the
//! quota's rate up to a burst of [`BURST_SECONDS`] seconds' worth (Kafka's
//! `controller.quota.window.num` samples of
//! `controller.quota.window.size.seconds`), and one shard's set of them
//! ([`MutationBuckets`], kept in a [`Sensors`] as the other quotas' windows
//! are), found through the same entities and precedence as the other
//! client quotas ([`crate::quota::resolve`]). Pure: the time is an
//! argument.
//!
//! A bucket is taken from as Kafka takes from it. Strictly (CreateTopics v6+,
//! DeleteTopics v5+, CreatePartitions v3+): a topic's partitions are refused
//! while the bucket is below zero, and taken whole otherwise, so one topic
//! may take it below zero; the client waits until it is back at zero.
//! Permissively (older versions): always taken, the client then throttled
//! for as long as the bucket is below zero.
//!
//! On a broker of several shards, each shard's set also keeps what it took
//! and gave back for the other shards ([`crate::quota_share`]), and takes
//! what they took from its own buckets ([`MutationBuckets::record_shared`]),
//! so a client's bucket is the broker's, whichever shard serves it.
//!
//! Invariants: a bucket never holds more than its burst; a set holds at
//! most its `max_buckets` buckets, bounded as [`Sensors`] bounds them.

use crate::quota::{
    resolve, ClientQuota, LastUsed, QuotaType, SensorKey, Sensors, CONTROLLER_MUTATION_RATE,
};
use crate::quota_share::{ShareNeed, SharedUsage, UnsharedUsage};

/// Seconds of the quota a full bucket holds: Kafka's default
/// `controller.quota.window.num` (11) × `controller.quota.window.size.seconds`
/// (1).
pub const BURST_SECONDS: f64 = 11.0;

/// Partitions a client may create or delete now, refilled at its quota.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket for `quota` (a new client starts with its burst).
    pub fn full(quota: f64, now_ms: u64) -> TokenBucket {
        TokenBucket {
            tokens: burst(quota),
            last_ms: now_ms,
        }
    }

    /// The tokens held at `now_ms`, after refilling.
    pub fn tokens(&mut self, quota: f64, now_ms: u64) -> f64 {
        let elapsed_ms = now_ms.saturating_sub(self.last_ms);
        self.tokens = (self.tokens + quota.max(0.0) * elapsed_ms as f64 / 1000.0).min(burst(quota));
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens
    }

    /// Strict: takes `permits` unless the bucket is below zero at `now_ms`;
    /// then takes nothing and answers how long until it is back at zero.
    pub fn try_take(&mut self, quota: f64, permits: f64, now_ms: u64) -> Result<(), u64> {
        let tokens = self.tokens(quota, now_ms);
        if tokens < 0.0 {
            return Err(deficit_ms(tokens, quota));
        }
        self.tokens -= permits;
        Ok(())
    }

    /// Permissive: takes `permits` and answers how long until the bucket is
    /// back at zero (0 when it is not below).
    pub fn take(&mut self, quota: f64, permits: f64, now_ms: u64) -> u64 {
        self.tokens(quota, now_ms);
        self.tokens -= permits;
        deficit_ms(self.tokens, quota)
    }

    /// Returns `permits` taken for a change that was then refused for
    /// another reason (never above the burst).
    pub fn give_back(&mut self, quota: f64, permits: f64, now_ms: u64) {
        self.tokens(quota, now_ms);
        self.tokens = (self.tokens + permits).min(burst(quota));
    }
}

impl LastUsed for TokenBucket {
    fn last_used_ms(&self) -> u64 {
        self.last_ms
    }
}

fn burst(quota: f64) -> f64 {
    quota.max(0.0) * BURST_SECONDS
}

/// Milliseconds until `tokens` are back at zero at `quota` per second
/// (Kafka's `-tokens / quota * 1000`, rounded); a quota of zero never
/// refills.
fn deficit_ms(tokens: f64, quota: f64) -> u64 {
    if tokens >= 0.0 {
        0
    } else if quota <= 0.0 {
        u64::MAX
    } else {
        // A float past u64 saturates.
        (-tokens / quota * 1000.0).round() as u64
    }
}

/// What taking from a client's bucket came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// No `controller_mutation_rate` applies to the client.
    Unlimited,
    /// Taken; the client is throttled this long (permissive only, else 0).
    Accepted { throttle_ms: u64 },
    /// Refused (strict only): the bucket is below zero for this long.
    Refused { throttle_ms: u64 },
}

/// One shard's mutation buckets, by whose usage they count.
#[derive(Debug)]
pub struct MutationBuckets {
    buckets: Sensors<SensorKey, TokenBucket>,
    /// What this shard took and gave back, for the other shards (none on
    /// a shard alone).
    unshared: UnsharedUsage,
}

impl MutationBuckets {
    /// A set of at most `max_buckets` buckets (at least one), for a shard
    /// alone on its broker.
    pub fn new(max_buckets: usize) -> MutationBuckets {
        MutationBuckets {
            buckets: Sensors::new(max_buckets),
            unshared: UnsharedUsage::alone(),
        }
    }

    /// The same for a shard with others beside it: what it takes and
    /// gives back also waits to be shared with them.
    pub fn shared(max_buckets: usize) -> MutationBuckets {
        MutationBuckets {
            buckets: Sensors::new(max_buckets),
            unshared: UnsharedUsage::new(max_buckets),
        }
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Takes `permits` (partitions) from the bucket of `user`'s
    /// `client_id`, strictly or permissively (see the module docs), and
    /// says whether a share is now due.
    pub fn take(
        &mut self,
        quotas: &[ClientQuota],
        user: &str,
        client_id: &str,
        permits: f64,
        strict: bool,
        now_ms: u64,
    ) -> (Taken, ShareNeed) {
        let Some((key, quota)) = resolve(quotas, user, client_id, CONTROLLER_MUTATION_RATE) else {
            return (Taken::Unlimited, ShareNeed::None);
        };
        let to_share = self.unshared.is_shared().then(|| key.clone());
        let bucket = self.bucket(key, quota, now_ms);
        let taken = if strict {
            match bucket.try_take(quota, permits, now_ms) {
                Ok(()) => Taken::Accepted { throttle_ms: 0 },
                Err(throttle_ms) => Taken::Refused { throttle_ms },
            }
        } else {
            Taken::Accepted {
                throttle_ms: bucket.take(quota, permits, now_ms),
            }
        };
        let need = match (to_share, taken) {
            (Some(key), Taken::Accepted { .. }) => {
                self.unshared
                    .add(QuotaType::Mutation, key, permits, quota, true)
            }
            _ => ShareNeed::None,
        };
        (taken, need)
    }

    /// Returns `permits` [`MutationBuckets::take`] took for a change that
    /// was refused for another reason, and says whether a share is due.
    pub fn give_back(
        &mut self,
        quotas: &[ClientQuota],
        user: &str,
        client_id: &str,
        permits: f64,
        now_ms: u64,
    ) -> ShareNeed {
        let Some((key, quota)) = resolve(quotas, user, client_id, CONTROLLER_MUTATION_RATE) else {
            return ShareNeed::None;
        };
        let to_share = self.unshared.is_shared().then(|| key.clone());
        self.bucket(key, quota, now_ms)
            .give_back(quota, permits, now_ms);
        match to_share {
            Some(key) => self
                .unshared
                .add(QuotaType::Mutation, key, -permits, quota, true),
            None => ShareNeed::None,
        }
    }

    /// Takes from its own buckets what other shards took (and gives back
    /// what they gave back), permissively: their clients were answered
    /// there. Usage of other kinds is not a bucket's and is skipped.
    pub fn record_shared(&mut self, usage: &[SharedUsage], now_ms: u64) {
        for u in usage.iter().filter(|u| u.kind == QuotaType::Mutation) {
            let bucket = self.bucket(u.sensor.clone(), u.quota, now_ms);
            if u.value >= 0.0 {
                bucket.take(u.quota, u.value, now_ms);
            } else {
                bucket.give_back(u.quota, -u.value, now_ms);
            }
        }
    }

    /// What this shard took and gave back since the last share, for the other shards.
    pub fn unshared(&self) -> &UnsharedUsage {
        &self.unshared
    }

    /// The same, to take it for a share.
    pub fn unshared_mut(&mut self) -> &mut UnsharedUsage {
        &mut self.unshared
    }

    /// The bucket of `key` under `quota`, made full when new.
    fn bucket(&mut self, key: SensorKey, quota: f64, now_ms: u64) -> &mut TokenBucket {
        self.buckets
            .entry(key, now_ms, || TokenBucket::full(quota, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{EntityName, QuotaEntity, QuotaValue, SENSOR_IDLE_MS};

    fn quota_for_client(client: &str, rate: f64) -> Vec<ClientQuota> {
        vec![ClientQuota {
            entity: QuotaEntity {
                user: None,
                client_id: Some(EntityName::Named(client.into())),
                ip: None,
            },
            values: [(CONTROLLER_MUTATION_RATE.to_owned(), QuotaValue(rate))].into(),
        }]
    }

    #[test]
    fn a_strict_bucket_takes_a_whole_topic_then_refuses_until_it_refills() {
        // Kafka's StrictControllerMutationQuota test, at 10 per second with
        // a burst of 110.
        let mut b = TokenBucket::full(10.0, 0);
        assert_eq!(b.try_take(10.0, 90.0, 0), Ok(()));
        assert_eq!(b.try_take(10.0, 90.0, 0), Ok(()), "20 left: taken whole");
        assert_eq!(b.try_take(10.0, 1.0, 0), Err(7_000), "70 below zero");
        assert_eq!(b.try_take(10.0, 1.0, 6_000), Err(1_000));
        assert_eq!(b.try_take(10.0, 1.0, 7_000), Ok(()), "back at zero");
    }

    #[test]
    fn a_permissive_bucket_always_takes_and_throttles_below_zero() {
        let mut b = TokenBucket::full(2.0, 0);
        assert_eq!(b.take(2.0, 20.0, 0), 0, "22 in the burst");
        assert_eq!(b.take(2.0, 10.0, 0), 4_000, "8 below zero at 2 per second");
        assert_eq!(b.take(2.0, 0.0, 3_000), 1_000);
    }

    #[test]
    fn a_bucket_refills_to_its_burst_and_no_further() {
        let mut b = TokenBucket::full(1.0, 0);
        assert_eq!(b.tokens(1.0, 0), 11.0);
        b.take(1.0, 11.0, 0);
        assert_eq!(b.tokens(1.0, 5_000), 5.0);
        assert_eq!(b.tokens(1.0, 60_000), 11.0);
        b.give_back(1.0, 5.0, 60_000);
        assert_eq!(
            b.tokens(1.0, 60_000),
            11.0,
            "given back, still at most the burst"
        );
    }

    #[test]
    fn a_zero_quota_refuses_once_taken_below_zero_for_ever() {
        let mut b = TokenBucket::full(0.0, 0);
        assert_eq!(b.try_take(0.0, 1.0, 0), Ok(()), "at zero: not below");
        assert_eq!(b.try_take(0.0, 1.0, 1_000_000), Err(u64::MAX));
    }

    #[test]
    fn only_clients_with_a_quota_have_a_bucket() {
        let quotas = quota_for_client("tool", 1.0);
        let mut set = MutationBuckets::new(10);
        assert_eq!(
            set.take(&quotas, "ANONYMOUS", "other", 100.0, true, 0).0,
            Taken::Unlimited
        );
        assert!(set.is_empty());
        assert_eq!(
            set.take(&quotas, "ANONYMOUS", "tool", 12.0, true, 0).0,
            Taken::Accepted { throttle_ms: 0 }
        );
        assert_eq!(
            set.take(&quotas, "ANONYMOUS", "tool", 1.0, true, 0).0,
            Taken::Refused { throttle_ms: 1_000 }
        );
        set.give_back(&quotas, "ANONYMOUS", "tool", 12.0, 0);
        assert_eq!(
            set.take(&quotas, "ANONYMOUS", "tool", 1.0, true, 0).0,
            Taken::Accepted { throttle_ms: 0 }
        );
        assert_eq!(set.len(), 1);
    }

    /// Two shards of one broker: what one takes comes out of the other's
    /// bucket too, and what it gives back goes back into it.
    #[test]
    fn shards_that_share_hold_a_client_to_one_bucket() {
        let quotas = quota_for_client("tool", 1.0);
        let (mut a, mut b) = (MutationBuckets::shared(10), MutationBuckets::shared(10));
        let (taken, need) = a.take(&quotas, "ANONYMOUS", "tool", 12.0, true, 0);
        assert_eq!(taken, Taken::Accepted { throttle_ms: 0 });
        assert_eq!(need, ShareNeed::Now);
        assert_eq!(a.unshared().state(), (true, true));
        let usage = a.unshared_mut().take();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            (usage[0].kind, usage[0].value, usage[0].quota),
            (QuotaType::Mutation, 12.0, 1.0)
        );
        b.record_shared(&usage, 0);
        assert_eq!(b.unshared().state(), (false, false), "not passed on again");
        // b's bucket (11 at first) is 1 below zero: refused for a second.
        assert_eq!(
            b.take(&quotas, "ANONYMOUS", "tool", 1.0, true, 0).0,
            Taken::Refused { throttle_ms: 1_000 }
        );
        a.give_back(&quotas, "ANONYMOUS", "tool", 12.0, 0);
        b.record_shared(&a.unshared_mut().take(), 0);
        assert_eq!(
            b.take(&quotas, "ANONYMOUS", "tool", 1.0, true, 0).0,
            Taken::Accepted { throttle_ms: 0 }
        );
        // Unshared, each shard had a bucket of its own (sluice before).
        let (mut a, mut b) = (MutationBuckets::new(10), MutationBuckets::new(10));
        a.take(&quotas, "ANONYMOUS", "tool", 12.0, true, 0);
        assert!(a.unshared_mut().take().is_empty());
        assert_eq!(
            b.take(&quotas, "ANONYMOUS", "tool", 1.0, true, 0).0,
            Taken::Accepted { throttle_ms: 0 }
        );
    }

    #[test]
    fn the_set_is_bounded_and_forgets_idle_buckets() {
        let mut quotas = quota_for_client("a", 1.0);
        quotas.extend(quota_for_client("b", 1.0));
        quotas.extend(quota_for_client("c", 1.0));
        quotas.sort_by(|x, y| x.entity.cmp(&y.entity));
        let mut set = MutationBuckets::new(2);
        for (i, c) in ["a", "b", "c"].into_iter().enumerate() {
            set.take(&quotas, "ANONYMOUS", c, 1.0, true, i as u64);
        }
        assert_eq!(set.len(), 2, "the least recently used went");
        set.take(&quotas, "ANONYMOUS", "c", 1.0, true, SENSOR_IDLE_MS + 10);
        assert_eq!(set.len(), 1, "b idle for an hour is forgotten");
    }
}
