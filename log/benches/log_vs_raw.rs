//! The partition log against the raw disk, side by side in one run.
//!
//! Each scenario runs the log and its raw glommio DMA baseline alternately,
//! `--rounds` times, on fresh files in `--dir`, and reports the median ratio
//! log / raw with its min–max spread (see shared BENCHMARKING.md):
//!
//! - `append-1m`: 1 MiB batches appended without sync, against raw 1 MiB
//!   O_DIRECT writes at queue depth 1.
//! - `append-16k-flush`: 16 KiB batches each appended and flushed, against
//!   raw 16 KiB O_DIRECT writes each followed by fdatasync; also latency.
//!
//! Writes have two raw baselines: `raw` rewrites one unchanging buffer (the
//! device's ceiling), `raw-fresh` first copies each write's new data into a
//! DMA buffer (the least any writer of new data does; on virtual disks,
//! writing memory the CPU just wrote costs noticeably more).
//! - `read-cold`: sequential reads of 1 MiB through `PartitionLog::read`
//!   (no batch cache) against raw 1 MiB O_DIRECT reads.
//! - `reopen`: a child process fills a partition with `--reopen-gib` GiB,
//!   keeps appending and is killed with SIGKILL; then the time to open
//!   (recover) the partition.
//!
//! ```text
//! cargo bench -p sluice-log --bench log_vs_raw -- [--rounds 5] [--mib 512]
//!     [--ops 2000] [--reopen-gib 4] [--dir target/bench-data] [--json PATH]
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use glommio::io::DmaFile;
use hdrhistogram::Histogram;
use sluice_core::batch::BatchBuilder;
use sluice_core::config::LogConfig;
use sluice_log::{DmaStorage, PartitionLog};

const MIB: usize = 1024 * 1024;

struct Args {
    rounds: usize,
    mib: usize,
    ops: usize,
    reopen_gib: u64,
    dir: PathBuf,
    json: Option<PathBuf>,
    child_fill: Option<(PathBuf, u64)>,
    /// Run only this scenario (for profiling).
    only: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        rounds: 5,
        mib: 512,
        ops: 2000,
        reopen_gib: 4,
        dir: PathBuf::from("target/bench-data"),
        json: None,
        child_fill: None,
        only: None,
    };
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it, and then a tiny smoke run checks it still works.
    if !std::env::args().any(|a| a == "--bench") {
        args.rounds = 1;
        args.mib = 8;
        args.ops = 20;
        args.reopen_gib = 0;
        args.json = Some(PathBuf::from("target/bench-results/smoke.json"));
    }
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--rounds" => args.rounds = value().parse().expect("--rounds N"),
            "--mib" => args.mib = value().parse().expect("--mib N"),
            "--ops" => args.ops = value().parse().expect("--ops N"),
            "--reopen-gib" => args.reopen_gib = value().parse().expect("--reopen-gib N"),
            "--dir" => args.dir = PathBuf::from(value()),
            "--json" => args.json = Some(PathBuf::from(value())),
            "--only" => args.only = Some(value()),
            "--child-fill" => {
                let dir = PathBuf::from(value());
                let bytes = value().parse().expect("--child-fill DIR BYTES");
                args.child_fill = Some((dir, bytes));
            }
            // cargo bench passes --bench; ignore flags we do not know.
            _ => {}
        }
    }
    args
}

fn executor() -> glommio::LocalExecutor {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(0))
        .make()
        .expect("glommio executor")
}

/// One batch of exactly `size` bytes (one record).
fn batch_of(size: usize) -> BytesMut {
    // 61-byte header + record framing (~10 bytes for large values).
    let mut value_len = size - 61 - 8;
    loop {
        let b = BatchBuilder::new(1)
            .record(None, Some(&vec![0x5a; value_len]))
            .build();
        match b.len().cmp(&size) {
            std::cmp::Ordering::Equal => return BytesMut::from(&b[..]),
            std::cmp::Ordering::Greater => value_len -= b.len() - size,
            std::cmp::Ordering::Less => value_len += size - b.len(),
        }
    }
}

