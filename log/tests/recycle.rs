//! Recycled segment files (`log.recycle_segments`): retention keeps one
//! deleted segment's `.log` per partition as its spare, and the next roll
//! writes over it.
//!
//! What must hold: every read returns exactly what was appended (never a
//! record of the old segment the file was); a killed process loses nothing
//! and recovery counts the old bytes past the data apart from damage; a
//! power loss keeps every flushed batch and brings nothing old back; a log
//! that starts over never reuses a spare; closing, and a full disk, give
//! the spare's space back. Shown on the in-memory disk, whose crashes keep
//! a random prefix of what was not synced, and on the real one.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{batch, records, run};
use sluice_core::config::LogConfig;
use sluice_log::segment::SPARE_FILE;
use sluice_log::storage::{align_up, Storage};
use sluice_log::{DmaStorage, MemoryStorage, PartitionLog};

const KIB: u64 = 1024;

/// Segments of 64 KiB (six batches of 10 KiB), retention at 128 KiB.
fn config(recycle_segments: bool) -> LogConfig {
    LogConfig {
        segment_bytes: 64 * KIB,
        retention_bytes: 128 * KIB as i64,
        retention_ms: -1,
        // Smaller than a batch: unflushed appends reach the disk unsynced.
        write_buffer_bytes: 4096,
        recycle_segments,
        ..LogConfig::default()
    }
}

async fn open<S: Storage>(storage: &S, dir: &Path, config: LogConfig) -> PartitionLog<S> {
    PartitionLog::open(storage.clone(), dir.to_path_buf(), config, None, 0)
        .await
        .expect("opens")
}

/// What the log was given: (offset, value) of every record appended.
#[derive(Default)]
struct Appended(Vec<(i64, Bytes)>);

impl Appended {
    /// Appends flushed batches of 10 records of 1,000 bytes, tagged
    /// `first..first + count`, and remembers their records.
    async fn flushed<S: Storage>(&mut self, log: &PartitionLog<S>, first: u64, count: u64) {
        for tag in first..first + count {
            let b = batch(tag, 10, 1000, 0);
            let base = log
                .append(b.clone(), 0, 0)
                .await
                .expect("append")
                .base_offset;
            self.0.extend(
                records(&[b.freeze()])
                    .into_iter()
                    .map(|(o, v)| (base + o, v)),
            );
            log.flush().await.expect("flush");
        }
    }

    /// The records a read of the whole log must return.
    fn from(&self, log_start: i64, log_end: i64) -> Vec<(i64, Bytes)> {
        self.0
            .iter()
            .filter(|(o, _)| (log_start..log_end).contains(o))
            .cloned()
            .collect()
    }
}

async fn read_all<S: Storage>(log: &PartitionLog<S>) -> Vec<(i64, Bytes)> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let chunks = log.read(at, 1 << 20, end).await.expect("read");
        let got = records(&chunks);
        at = got.last().expect("a read below the end returns records").0 + 1;
        out.extend(got);
    }
    out
}

fn active_log(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Bytes of data in the active segment: the log's, less its sealed
/// segments' files (each exactly its data), as `len_of` reads them.
fn active_size<S: Storage>(
    log: &PartitionLog<S>,
    dir: &Path,
    len_of: impl Fn(&Path) -> u64,
) -> u64 {
    let bases = log.segment_bases();
    let sealed: u64 = bases[..bases.len() - 1]
        .iter()
        .map(|b| len_of(&active_log(dir, *b)))
        .sum();
    log.size_bytes() - sealed
}

fn memory_len(storage: &MemoryStorage) -> impl Fn(&Path) -> u64 + '_ {
    |p| storage.file_bytes(p).map_or(0, |b| b.len() as u64)
}

fn disk_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn marker(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.recycled"))
}

/// A log at `dir` filled past retention (40 batches, about six
/// segments), after a pass of retention deleted its oldest segments.
async fn past_retention<S: Storage>(
    storage: &S,
    dir: &Path,
    config: LogConfig,
) -> (PartitionLog<S>, Appended) {
    let log = open(storage, dir, config).await;
    let mut appended = Appended::default();
    appended.flushed(&log, 0, 40).await;
    let outcome = log.apply_retention(0).await.expect("retention");
    assert!(outcome.segments_deleted > 0, "{outcome:?}");
    (log, appended)
}

/// Appends one batch at a time, from tag 1000, until a roll reuses the
/// spare; the next tag.
async fn roll_into_spare<S: Storage>(log: &PartitionLog<S>, appended: &mut Appended) -> u64 {
    assert_eq!(log.stats().segments_recycled, 0);
    let mut tag = 1000;
    while log.stats().segments_recycled == 0 {
        appended.flushed(log, tag, 1).await;
        tag += 1;
        assert!(tag < 1100, "no roll reused the spare");
    }
    tag
}

