//! Acked batches survive SIGKILL, on real disk.
//!
//! A child process appends to a partition log and reports every offset a
//! flush made durable; the parent kills it with SIGKILL at a random moment,
//! reopens the log and checks that nothing acked was lost and that nothing
//! it serves is damaged, appends a little itself and closes cleanly. The
//! cycle repeats on one directory, each child continuing where the log ends.
//!
//! The child is this test binary re-executed with `--exact child_appender`
//! and the log directory in [`CHILD_DIR_ENV`]; without that variable the
//! `child_appender` test returns at once, so a normal run is unaffected.
//!
//! Every record's value is `common::value_at(offset)`, so the parent checks
//! the exact content of everything it reads back, acked or not.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{batch_at, check_log_content, run, SplitMix64};
use glommio::sync::Semaphore;
use sluice_core::config::LogConfig;
use sluice_log::{DmaStorage, PartitionLog};

/// Directory of the log the child appends to; its presence makes
/// `child_appender` a child.
const CHILD_DIR_ENV: &str = "SLUICE_CRASH_CHILD_DIR";
/// Seed of the child's RNG.
const CHILD_SEED_ENV: &str = "SLUICE_CRASH_CHILD_SEED";
/// Seed of the whole run: change it to explore, keep it to replay.
const SEED: u64 = 0x51_c0de_0000_0001;
/// Kill/restart cycles on the one directory.
const CYCLES: usize = 25;
/// The parent kills the child after 1..=this many durable lines.
const DURABLE_LINES_MAX: u64 = 200;
/// Longest one cycle may take: child start, its durable lines, kill, reap.
const CYCLE_DEADLINE: Duration = Duration::from_secs(30);
/// A child that was never killed exits on its own after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// Stop starting new cycles once this much time went by, so the test stays
/// bounded on a slow disk; it still runs at least `CYCLES_MIN` cycles.
const TEST_BUDGET: Duration = Duration::from_secs(45);
const CYCLES_MIN: usize = 8;
/// SIGKILL's number on every Unix Rust supports; spelled out so the test
/// needs no libc dependency.
const SIGKILL: i32 = 9;

/// Small segments so that children roll often, a small write buffer so
/// appends write out (unsynced) between flushes.
fn crash_config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 * 1024,
        write_buffer_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

#[test]
fn acked_batches_survive_sigkill() {
    let root = common::tempdir();
    let dir = root.path().join("p");
    let mut rng = SplitMix64::new(SEED);
    let started = Instant::now();
    // Every offset below this is acked: reported durable by a child or
    // flushed by the parent before a clean close.
    let mut acked = 0i64;
    let mut stats = Stats::default();
    for cycle in 0..CYCLES {
        if cycle >= CYCLES_MIN && started.elapsed() > TEST_BUDGET {
            break;
        }
        let ctx = format!("seed {SEED:#x} cycle {cycle}");
        let durable_lines = 1 + rng.below(DURABLE_LINES_MAX);
        // Half the kills wait up to 3 ms after the last line read, so they
        // land inside a burst of appends or a flush rather than right after
        // a report. This delay picks a moment; it does not synchronise
        // anything.
        let linger = Duration::from_micros(if rng.below(2) == 0 {
            0
        } else {
            rng.below(3000)
        });
        let stderr_path = root.path().join(format!("child-{cycle}.stderr"));
        let deadline = Instant::now() + CYCLE_DEADLINE;
        let mut child = ChildAppender::spawn(&dir, rng.next_u64(), &stderr_path);

        let mut lines = 0u64;
        while lines < durable_lines {
            match child.next_line(deadline) {
                Ok(line) => {
                    if let Some(durable) = parse_durable(&line) {
                        acked = acked.max(durable);
                        lines += 1;
                    }
                }
                Err(e) => panic!(
                    "{ctx}: waiting for durable line {} of {durable_lines}: {e:?}; child stderr:\n{}",
                    lines + 1,
                    read_tail(&stderr_path)
                ),
            }
        }
        std::thread::sleep(linger);
        let status = child.kill_and_reap(deadline);
        assert_eq!(
            status.signal(),
            Some(SIGKILL),
            "{ctx}: the child died of SIGKILL, not on its own ({status}); child stderr:\n{}",
            read_tail(&stderr_path)
        );
        // Lines the child wrote before it died are acks too.
        for line in child.remaining_lines(deadline) {
            if let Some(durable) = parse_durable(&line) {
                acked = acked.max(durable);
                lines += 1;
            }
        }
        drop(child);

        let outcome = run(reopen_check_extend(
            dir.clone(),
            acked,
            rng.next_u64(),
            ctx.clone(),
        ));
        stats.cycles += 1;
        stats.durable_lines += lines;
        stats.records_beyond_ack += (outcome.end_after_open - acked) as u64;
        stats.bytes_cut += outcome.bytes_cut;
        stats.segments = outcome.segments;
        acked = outcome.end_after_close;
    }
    println!(
        "{} cycles, {} durable lines, {} records survived beyond the last ack, \
         {} bytes cut by recovery, {} segments, log end {acked}, {:?}",
        stats.cycles,
        stats.durable_lines,
        stats.records_beyond_ack,
        stats.bytes_cut,
        stats.segments,
        started.elapsed()
    );
    assert!(stats.cycles >= CYCLES_MIN);
}

