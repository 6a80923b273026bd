//! One run of `sluice bench produce | consume | e2e`: prepares the topic,
//! starts the producers and consumers on a common clock, shows progress,
//! and gathers the result.
//!
//! Owns: topic set-up and clean-up over the Kafka protocol (Metadata,
//! CreateTopics, DeleteTopics, ListOffsets), partition leaders, splitting
//! partitions among producers and consumers, the warm-up and counted
//! window, the optional backlog (catch-up), thread pinning.
//!
//! Invariants: every thread stops by itself at the window's end (plus a
//! bounded drain); a topic the run created is deleted unless kept.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, ListOffsetsRequest, MetadataRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_client::Client;

use crate::consume::{self, ConsumerPlan};
use crate::produce::{self, ProducerPlan};
use crate::stats::{now_us, BenchResult, Live, Recorder, Window, MB};
use crate::workload::{RunArgs, Workload};

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Produce,
    Consume,
    EndToEnd,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::EndToEnd => "e2e",
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);
/// Time given to every thread to connect before the clock starts.
const START_DELAY: Duration = Duration::from_millis(500);
/// Longest a backlog may take to produce.
const BACKLOG_DEADLINE: Duration = Duration::from_secs(600);

/// Partition → leader address, for the run's topic.
struct Layout {
    leaders: Vec<String>,
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn layout(client: &mut Client, topic: &str) -> anyhow::Result<Option<Layout>> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let response = client.send(&request, 12)?;
    let brokers: BTreeMap<i32, String> = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let Some(t) = response.topics.into_iter().next() else {
        return Ok(None);
    };
    if t.error_code == 3 {
        return Ok(None);
    }
    if t.error_code != 0 {
        bail!("metadata of {topic}: error {}", t.error_code);
    }
    let mut partitions: Vec<_> = t.partitions;
    partitions.sort_by_key(|p| p.partition_index);
    let leaders = partitions
        .iter()
        .map(|p| {
            brokers
                .get(&p.leader_id.0)
                .cloned()
                .ok_or_else(|| anyhow!("partition {} has no leader yet", p.partition_index))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(Layout { leaders }))
}

fn create_topic(client: &mut Client, w: &Workload) -> anyhow::Result<()> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(&w.topic))
            .with_num_partitions(w.partitions)
            .with_replication_factor(1)]);
    let response = client.send(&request, 5)?;
    for t in response.topics {
        if t.error_code != 0 && t.error_code != 36 {
            bail!(
                "creating {}: error {} {}",
                w.topic,
                t.error_code,
                t.error_message.map(|m| m.to_string()).unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn delete_topic(client: &mut Client, topic: &str) -> anyhow::Result<()> {
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![name(topic)])
        .with_timeout_ms(30_000);
    client.send(&request, 4)?;
    Ok(())
}

/// Kafka's retriable answers while a new topic's leaders come up:
/// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER.
const NOT_READY_YET: [i16; 3] = [3, 5, 6];

/// Offsets at `timestamp` (-1 latest, -2 earliest) of every partition,
/// retried while the partitions are not ready (a topic just created: Kafka
/// answers NOT_LEADER_OR_FOLLOWER for a moment), for at most [`TIMEOUT`].
fn offsets(layout: &Layout, topic: &str, timestamp: i64) -> anyhow::Result<Vec<i64>> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match offsets_once(layout, topic, timestamp) {
            Err(OffsetsError::NotReady(code)) if Instant::now() < deadline => {
                tracing::debug!(code, "partitions not ready yet; asking again");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(OffsetsError::NotReady(code)) => {
                bail!("offsets of {topic}: error {code} for {TIMEOUT:?}")
            }
            Err(OffsetsError::Other(e)) => return Err(e),
            Ok(offsets) => return Ok(offsets),
        }
    }
}

enum OffsetsError {
    NotReady(i16),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for OffsetsError {
    fn from(e: anyhow::Error) -> Self {
        OffsetsError::Other(e)
    }
}

fn offsets_once(layout: &Layout, topic: &str, timestamp: i64) -> Result<Vec<i64>, OffsetsError> {
    let mut out = vec![0; layout.leaders.len()];
    let mut by_broker: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (p, leader) in layout.leaders.iter().enumerate() {
        by_broker.entry(leader).or_default().push(p as i32);
    }
    for (broker, partitions) in by_broker {
        let mut client = Client::connect(broker, TIMEOUT)?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        for t in client.send(&request, 7)?.topics {
            for p in t.partitions {
                if NOT_READY_YET.contains(&p.error_code) {
                    return Err(OffsetsError::NotReady(p.error_code));
                }
                if p.error_code != 0 {
                    return Err(OffsetsError::Other(anyhow!(
                        "offsets of partition {}: error {}",
                        p.partition_index,
                        p.error_code
                    )));
                }
                if let Some(slot) = out.get_mut(p.partition_index as usize) {
                    *slot = p.offset;
                }
            }
        }
    }
    Ok(out)
}

fn pin(cores: &[usize], thread: usize) {
    if cores.is_empty() {
        return;
    }
    let cpu = cores[thread % cores.len()];
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes
    // inside it; sched_setaffinity(0, ...) affects only this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!(cpu, "could not pin a generator thread");
        }
    }
}

