//! The log as replication uses it: a follower appends the leader's batches
//! as they are, the leader epochs survive restarts and crashes, and
//! truncation forgets the epochs it cuts.

mod common;

use bytes::{Bytes, BytesMut};
use common::run;
use sluice_core::batch::BatchBuilder;
use sluice_core::config::LogConfig;
use sluice_log::{DmaStorage, PartitionLog};

fn batch(value: &str) -> BytesMut {
    BytesMut::from(
        &BatchBuilder::new(1_000)
            .record(None, Some(value.as_bytes()))
            .build()[..],
    )
}

#[test]
fn a_follower_copies_the_leaders_batches_byte_for_byte_with_their_epochs() {
    let dir = common::tempdir();
    run(async {
        let leader = PartitionLog::open(
            DmaStorage,
            dir.path().join("leader"),
            LogConfig::default(),
            None,
            0,
        )
        .await
        .expect("opens");
        let follower = PartitionLog::open(
            DmaStorage,
            dir.path().join("follower"),
            LogConfig::default(),
            None,
            0,
        )
        .await
        .expect("opens");
        for (i, epoch) in [(0, 0), (1, 0), (2, 3), (3, 3), (4, 5)] {
            leader
                .append(batch(&format!("v{i}")), epoch, 0)
                .await
                .expect("append");
        }
        let fetched: Vec<Bytes> = leader
            .read(0, 1 << 20, leader.log_end_offset())
            .await
            .expect("read");
        let all: Vec<u8> = fetched.iter().flat_map(|b| b.iter().copied()).collect();
        let appended = follower
            .append_as_follower(Bytes::from(all.clone()), 0)
            .await
            .expect("follower append");
        assert_eq!((appended.base_offset, appended.last_offset), (0, 4));
        let copied: Vec<u8> = follower
            .read(0, 1 << 20, follower.log_end_offset())
            .await
            .expect("read")
            .iter()
            .flat_map(|b| b.iter().copied())
            .collect();
        assert_eq!(copied, all, "the same bytes");
        assert_eq!(
            follower.leader_epochs().entries(),
            &[(0, 0), (3, 2), (5, 4)]
        );
        assert_eq!(follower.end_offset_for_epoch(3), (3, 4));
        assert_eq!(follower.end_offset_for_epoch(4), (3, 4));
        assert_eq!(follower.end_offset_for_epoch(5), (5, 5));

        // A gap, a replay and a damaged CRC are refused whole.
        let again = follower.append_as_follower(fetched[0].clone(), 0).await;
        assert!(again.is_err(), "a batch below the log end");
        leader.append(batch("v5"), 5, 0).await.expect("append");
        let mut damaged = leader.read(5, 1 << 20, 6).await.expect("read")[0].to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        assert!(follower
            .append_as_follower(Bytes::from(damaged), 0)
            .await
            .is_err());
        assert_eq!(follower.log_end_offset(), 5, "nothing written");

        // Truncation forgets the epochs it cuts, and that is what a restart sees.
        follower.truncate_to(3, 0).await.expect("truncates");
        assert_eq!(follower.leader_epochs().entries(), &[(0, 0), (3, 2)]);
        follower.append(batch("new"), 7, 0).await.expect("append");
        follower.flush().await.expect("flush");
        follower.close().await.expect("close");
        let reopened = PartitionLog::open(
            DmaStorage,
            dir.path().join("follower"),
            LogConfig::default(),
            None,
            0,
        )
        .await
        .expect("reopens");
        assert_eq!(
            reopened.leader_epochs().entries(),
            &[(0, 0), (3, 2), (7, 3)]
        );
        leader.close().await.expect("close");
        reopened.close().await.expect("close");
    });
}

#[test]
fn epochs_appended_after_the_last_checkpoint_are_replayed_at_open() {
    let dir = common::tempdir();
    run(async {
        let path = dir.path().join("p");
        let log = PartitionLog::open(DmaStorage, path.clone(), LogConfig::default(), None, 0)
            .await
            .expect("opens");
        log.append(batch("a"), 1, 0).await.expect("append");
        log.append(batch("b"), 4, 0).await.expect("append");
        log.flush().await.expect("flush");
        // No close: the epoch file was never written (as after SIGKILL).
        drop(log);
        let _ = std::fs::remove_file(path.join(sluice_log::partition::EPOCH_CHECKPOINT_FILE));
        let reopened = PartitionLog::open(DmaStorage, path, LogConfig::default(), None, 0)
            .await
            .expect("reopens");
        assert_eq!(reopened.leader_epochs().entries(), &[(1, 0), (4, 1)]);
        reopened.close().await.expect("close");
    });
}