#[derive(Debug, Default)]
struct Stats {
    cycles: usize,
    durable_lines: u64,
    records_beyond_ack: u64,
    bytes_cut: u64,
    segments: usize,
}

/// What the parent found after a kill.
struct Reopened {
    end_after_open: i64,
    end_after_close: i64,
    bytes_cut: u64,
    segments: usize,
}

/// Reopens the log a child was killed on and checks it: nothing below
/// `acked` lost, everything served valid and exact; then appends a few
/// batches, flushes and closes cleanly.
async fn reopen_check_extend(dir: PathBuf, acked: i64, seed: u64, ctx: String) -> Reopened {
    let mut rng = SplitMix64::new(seed);
    let log = PartitionLog::open(DmaStorage, dir, crash_config(), None, 0)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: reopening after SIGKILL: {e}"));
    let end = log.log_end_offset();
    assert!(
        end >= acked,
        "{ctx}: log end {end} below the acked offset {acked}: acked records lost (open report {:?})",
        log.open_report()
    );
    assert_eq!(log.durable_offset(), end, "{ctx}");
    assert_eq!(log.log_start_offset(), 0, "{ctx}");
    let content = check_log_content(&log)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: after reopening: {e}"));
    assert_eq!(content.first_base, 0, "{ctx}");
    assert_eq!(content.records as i64, end, "{ctx}");

    // The recovered log takes appends, and they go where the log ends.
    let mut next = end;
    for _ in 0..1 + rng.below(3) {
        let records = 1 + rng.below(8) as usize;
        let info = log
            .append(batch_at(next, records), 0, 0)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: append after recovery: {e}"));
        assert_eq!(info.base_offset, next, "{ctx}");
        next = info.last_offset + 1;
    }
    assert_eq!(log.flush().await.expect("flush"), next, "{ctx}");
    let report = log.open_report().clone();
    let segments = log.segment_count();
    log.close()
        .await
        .unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
    Reopened {
        end_after_open: end,
        end_after_close: next,
        bytes_cut: report.active.bytes_cut,
        segments,
    }
}

fn parse_durable(line: &str) -> Option<i64> {
    line.strip_prefix("durable ")?.trim().parse().ok()
}

fn read_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let from = text.len().saturating_sub(4000);
    let from = (from..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[from..].to_string()
}

/// A running child appender; killed and reaped when dropped, whatever the
/// test's outcome.
struct ChildAppender {
    process: std::process::Child,
    lines: Receiver<String>,
    reader: Option<JoinHandle<()>>,
}

#[derive(Debug)]
enum LineError {
    /// No line before the deadline.
    Timeout,
    /// The child closed its stdout (exited) first.
    Exited,
}

