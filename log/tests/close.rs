//! Closing a log writes only what changed since the files were last read
//! or written: a broker holding ten thousand idle partitions otherwise
//! writes and syncs three checkpoint files and two index files for each
//! when it stops. Shown on the in-memory disk by failing every checkpoint
//! write (each creates a `.tmp` file first) and every index file open:
//! a close that writes nothing cannot meet them.

mod common;

use std::path::PathBuf;

use common::{batch, records, run};
use sluice_core::config::LogConfig;
use sluice_log::storage::memory::FaultOp;
use sluice_log::{MemoryStorage, PartitionLog};

/// Every later checkpoint write and index file open fails.
fn refuse_checkpoint_and_index_writes(storage: &MemoryStorage) {
    storage.fail_path_ops(".tmp", FaultOp::Create);
    storage.fail_path_ops("index", FaultOp::Open);
}

async fn open(storage: &MemoryStorage, dir: &str) -> PartitionLog<MemoryStorage> {
    PartitionLog::open(
        storage.clone(),
        PathBuf::from(dir),
        LogConfig::default(),
        None,
        0,
    )
    .await
    .expect("opens")
}

#[test]
fn a_log_reopened_and_closed_unchanged_writes_no_checkpoint_and_no_index() {
    run(async {
        let storage = MemoryStorage::new();
        let log = open(&storage, "/data/unchanged").await;
        log.append(batch(0, 3, 100, 5), 0, 0).await.expect("append");
        log.start_epoch(4).await.expect("epoch");
        log.append(batch(1, 2, 100, 6), 4, 0).await.expect("append");
        log.close().await.expect("first close writes everything");

        let log = open(&storage, "/data/unchanged").await;
        refuse_checkpoint_and_index_writes(&storage);
        log.close()
            .await
            .expect("nothing changed, so nothing is written");

        // What the files hold is what the log had.
        storage.clear_faults();
        let log = open(&storage, "/data/unchanged").await;
        assert_eq!(log.log_end_offset(), 5);
        let read = log.read(0, 1 << 20, 5).await.expect("read");
        assert_eq!(records(&read).len(), 5);
        assert_eq!(log.latest_epoch(), Some(4));
        assert_eq!(log.end_offset_for_epoch(0), (0, 3));
        log.close().await.expect("close");
    });
}

#[test]
fn a_log_closed_after_an_append_writes_again() {
    run(async {
        let storage = MemoryStorage::new();
        let log = open(&storage, "/data/changed").await;
        log.append(batch(0, 3, 100, 5), 0, 0).await.expect("append");
        log.close().await.expect("close");

        let log = open(&storage, "/data/changed").await;
        log.append(batch(1, 2, 100, 6), 0, 0).await.expect("append");
        refuse_checkpoint_and_index_writes(&storage);
        log.close()
            .await
            .expect_err("an append changed the producer snapshot's offset: it is written");
    });
}

#[test]
fn a_new_log_closed_without_appends_writes_no_empty_snapshot() {
    run(async {
        let storage = MemoryStorage::new();
        let log = open(&storage, "/data/new").await;
        // A new segment's index files are synced at its first close; only
        // the checkpoint writes are refused.
        storage.fail_path_ops(".tmp", FaultOp::Create);
        log.close()
            .await
            .expect("no producers and no epochs: nothing to write");
        storage.clear_faults();
        let log = open(&storage, "/data/new").await;
        assert_eq!(log.log_end_offset(), 0);
        log.close().await.expect("close");
    });
}
