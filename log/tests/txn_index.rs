//! Model check of the per-segment aborted-transaction indexes: random
//! transactional writes from several producers, commit and abort markers,
//! plain batches, rolls, flushes, truncations, retention, cleaning passes,
//! SIGKILLs and power losses (some in the middle of a roll), on a
//! `PartitionLog<MemoryStorage>` with small segments.
//!
//! The model is core's pure `PartitionTxns`, fed the same batches and
//! never told to forget: it knows every aborted transaction. After every
//! step:
//! - for the whole log and for random ranges, `aborted_between` (indexes
//!   of sealed segments, read with Kafka's early stop, plus memory) equals
//!   the model's answer;
//! - memory holds exactly the aborted transactions whose markers are in
//!   the active segment: the rest are only on disk.
//!
//! `TXN_INDEX_SEEDS` sets how many seeds run (default 60);
//! `TXN_INDEX_SEED=n` replays one.

mod common;

use std::path::PathBuf;

use bytes::BytesMut;
use common::{run, SplitMix64};
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::config::{CleanupPolicy, LogConfig};
use sluice_core::txn::marker::{ControlType, Marker};
use sluice_core::txn::partition::{AbortedTxn, PartitionTxns};
use sluice_log::storage::Storage;
use sluice_log::{MemoryStorage, NoPacing, PartitionLog};

const START_MS: i64 = 1_000_000;
const STEPS: usize = 250;

/// A producer the harness writes with.
struct Producer {
    id: i64,
    next_sequence: i32,
}

struct Harness {
    rng: SplitMix64,
    storage: MemoryStorage,
    dir: PathBuf,
    config: LogConfig,
    log: PartitionLog<MemoryStorage>,
    now_ms: i64,
    /// Producers that still write data.
    live: Vec<Producer>,
    /// Every producer id used; any may still get a marker.
    all_ids: Vec<i64>,
    next_id: i64,
    model: PartitionTxns,
    /// Aborted transactions the model saw (to know the checks bit).
    aborts: usize,
    /// Sealed segments whose index was read by some check.
    rolls: usize,
}

