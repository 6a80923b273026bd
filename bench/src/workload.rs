//! What a run does: the standard workloads of BENCHMARKING.md as presets,
//! and the flags that override them.
//!
//! Owns: [`RunArgs`] (the command line of `sluice bench produce | consume |
//! e2e`), the [`Preset`]s, and [`Workload`], the fully resolved setup a run
//! uses and its result file records.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::batch::Compression;

/// The standard workloads (names shared by docs, issues and results).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Preset {
    /// 1 KiB values, 16 partitions, acks=all, 1 producer (linger 5 ms,
    /// batch 256 KiB) + 1 consumer, closed loop.
    #[value(name = "tput-1k")]
    #[serde(rename = "tput-1k")]
    Tput1k,
    /// As tput-1k with linger 1 ms (as Kafka's and Redpanda's latency
    /// benchmarks), open loop at `--rate` (default 20,000 msg/s; the
    /// comparison runs it at half of tput-1k's rate).
    #[value(name = "lat-1k")]
    #[serde(rename = "lat-1k")]
    Lat1k,
    /// 100-byte values, 16 partitions, acks=1: messages per second.
    #[value(name = "small-100b")]
    #[serde(rename = "small-100b")]
    Small100b,
    /// 1 producer, 8 readers each reading every partition.
    #[value(name = "fanout")]
    #[serde(rename = "fanout")]
    Fanout,
    /// 10,000 partitions, 1 KiB values at 2,000 msg/s.
    #[value(name = "many-partitions")]
    #[serde(rename = "many-partitions")]
    ManyPartitions,
    /// A consumer reading a backlog (1 GiB by default) from the start.
    #[value(name = "catch-up")]
    #[serde(rename = "catch-up")]
    CatchUp,
}

/// The flags of `sluice bench produce | consume | e2e`. Anything not given
/// comes from `--workload` (default tput-1k).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A broker of the cluster to measure, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// A standard workload whose settings the other flags override.
    #[arg(long, value_enum)]
    pub workload: Option<Preset>,
    /// Topic to use (default: a new one, deleted afterwards).
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Value bytes (the first 8 carry the send time).
    #[arg(long)]
    pub value_size: Option<usize>,
    /// With it, value sizes are uniform in [value-size, value-size-max].
    #[arg(long)]
    pub value_size_max: Option<usize>,
    /// Distinct keys (`key-<n>`); 0 sends no keys.
    #[arg(long)]
    pub keys: Option<u64>,
    #[arg(long)]
    pub producers: Option<usize>,
    /// Consumers sharing the partitions of one reader group.
    #[arg(long)]
    pub consumers: Option<usize>,
    /// Independent reader groups, each reading every message.
    #[arg(long)]
    pub groups: Option<usize>,
    /// 0, 1 or -1 (all).
    #[arg(long, allow_hyphen_values = true)]
    pub acks: Option<i16>,
    #[arg(long)]
    pub linger_ms: Option<u64>,
    /// Largest batch per partition, in bytes of records.
    #[arg(long)]
    pub batch_bytes: Option<usize>,
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
    /// Messages per second over all producers (open loop); none: as fast as
    /// possible (closed loop).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Seconds counted, after the warm-up.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds run before counting.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Produce requests in flight per producer.
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// catch-up: MiB produced before the consumers start.
    #[arg(long)]
    pub backlog_mib: Option<u64>,
    /// CPUs the generator's threads run on, e.g. `1` or `0,1`.
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Keep a topic this run created.
    #[arg(long)]
    pub keep_topic: bool,
    /// Writes the result file here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A name for this run in tables and plots (e.g. the broker's).
    #[arg(long)]
    pub label: Option<String>,
    /// The broker's process id, when it runs on this machine: its resident
    /// memory (VmRSS) is sampled every second and the peak recorded.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// The client id the producers and consumers send (the one client
    /// quotas are set for).
    #[arg(long, default_value = "sluice")]
    pub client_id: String,
}

/// A fully resolved run setup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workload {
    pub preset: Option<Preset>,
    pub bootstrap: String,
    pub topic: String,
    pub topic_created_by_run: bool,
    pub partitions: i32,
    pub value_size: usize,
    pub value_size_max: usize,
    pub keys: u64,
    pub producers: usize,
    pub consumers: usize,
    pub groups: usize,
    pub acks: i16,
    pub linger_ms: u64,
    pub batch_bytes: usize,
    pub compression: Compression,
    /// Messages per second (open loop), or none (closed loop).
    pub rate: Option<u64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub max_in_flight: usize,
    pub backlog_mib: u64,
    pub cores: Vec<usize>,
    /// The producers' and consumers' client id.
    #[serde(default = "default_client_id")]
    pub client_id: String,
}

fn default_client_id() -> String {
    "sluice".to_owned()
}

impl Workload {
    /// The preset's settings with the flags' overrides.
    pub fn resolve(args: &RunArgs) -> Workload {
        let preset = args.workload.unwrap_or(Preset::Tput1k);
        let mut w = Workload {
            preset: Some(preset),
            bootstrap: args.bootstrap.clone(),
            topic: String::new(),
            topic_created_by_run: false,
            partitions: 16,
            value_size: 1024,
            value_size_max: 1024,
            keys: 0,
            producers: 1,
            consumers: 1,
            groups: 1,
            acks: -1,
            linger_ms: 5,
            batch_bytes: 256 * 1024,
            compression: Compression::None,
            rate: None,
            duration_s: 10.0,
            warmup_s: 2.0,
            max_in_flight: 5,
            backlog_mib: 0,
            cores: args.cores.clone(),
            client_id: args.client_id.clone(),
        };
        match preset {
            Preset::Tput1k => {}
            Preset::Lat1k => {
                w.rate = Some(20_000);
                w.linger_ms = 1;
            }
            Preset::Small100b => {
                w.value_size = 100;
                w.acks = 1;
            }
            Preset::Fanout => w.groups = 8,
            Preset::ManyPartitions => {
                w.partitions = 10_000;
                w.rate = Some(2_000);
                w.consumers = 0;
            }
            Preset::CatchUp => w.backlog_mib = 1024,
        }
        macro_rules! set {
            ($($field:ident),*) => {$(if let Some(v) = args.$field.clone() { w.$field = v; })*};
        }
        set!(partitions, value_size, keys, producers, consumers, groups, acks, linger_ms);
        set!(batch_bytes, compression, max_in_flight, backlog_mib);
        if let Some(r) = args.rate {
            w.rate = Some(r);
        }
        if let Some(d) = args.duration {
            w.duration_s = d;
        }
        if let Some(d) = args.warmup {
            w.warmup_s = d;
        }
        w.value_size_max = args
            .value_size_max
            .unwrap_or(w.value_size)
            .max(w.value_size);
        w.topic = args.topic.clone().unwrap_or_else(|| {
            let name = preset_name(args.workload);
            format!("sluice-bench-{name}-{}", std::process::id())
        });
        w
    }
}

fn preset_name(p: Option<Preset>) -> &'static str {
    match p {
        Some(Preset::Tput1k) | None => "tput-1k",
        Some(Preset::Lat1k) => "lat-1k",
        Some(Preset::Small100b) => "small-100b",
        Some(Preset::Fanout) => "fanout",
        Some(Preset::ManyPartitions) => "many-partitions",
        Some(Preset::CatchUp) => "catch-up",
    }
}