fn fresh_dir(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

fn log_config(write_buffer: usize) -> LogConfig {
    LogConfig {
        write_buffer_bytes: write_buffer as u32,
        max_message_bytes: 2 * MIB as u32,
        ..LogConfig::default()
    }
}

/// A raw DMA file, created (device probe included) as the log's storage
/// creates its segments.
async fn raw_file(path: &Path) -> DmaFile {
    sluice_log::storage::dma::create_file(path)
        .await
        .expect("open raw")
}

/// MB/s of `bytes` written as 1 MiB raw O_DIRECT writes, QD1, no sync.
/// `fresh`: each write first copies its (new) data into a DMA buffer, the
/// least any writer of new data does; otherwise one buffer is rewritten.
async fn raw_append_1m(dir: &Path, bytes: usize, fresh: bool) -> f64 {
    let file = raw_file(&dir.join("raw.dat")).await;
    let mut buf = file.alloc_dma_buffer(MIB);
    buf.as_bytes_mut().fill(0x5a);
    let buf = Rc::new(buf);
    let batch = batch_of(MIB);
    let inputs: Vec<BytesMut> = if fresh {
        (0..bytes / MIB).map(|_| batch.clone()).collect()
    } else {
        Vec::new()
    };
    let start = Instant::now();
    let mut pos = 0u64;
    while (pos as usize) < bytes {
        if fresh {
            let mut b = file.alloc_dma_buffer(MIB);
            b.as_bytes_mut()
                .copy_from_slice(&inputs[pos as usize / MIB]);
            file.write_at(b, pos).await.expect("raw write");
        } else {
            file.write_rc_at(buf.clone(), pos).await.expect("raw write");
        }
        pos += MIB as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    file.close().await.expect("close");
    bytes as f64 / secs / 1e6
}

async fn log_append_1m(dir: &Path, bytes: usize) -> f64 {
    let log = PartitionLog::open(DmaStorage, dir.join("log"), log_config(MIB), None, 0)
        .await
        .expect("open");
    // Input buffers are made before the clock starts, as a socket would
    // have filled them: the raw loop has no such copy either.
    let batch = batch_of(MIB);
    let inputs: Vec<BytesMut> = (0..bytes / MIB).map(|_| batch.clone()).collect();
    let start = Instant::now();
    for input in inputs {
        log.append(input, 0, 0).await.expect("append");
    }
    let secs = start.elapsed().as_secs_f64();
    log.close().await.expect("close");
    bytes as f64 / secs / 1e6
}

struct OpResult {
    mb_per_s: f64,
    hist: Histogram<u64>,
}

async fn raw_write_sync(dir: &Path, size: usize, ops: usize, fresh: bool) -> OpResult {
    let file = raw_file(&dir.join("raw.dat")).await;
    let mut buf = file.alloc_dma_buffer(size);
    buf.as_bytes_mut().fill(0x5a);
    let buf = Rc::new(buf);
    let batch = batch_of(size);
    let inputs: Vec<BytesMut> = if fresh {
        (0..ops).map(|_| batch.clone()).collect()
    } else {
        Vec::new()
    };
    let mut hist = Histogram::new(3).expect("histogram");
    let start = Instant::now();
    for (i, input) in (0..ops).zip(inputs.iter().map(Some).chain(std::iter::repeat(None))) {
        let t = Instant::now();
        if fresh {
            let mut b = file.alloc_dma_buffer(size);
            b.as_bytes_mut()
                .copy_from_slice(input.expect("an input per op when fresh"));
            file.write_at(b, (i * size) as u64)
                .await
                .expect("raw write");
        } else {
            file.write_rc_at(buf.clone(), (i * size) as u64)
                .await
                .expect("raw write");
        }
        file.fdatasync().await.expect("fdatasync");
        hist.record(t.elapsed().as_micros() as u64).expect("record");
    }
    let secs = start.elapsed().as_secs_f64();
    file.close().await.expect("close");
    OpResult {
        mb_per_s: (ops * size) as f64 / secs / 1e6,
        hist,
    }
}

async fn log_append_flush(dir: &Path, size: usize, ops: usize) -> OpResult {
    let log = PartitionLog::open(DmaStorage, dir.join("log"), log_config(MIB), None, 0)
        .await
        .expect("open");
    let batch = batch_of(size);
    let inputs: Vec<BytesMut> = (0..ops).map(|_| batch.clone()).collect();
    let mut hist = Histogram::new(3).expect("histogram");
    let start = Instant::now();
    for input in inputs {
        let t = Instant::now();
        log.append(input, 0, 0).await.expect("append");
        log.flush().await.expect("flush");
        hist.record(t.elapsed().as_micros() as u64).expect("record");
    }
    let secs = start.elapsed().as_secs_f64();
    log.close().await.expect("close");
    OpResult {
        mb_per_s: (ops * size) as f64 / secs / 1e6,
        hist,
    }
}

async fn raw_read(dir: &Path, bytes: usize) -> f64 {
    let path = dir.join("raw.dat");
    {
        let file = raw_file(&path).await;
        let mut buf = file.alloc_dma_buffer(MIB);
        buf.as_bytes_mut().fill(0x5a);
        let buf = Rc::new(buf);
        for i in 0..bytes / MIB {
            file.write_rc_at(buf.clone(), (i * MIB) as u64)
                .await
                .expect("write");
        }
        file.fdatasync().await.expect("sync");
        file.close().await.expect("close");
    }
    let file = DmaFile::open(&path).await.expect("open");
    let start = Instant::now();
    let mut total = 0usize;
    for i in 0..bytes / MIB {
        let r = file
            .read_at_aligned((i * MIB) as u64, MIB)
            .await
            .expect("read");
        total += std::hint::black_box(&r[..]).len();
    }
    let secs = start.elapsed().as_secs_f64();
    file.close().await.expect("close");
    total as f64 / secs / 1e6
}

async fn log_read(dir: &Path, bytes: usize) -> f64 {
    let path = dir.join("log");
    {
        let log = PartitionLog::open(DmaStorage, path.clone(), log_config(MIB), None, 0)
            .await
            .expect("open");
        let batch = batch_of(64 * 1024);
        for _ in 0..bytes / (64 * 1024) {
            log.append(batch.clone(), 0, 0).await.expect("append");
        }
        log.close().await.expect("close");
    }
    let log = PartitionLog::open(DmaStorage, path, log_config(MIB), None, 0)
        .await
        .expect("reopen");
    let end = log.log_end_offset();
    let start = Instant::now();
    let mut next = 0;
    let mut total = 0usize;
    while next < end {
        // The path a fetch answered on the partition's own shard takes.
        let chunks = log.read_chunks(next, MIB, end).await.expect("read");
        for c in &chunks {
            total += c.len();
            let mut at = 0;
            while at < c.len() {
                let header = sluice_core::batch::BatchHeader::peek(&c[at..]).expect("valid");
                next = header.last_offset() + 1;
                at += header.size_bytes;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    log.close().await.expect("close");
    total as f64 / secs / 1e6
}

/// The child of `reopen`: fills a partition, says so, keeps appending.
fn child_fill(dir: PathBuf, bytes: u64) {
    executor().run(async move {
        let log = PartitionLog::open(DmaStorage, dir, log_config(MIB), None, 0)
            .await
            .expect("open");
        let big = batch_of(MIB);
        let mut written = log.size_bytes();
        while written < bytes {
            log.append(big.clone(), 0, 0).await.expect("append");
            written += MIB as u64;
        }
        log.flush().await.expect("flush");
        println!("filled {written}");
        let small = batch_of(3000);
        loop {
            for _ in 0..7 {
                log.append(small.clone(), 0, 0).await.expect("append");
            }
            log.flush().await.expect("flush");
        }
    });
}

fn reopen_after_sigkill(dir: &Path, gib: u64) -> (f64, u64, u64) {
    let data = dir.join("reopen");
    let bytes = gib << 30;
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args([
            "--child-fill",
            data.to_str().expect("utf-8 path"),
            &bytes.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("child says filled");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    executor().run(async move {
        let start = Instant::now();
        let log = PartitionLog::open(DmaStorage, data, log_config(MIB), None, 0)
            .await
            .expect("recover");
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let size = log.size_bytes();
        let cut = log.open_report().active.bytes_cut;
        log.close().await.expect("close");
        (ms, size, cut)
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Prints and returns the medians of each variant and the median, min and
/// max of the per-round ratios of the log to each raw baseline.
fn summary(name: &str, runs: &BTreeMap<&str, Vec<f64>>) -> serde_json::Value {
    let Some(log) = runs.get("log").filter(|v| !v.is_empty()) else {
        return serde_json::Value::Null;
    };
    let mut out = serde_json::Map::new();
    let mut line = format!("{name:<18} log {:>8.1} MB/s", median(&mut log.clone()));
    for (variant, raw) in runs.iter().filter(|(v, _)| **v != "log") {
        let mut ratios: Vec<f64> = raw.iter().zip(log).map(|(r, l)| l / r).collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let ratio = median(&mut ratios);
        line += &format!(
            " | {variant} {:>8.1} MB/s, log/{variant} {ratio:.3} ({lo:.3}..{hi:.3})",
            median(&mut raw.clone())
        );
        out.insert(
            variant.to_string(),
            serde_json::json!({
                "mb_per_s_median": median(&mut raw.clone()), "mb_per_s": raw,
                "log_ratio_median": ratio, "log_ratio_min": lo, "log_ratio_max": hi,
            }),
        );
    }
    println!("{line}");
    out.insert(
        "log".into(),
        serde_json::json!({ "mb_per_s_median": median(&mut log.clone()), "mb_per_s": log }),
    );
    serde_json::Value::Object(out)
}

fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999), "max_us": h.max(),
    })
}

fn main() {
    let args = parse_args();
    if let Some((dir, bytes)) = args.child_fill {
        child_fill(dir, bytes);
        return;
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "sluice-log {} ({commit}); {} cores; 1 executor pinned to cpu 0; O_DIRECT on {}; rounds {}, {} MiB per throughput run, {} ops per flush run",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.dir.display(),
        args.rounds,
        args.mib,
        args.ops
    );
    std::fs::create_dir_all(&args.dir).expect("bench dir");
    let bytes = args.mib * MIB;
    // scenario -> variant -> MB/s per round; latency histograms per variant.
    let mut runs: BTreeMap<&str, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    let mut hists: BTreeMap<&str, Histogram<u64>> = BTreeMap::new();
    for round in 0..args.rounds {
        let (ops, base, only) = (args.ops, args.dir.clone(), args.only.clone());
        let results = executor().run(async move {
            let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
            let mut r: Vec<(&str, &str, f64, Option<Histogram<u64>>)> = Vec::new();
            if run("append-1m") {
                let raw = raw_append_1m(&fresh_dir(&base, "raw"), bytes, false).await;
                let fresh = raw_append_1m(&fresh_dir(&base, "raw"), bytes, true).await;
                let log = log_append_1m(&fresh_dir(&base, "log"), bytes).await;
                r.extend([
                    ("append-1m", "raw", raw, None),
                    ("append-1m", "raw-fresh", fresh, None),
                ]);
                r.push(("append-1m", "log", log, None));
            }
            if run("append-16k-flush") {
                for (variant, fresh) in [("raw", false), ("raw-fresh", true)] {
                    let o = raw_write_sync(&fresh_dir(&base, "raw"), 16 * 1024, ops, fresh).await;
                    r.push(("append-16k-flush", variant, o.mb_per_s, Some(o.hist)));
                }
                let o = log_append_flush(&fresh_dir(&base, "log"), 16 * 1024, ops).await;
                r.push(("append-16k-flush", "log", o.mb_per_s, Some(o.hist)));
            }
            if run("read-cold") {
                let raw = raw_read(&fresh_dir(&base, "raw"), bytes).await;
                let log = log_read(&fresh_dir(&base, "log"), bytes).await;
                r.extend([
                    ("read-cold", "raw", raw, None),
                    ("read-cold", "log", log, None),
                ]);
            }
            r
        });
        let line: Vec<String> = results
            .iter()
            .map(|(s, v, mbs, _)| format!("{s}/{v} {mbs:.1}"))
            .collect();
        println!("round {round} (MB/s): {}", line.join(", "));
        for (scenario, variant, mbs, hist) in results {
            runs.entry(scenario)
                .or_default()
                .entry(variant)
                .or_default()
                .push(mbs);
            if let Some(h) = hist {
                hists
                    .entry(variant)
                    .or_insert_with(|| Histogram::new(3).expect("histogram"))
                    .add(&h)
                    .expect("merge");
            }
        }
    }
    let empty = BTreeMap::new();
    let append = summary("append-1m", runs.get("append-1m").unwrap_or(&empty));
    let flush = summary(
        "append-16k-flush",
        runs.get("append-16k-flush").unwrap_or(&empty),
    );
    let read = summary("read-cold", runs.get("read-cold").unwrap_or(&empty));
    let mut latency = serde_json::Map::new();
    for (variant, h) in &hists {
        println!(
            "append-16k-flush latency {variant:<9}: p50 {} us, p99 {} us, p99.9 {} us, max {} us",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
        latency.insert(variant.to_string(), percentiles(h));
    }
    let mut reopen = serde_json::Value::Null;
    if args.reopen_gib > 0 {
        let _ = std::fs::remove_dir_all(args.dir.join("reopen"));
        let (ms, size, cut) = reopen_after_sigkill(&args.dir, args.reopen_gib);
        println!("reopen after SIGKILL: {size} bytes ({:.2} GiB) recovered in {ms:.1} ms, {cut} bytes cut", size as f64 / (1u64 << 30) as f64);
        reopen = serde_json::json!({ "bytes": size, "open_ms": ms, "bytes_cut": cut });
        let _ = std::fs::remove_dir_all(args.dir.join("reopen"));
    }
    let _ = std::fs::remove_dir_all(args.dir.join("raw"));
    let _ = std::fs::remove_dir_all(args.dir.join("log"));
    let result = serde_json::json!({
        "setup": {
            "version": env!("CARGO_PKG_VERSION"), "commit": commit,
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "executors": 1, "rounds": args.rounds, "throughput_mib": args.mib,
            "flush_ops": args.ops, "dir": args.dir,
        },
        "append_1m_no_sync": append,
        "append_16k_flush": { "throughput": flush, "latency": latency },
        "read_cold_1m": read,
        "reopen_after_sigkill": reopen,
    });
    let path = args
        .json
        .unwrap_or_else(|| PathBuf::from("target/bench-results/log_vs_raw.json"));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("results dir");
    }
    std::fs::write(&path, serde_json::to_string_pretty(&result).expect("json"))
        .expect("write results");
    println!("results written to {}", path.display());
}
