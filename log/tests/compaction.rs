//! Model check of log compaction: random keyed appends, tombstones,
//! idempotent producers, rolls, cleaning passes and crashes in the middle
//! of a pass (SIGKILL or power loss after any number of storage
//! operations), on a `PartitionLog<MemoryStorage>`. After every step:
//!
//! - every record the log returns is the record appended at that offset
//!   (same key, same value): compaction never moves or changes a record;
//! - offsets increase strictly, and the log end never moves back;
//! - the latest record of every key is still there, unless it is a
//!   tombstone whose delete horizon has passed;
//! - after a completed pass, no key appears twice below where its map
//!   reached.
//!
//! `COMPACTION_SEEDS` sets how many seeds run (default 150);
//! `COMPACTION_SEED=n` replays one.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use common::{run, SplitMix64};
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::compaction::read_records;
use sluice_core::config::{CleanupPolicy, LogConfig};
use sluice_log::{MemoryStorage, NoPacing, PartitionLog};

const START_MS: i64 = 1_000_000;
const KEYS: u64 = 12;
const DELETE_RETENTION_MS: i64 = 5_000;

/// One appended record, as the model remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Appended {
    key: Bytes,
    value: Option<Bytes>,
}

struct Harness {
    rng: SplitMix64,
    storage: MemoryStorage,
    dir: PathBuf,
    config: LogConfig,
    log: PartitionLog<MemoryStorage>,
    now_ms: i64,
    /// Every record ever appended, by offset.
    appended: BTreeMap<i64, Appended>,
    /// The producer's next sequence.
    next_sequence: i32,
    tag: u64,
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2_048,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: DELETE_RETENTION_MS,
        min_cleanable_dirty_ratio: 0.0,
        index_interval_bytes: 256,
        write_buffer_bytes: 4096,
        ..LogConfig::default()
    }
}

impl Harness {
    async fn new(seed: u64) -> Harness {
        let storage = MemoryStorage::new();
        let dir = PathBuf::from("/data/compacted-0");
        let config = config();
        let log = PartitionLog::open(storage.clone(), dir.clone(), config.clone(), None, START_MS)
            .await
            .expect("open");
        Harness {
            rng: SplitMix64::new(seed),
            storage,
            dir,
            config,
            log,
            now_ms: START_MS,
            appended: BTreeMap::new(),
            next_sequence: 0,
            tag: 0,
        }
    }

    async fn reopen(&mut self) {
        self.log = PartitionLog::open(
            self.storage.clone(),
            self.dir.clone(),
            self.config.clone(),
            None,
            self.now_ms,
        )
        .await
        .expect("reopen after a crash");
    }

    async fn append(&mut self) {
        let records = 1 + self.rng.below(5) as usize;
        let idempotent = self.rng.below(3) == 0;
        let mut b = BatchBuilder::new(self.now_ms);
        if idempotent {
            b = b.producer(77, 0, self.next_sequence);
        }
        let mut planned = Vec::new();
        for _ in 0..records {
            self.tag += 1;
            let key = Bytes::from(format!("k{}", self.rng.below(KEYS)));
            let value = (self.rng.below(6) != 0).then(|| Bytes::from(format!("v{}", self.tag)));
            b = b.record(Some(&key), value.as_deref());
            planned.push(Appended { key, value });
        }
        let info = self
            .log
            .append(BytesMut::from(&b.build()[..]), 0, self.now_ms)
            .await
            .expect("append");
        if idempotent {
            self.next_sequence += records as i32;
        }
        for (i, a) in planned.into_iter().enumerate() {
            self.appended.insert(info.base_offset + i as i64, a);
        }
        self.log.flush().await.expect("flush");
    }

    async fn clean(&mut self) -> Option<i64> {
        let budget = if self.rng.below(3) == 0 { 200 } else { 1 << 20 };
        self.clean_with(budget).await
    }

    async fn clean_with(&mut self, budget: usize) -> Option<i64> {
        let plan = self
            .log
            .clean_plan(self.log.log_end_offset(), self.now_ms)
            .await
            .expect("plan")?;
        if !plan.is_due(&self.config) {
            return None;
        }
        let outcome = self
            .log
            .clean(&plan, budget, self.now_ms, &NoPacing)
            .await
            .expect("clean");
        if std::env::var("COMPACTION_DEBUG").is_ok() {
            println!("at {}: {plan:?} -> {outcome:?}", self.now_ms);
        }
        Some(outcome.cleaned_to)
    }

    /// Runs a pass that fails after `ops` storage operations, then
    /// crashes (power loss or SIGKILL) and reopens.
    async fn crash_during_clean(&mut self, ops: u64) {
        let end = self.log.log_end_offset();
        self.storage.fail_after(ops);
        if let Ok(Some(plan)) = self.log.clean_plan(end, self.now_ms).await {
            let _ = self.log.clean(&plan, 1 << 20, self.now_ms, &NoPacing).await;
        }
        self.storage.clear_faults();
        if self.rng.below(2) == 0 {
            self.storage.crash(self.rng.next_u64());
        } else {
            self.storage.crash_keep_all();
        }
        self.reopen().await;
        assert_eq!(
            self.log.log_end_offset(),
            end,
            "a crash mid-clean lost appended records"
        );
    }