/// A log past retention whose active segment is a recycled file holding
/// `tags_after` flushed batches after the one that rolled it.
async fn recycled_log<S: Storage>(
    storage: &S,
    dir: &Path,
    tags_after: u64,
) -> (PartitionLog<S>, Appended) {
    let (log, mut appended) = past_retention(storage, dir, config(true)).await;
    let tag = roll_into_spare(&log, &mut appended).await;
    appended.flushed(&log, tag, tags_after).await;
    (log, appended)
}

#[test]
fn retention_keeps_a_spare_that_the_next_roll_writes_over() {
    run(async {
        let storage = MemoryStorage::new();
        let dir = Path::new("/data/recycle");
        let (log, mut appended) = past_retention(&storage, dir, config(true)).await;
        let spare = storage
            .file_bytes(&dir.join(SPARE_FILE))
            .expect("retention kept a spare");
        assert!(spare.len() as u64 > 32 * KIB, "{} bytes", spare.len());

        let mut tag = roll_into_spare(&log, &mut appended).await;
        assert!(storage.file_bytes(&dir.join(SPARE_FILE)).is_none());
        let base = *log.segment_bases().last().expect("a segment");
        let file = storage
            .file_bytes(&active_log(dir, base))
            .expect("the active segment");
        let data = active_size(&log, dir, memory_len(&storage));
        assert!(
            file.len() as u64 > data + 16 * KIB,
            "the recycled file keeps its length: {} bytes",
            file.len()
        );
        assert!(storage.file_bytes(&marker(dir, base)).is_some());
        assert_eq!(
            read_all(&log).await,
            appended.from(log.log_start_offset(), log.log_end_offset())
        );

        // Sealing cuts the recycled file to its data and drops the marker.
        while log.segment_bases().last() == Some(&base) {
            appended.flushed(&log, tag, 1).await;
            tag += 1;
        }
        assert!(storage.file_bytes(&marker(dir, base)).is_none());
        let sealed = storage.file_bytes(&active_log(dir, base)).expect("sealed");
        let next = log.segment_bases()[log.segment_bases().len() - 1];
        assert!(sealed.len() as u64 <= 64 * KIB && next > base);

        // Retention again, then a clean close: the spare goes with it.
        log.apply_retention(0).await.expect("retention");
        assert!(storage.file_bytes(&dir.join(SPARE_FILE)).is_some());
        log.close().await.expect("close");
        assert!(storage.file_bytes(&dir.join(SPARE_FILE)).is_none());

        let log = open(&storage, dir, config(true)).await;
        let report = log.open_report();
        assert_eq!(report.active.bytes_cut, 0, "{report:?}");
        assert_eq!(report.stray_files_removed, 0, "{report:?}");
        assert_eq!(
            read_all(&log).await,
            appended.from(log.log_start_offset(), log.log_end_offset())
        );
        log.close().await.expect("close");
    });
}

#[test]
fn a_killed_process_loses_nothing_and_the_old_bytes_are_not_damage() {
    run(async {
        let storage = MemoryStorage::new();
        let dir = Path::new("/data/kill");
        let (log, mut appended) = recycled_log(&storage, dir, 1).await;
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        drop(log);
        storage.crash_keep_all();

        let log = open(&storage, dir, config(true)).await;
        let report = &log.open_report().active;
        assert_eq!(report.bytes_cut, 0, "{report:?}");
        assert!(report.recycled_bytes_dropped > 0, "{report:?}");
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(read_all(&log).await, appended.from(start, end));
        // The recovered segment goes on: appends, a reopen, all there.
        appended.flushed(&log, 5000, 3).await;
        let end = log.log_end_offset();
        log.close().await.expect("close");
        let log = open(&storage, dir, config(true)).await;
        assert_eq!(read_all(&log).await, appended.from(start, end));
        log.close().await.expect("close");
    });
}