fn config(compacted: bool) -> LogConfig {
    LogConfig {
        segment_bytes: 1_024,
        index_interval_bytes: 256,
        cleanup_policy: if compacted {
            CleanupPolicy::Compact
        } else {
            CleanupPolicy::Delete
        },
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

impl Harness {
    async fn new(seed: u64) -> Harness {
        let storage = MemoryStorage::new();
        let dir = PathBuf::from(format!("/data/txn-index-{seed}"));
        let config = config(seed % 2 == 1);
        let log = PartitionLog::open(storage.clone(), dir.clone(), config.clone(), None, START_MS)
            .await
            .expect("open");
        let mut h = Harness {
            rng: SplitMix64::new(seed),
            storage,
            dir,
            config,
            log,
            now_ms: START_MS,
            live: Vec::new(),
            all_ids: Vec::new(),
            next_id: 1,
            model: PartitionTxns::default(),
            aborts: 0,
            rolls: 0,
        };
        h.new_producers();
        h
    }

    /// Retires every producer (their sequences may no longer match the
    /// log after a crash or truncation) and starts three new ones.
    fn new_producers(&mut self) {
        self.live.clear();
        for _ in 0..3 {
            self.live.push(Producer {
                id: self.next_id,
                next_sequence: 0,
            });
            self.all_ids.push(self.next_id);
            self.next_id += 1;
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
        .expect("reopen");
        self.model.truncate_from(self.log.log_end_offset());
        self.model.forget_before(self.log.log_start_offset());
        self.new_producers();
    }

    async fn write_data(&mut self) {
        let i = self.rng.below(self.live.len() as u64) as usize;
        let key = format!("k{}", self.rng.below(6));
        let value = format!("v{}", self.rng.next_u64());
        let p = &mut self.live[i];
        let batch = BatchBuilder::new(self.now_ms)
            .producer(p.id, 0, p.next_sequence)
            .transactional()
            .record(Some(key.as_bytes()), Some(value.as_bytes()))
            .build();
        let id = p.id;
        let info = self
            .log
            .append(BytesMut::from(&batch[..]), 0, self.now_ms)
            .await
            .expect("transactional append");
        self.live[i].next_sequence += 1;
        self.model.record_data(id, info.base_offset);
    }

    async fn write_plain(&mut self) {
        let batch = BatchBuilder::new(self.now_ms)
            .record(Some(b"plain"), Some(b"p"))
            .build();
        self.log
            .append(BytesMut::from(&batch[..]), 0, self.now_ms)
            .await
            .expect("plain append");
    }

    async fn write_marker(&mut self) {
        let id = self.all_ids[self.rng.below(self.all_ids.len() as u64) as usize];
        let control = if self.rng.below(3) == 0 {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let marker = Marker {
            producer_id: id,
            producer_epoch: 0,
            control,
            coordinator_epoch: 0,
        };
        let info = self
            .log
            .append_marker(&marker, 0, self.now_ms)
            .await
            .expect("marker");
        if self
            .model
            .record_marker(id, control, info.base_offset)
            .is_some()
        {
            self.aborts += 1;
        }
    }

    /// A roll that fails after a few storage operations, then a crash.
    async fn crash_mid_roll(&mut self) {
        self.storage.fail_after(1 + self.rng.below(8));
        let _ = self.log.roll_now(self.now_ms).await;
        self.storage.clear_faults();
        self.storage.crash(self.rng.next_u64());
        self.reopen().await;
    }

    async fn step(&mut self) {
        self.now_ms += 10;
        let action = self.rng.below(100);
        if std::env::var("TXN_INDEX_TRACE").is_ok() {
            let log_has = self
                .log
                .aborted_between(0, i64::MAX)
                .await
                .expect("aborted");
            eprintln!(
                "action {action} end {} segments {:?} log {:?} model {:?} open {:?}",
                self.log.log_end_offset(),
                self.log.segment_bases(),
                log_has
                    .iter()
                    .map(|t| (t.producer_id, t.first_offset, t.last_offset))
                    .collect::<Vec<_>>(),
                self.model
                    .aborted()
                    .map(|t| (t.producer_id, t.first_offset, t.last_offset))
                    .collect::<Vec<_>>(),
                self.model.open().collect::<Vec<_>>(),
            );
        }
        match action {
            0..=39 => self.write_data().await,
            40..=49 => self.write_plain().await,
            50..=71 => self.write_marker().await,
            72..=77 => self.log.roll_now(self.now_ms).await.expect("roll"),
            78..=83 => {
                self.log.flush().await.expect("flush");
            }
            84..=86 => {
                if self.rng.below(2) == 0 {
                    self.storage.crash_keep_all();
                } else {
                    self.storage.crash(self.rng.next_u64());
                }
                self.reopen().await;
            }
            87..=88 => self.crash_mid_roll().await,
            89..=91 => {
                let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
                let at = start + self.rng.below((end - start + 1) as u64) as i64;
                let end = self
                    .log
                    .truncate_to(at, self.now_ms)
                    .await
                    .expect("truncate");
                // An emptied log restarts with no producer state at all.
                let emptied = end == self.log.log_start_offset();
                self.model.truncate_from(if emptied { 0 } else { end });
                self.new_producers();
            }
            92..=94 => {
                let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
                // Not into a transaction that is open or was aborted: a
                // log replayed from its start would no longer know where
                // that began (a part no reader can fetch), the model would.
                let mut to = start + self.rng.below((end - start) as u64 / 4 + 1) as i64;
                loop {
                    let straddled = self
                        .model
                        .open()
                        .map(|(_, first)| first)
                        .chain(
                            self.model
                                .aborted()
                                .filter(|t| t.last_offset >= to)
                                .map(|t| t.first_offset),
                        )
                        .filter(|first| *first < to)
                        .min();
                    match straddled {
                        Some(first) => to = first,
                        None => break,
                    }
                }
                let to = to.max(start);
                self.log.set_log_start_offset(to).await.expect("log start");
                self.log
                    .apply_retention(self.now_ms)
                    .await
                    .expect("retention");
                self.model.forget_before(self.log.log_start_offset());
            }
            _ => {
                self.log.flush().await.expect("flush");
                let upto = self.log.log_end_offset();
                if let Some(plan) = self
                    .log
                    .clean_plan(upto, self.now_ms)
                    .await
                    .expect("clean plan")
                {
                    self.log
                        .clean(&plan, 1 << 20, self.now_ms, &NoPacing)
                        .await
                        .expect("clean");
                }
            }
        }
    }

    /// (producer, base offset) of every transactional data batch in the
    /// log, oldest first.
    async fn transactional_batches(&self) -> Vec<(i64, i64)> {
        let (mut next, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        let mut out = Vec::new();
        while next < end {
            let chunks = self.log.read(next, 1 << 20, end).await.expect("read");
            if chunks.is_empty() {
                break;
            }
            for chunk in chunks {
                for batch in BatchIter::new(chunk) {
                    let batch = batch.expect("a valid batch");
                    if batch.is_transactional()
                        && !batch.is_control()
                        && batch.base_offset() >= next
                    {
                        out.push((batch.producer_id(), batch.base_offset()));
                    }
                    next = next.max(batch.last_offset() + 1);
                }
            }
        }
        out
    }

    async fn check(&mut self, seed: u64, step: usize) {
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        let batches = self.transactional_batches().await;
        let mut ranges = vec![(start, end + 1)];
        for _ in 0..3 {
            let from = start + self.rng.below((end - start + 1) as u64) as i64;
            let to = from + 1 + self.rng.below((end - from + 1) as u64) as i64;
            ranges.push((from, to));
        }
        let aborts = |list: &[AbortedTxn], (producer, base): (i64, i64)| {
            list.iter().any(|t| {
                t.producer_id == producer && t.first_offset <= base && base < t.last_offset
            })
        };
        let everything = self.model.aborted_between(start, end + 1);
        for (from, to) in ranges {
            let got = self.log.aborted_between(from, to).await.expect("aborted");
            let context = format!(
                "seed {seed} step {step}: [{from}, {to}); segments {:?}, end {end}, in memory {}, log {got:?}, model {everything:?}",
                self.log.segment_bases(),
                self.log.aborted_in_memory()
            );
            // What a read_committed reader of the range decides for every
            // transactional batch in it: the same as with every aborted
            // transaction known.
            for &b in batches.iter().filter(|(_, base)| (from..to).contains(base)) {
                assert_eq!(
                    aborts(&got, b),
                    aborts(&everything, b),
                    "batch {b:?}: {context}"
                );
            }
            // And nothing made up: every transaction told of was aborted
            // there (the first offset may differ where the part before a
            // replay's start, or the cleaner, removed its first records).
            for t in &got {
                assert!(
                    t.overlaps(from, to)
                        && everything
                            .iter()
                            .any(|m| m.producer_id == t.producer_id
                                && m.last_offset == t.last_offset),
                    "{t:?}: {context}"
                );
            }
            // Where nothing was removed from under them, the same list.
            if !self.config.cleanup_policy.compacts() {
                let triples = |v: &[AbortedTxn]| {
                    v.iter()
                        .map(|t| (t.producer_id, t.first_offset, t.last_offset))
                        .collect::<Vec<_>>()
                };
                assert_eq!(
                    triples(&got),
                    triples(&self.model.aborted_between(from, to)),
                    "{context}"
                );
            }
        }
        let active_base = *self.log.segment_bases().last().expect("a segment");
        let in_active = self
            .model
            .aborted()
            .filter(|t| t.last_offset >= active_base)
            .count();
        let in_memory = self.log.aborted_in_memory();
        assert!(
            in_memory <= in_active
                && (self.config.cleanup_policy.compacts() || in_memory == in_active),
            "seed {seed} step {step}: memory holds {in_memory}, only the active segment's ({in_active}); segments {:?}, model {:?}",
            self.log.segment_bases(),
            self.model.aborted().collect::<Vec<_>>()
        );
        self.rolls = self.rolls.max(self.log.segment_count());
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(one) = std::env::var("TXN_INDEX_SEED") {
        return vec![one.parse().expect("TXN_INDEX_SEED is a number")];
    }
    let n = std::env::var("TXN_INDEX_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    (0..n).collect()
}

#[test]
fn aborted_transactions_are_answered_from_segment_indexes_and_memory_holds_only_the_active_ones() {
    let (mut aborts, mut most_segments) = (0, 0);
    for seed in seeds() {
        let (a, s) = run(async move {
            let mut h = Harness::new(seed).await;
            for step in 0..STEPS {
                h.step().await;
                h.check(seed, step).await;
            }
            h.log.close().await.expect("close");
            h.reopen().await;
            h.check(seed, STEPS).await;
            (h.aborts, h.rolls)
        });
        aborts += a;
        most_segments = most_segments.max(s);
    }
    // The checks meant something: transactions aborted and segments
    // sealed with them.
    assert!(aborts > 0, "no transaction was aborted");
    assert!(most_segments > 3, "segments never rolled");
}

/// A log written before these indexes (its producer snapshot of an older
/// kind, no `.txnindex` files): the open replays the log once and writes
/// every sealed segment's index.
#[test]
fn a_log_without_transaction_indexes_gets_them_at_open() {
    run(async {
        let storage = MemoryStorage::new();
        let dir = PathBuf::from("/data/txn-index-upgrade");
        let open =
            || PartitionLog::open(storage.clone(), dir.clone(), config(false), None, START_MS);
        let log = open().await.expect("open");
        for round in 0..20i64 {
            let batch = BatchBuilder::new(START_MS)
                .producer(round, 0, 0)
                .transactional()
                .record(None, Some(b"aborted"))
                .build();
            log.append(BytesMut::from(&batch[..]), 0, START_MS)
                .await
                .expect("append");
            let marker = Marker {
                producer_id: round,
                producer_epoch: 0,
                control: ControlType::Abort,
                coordinator_epoch: 0,
            };
            log.append_marker(&marker, 0, START_MS)
                .await
                .expect("marker");
            log.roll_now(START_MS).await.expect("roll");
        }
        let want = log.aborted_between(0, i64::MAX).await.expect("aborted");
        assert_eq!(want.len(), 20);
        assert_eq!(
            log.aborted_in_memory(),
            0,
            "every marker is in a sealed segment"
        );
        log.close().await.expect("close");
        // As an older version left it: no indexes, an unreadable snapshot.
        for name in storage.list(&dir).await.expect("list") {
            if name.ends_with(".txnindex") || name == "producer.snapshot" {
                storage.remove(&dir.join(&name)).await.expect("remove");
            }
        }
        let log = open().await.expect("reopen");
        assert_eq!(
            log.aborted_between(0, i64::MAX).await.expect("aborted"),
            want
        );
        assert_eq!(log.aborted_in_memory(), 0);
        let indexes = storage
            .list(&dir)
            .await
            .expect("list")
            .iter()
            .filter(|n| n.ends_with(".txnindex"))
            .count();
        assert_eq!(indexes, log.segment_count() - 1, "one per sealed segment");
    });
}
