//! The metadata log's snapshots: start-up replays one snapshot and the
//! commands after it, and the state is the same as a full replay's after
//! any crash, on the in-memory disk.

use std::path::PathBuf;

use sluice_core::metadata::legacy::{LegacyCommand, LegacyState};
use sluice_log::MemoryStorage;
use sluice_shard::metadata_log::MetadataLog;
use sluice_shard::Disk;

fn create(i: u64) -> LegacyCommand {
    LegacyCommand::CreateTopic {
        name: format!("t{i}"),
        id: (i as u128 + 1).to_be_bytes(),
        partition_shards: vec![0, 1],
        configs: Default::default(),
    }
}

fn delete(i: u64) -> LegacyCommand {
    LegacyCommand::DeleteTopic {
        name: format!("t{i}"),
    }
}

/// The commands of the tests: every topic created, every other deleted.
fn commands(n: u64) -> Vec<LegacyCommand> {
    (0..n)
        .flat_map(|i| {
            let mut v = vec![create(i)];
            if i % 2 == 0 {
                v.push(delete(i));
            }
            v
        })
        .collect()
}

fn run<T>(test: impl std::future::Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("an executor")
        .run(test)
}

fn dir() -> PathBuf {
    PathBuf::from("/meta")
}

#[test]
fn start_up_replays_the_last_snapshot_and_the_commands_after_it() {
    run(async {
        let disk = Disk::Memory(MemoryStorage::new());
        let log = MetadataLog::open(&disk, dir(), 8, 0).await.expect("opens");
        let mut expected = LegacyState::default();
        for (i, command) in commands(100).iter().enumerate() {
            log.commit(command, i as i64).await.expect("commits");
            expected.apply(command).expect("applies");
        }
        let (start, end) = log.offsets();
        assert!(start > 0, "snapshots moved the log start");
        log.close().await.expect("closes");

        let reopened = MetadataLog::open(&disk, dir(), 8, 0)
            .await
            .expect("reopens");
        assert_eq!(*reopened.state(), expected);
        let replayed = reopened.replayed();
        assert!(replayed.snapshot);
        // At least 8 commands between snapshots, and as many bytes of them
        // as the last snapshot took.
        assert!(replayed.commands < 150 / 4, "{replayed:?}");
        // It had enough commands since its last snapshot to take one now.
        assert_eq!(reopened.offsets(), (end, end + 1));
        assert!(start < end);

        // Without snapshots every command is replayed, to the same state.
        let plain = Disk::Memory(MemoryStorage::new());
        let log = MetadataLog::open(&plain, dir(), 0, 0).await.expect("opens");
        for (i, command) in commands(100).iter().enumerate() {
            log.commit(command, i as i64).await.expect("commits");
        }
        log.close().await.expect("closes");
        let reopened = MetadataLog::open(&plain, dir(), 0, 0)
            .await
            .expect("reopens");
        assert_eq!(*reopened.state(), expected);
        assert_eq!(reopened.replayed().commands, 150);
        assert!(!reopened.replayed().snapshot);
    });
}

#[test]
fn a_power_loss_at_any_commit_keeps_every_committed_command() {
    run(async {
        for crash_after in [1usize, 7, 8, 9, 16, 17, 40, 61] {
            for seed in 0..4u64 {
                let memory = MemoryStorage::new();
                let disk = Disk::Memory(memory.clone());
                let log = MetadataLog::open(&disk, dir(), 8, 0).await.expect("opens");
                let mut expected = LegacyState::default();
                for (i, command) in commands(40).iter().take(crash_after).enumerate() {
                    log.commit(command, i as i64).await.expect("commits");
                    expected.apply(command).expect("applies");
                }
                memory.crash(seed);
                let reopened = MetadataLog::open(&disk, dir(), 8, 0)
                    .await
                    .unwrap_or_else(|e| panic!("after {crash_after} commits, seed {seed}: {e}"));
                assert_eq!(
                    *reopened.state(),
                    expected,
                    "after {crash_after} commits, seed {seed}"
                );
            }
        }
    });
}

#[test]
fn start_up_does_not_grow_with_the_changes_ever_made() {
    run(async {
        let mut replayed = Vec::new();
        for pairs in [100u64, 1000] {
            let disk = Disk::Memory(MemoryStorage::new());
            let log = MetadataLog::open(&disk, dir(), 8, 0).await.expect("opens");
            for i in 0..pairs {
                log.commit(&create(i), 0).await.expect("creates");
                log.commit(&delete(i), 0).await.expect("deletes");
            }
            log.close().await.expect("closes");
            let reopened = MetadataLog::open(&disk, dir(), 8, 0)
                .await
                .expect("reopens");
            assert!(reopened.state().topics.is_empty());
            replayed.push(reopened.replayed());
        }
        assert!(
            replayed.iter().all(|r| r.snapshot && r.commands < 8),
            "{replayed:?}"
        );
        assert!(
            replayed[1].bytes <= replayed[0].bytes + 512,
            "ten times the changes, the same replay: {replayed:?}"
        );
    });
}