/// Producer plans: every producer gets every partition, per leader broker.
fn producer_plans(
    w: &Workload,
    layout: &Layout,
    start: Instant,
    end: Instant,
    window: Window,
    bytes_limit: Option<u64>,
) -> Vec<ProducerPlan> {
    let mut by_broker: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (p, leader) in layout.leaders.iter().enumerate() {
        by_broker.entry(leader).or_default().push(p as i32);
    }
    let total = layout.leaders.len().max(1) as f64;
    let mut plans = Vec::new();
    for id in 0..w.producers {
        for (broker, partitions) in &by_broker {
            let share = partitions.len() as f64 / total / w.producers as f64;
            plans.push(ProducerPlan {
                id: plans.len(),
                broker: broker.to_string(),
                partitions: partitions.clone(),
                rate: w.rate.map(|r| r as f64 * share),
                bytes_limit: bytes_limit.map(|b| (b as f64 * share) as u64),
                start,
                end,
                window,
            });
        }
        let _ = id;
    }
    plans
}

/// Consumer plans: each reader group's consumers split the partitions.
fn consumer_plans(
    w: &Workload,
    layout: &Layout,
    from: &[i64],
    until: Option<&[i64]>,
    start: Instant,
    end: Instant,
    window: Window,
) -> Vec<ConsumerPlan> {
    let mut plans = Vec::new();
    for _group in 0..w.groups {
        for c in 0..w.consumers {
            let mut by_broker: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (p, leader) in layout.leaders.iter().enumerate() {
                if p % w.consumers == c {
                    by_broker.entry(leader).or_default().push(p);
                }
            }
            for (broker, partitions) in by_broker {
                plans.push(ConsumerPlan {
                    id: plans.len(),
                    broker: broker.to_string(),
                    partitions: partitions.iter().map(|p| (*p as i32, from[*p])).collect(),
                    until: until.map(|u| partitions.iter().map(|p| u[*p]).collect()),
                    start,
                    end,
                    window,
                });
            }
        }
    }
    plans
}

