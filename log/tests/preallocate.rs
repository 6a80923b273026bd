//! Segment files grown ahead of their writes (`log.preallocate_bytes`).
//!
//! An active segment's `.log` file is allocated ahead of the data, by as
//! much as the segment holds and at most the step, so the writes that land
//! there do not change the file's size. The reserved space reads as zeros:
//! recovery after a power loss stops there without counting it as cut,
//! sealing and closing give the space back, and a failed allocation only
//! leaves the write to grow the file itself. Shown on the in-memory disk,
//! whose crashes keep a random prefix of what was not synced, and on the
//! real one.

mod common;

use std::path::{Path, PathBuf};

use common::{batch, records, run};
use sluice_core::batch::peek_batch_size;
use sluice_core::config::{FlushPolicy, LogConfig};
use sluice_log::storage::align_up;
use sluice_log::storage::memory::FaultOp;
use sluice_log::storage::Storage;
use sluice_log::{DmaStorage, MemoryStorage, PartitionLog};

const KIB: u64 = 1024;

fn config(preallocate_bytes: u64) -> LogConfig {
    LogConfig {
        preallocate_bytes,
        write_buffer_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

fn first_segment(dir: &str) -> PathBuf {
    Path::new(dir).join(format!("{:020}.log", 0))
}

async fn open<S: Storage>(storage: &S, dir: &Path, config: LogConfig) -> PartitionLog<S> {
    PartitionLog::open(storage.clone(), dir.to_path_buf(), config, None, 0)
        .await
        .expect("opens")
}

/// Appends `count` flushed batches of 10 records of 1,000 bytes, from tag
/// `first`; returns the log end offset.
async fn append_flushed<S: Storage>(log: &PartitionLog<S>, first: u64, count: u64) -> i64 {
    for tag in first..first + count {
        log.append(batch(tag, 10, 1000, 0), 0, 0)
            .await
            .expect("append");
        log.flush().await.expect("flush");
    }
    log.log_end_offset()
}

fn file_len(storage: &MemoryStorage, path: &Path) -> u64 {
    storage.file_bytes(path).expect("the segment exists").len() as u64
}

#[test]
fn the_active_file_runs_ahead_of_its_data_and_closing_cuts_it_back() {
    run(async {
        let storage = MemoryStorage::new();
        let dir = Path::new("/data/ahead");
        let log = open(&storage, dir, config(64 * KIB)).await;
        append_flushed(&log, 0, 20).await;
        let data = log.size_bytes();
        let path = first_segment("/data/ahead");
        let len = file_len(&storage, &path);
        assert!(
            len > align_up(data),
            "{len} bytes of file for {data} of data: nothing was reserved ahead"
        );
        assert!(
            len <= align_up(data) + 64 * KIB,
            "{len} bytes of file for {data} of data: more than the step ahead"
        );
        log.close().await.expect("close");
        assert_eq!(file_len(&storage, &path), align_up(data));

        let log = open(&storage, dir, config(64 * KIB)).await;
        assert_eq!(log.open_report().active.bytes_cut, 0);
        assert_eq!(
            records(&log.read(0, 1 << 20, 200).await.expect("read")).len(),
            200
        );
        log.close().await.expect("close");
    });
}

#[test]
fn a_slow_partition_reserves_no_more_than_it_holds() {
    run(async {
        let storage = MemoryStorage::new();
        let log = open(&storage, Path::new("/data/slow"), config(32 * 1024 * KIB)).await;
        append_flushed(&log, 0, 3).await;
        let data = log.size_bytes();
        let len = file_len(&storage, &first_segment("/data/slow"));
        assert!(
            len <= 2 * align_up(data) + 4 * KIB,
            "{len} bytes of file for {data} of data"
        );
        log.close().await.expect("close");
    });
}

#[test]
fn without_a_step_the_file_is_its_data() {
    run(async {
        let storage = MemoryStorage::new();
        let log = open(&storage, Path::new("/data/off"), config(0)).await;
        append_flushed(&log, 0, 20).await;
        let data = log.size_bytes();
        assert_eq!(
            file_len(&storage, &first_segment("/data/off")),
            align_up(data)
        );
        log.close().await.expect("close");
    });
}

#[test]
fn a_log_that_does_not_sync_every_append_does_not_preallocate() {
    run(async {
        let storage = MemoryStorage::new();
        for (dir, flush) in [
            ("/data/never", FlushPolicy::Never),
            ("/data/interval", FlushPolicy::IntervalMs(100)),
        ] {
            let config = LogConfig {
                flush,
                ..config(64 * KIB)
            };
            let log = open(&storage, Path::new(dir), config).await;
            append_flushed(&log, 0, 20).await;
            let data = log.size_bytes();
            assert_eq!(
                file_len(&storage, &first_segment(dir)),
                align_up(data),
                "{dir}"
            );
            log.close().await.expect("close");
        }
    });
}

#[test]
fn power_loss_keeps_every_flushed_batch_and_counts_no_reserved_zeros_as_cut() {
    for seed in 0..40u64 {
        run(async {
            let storage = MemoryStorage::new();
            let dir = Path::new("/data/crash");
            let log = open(&storage, dir, config(64 * KIB)).await;
            let flushed = append_flushed(&log, 0, 12).await;
            let path = first_segment("/data/crash");
            assert!(file_len(&storage, &path) > align_up(log.size_bytes()));
            // Appended, not flushed: a power loss may keep any part of it.
            log.append(batch(99, 10, 1000, 0), 0, 0)
                .await
                .expect("append");
            drop(log);
            storage.crash(seed);

            let log = open(&storage, dir, config(64 * KIB)).await;
            let end = log.log_end_offset();
            assert!(
                end == flushed || end == flushed + 10,
                "seed {seed}: log end {end} after flushing to {flushed}"
            );
            let report = &log.open_report().active;
            if end == flushed + 10 {
                assert_eq!(report.bytes_cut, 0, "seed {seed}: {report:?}");
            }
            assert_eq!(
                file_len(&storage, &path),
                log.size_bytes(),
                "seed {seed}: recovery cuts the file to its data"
            );
            let read = records(&log.read(0, 1 << 20, end).await.expect("read"));
            assert_eq!(read.len() as i64, end, "seed {seed}");
            // And the log goes on from there, preallocating again.
            append_flushed(&log, 100, 12).await;
            assert!(file_len(&storage, &path) > align_up(log.size_bytes()));
            log.close().await.expect("close");
        });
    }
}

#[test]
fn a_failed_preallocation_leaves_the_write_to_grow_the_file() {
    run(async {
        let storage = MemoryStorage::new();
        storage.fail_path_ops(".log", FaultOp::Allocate);
        let dir = Path::new("/data/refused");
        let log = open(&storage, dir, config(64 * KIB)).await;
        let end = append_flushed(&log, 0, 20).await;
        assert_eq!(end, 200);
        let data = log.size_bytes();
        assert_eq!(
            file_len(&storage, &first_segment("/data/refused")),
            align_up(data)
        );
        log.close().await.expect("close");
        storage.clear_faults();
        let log = open(&storage, dir, config(64 * KIB)).await;
        assert_eq!(
            records(&log.read(0, 1 << 20, 200).await.expect("read")).len(),
            200
        );
        log.close().await.expect("close");
    });
}

#[test]
fn sealed_segments_are_exactly_their_data_and_none_grows_past_its_size() {
    run(async {
        let storage = MemoryStorage::new();
        let segment_bytes = 48 * KIB;
        let config = LogConfig {
            segment_bytes,
            ..config(64 * KIB)
        };
        let dir = Path::new("/data/rolled");
        let log = open(&storage, dir, config.clone()).await;
        append_flushed(&log, 0, 30).await;
        assert!(log.segment_count() > 2, "48 KiB segments rolled");
        let mut names = storage.list(dir).await.expect("list");
        names.retain(|n| n.ends_with(".log"));
        names.sort();
        let (active, sealed) = names.split_last().expect("segments");
        for name in sealed {
            let bytes = storage.file_bytes(&dir.join(name)).expect("sealed");
            assert!(bytes.len() as u64 <= segment_bytes, "{name}");
            let mut pos = 0;
            while pos < bytes.len() {
                pos += peek_batch_size(&bytes[pos..]).expect("whole batches to the end");
            }
            assert_eq!(pos, bytes.len(), "{name} ends with its last batch");
        }
        let active_len = file_len(&storage, &dir.join(active));
        assert!(active_len <= align_up(segment_bytes), "{active_len}");
        log.close().await.expect("close");
    });
}

#[test]
fn on_a_real_disk_the_file_is_allocated_ahead_and_cut_back_on_close() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("t-0");
    let path = dir.join(format!("{:020}.log", 0));
    run(async {
        let log = open(&DmaStorage, &dir, config(256 * KIB)).await;
        append_flushed(&log, 0, 50).await;
        let data = log.size_bytes();
        let meta = std::fs::metadata(&path).expect("stat");
        assert!(
            meta.len() > align_up(data),
            "{} bytes of file for {data} of data",
            meta.len()
        );
        log.close().await.expect("close");
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!(meta.len(), align_up(data));
        let log = open(&DmaStorage, &dir, config(256 * KIB)).await;
        assert_eq!(log.open_report().active.bytes_cut, 0);
        assert_eq!(log.log_end_offset(), 500);
        log.close().await.expect("close");
    });
}
