//! Idempotent producers: retries are recognised across appends, clean
//! restarts and crashes; sequence and epoch rules give Kafka's errors.

mod common;

use bytes::BytesMut;
use common::run;
use sluice_core::batch::BatchBuilder;
use sluice_core::config::LogConfig;
use sluice_core::ErrorCode;
use sluice_log::{DmaStorage, MemoryStorage, PartitionLog};

fn idempotent_batch(producer_id: i64, epoch: i16, first_sequence: i32, records: usize) -> BytesMut {
    let mut b = BatchBuilder::new(1_000).producer(producer_id, epoch, first_sequence);
    for i in 0..records {
        b = b.record(
            None,
            Some(format!("p{producer_id}-e{epoch}-s{}", first_sequence as usize + i).as_bytes()),
        );
    }
    BytesMut::from(&b.build()[..])
}

#[test]
fn retried_batches_are_answered_with_their_original_offsets() {
    let dir = common::tempdir();
    run(async {
        let path = dir.path().join("p");
        let log = PartitionLog::open(DmaStorage, path.clone(), LogConfig::default(), None, 0)
            .await
            .expect("opens");
        let first = log
            .append(idempotent_batch(7, 0, 0, 3), 0, 0)
            .await
            .expect("append");
        assert_eq!(
            (first.base_offset, first.last_offset, first.duplicate),
            (0, 2, false)
        );
        let retry = log
            .append(idempotent_batch(7, 0, 0, 3), 0, 0)
            .await
            .expect("retry");
        assert_eq!(
            (retry.base_offset, retry.last_offset, retry.duplicate),
            (0, 2, true)
        );
        assert_eq!(log.log_end_offset(), 3, "a duplicate writes nothing");
        let next = log
            .append(idempotent_batch(7, 0, 3, 2), 0, 0)
            .await
            .expect("next");
        assert_eq!((next.base_offset, next.duplicate), (3, false));

        let gap = log
            .append(idempotent_batch(7, 0, 9, 1), 0, 0)
            .await
            .unwrap_err();
        assert_eq!(gap.error_code(), ErrorCode::OutOfOrderSequenceNumber);
        let fenced = log
            .append(idempotent_batch(7, -1, 5, 1), 0, 0)
            .await
            .unwrap_err();
        assert_eq!(fenced.error_code(), ErrorCode::InvalidProducerEpoch);
        let unknown = log
            .append(idempotent_batch(8, 0, 4, 1), 0, 0)
            .await
            .unwrap_err();
        assert_eq!(unknown.error_code(), ErrorCode::OutOfOrderSequenceNumber);
        let bumped = log
            .append(idempotent_batch(7, 1, 0, 1), 0, 0)
            .await
            .expect("new epoch");
        assert_eq!(bumped.base_offset, 5);
        assert_eq!(log.log_end_offset(), 6, "rejected batches write nothing");
        log.flush().await.expect("flush");
        log.close().await.expect("close");

        // A clean restart keeps the producer state (snapshot at close).
        let log = PartitionLog::open(DmaStorage, path, LogConfig::default(), None, 0)
            .await
            .expect("reopens");
        let retry = log
            .append(idempotent_batch(7, 1, 0, 1), 0, 0)
            .await
            .expect("retry after restart");
        assert_eq!((retry.base_offset, retry.duplicate), (5, true));
        let stale = log
            .append(idempotent_batch(7, 0, 5, 1), 0, 0)
            .await
            .unwrap_err();
        assert_eq!(stale.error_code(), ErrorCode::InvalidProducerEpoch);
        log.close().await.expect("close");
    });
}

#[test]
fn producer_state_is_rebuilt_from_the_log_after_a_crash() {
    run(async {
        let storage = MemoryStorage::new();
        let path = std::path::PathBuf::from("/data/p");
        // A snapshot every 4 KiB: some batches come from the snapshot, the
        // rest from replaying the log after it.
        let config = LogConfig {
            producer_snapshot_interval_bytes: 4096,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(storage.clone(), path.clone(), config.clone(), None, 0)
            .await
            .expect("opens");
        let mut sequences = [0i32; 4];
        for round in 0..40 {
            let producer = (round % 4) as usize;
            let info = log
                .append(
                    idempotent_batch(producer as i64 + 100, 0, sequences[producer], 2),
                    0,
                    0,
                )
                .await
                .expect("append");
            assert!(!info.duplicate);
            sequences[producer] += 2;
            log.flush().await.expect("flush");
        }
        let end = log.log_end_offset();
        // SIGKILL: no close, no final snapshot.
        storage.crash_keep_all();
        drop(log);
        let log = PartitionLog::open(storage.clone(), path, config, None, 0)
            .await
            .expect("recovers");
        assert_eq!(log.log_end_offset(), end);
        for (producer, next_sequence) in sequences.into_iter().enumerate() {
            let last = next_sequence - 2;
            let retry = log
                .append(idempotent_batch(producer as i64 + 100, 0, last, 2), 0, 0)
                .await
                .expect("retry of the last batch");
            assert!(
                retry.duplicate,
                "producer {producer}'s last batch is recognised after recovery"
            );
            let next = log
                .append(
                    idempotent_batch(producer as i64 + 100, 0, sequences[producer], 1),
                    0,
                    0,
                )
                .await
                .expect("next batch continues the sequence");
            assert!(!next.duplicate);
        }
    });
}