    /// Every record the log holds, (offset, key, value), from its start.
    async fn contents(&self) -> Vec<(i64, Option<Bytes>, Option<Bytes>)> {
        let mut out = Vec::new();
        let mut next = self.log.log_start_offset();
        let end = self.log.log_end_offset();
        while next < end {
            let chunks = self.log.read(next, 4096, end).await.expect("read");
            if chunks.is_empty() {
                break;
            }
            for chunk in chunks {
                for batch in BatchIter::new(chunk) {
                    let batch = batch.expect("every stored batch passes its CRC");
                    for r in read_records(&batch, 1 << 20).expect("records") {
                        let value = if r.is_tombstone {
                            None
                        } else {
                            Some(record_value(&batch, r.offset))
                        };
                        out.push((r.offset, r.key, value));
                    }
                    next = batch.last_offset() + 1;
                }
            }
        }
        out
    }

    async fn check(&self, cleaned_to: Option<i64>) {
        let contents = self.contents().await;
        let mut last = -1;
        for (offset, key, value) in &contents {
            assert!(
                *offset > last,
                "offsets must increase: {offset} after {last}"
            );
            last = *offset;
            let appended = self
                .appended
                .get(offset)
                .unwrap_or_else(|| panic!("offset {offset} was never appended"));
            assert_eq!(key.as_ref(), Some(&appended.key), "key changed at {offset}");
            assert_eq!(value, &appended.value, "value changed at {offset}");
        }
        let held: BTreeMap<i64, ()> = contents.iter().map(|(o, _, _)| (*o, ())).collect();
        let mut latest: BTreeMap<&Bytes, (i64, &Appended)> = BTreeMap::new();
        for (offset, a) in &self.appended {
            latest.insert(&a.key, (*offset, a));
        }
        for (key, (offset, a)) in latest {
            if a.value.is_some() {
                assert!(
                    held.contains_key(&offset),
                    "the latest record of {key:?} (offset {offset}) is gone"
                );
            }
        }
        if let Some(cleaned_to) = cleaned_to {
            let mut seen = BTreeMap::new();
            for (offset, key, _) in contents.iter().filter(|(o, _, _)| *o < cleaned_to) {
                if let Some(earlier) = seen.insert(key.clone(), *offset) {
                    panic!("key {key:?} at {earlier} and {offset}, both below {cleaned_to}");
                }
            }
        }
    }
}

/// The value of the record at `offset` in `batch` (read again with the
/// record iterator, independently of the cleaner's reader).
fn record_value(batch: &sluice_core::batch::RecordBatch, offset: i64) -> Bytes {
    let body = match batch.compression() {
        sluice_core::batch::Compression::None => batch.records_bytes(),
        codec => sluice_core::compression::decompress(codec, &batch.records_bytes(), 1 << 20)
            .expect("decompress"),
    };
    sluice_core::records::RecordIter::over(batch, body)
        .map(|r| r.expect("record"))
        .find(|r| r.offset == offset)
        .and_then(|r| r.value)
        .expect("a record with a value")
}

/// Runs one seed; returns (records appended, records left).
fn run_seed(seed: u64) -> (usize, usize) {
    run(async move {
        let mut h = Harness::new(seed).await;
        for _ in 0..80 {
            h.now_ms += h.rng.below(2_000) as i64;
            let cleaned_to = match h.rng.below(10) {
                0..=4 => {
                    h.append().await;
                    None
                }
                5 => {
                    h.log.roll_now(h.now_ms).await.expect("roll");
                    None
                }
                6 | 7 => h.clean().await,
                8 => {
                    let ops = h.rng.below(40);
                    h.crash_during_clean(ops).await;
                    None
                }
                _ => {
                    h.storage.crash_keep_all();
                    h.reopen().await;
                    None
                }
            };
            h.check(cleaned_to).await;
        }
        // A last full pass, twice (tombstones get their horizon in the
        // first), once the horizon passed: no key twice, no old tombstone.
        h.log.roll_now(h.now_ms).await.expect("roll");
        h.clean_with(1 << 20).await;
        h.now_ms += DELETE_RETENTION_MS + 1;
        // Not due: an earlier pass covered everything and kept no tombstone.
        let end = h.log.log_end_offset();
        let cleaned_to = h.clean_with(1 << 20).await.unwrap_or(end);
        assert_eq!(
            cleaned_to,
            h.log.log_end_offset(),
            "the last pass covers the log"
        );
        h.check(Some(cleaned_to)).await;
        let contents = h.contents().await;
        assert!(
            contents.iter().all(|(_, _, v)| v.is_some()),
            "a tombstone outlived its delete horizon: {contents:?} (now {}, cleaned to {cleaned_to})",
            h.now_ms
        );
        let mut latest = BTreeMap::new();
        for a in h.appended.values() {
            latest.insert(a.key.clone(), a.value.is_some());
        }
        let live = latest.values().filter(|v| **v).count();
        assert_eq!(contents.len(), live, "exactly the live keys remain");
        (h.appended.len(), contents.len())
    })
}

