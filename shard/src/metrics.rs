//! The shard's measurements that are more than counters: latency
//! histograms (per Kafka API and stage, and for the log's syncs) and bytes
//! in and out per topic, gathered by the admin endpoint with a
//! [`crate::message::Metrics`] call to every shard and summed there.
//!
//! Owns: [`LatencyHistogram`] (fixed buckets, so recording is one search
//! and one increment, and shards' histograms add up bucket by bucket, as
//! Prometheus histograms do) and [`ShardMetrics`].
//!
//! Bounded: one histogram set per API the registry serves, one per-topic
//! entry per topic this shard served bytes of (a deleted topic's entry is
//! dropped with its partitions).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (the last bucket,
/// `+Inf`, is implied): 50 µs to 10 s, about three per decade.
pub const LATENCY_BUCKETS_S: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus-style histogram of durations: counts per bucket (not
/// cumulative; the exposition adds them up), the count and the sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    /// One count per bound of [`LATENCY_BUCKETS_S`], then the overflow.
    pub buckets: [u64; LATENCY_BUCKETS_S.len() + 1],
    pub count: u64,
    pub sum_s: f64,
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS_S.partition_point(|bound| *bound < s);
        self.buckets[i] += 1;
        self.count += 1;
        self.sum_s += s;
    }

    /// Adds `other`'s observations to these.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum_s += other.sum_s;
    }

    /// Counts at or below each bound (Prometheus' `le` buckets), `+Inf`
    /// last.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<f64>, u64)> + '_ {
        let bounds = LATENCY_BUCKETS_S.iter().map(|b| Some(*b)).chain([None]);
        bounds.zip(self.buckets.iter().scan(0u64, |total, n| {
            *total += n;
            Some(*total)
        }))
    }
}

/// The stages of a Kafka request, as Kafka's request metrics name them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestLatency {
    /// From the request's first byte of body to its handler starting:
    /// waiting for the request byte budget and for the bytes to arrive.
    pub queue: LatencyHistogram,
    /// The handler, until its answer (or, for a Produce waiting for its
    /// sync, its append) is done.
    pub local: LatencyHistogram,
    /// From the first byte to the answer being ready to write (a Produce's
    /// sync and replication included).
    pub total: LatencyHistogram,
}

/// Bytes of records a topic took in (produce) and gave out (fetch, to
/// consumers and followers alike) on one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicBytes {
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One shard's histograms and per-topic bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardMetrics {
    /// By API key.
    pub requests: BTreeMap<i16, RequestLatency>,
    /// Flushes of the log that issued an fdatasync, from start to durable.
    pub fsync: LatencyHistogram,
    pub topics: HashMap<String, TopicBytes>,
    /// Filled only in an answer to [`crate::message::Metrics`]: the
    /// committed offsets (group, topic, partition, offset) of the groups
    /// the shard coordinates, and the high watermarks of the partitions it
    /// leads, for consumer group lag.
    pub committed_offsets: Vec<(String, String, i32, i64)>,
    pub high_watermarks: Vec<(String, i32, i64)>,
}

impl ShardMetrics {
    /// Records one request's stages.
    pub fn observe_request(&mut self, api_key: i16, queue: Duration, local: Duration) {
        let r = self.requests.entry(api_key).or_default();
        r.queue.observe(queue);
        r.local.observe(local);
    }

    /// Records one request's total time (known last for a Produce).
    pub fn observe_request_total(&mut self, api_key: i16, total: Duration) {
        self.requests
            .entry(api_key)
            .or_default()
            .total
            .observe(total);
    }

    /// Counts `bytes` of records into `topic`.
    pub fn bytes_in(&mut self, topic: &str, bytes: usize) {
        self.topic(topic).bytes_in += bytes as u64;
    }

    /// Counts `bytes` of records out of `topic`.
    pub fn bytes_out(&mut self, topic: &str, bytes: usize) {
        if bytes > 0 {
            self.topic(topic).bytes_out += bytes as u64;
        }
    }

    /// Forgets a deleted topic.
    pub fn topic_deleted(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    fn topic(&mut self, topic: &str) -> &mut TopicBytes {
        // Allocates the name only the first time a topic is seen.
        if !self.topics.contains_key(topic) {
            self.topics.insert(topic.to_owned(), TopicBytes::default());
        }
        self.topics.get_mut(topic).expect("inserted above")
    }

    /// Adds another shard's metrics to these.
    pub fn merge(&mut self, other: &ShardMetrics) {
        for (api, r) in &other.requests {
            let mine = self.requests.entry(*api).or_default();
            mine.queue.merge(&r.queue);
            mine.local.merge(&r.local);
            mine.total.merge(&r.total);
        }
        self.fsync.merge(&other.fsync);
        for (topic, b) in &other.topics {
            let mine = self.topic(topic);
            mine.bytes_in += b.bytes_in;
            mine.bytes_out += b.bytes_out;
        }
        self.committed_offsets
            .extend(other.committed_offsets.iter().cloned());
        self.high_watermarks
            .extend(other.high_watermarks.iter().cloned());
    }

    /// Each group's lag, summed and the largest, over the partitions it
    /// committed offsets for whose high watermark is known (led on this
    /// node): (group, sum, max), by group.
    pub fn group_lag(&self) -> BTreeMap<String, (u64, u64)> {
        let hw: HashMap<(&str, i32), i64> = self
            .high_watermarks
            .iter()
            .map(|(t, p, hw)| ((t.as_str(), *p), *hw))
            .collect();
        let mut lag: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (group, topic, partition, offset) in &self.committed_offsets {
            let Some(hw) = hw.get(&(topic.as_str(), *partition)) else {
                continue;
            };
            let behind = (hw - offset).max(0) as u64;
            let entry = lag.entry(group.clone()).or_default();
            entry.0 += behind;
            entry.1 = entry.1.max(behind);
        }
        lag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_buckets_and_add_up() {
        let mut h = LatencyHistogram::default();
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let cumulative: Vec<_> = h.cumulative().collect();
        assert_eq!(cumulative[0], (Some(0.000_05), 2), "le is inclusive");
        assert_eq!(cumulative[6], (Some(0.005), 3));
        assert_eq!(cumulative.last(), Some(&(None, 4)));
        assert_eq!(h.count, 4);
        let mut total = h.clone();
        total.merge(&h);
        assert_eq!(total.count, 8);
        assert_eq!(total.cumulative().last(), Some((None, 8)));
    }
}
