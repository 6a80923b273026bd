//! A new segment's index files are created with their first page of
//! entries, not with the segment: a partition written less than that holds
//! one file, its `.log`, and a topic of 10,000 partitions creates 10,000
//! files instead of 30,000. A missing index file reads as an empty index.

mod common;

use std::path::Path;

use common::{batch, records, run};
use sluice_core::config::LogConfig;
use sluice_log::{MemoryStorage, PartitionLog};

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

fn segment_file(dir: &str, ext: &str) -> std::path::PathBuf {
    Path::new(dir).join(format!("{:020}.{ext}", 0))
}

async fn open(storage: &MemoryStorage, dir: &str) -> PartitionLog<MemoryStorage> {
    PartitionLog::open(storage.clone(), dir.into(), config(), None, 0)
        .await
        .expect("opens")
}

/// Whether the first segment's two index files exist is `exist`.
fn assert_index_files(storage: &MemoryStorage, dir: &str, exist: bool, when: &str) {
    for ext in ["index", "timeindex"] {
        assert_eq!(
            storage.exists(&segment_file(dir, ext)),
            exist,
            "{ext} {when}"
        );
    }
}

/// Appends one batch of 2 records per tag, then flushes.
async fn append_flushed(log: &PartitionLog<MemoryStorage>, tags: std::ops::Range<u64>) {
    for tag in tags {
        log.append(batch(tag, 2, 100, 1), 0, 0)
            .await
            .expect("append");
    }
    log.flush().await.expect("flush");
}

#[test]
fn a_new_partition_holds_its_log_file_alone_until_a_page_of_entries() {
    run(async {
        let storage = MemoryStorage::new();
        let dir = "/data/lazy";
        let log = open(&storage, dir).await;
        assert!(storage.exists(&segment_file(dir, "log")));
        assert_index_files(&storage, dir, false, "at creation");
        // A few batches: index entries, but not a page of them.
        append_flushed(&log, 0..3).await;
        assert_index_files(&storage, dir, false, "before a page");
        // More than a page of entries (4 KiB of 8-byte offset entries, one
        // per 128 bytes of log): the files are written.
        append_flushed(&log, 3..700).await;
        assert_index_files(&storage, dir, true, "after a page");
        log.close().await.expect("close");
        let log = open(&storage, dir).await;
        assert_eq!(log.open_report().active.bytes_cut, 0);
        assert_eq!(log.log_end_offset(), 1400);
        assert_eq!(
            records(&log.read(0, 1 << 20, 1400).await.expect("read")).len(),
            1400
        );
        assert_eq!(
            records(&log.read(500, 1 << 20, 1400).await.expect("read"))[0].0,
            500
        );
        log.close().await.expect("close");
    });
}

#[test]
fn a_crash_before_the_first_index_page_loses_nothing() {
    for seed in 0..20u64 {
        run(async {
            let storage = MemoryStorage::new();
            let dir = "/data/crash";
            let log = open(&storage, dir).await;
            for tag in 0..5 {
                append_flushed(&log, tag..tag + 1).await;
            }
            drop(log);
            storage.crash(seed);
            let log = open(&storage, dir).await;
            assert_eq!(log.log_end_offset(), 10, "seed {seed}");
            assert_eq!(
                records(&log.read(4, 1 << 20, 10).await.expect("read")).len(),
                6,
                "seed {seed}: a read from the middle"
            );
            log.close().await.expect("close");
        });
    }
}
