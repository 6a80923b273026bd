//! Memory stays bounded under every client pattern that used to grow it.
//!
//! Each test starts the real broker, runs one pattern of
//! `tests/clients/python/memory_patterns.py` once small (a warm-up, so
//! allocator pools and one-time structures exist), then once at full size
//! while sampling the broker's resident memory (VmRSS) every 20 ms, and
//! asserts two bounds: the peak over the warm-up's end (what the pattern
//! costs while it runs) and the growth that is left a moment after it ends
//! (what it leaks). The bounds are the README's ("Memory and limits"),
//! next to the budgets that give them. The tests run one at a time, so one
//! broker's load does not distort another's figures.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{python_interpreter, rss_kib, run, try_rss_kib, wait_for_metric, Broker};

/// One test at a time: each measures its own broker's memory.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: u64 = 1024;

/// The highest VmRSS seen while it runs, sampled every 20 ms.
struct PeakRss {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
}

impl PeakRss {
    fn watch(pid: u32) -> PeakRss {
        let peak_kib = Arc::new(AtomicU64::new(rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak_kib, stop) = (peak_kib.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(rss) = try_rss_kib(pid) else {
                        return;
                    };
                    peak_kib.fetch_max(rss, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        PeakRss {
            peak_kib,
            stop,
            sampler: Some(sampler),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        self.peak_kib.load(Ordering::Relaxed)
    }
}

/// Runs one pattern to its end and returns its `done` line.
fn pattern(broker: &Broker, name: &str, args: &[&str]) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/python/memory_patterns.py"
    );
    let out = run(
        std::process::Command::new(python_interpreter())
            .arg(script)
            .arg(broker.bootstrap())
            .arg(name)
            .args(["--max-seconds", "240"])
            .args(args)
            .env("PYTHONUNBUFFERED", "1"),
        b"",
        Duration::from_secs(300),
    );
    out.assert_success();
    let stdout = out.stdout_text();
    let done = stdout
        .lines()
        .find(|l| l.starts_with(&format!("done {name} ")))
        .unwrap_or_else(|| panic!("no done line:\n{stdout}"))
        .to_owned();
    assert!(
        done.contains("stopped=count") || !done.contains("stopped="),
        "the pattern hit its deadline instead of finishing: {done}"
    );
    done
}

/// A `key=value` count of a done line.
fn count(done: &str, key: &str) -> u64 {
    done.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {done}"))
}

/// What one full run cost: RSS before, peak, and a moment after.
struct Measured {
    done: String,
    base_mib: u64,
    peak_mib: u64,
    after_mib: u64,
}

/// Warms up with `warmup`, then runs `full` while watching RSS.
fn measure(broker: &Broker, name: &str, warmup: &[&str], full: &[&str]) -> Measured {
    pattern(broker, name, warmup);
    settle(broker);
    let base = rss_kib(broker.pid());
    let watch = PeakRss::watch(broker.pid());
    let done = pattern(broker, name, full);
    settle(broker);
    let peak = watch.finish();
    let after = settled_rss_kib(broker.pid());
    let m = Measured {
        done,
        base_mib: base / MIB,
        peak_mib: peak / MIB,
        after_mib: after / MIB,
    };
    eprintln!(
        "{name}: RSS {} MiB before, peak {} MiB, {} MiB after ({})",
        m.base_mib, m.peak_mib, m.after_mib, m.done
    );
    m
}

/// Lets closed connections and finished requests be released: waits until
/// the broker has closed every connection the pattern opened, then a
/// moment more.
fn settle(broker: &Broker) {
    let open = wait_for_metric(
        broker,
        "sluice_kafka_connections",
        Duration::from_secs(30),
        |n| n == 0,
    );
    assert_eq!(open, 0, "connections still open after the pattern ended");
    std::thread::sleep(Duration::from_millis(500));
}

/// RSS once the broker has let go of a finished run: the least of samples
/// over five seconds, long enough for the trim the broker runs at most a
/// second after connections close (`trim_freed_memory`). Without that trim
/// the allocator kept the non-reading consumers' freed answers: 52-62 MiB
/// over the base after the full suite had run. Memory held for good shows
/// in every sample.
fn settled_rss_kib(pid: u32) -> u64 {
    let mut least = rss_kib(pid);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        least = least.min(rss_kib(pid));
    }
    least
}

fn assert_bounded(m: &Measured, peak_over_mib: u64, left_over_mib: u64) {
    assert!(
        m.peak_mib <= m.base_mib + peak_over_mib,
        "peak RSS {} MiB is more than {peak_over_mib} MiB over {} MiB ({})",
        m.peak_mib,
        m.base_mib,
        m.done
    );
    assert!(
        m.after_mib <= m.base_mib + left_over_mib,
        "RSS {} MiB after the run is more than {left_over_mib} MiB over {} MiB ({})",
        m.after_mib,
        m.base_mib,
        m.done
    );
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn long_polls_that_time_out_on_idle_partitions_leave_nothing_behind() {
    let _one = serial();
    let broker = Broker::start();
    // 100,000 partition waits: 500 Fetches of 200 idle partitions, 5 ms each.
    let m = measure(
        &broker,
        "long-polls",
        &["--waits", "20000"],
        &["--waits", "100000", "--consumers", "2"],
    );
    assert_eq!(count(&m.done, "with_data"), 0);
    assert_bounded(&m, 16, 8);
}

#[test]
fn ten_thousand_idle_connections_opened_and_closed_three_times_are_given_back() {
    let _one = serial();
    let broker = Broker::start();
    let m = measure(
        &broker,
        "idle-connections",
        &["--connections", "10000", "--rounds", "1"],
        &["--connections", "10000", "--rounds", "3"],
    );
    assert_bounded(&m, 192, 32);
}

#[test]
fn stalled_half_frames_cost_what_arrived_and_are_closed() {
    let _one = serial();
    let broker = Broker::start_with_env(&[("SLUICE_KAFKA__REQUEST_STALL_TIMEOUT_MS", "3000")]);
    let m = measure(
        &broker,
        "half-frames",
        &[
            "--connections",
            "20",
            "--hold-seconds",
            "4",
            "--probes",
            "1",
        ],
        &["--connections", "200", "--hold-seconds", "6"],
    );
    assert_eq!(count(&m.done, "closed_by_broker"), 200, "{}", m.done);
    assert_bounded(&m, 32, 8);
}

#[test]
fn a_producer_far_above_capacity_is_held_to_the_request_budget() {
    let _one = serial();
    // Budgets per shard: 32 MiB of requests, 16 MiB of batch cache.
    let broker = Broker::start_with_env(&[
        ("SLUICE_KAFKA__QUEUED_MAX_REQUEST_BYTES", "33554432"),
        ("SLUICE_SHARD__BATCH_CACHE_BYTES", "16777216"),
    ]);
    let m = measure(
        &broker,
        "overload-producer",
        &["--seconds", "3", "--producers", "2"],
        &["--seconds", "15", "--producers", "6"],
    );
    // 2 shards x (32 + 16) MiB of budgets, plus 16 partitions' write
    // buffers (1 MiB each) and read buffers.
    assert_bounded(&m, 2 * (32 + 16) + 16 + 32, 2 * (32 + 16) + 16 + 32);
}

#[test]
fn consumers_that_never_read_hold_one_response_each_and_slow_no_one() {
    let _one = serial();
    // fetch.max.bytes 4 MiB: 20 connections hold at most 80 MiB of answers;
    // a batch cache of 8 MiB per shard keeps what the produced data itself
    // occupies small and known.
    let broker = Broker::start_with_env(&[
        ("SLUICE_KAFKA__FETCH_MAX_BYTES", "4194304"),
        ("SLUICE_SHARD__BATCH_CACHE_BYTES", "8388608"),
    ]);
    let m = measure(
        &broker,
        "nonreading-consumer",
        &[
            "--mib",
            "32",
            "--connections",
            "2",
            "--requests",
            "2",
            "--hold-seconds",
            "1",
        ],
        &["--mib", "32", "--connections", "20", "--requests", "8"],
    );
    // The reading consumer finished within the pattern's deadline (the
    // driver fails otherwise) while the others held their answers. What is
    // left after is the two shards' batch caches filling, plus what the
    // allocator keeps of the freed answers (up to 31 MiB seen on a loaded
    // machine): well under the 80 MiB the answers would leave if they
    // leaked.
    assert_bounded(&m, 20 * 4 + 48, 2 * 8 + 32);
}

#[test]
fn group_members_that_join_and_leave_ten_thousand_times_leave_nothing_behind() {
    let _one = serial();
    // Every join and leave writes group metadata to __consumer_offsets; a
    // batch cache of 4 MiB per shard bounds what those records occupy.
    let broker = Broker::start_with_env(&[
        ("SLUICE_GROUP__INITIAL_REBALANCE_DELAY_MS", "0"),
        ("SLUICE_SHARD__BATCH_CACHE_BYTES", "4194304"),
    ]);
    let m = measure(
        &broker,
        "group-churn",
        &["--rounds", "1000"],
        &["--rounds", "10000"],
    );
    assert_eq!(count(&m.done, "rounds"), 10_000);
    assert_bounded(&m, 2 * 4 + 16, 2 * 4 + 8);
}

#[test]
fn topics_created_and_deleted_a_thousand_times_leave_nothing_behind() {
    let _one = serial();
    let broker = Broker::start();
    let started = Instant::now();
    let m = measure(
        &broker,
        "topic-churn",
        &["--rounds", "100"],
        &["--rounds", "1000"],
    );
    assert_eq!(count(&m.done, "rounds"), 1000);
    assert_bounded(&m, 16, 8);
    eprintln!("topic churn took {:?}", started.elapsed());
}

/// Produce's records are cut out of the request frame without a copy, so a
/// batch the broker keeps (in its batch cache, in a write buffer) keeps the
/// whole frame allocated. Each request here carries a 100-byte batch for a
/// partition that exists and a 1 MB one for a partition that does not
/// (refused and dropped at once): the cache must charge each frame the small
/// batch keeps alive, not the batch, or 1,500 such frames (1.5 GB) stay
/// resident under a 16 MiB cache.
#[test]
fn small_batches_cut_from_large_frames_are_charged_for_their_frames() {
    use common::wire::{record_batch, Conn, Decoder, Encoder, API_PRODUCE};
    let _one = serial();
    let broker = Broker::start_with_env(&[("SLUICE_SHARD__BATCH_CACHE_BYTES", "16777216")]);
    let mut conn = Conn::connect(broker.addr(), Duration::from_secs(10)).expect("connects");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64;
    let small_value = [b'v'; 100];
    let large_value = vec![b'x'; 1_000_000];
    let small = record_batch(now_ms, &[(None, Some(&small_value[..]))]);
    let large = record_batch(now_ms, &[(None, Some(&large_value[..]))]);
    // (partition 0's error, partition 1's error) of one such request.
    let produce = |conn: &mut Conn| -> (i16, i16) {
        let mut e = Encoder::default();
        e.nullable_string(None).i16(1).i32(30_000);
        e.i32(1).string("pinned-frames").i32(2);
        e.i32(0).bytes(&small).i32(1).bytes(&large);
        let body = conn.round_trip(API_PRODUCE, 3, &e.0).expect("answered");
        let mut d = Decoder::new(&body);
        let mut errors = (-100, -100);
        for _ in 0..d.array_len().expect("topics") {
            let _name = d.string().expect("name");
            for _ in 0..d.array_len().expect("partitions") {
                let index = d.i32().expect("index");
                let error = d.i16().expect("error");
                let _base_offset = d.i64().expect("base offset");
                let _log_append_time = d.i64().expect("log append time");
                if index == 0 {
                    errors.0 = error;
                } else {
                    errors.1 = error;
                }
            }
        }
        errors
    };
    // The first Produce creates the topic (one partition); then partition
    // 0 takes the small batch and partition 1 is refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    while produce(&mut conn) != (0, 3) {
        assert!(Instant::now() < deadline, "partition 0 never took a batch");
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..50 {
        assert_eq!(produce(&mut conn), (0, 3));
    }
    std::thread::sleep(Duration::from_millis(500));
    let base = rss_kib(broker.pid());
    let watch = PeakRss::watch(broker.pid());
    for _ in 0..1_500 {
        assert_eq!(produce(&mut conn), (0, 3));
    }
    let peak = watch.finish();
    drop(conn);
    let (base_mib, peak_mib) = (base / MIB, peak / MIB);
    eprintln!("pinned frames: RSS {base_mib} MiB before, peak {peak_mib} MiB");
    // 2 shards x 16 MiB of cache, plus the frames in flight and slack.
    assert!(
        peak_mib <= base_mib + 2 * 16 + 48,
        "peak RSS {peak_mib} MiB is more than {} MiB over {base_mib} MiB: cached batches keep their frames",
        2 * 16 + 48
    );
}