#[test]
fn power_loss_keeps_every_flushed_batch_and_brings_nothing_old_back() {
    let mut recovered_unflushed = 0;
    for seed in 0..40u64 {
        run(async {
            let storage = MemoryStorage::new();
            let dir = Path::new("/data/power");
            let (log, mut appended) = recycled_log(&storage, dir, seed % 3).await;
            let (start, flushed) = (log.log_start_offset(), log.log_end_offset());
            // Appended, not flushed, larger than the write buffer: written
            // unsynced, so a power loss may keep any part of it.
            let b = batch(99, 10, 1000, 0);
            log.append(b.clone(), 0, 0).await.expect("append");
            appended.0.extend(
                records(&[b.freeze()])
                    .into_iter()
                    .map(|(o, v)| (flushed + o, v)),
            );
            drop(log);
            storage.crash(seed);

            let log = open(&storage, dir, config(true)).await;
            let end = log.log_end_offset();
            assert!(
                end == flushed || end == flushed + 10,
                "seed {seed}: log end {end} after flushing to {flushed}"
            );
            recovered_unflushed += (end > flushed) as u32;
            assert_eq!(log.log_start_offset(), start, "seed {seed}");
            assert_eq!(
                read_all(&log).await,
                appended.from(start, end),
                "seed {seed}"
            );
            log.close().await.expect("close");
        });
    }
    // The seeds reach both outcomes, or the test shows half of what it says.
    assert!(
        (1..40).contains(&recovered_unflushed),
        "{recovered_unflushed}"
    );
}

#[test]
fn a_log_that_starts_over_drops_its_spare() {
    run(async {
        let storage = MemoryStorage::new();
        let dir = Path::new("/data/start-over");
        let (log, _) = past_retention(&storage, dir, config(true)).await;
        assert!(storage.file_bytes(&dir.join(SPARE_FILE)).is_some());
        // A follower told to start over at an offset below its log start.
        log.truncate_fully_and_start_at(3, 0)
            .await
            .expect("start over");
        assert!(storage.file_bytes(&dir.join(SPARE_FILE)).is_none());
        let mut tail = Appended::default();
        tail.flushed(&log, 2000, 20).await;
        assert!(log.segment_bases().len() > 1, "it rolled");
        assert_eq!(log.stats().segments_recycled, 0);
        assert_eq!(read_all(&log).await, tail.from(3, log.log_end_offset()));
        log.close().await.expect("close");
    });
}

#[test]
fn without_recycling_retention_deletes_the_whole_segment() {
    run(async {
        let storage = MemoryStorage::new();
        let dir = Path::new("/data/no-recycle");
        let (log, mut appended) = past_retention(&storage, dir, config(false)).await;
        assert!(storage.file_bytes(&dir.join(SPARE_FILE)).is_none());
        appended.flushed(&log, 1000, 20).await;
        assert_eq!(log.stats().segments_recycled, 0);
        log.close().await.expect("close");
    });
}

#[test]
fn a_full_disk_gets_the_spare_back_first() {
    run(async {
        let storage = MemoryStorage::new();
        let dir = Path::new("/data/full");
        // No space reserved ahead: the next write must grow the file.
        let config = LogConfig {
            preallocate_bytes: 0,
            ..config(true)
        };
        let (log, mut appended) = past_retention(&storage, dir, config).await;
        let spare = dir.join(SPARE_FILE);
        assert!(storage.file_bytes(&spare).is_some());
        // 4 KiB more fit: the next batch of 10 KiB does not.
        let mut used = 0;
        for name in storage.list(dir).await.expect("list") {
            used += storage
                .file_bytes(&dir.join(name))
                .map_or(0, |b| b.len() as u64);
        }
        storage.set_capacity_bytes(Some(used + 4 * KIB));
        let b = batch(500, 10, 1000, 0);
        let full = match log.append(b, 0, 0).await {
            Ok(_) => log.flush().await.expect_err("the disk is full"),
            Err(e) => e,
        };
        assert!(full.is_storage_full_write(), "{full}");
        // The next append gives the spare back, and fits.
        appended.0.clear();
        let end = log.log_end_offset();
        appended.flushed(&log, 501, 1).await;
        assert!(storage.file_bytes(&spare).is_none());
        assert!(!log.is_storage_full());
        assert!(log.log_end_offset() > end);
        log.close().await.expect("close");
    });
}

#[test]
fn on_a_real_disk_the_recycled_file_is_written_over_and_cut_at_close() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    run(async {
        let storage = DmaStorage;
        let (log, appended) = recycled_log(&storage, &dir, 1).await;
        let base = *log.segment_bases().last().expect("a segment");
        let len = disk_len(&active_log(&dir, base));
        let size = active_size(&log, &dir, disk_len);
        assert!(len > size + 16 * KIB, "{len} bytes for {size} of data");
        assert!(marker(&dir, base).exists());
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        log.close().await.expect("close");
        assert!(!dir.join(SPARE_FILE).exists());
        assert_eq!(
            disk_len(&active_log(&dir, base)),
            align_up(size),
            "closing cut the old bytes"
        );

        let log = open(&storage, &dir, config(true)).await;
        assert_eq!(log.open_report().active.bytes_cut, 0);
        assert_eq!(read_all(&log).await, appended.from(start, end));
        log.close().await.expect("close");
    });
}