/// Runs one benchmark and returns its result (also printed, and written
/// to `--json` when given).
pub fn run(mode: Mode, args: &RunArgs) -> anyhow::Result<BenchResult> {
    let mut w = Workload::resolve(args);
    if mode == Mode::Consume {
        w.producers = 0;
    }
    if mode == Mode::Produce {
        w.consumers = 0;
    }
    let mut admin = Client::connect(&w.bootstrap, TIMEOUT)
        .with_context(|| format!("connecting to {}", w.bootstrap))?;
    let mut layout = layout(&mut admin, &w.topic)?;
    if layout.is_none() {
        create_topic(&mut admin, &w)?;
        w.topic_created_by_run = true;
        let deadline = Instant::now() + TIMEOUT;
        while layout.is_none() {
            if Instant::now() > deadline {
                bail!("topic {} has no leaders after {TIMEOUT:?}", w.topic);
            }
            std::thread::sleep(Duration::from_millis(100));
            layout = crate::run::layout(&mut admin, &w.topic).ok().flatten();
        }
    }
    let layout = layout.expect("created or found above");
    w.partitions = layout.leaders.len() as i32;
    let live = Arc::new(Live::default());

    // catch-up: a backlog first, not counted.
    let mut until = None;
    if w.backlog_mib > 0 && mode != Mode::Produce {
        eprintln!("producing a backlog of {} MiB...", w.backlog_mib);
        let start = Instant::now() + START_DELAY;
        let never = Window {
            count_from: start,
            count_until: start,
            count_from_us: 0,
            count_until_us: 0,
        };
        // `bench consume` runs no producers of its own: the backlog's are
        // the workload's (at least one), unthrottled.
        let backlog_w = Workload {
            rate: None,
            producers: Workload::resolve(args).producers.max(1),
            ..w.clone()
        };
        let plans = producer_plans(
            &backlog_w,
            &layout,
            start,
            start + BACKLOG_DEADLINE,
            never,
            Some(w.backlog_mib * 1024 * 1024),
        );
        let handles: Vec<_> = plans
            .into_iter()
            .map(|plan| {
                let (w, live) = (backlog_w.clone(), Arc::new(Live::default()));
                std::thread::spawn(move || produce::run(&w, plan, live))
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow!("a backlog producer panicked"))??;
        }
        until = Some(offsets(&layout, &w.topic, -1)?);
    }
    let from = match mode {
        Mode::Consume => offsets(&layout, &w.topic, -2)?,
        _ => offsets(&layout, &w.topic, -1)?,
    };

    let start = Instant::now() + START_DELAY;
    // A consumer catching up on a backlog counts from its first fetch (a
    // warm-up could outlast the whole read).
    let catch_up = mode == Mode::Consume && until.is_some();
    let warmup_s = if catch_up { 0.0 } else { w.warmup_s };
    let count_from = start + Duration::from_secs_f64(warmup_s);
    let count_until = count_from + Duration::from_secs_f64(w.duration_s);
    let start_us = now_us() + START_DELAY.as_micros() as u64;
    let window = Window {
        count_from,
        count_until,
        count_from_us: start_us + (warmup_s * 1e6) as u64,
        count_until_us: start_us + ((warmup_s + w.duration_s) * 1e6) as u64,
    };
    let mut threads = 0usize;
    let mut producers = Vec::new();
    if mode != Mode::Consume {
        for plan in producer_plans(&w, &layout, start, count_until, window, None) {
            let (wc, live, cores, n) = (w.clone(), live.clone(), w.cores.clone(), threads);
            threads += 1;
            producers.push(std::thread::spawn(move || {
                pin(&cores, n);
                produce::run(&wc, plan, live)
            }));
        }
    }
    let mut consumers = Vec::new();
    if mode != Mode::Produce && w.consumers > 0 {
        // Consumers keep reading a little after the producers stop, so the
        // last counted messages arrive.
        let end = count_until + Duration::from_secs(2);
        for plan in consumer_plans(&w, &layout, &from, until.as_deref(), start, end, window) {
            let (wc, live, cores, n) = (w.clone(), live.clone(), w.cores.clone(), threads);
            threads += 1;
            consumers.push(std::thread::spawn(move || {
                pin(&cores, n);
                consume::run(&wc, plan, live)
            }));
        }
    }
    let rss_peak = progress(
        &live,
        start,
        count_until + Duration::from_secs(2),
        args.broker_pid,
        || producers.iter().all(|h| h.is_finished()) && consumers.iter().all(|h| h.is_finished()),
    );

    let mut produced = Recorder::new(window);
    for h in producers {
        produced.merge(&h.join().map_err(|_| anyhow!("a producer panicked"))??);
    }
    let mut consumed = Recorder::new(window);
    for h in consumers {
        consumed.merge(&h.join().map_err(|_| anyhow!("a consumer panicked"))??);
    }
    if w.topic_created_by_run && !args.keep_topic {
        if let Err(e) = delete_topic(&mut admin, &w.topic) {
            tracing::warn!(error = %e, "deleting the benchmark topic");
        }
    }
    let result = BenchResult {
        format: 1,
        tool: "sluice bench".into(),
        sluice_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: env!("SLUICE_GIT_COMMIT").into(),
        label: args.label.clone().unwrap_or_else(|| w.bootstrap.clone()),
        mode: mode.name().into(),
        started_at_ms: start_us / 1000,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        produce: (mode != Mode::Consume).then(|| produced.summary(w.acks != 0)),
        consume: (mode != Mode::Produce && w.consumers > 0).then(|| {
            if catch_up {
                // The rate over the time the read took, not the window.
                consumed.summary_until_last(true)
            } else {
                consumed.summary(true)
            }
        }),
        broker_rss_peak_bytes: rss_peak,
        setup: w,
    };
    print!("{}", crate::report::table(&[&result]));
    if let Some(rss) = result.broker_rss_peak_bytes {
        println!("broker resident memory, peak: {:.1} MiB", rss as f64 / MB);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(result)
}

/// Prints progress once a second until `until` or `done()`: a live line
/// on a terminal, plain lines otherwise. Samples the broker's resident
/// memory each second when its pid is given; returns the peak.
fn progress(
    live: &Live,
    start: Instant,
    until: Instant,
    broker_pid: Option<u32>,
    done: impl Fn() -> bool,
) -> Option<u64> {
    let mut rss_peak: Option<u64> = None;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut tick = start.max(Instant::now()) + Duration::from_secs(1);
    while Instant::now() < until + Duration::from_secs(30) && !done() {
        std::thread::sleep(
            tick.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100)),
        );
        if Instant::now() < tick {
            continue;
        }
        let now = (
            Live::get(&live.produced),
            Live::get(&live.produced_bytes),
            Live::get(&live.consumed),
            Live::get(&live.consumed_bytes),
        );
        let line = format!(
            "{:>4.0}s  produced {:>9} msg/s {:>8.1} MB/s  consumed {:>9} msg/s {:>8.1} MB/s  errors {}",
            tick.duration_since(start).as_secs_f64(),
            now.0 - last.0,
            (now.1 - last.1) as f64 / MB,
            now.2 - last.2,
            (now.3 - last.3) as f64 / MB,
            Live::get(&live.errors),
        );
        match &bar {
            Some(bar) => bar.set_message(line),
            None => eprintln!("{line}"),
        }
        last = now;
        tick += Duration::from_secs(1);
        if let Some(rss) = broker_pid.and_then(crate::stats::rss_bytes) {
            rss_peak = Some(rss_peak.map_or(rss, |p| p.max(rss)));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    rss_peak
}
