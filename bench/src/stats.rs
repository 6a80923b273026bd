//! What a run measured: latency histograms, counts over time, and the
//! result file's shape.
//!
//! Owns: [`Recorder`], one per generator thread (no sharing on the hot
//! path), merged at the end; [`Live`], the few atomic counters the progress
//! display reads; and [`BenchResult`], the JSON result file (its keys are
//! documented in bench/README.md and stay stable).
//!
//! Invariants: only events inside the counted window (after the warm-up,
//! before the end) are counted; latency is in microseconds, recorded per
//! message; memory is fixed per recorder (one histogram, one slot per
//! counted second).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::workload::Workload;

/// Longest latency the histograms hold (60 s, in microseconds); longer
/// values are clamped to it.
const LATENCY_MAX_US: u64 = 60_000_000;

/// Microseconds since the Unix epoch now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The counted window of a run, on both clocks.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub count_from: Instant,
    pub count_until: Instant,
    pub count_from_us: u64,
    pub count_until_us: u64,
}

impl Window {
    pub fn contains(&self, at: Instant) -> bool {
        at >= self.count_from && at < self.count_until
    }
    fn second(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.count_from).as_secs() as usize
    }
}

/// One thread's measurements.
pub struct Recorder {
    pub latency_us: Histogram<u64>,
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Open loop: messages intended inside the window that were never sent
    /// (the broker fell behind the rate).
    pub unsent: u64,
    per_second: Vec<(u64, u64)>,
    window: Window,
    /// When the last counted message arrived.
    last_at: Option<Instant>,
}

impl Recorder {
    pub fn new(window: Window) -> Recorder {
        let seconds = window
            .count_until
            .duration_since(window.count_from)
            .as_secs() as usize
            + 1;
        Recorder {
            latency_us: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
                .expect("static histogram bounds are valid"),
            messages: 0,
            bytes: 0,
            errors: 0,
            unsent: 0,
            per_second: vec![(0, 0); seconds],
            window,
            last_at: None,
        }
    }

    /// Counts `messages` carrying `bytes` done at `at`, if it is inside the
    /// window.
    pub fn count(&mut self, at: Instant, messages: u64, bytes: u64) {
        if !self.window.contains(at) {
            return;
        }
        self.messages += messages;
        self.bytes += bytes;
        self.last_at = self.last_at.max(Some(at));
        if let Some(slot) = self.per_second.get_mut(self.window.second(at)) {
            slot.0 += messages;
            slot.1 += bytes;
        }
    }

    /// Records one message's latency if it was sent inside the window.
    pub fn latency(&mut self, sent_at_us: u64, done_at_us: u64) {
        if sent_at_us < self.window.count_from_us || sent_at_us >= self.window.count_until_us {
            return;
        }
        let us = done_at_us
            .saturating_sub(sent_at_us)
            .clamp(1, LATENCY_MAX_US);
        self.latency_us.saturating_record(us);
    }

    /// Adds `other` into this one.
    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.latency_us.add(&other.latency_us);
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.unsent += other.unsent;
        self.last_at = self.last_at.max(other.last_at);
        for (a, b) in self.per_second.iter_mut().zip(&other.per_second) {
            a.0 += b.0;
            a.1 += b.1;
        }
    }

    /// The summary written to the result file.
    pub fn summary(&self, with_latency: bool) -> Side {
        let seconds = self
            .window
            .count_until
            .duration_since(self.window.count_from)
            .as_secs_f64();
        self.summary_over(with_latency, seconds)
    }

    /// As [`Recorder::summary`], with rates over the time from the window's
    /// start to the last counted message (a read that ends early: a
    /// backlog caught up).
    pub fn summary_until_last(&self, with_latency: bool) -> Side {
        match self.last_at {
            Some(last) => {
                let seconds = last.duration_since(self.window.count_from).as_secs_f64();
                self.summary_over(with_latency, seconds.max(1e-6))
            }
            None => self.summary(with_latency),
        }
    }

    fn summary_over(&self, with_latency: bool, seconds: f64) -> Side {
        let h = &self.latency_us;
        let latency = (with_latency && !h.is_empty()).then(|| Percentiles {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            p99_99: h.value_at_quantile(0.9999),
            max: h.max(),
        });
        let spectrum = if with_latency && !h.is_empty() {
            h.iter_quantiles(2)
                .map(|v| (v.quantile_iterated_to(), v.value_iterated_to()))
                .collect()
        } else {
            Vec::new()
        };
        Side {
            messages: self.messages,
            bytes: self.bytes,
            errors: self.errors,
            unsent: self.unsent,
            duration_s: seconds,
            msgs_per_s: self.messages as f64 / seconds,
            mb_per_s: self.bytes as f64 / MB / seconds,
            latency_us: latency,
            spectrum,
            per_second: self
                .per_second
                .iter()
                .map(|(m, b)| Second {
                    msgs: *m,
                    mb: *b as f64 / MB,
                })
                .collect(),
        }
    }
}

/// A megabyte, as Kafka's perf tools count it (2^20 bytes).
pub const MB: f64 = 1024.0 * 1024.0;

/// Counters the progress display reads while the run goes on.
#[derive(Debug, Default)]
pub struct Live {
    pub produced: AtomicU64,
    pub produced_bytes: AtomicU64,
    pub consumed: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub errors: AtomicU64,
}

impl Live {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub p99_99: u64,
    pub max: u64,
}

/// Throughput in one counted second.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Second {
    pub msgs: u64,
    pub mb: f64,
}

/// One direction's result (producing, or consuming).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Open loop: messages intended in the window but never sent because
    /// the broker fell behind the rate (counted in latency with the time
    /// they had waited at the end).
    #[serde(default)]
    pub unsent: u64,
    pub duration_s: f64,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// Produce: send → acknowledged; consume: send → consumed (end to end).
    pub latency_us: Option<Percentiles>,
    /// (percentile in [0, 1], latency in µs), as HdrHistogram's percentile
    /// spectrum.
    pub spectrum: Vec<(f64, u64)>,
    pub per_second: Vec<Second>,
}

/// A result file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    /// The file format's version (1).
    pub format: u32,
    pub tool: String,
    pub sluice_version: String,
    pub git_commit: String,
    pub label: String,
    /// produce, consume or e2e.
    pub mode: String,
    pub started_at_ms: u64,
    pub setup: Workload,
    /// The machine: CPUs and the generator's pinning.
    pub cpus: usize,
    pub produce: Option<Side>,
    pub consume: Option<Side>,
    /// Peak resident memory of the broker during the run (`--broker-pid`).
    pub broker_rss_peak_bytes: Option<u64>,
}

/// Resident memory (VmRSS) of process `pid`, if it can be read.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