impl ChildAppender {
    fn spawn(dir: &Path, seed: u64, stderr_path: &Path) -> ChildAppender {
        let exe = std::env::current_exe().expect("path of the running test binary");
        let stderr = File::create(stderr_path).expect("child stderr file");
        let mut process = Command::new(exe)
            .args([
                "--exact",
                "child_appender",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir)
            .env(CHILD_SEED_ENV, seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("child test binary starts");
        let stdout = process.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        // A thread turns the pipe into a channel so every wait on the child
        // can have a deadline; it ends when the child's stdout closes.
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildAppender {
            process,
            lines,
            reader: Some(reader),
        }
    }

    fn next_line(&self, deadline: Instant) -> Result<String, LineError> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(LineError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(LineError::Exited),
        }
    }

    /// Lines still in the pipe once the child is dead, up to its EOF.
    fn remaining_lines(&mut self, deadline: Instant) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match self.next_line(deadline) {
                Ok(line) => out.push(line),
                Err(LineError::Exited) => break,
                Err(LineError::Timeout) => panic!("the dead child's stdout never closed"),
            }
        }
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stdout reader thread");
        }
        out
    }

    /// Sends SIGKILL and waits (until `deadline`) for the child to be reaped.
    fn kill_and_reap(&mut self, deadline: Instant) -> ExitStatus {
        // `Child::kill` sends SIGKILL; it fails only if the child was already
        // reaped, which `reap` then reports.
        let _ = self.process.kill();
        self.reap(deadline)
            .unwrap_or_else(|| panic!("child {} not reaped after SIGKILL", self.process.id()))
    }

    fn reap(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            match self.process.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

impl Drop for ChildAppender {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.reap(Instant::now() + Duration::from_secs(10));
    }
}

/// The child: appends until killed. Not a test on its own; see the module
/// docs.
#[test]
fn child_appender() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let seed = std::env::var(CHILD_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("the parent passes a numeric seed");
    run(append_until_killed(PathBuf::from(dir), seed));
}

/// Appends in bursts: a few tasks each make one to three appends (of one or
/// two batches of 1..=8 records), some of them flushing on their own, then
/// one flush for the burst. Every flush's durable offset goes to stdout.
async fn append_until_killed(dir: PathBuf, seed: u64) {
    let log = Rc::new(
        PartitionLog::open(DmaStorage, dir, crash_config(), None, 0)
            .await
            .expect("the child opens the log"),
    );
    // Values are a function of the offset a record lands at, so an append
    // must know its base offset when it builds its batches: appends take
    // turns (the flushes they make still overlap each other and the next
    // appends, which is what group commit is about).
    let append_turn = Rc::new(Semaphore::new(1));
    let mut rng = SplitMix64::new(seed);
    let stop_at = Instant::now() + CHILD_LIFETIME;
    while Instant::now() < stop_at {
        let mut tasks = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let appends: Vec<Vec<usize>> = (0..1 + rng.below(3))
                .map(|_| {
                    (0..1 + rng.below(2))
                        .map(|_| 1 + rng.below(8) as usize)
                        .collect()
                })
                .collect();
            let flushes = rng.below(2) == 0;
            let log = log.clone();
            let append_turn = append_turn.clone();
            tasks.push(glommio::spawn_local(async move {
                for batches in appends {
                    let turn = append_turn.acquire_permit(1).await.expect("never closed");
                    let base = log.log_end_offset();
                    let mut bytes = bytes::BytesMut::new();
                    let mut next = base;
                    for records in batches {
                        bytes.extend_from_slice(&batch_at(next, records));
                        next += records as i64;
                    }
                    let info = log.append(bytes, 0, 0).await.expect("child append");
                    assert_eq!((info.base_offset, info.last_offset), (base, next - 1));
                    drop(turn);
                    futures_lite::future::yield_now().await;
                }
                if flushes {
                    report_durable(log.flush().await.expect("child flush"));
                }
            }));
        }
        for task in tasks {
            task.await;
        }
        report_durable(log.flush().await.expect("child flush"));
    }
}

fn report_durable(offset: i64) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "durable {offset}")
        .and_then(|()| out.flush())
        .is_err()
    {
        // The parent is gone; nobody is left to ack.
        std::process::exit(0);
    }
}