#[test]
fn compaction_keeps_the_latest_record_of_every_key_through_crashes() {
    if let Ok(seed) = std::env::var("COMPACTION_SEED") {
        let (appended, left) = run_seed(seed.parse().expect("COMPACTION_SEED is a number"));
        println!("appended {appended}, left {left}");
        return;
    }
    let seeds: u64 = std::env::var("COMPACTION_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let (mut appended, mut left) = (0, 0);
    for seed in 0..seeds {
        match std::panic::catch_unwind(|| run_seed(seed)) {
            Ok((a, l)) => (appended, left) = (appended + a, left + l),
            Err(_) => panic!(
                "seed {seed} failed; replay with COMPACTION_SEED={seed} cargo test -p sluice-log --test compaction"
            ),
        }
    }
    println!("{seeds} seeds: {appended} records appended, {left} left after the last pass");
    assert!(
        left * 4 < appended,
        "compaction removed too little to have been exercised"
    );
}

/// Transactions in a compacted log, as Kafka's cleaner treats them: an
/// aborted transaction's records are removed and do not make the committed
/// value of their key go; a record of a transaction still open is past the
/// last stable offset, where the cleaner does not reach, so it stays and
/// the older value of its key stays too (the transaction may yet abort).
#[test]
fn the_cleaner_removes_aborted_records_and_keeps_what_open_transactions_may_need() {
    use sluice_core::txn::marker::{ControlType, Marker};
    run(async {
        let storage = MemoryStorage::new();
        let log = PartitionLog::open(
            storage,
            PathBuf::from("/data/txn-compacted-0"),
            config(),
            None,
            START_MS,
        )
        .await
        .expect("open");
        let append = |batch: Bytes| {
            let log = &log;
            async move {
                log.append(BytesMut::from(&batch[..]), 0, START_MS)
                    .await
                    .expect("append")
                    .base_offset
            }
        };
        let plain = |key: &str, value: &str| {
            BatchBuilder::new(START_MS)
                .record(Some(key.as_bytes()), Some(value.as_bytes()))
                .build()
        };
        let txn = |producer: i64, key: &str, value: &str| {
            BatchBuilder::new(START_MS)
                .producer(producer, 0, 0)
                .transactional()
                .record(Some(key.as_bytes()), Some(value.as_bytes()))
                .build()
        };
        let committed = append(plain("a", "committed")).await;
        let open_before = append(plain("b", "before-open")).await;
        let aborted = append(txn(5, "a", "aborted")).await;
        let marker = Marker {
            producer_id: 5,
            producer_epoch: 0,
            control: ControlType::Abort,
            coordinator_epoch: 0,
        };
        log.append_marker(&marker, 0, START_MS)
            .await
            .expect("marker");
        // Enough later records to seal the segments holding all of that
        // below the open transaction, and the one holding it too.
        for i in 0..150 {
            append(plain(&format!("filler{i}"), "x")).await;
        }
        let open = append(txn(6, "b", "open")).await;
        for i in 150..300 {
            append(plain(&format!("filler{i}"), "x")).await;
        }
        let hw = log.log_end_offset();
        let lso = log.last_stable_offset(hw);
        assert_eq!(
            lso, open,
            "the open transaction holds the last stable offset"
        );
        let plan = log
            .clean_plan(lso, START_MS)
            .await
            .expect("a plan")
            .expect("the log is due");
        log.clean(&plan, 1 << 20, START_MS, &NoPacing)
            .await
            .expect("clean");
        let mut values: BTreeMap<i64, Bytes> = BTreeMap::new();
        let mut next = log.log_start_offset();
        while next < hw {
            let chunks = log.read(next, 1 << 20, hw).await.expect("read");
            if chunks.is_empty() {
                break;
            }
            for chunk in chunks {
                for batch in BatchIter::new(chunk) {
                    let batch = batch.expect("a batch");
                    next = batch.next_offset();
                    if batch.is_control() {
                        continue;
                    }
                    for r in sluice_core::records::RecordIter::new(&batch).expect("records") {
                        let r = r.expect("a record");
                        values.insert(r.offset, r.value.unwrap_or_default());
                    }
                }
            }
        }
        assert_eq!(
            values.get(&committed).map(|v| &v[..]),
            Some(&b"committed"[..])
        );
        assert_eq!(values.get(&aborted), None, "the aborted record was removed");
        assert_eq!(
            values.get(&open_before).map(|v| &v[..]),
            Some(&b"before-open"[..])
        );
        assert_eq!(values.get(&open).map(|v| &v[..]), Some(&b"open"[..]));
    });
}
