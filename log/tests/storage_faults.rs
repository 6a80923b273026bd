//! Storage faults on the in-memory disk, deterministically: a failed write
//! takes the log offline (every later append refused with
//! KAFKA_STORAGE_ERROR), while a full disk only refuses appends until a
//! write succeeds again, keeps reads working, and loses nothing that was
//! flushed.

mod common;

use std::path::{Path, PathBuf};

use common::{batch, records, run};
use sluice_core::config::LogConfig;
use sluice_core::ErrorCode;
use sluice_log::storage::{memory::FaultOp, Storage};
use sluice_log::{LogError, MemoryStorage, PartitionLog};

/// Bytes of every file in `dir` now.
async fn used_bytes(storage: &MemoryStorage, dir: &Path) -> u64 {
    let mut total = 0;
    for name in storage.list(dir).await.expect("list") {
        total += storage
            .file_bytes(&dir.join(name))
            .map_or(0, |b| b.len() as u64);
    }
    total
}

#[test]
fn a_failed_write_takes_the_log_offline_and_refuses_every_later_append() {
    run(async {
        let storage = MemoryStorage::new();
        let path = PathBuf::from("/data/offline");
        let log = PartitionLog::open(storage.clone(), path, LogConfig::default(), None, 0)
            .await
            .expect("opens");
        log.append(batch(0, 2, 100, 0), 0, 0).await.expect("append");
        log.flush().await.expect("flush");
        storage.fail_path_ops(".log", FaultOp::Write);
        log.append(batch(1, 2, 100, 0), 0, 0).await.expect("append");
        let failed = log.flush().await.expect_err("the write fails");
        assert_eq!(failed.error_code(), ErrorCode::KafkaStorageError);
        assert!(log.is_offline() && !log.is_storage_full());
        // Clearing the fault does not bring it back: a failed write or sync
        // is not retried, the log must be reopened.
        storage.clear_faults();
        let refused = log.append(batch(2, 1, 100, 0), 0, 0).await;
        assert!(matches!(refused, Err(LogError::Offline)), "{refused:?}");
        assert_eq!(
            refused.unwrap_err().error_code(),
            ErrorCode::KafkaStorageError
        );
    });
}

#[test]
fn a_full_disk_refuses_appends_keeps_reads_and_resumes_when_space_returns() {
    run(async {
        let storage = MemoryStorage::new();
        let path = PathBuf::from("/data/full");
        let config = LogConfig {
            write_buffer_bytes: 8192,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(storage.clone(), path.clone(), config.clone(), None, 0)
            .await
            .expect("opens");
        let mut flushed = 0i64;
        for tag in 0..4 {
            log.append(batch(tag, 2, 1000, 0), 0, 0)
                .await
                .expect("append");
        }
        flushed = flushed.max(log.flush().await.expect("flush"));
        // 16 KiB more fit; then the disk is full.
        storage.set_capacity_bytes(Some(used_bytes(&storage, &path).await + 16 * 1024));
        let mut tag = 4;
        let full = loop {
            assert!(tag < 100, "the disk never filled");
            match log.append(batch(tag, 2, 1000, 0), 0, 0).await {
                Ok(_) => match log.flush().await {
                    Ok(durable) => flushed = durable,
                    Err(e) => break e,
                },
                Err(e) => break e,
            }
            tag += 1;
        };
        assert!(full.is_storage_full_write(), "{full}");
        assert_eq!(full.error_code(), ErrorCode::KafkaStorageError);
        assert!(log.is_storage_full() && !log.is_offline());
        // Appends are refused (nothing more is buffered); reads go on.
        let end_before = log.log_end_offset();
        let refused = log.append(batch(1000, 1, 1000, 0), 0, 0).await;
        assert_eq!(
            refused.expect_err("refused on a full disk").error_code(),
            ErrorCode::KafkaStorageError
        );
        assert_eq!(log.log_end_offset(), end_before);
        let read = log.read(0, 1 << 20, flushed).await.expect("reads go on");
        assert_eq!(records(&read).first().map(|(o, _)| *o), Some(0));

        // Space returns: the next append writes what was pending, then its own.
        storage.set_capacity_bytes(None);
        let info = log
            .append(batch(2000, 1, 1000, 0), 0, 0)
            .await
            .expect("resumes");
        assert_eq!(info.base_offset, end_before);
        let durable = log.flush().await.expect("flush");
        assert_eq!(durable, end_before + 1);
        assert!(!log.is_storage_full());

        // A SIGKILL keeps all of it, the bytes that waited included.
        storage.crash_keep_all();
        drop(log);
        let log = PartitionLog::open(storage.clone(), path, config, None, 0)
            .await
            .expect("recovers");
        assert_eq!(log.log_end_offset(), durable);
        let all = records(&log.read(0, 1 << 24, durable).await.expect("read"));
        let offsets: Vec<i64> = all.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..durable).collect::<Vec<_>>());
        assert!(all.last().expect("a record").1.starts_with(b"2000:0:"));
    });
}
