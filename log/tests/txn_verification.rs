//! The partition's half of KIP-890 part 1: a transactional producer's
//! first write is appended with the guard its verification began, and
//! only while no marker for the producer came since.

mod common;

use std::path::PathBuf;

use bytes::BytesMut;
use common::run;
use sluice_core::batch::BatchBuilder;
use sluice_core::config::LogConfig;
use sluice_core::txn::marker::{ControlType, Marker};
use sluice_core::ErrorCode;
use sluice_log::{MemoryStorage, PartitionLog};

fn txn_batch(producer_id: i64, sequence: i32, value: &str) -> BytesMut {
    txn_batch_at(producer_id, 0, sequence, value)
}

fn txn_batch_at(producer_id: i64, epoch: i16, sequence: i32, value: &str) -> BytesMut {
    let batch = BatchBuilder::new(1_000)
        .producer(producer_id, epoch, sequence)
        .transactional()
        .record(None, Some(value.as_bytes()))
        .build();
    BytesMut::from(&batch[..])
}

fn marker(producer_id: i64, control: ControlType) -> Marker {
    marker_at(producer_id, 0, control)
}

fn marker_at(producer_id: i64, producer_epoch: i16, control: ControlType) -> Marker {
    Marker {
        producer_id,
        producer_epoch,
        control,
        coordinator_epoch: 0,
    }
}

#[test]
fn a_first_write_needs_verification_and_later_ones_do_not() {
    run(async {
        let log = PartitionLog::open(
            MemoryStorage::new(),
            PathBuf::from("/data/verify-0"),
            LogConfig::default(),
            None,
            0,
        )
        .await
        .expect("open");
        let first = txn_batch(7, 0, "a");
        assert_eq!(log.txn_to_verify(&first), Some(7));
        let plain = BatchBuilder::new(1_000).record(None, Some(b"p")).build();
        assert_eq!(log.txn_to_verify(&plain), None, "not transactional");

        let guard = log.begin_txn_verification(7, 0);
        let appended = log
            .append_verified(first, None, 0, 1_000, guard)
            .await
            .expect("a verified first write");
        assert_eq!(appended.base_offset, 0);
        // Its transaction is open here now: the next write needs no check.
        assert_eq!(log.txn_to_verify(&txn_batch(7, 1, "b")), None);

        log.append_marker(&marker(7, ControlType::Commit), 0, 1_000)
            .await
            .expect("commit marker");
        assert_eq!(
            log.txn_to_verify(&txn_batch(7, 1, "b")),
            Some(7),
            "after the marker, a write opens a new transaction"
        );
    });
}

#[test]
fn a_marker_during_the_verification_refuses_the_write_and_writes_nothing() {
    run(async {
        let log = PartitionLog::open(
            MemoryStorage::new(),
            PathBuf::from("/data/verify-1"),
            LogConfig::default(),
            None,
            0,
        )
        .await
        .expect("open");
        // The producer's transaction has one write here already…
        let guard = log.begin_txn_verification(7, 0);
        log.append_verified(txn_batch(7, 0, "a"), None, 0, 1_000, guard)
            .await
            .expect("first write");
        log.append_marker(&marker(7, ControlType::Abort), 0, 1_000)
            .await
            .expect("abort marker");
        // …then a late write begins its verification, and the next
        // transaction's abort marker lands before the coordinator answers.
        let late = log.begin_txn_verification(7, 0);
        log.append_marker(&marker(7, ControlType::Abort), 0, 1_000)
            .await
            .expect("second marker");
        let end = log.log_end_offset();
        let refused = log
            .append_verified(txn_batch(7, 1, "late"), None, 0, 1_000, late)
            .await
            .expect_err("a marker came since the verification began");
        assert_eq!(refused.error_code(), ErrorCode::InvalidTxnState);
        assert_eq!(log.log_end_offset(), end, "nothing written");
        assert_eq!(log.last_stable_offset(end), end, "no transaction open");

        // A guard of another producer does not verify this one's write.
        let other = log.begin_txn_verification(8, 0);
        let refused = log
            .append_verified(txn_batch(7, 1, "late"), None, 0, 1_000, other)
            .await
            .expect_err("the guard is another producer's");
        assert_eq!(refused.error_code(), ErrorCode::InvalidTxnState);
    });
}

#[test]
fn a_newer_verification_of_the_producer_replaces_the_older() {
    run(async {
        let log = PartitionLog::open(
            MemoryStorage::new(),
            PathBuf::from("/data/verify-2"),
            LogConfig::default(),
            None,
            0,
        )
        .await
        .expect("open");
        let old = log.begin_txn_verification(7, 0);
        let new = log.begin_txn_verification(7, 0);
        let refused = log
            .append_verified(txn_batch(7, 0, "a"), None, 0, 1_000, old)
            .await
            .expect_err("replaced");
        assert_eq!(refused.error_code(), ErrorCode::InvalidTxnState);
        // The older one's end leaves the newer in place.
        log.end_txn_verification(old);
        log.append_verified(txn_batch(7, 0, "a"), None, 0, 1_000, new)
            .await
            .expect("the newer guard holds");
    });
}

/// Transaction version 2: EndTxn bumps the epoch and is answered before
/// its markers are written, so the next transaction's first write (at the
/// bumped epoch) can reach a partition before the last one's marker (at
/// the bumped epoch too).
async fn open_at_epoch_0_then_overtaken(dir: &str) -> PartitionLog<MemoryStorage> {
    let log = PartitionLog::open(
        MemoryStorage::new(),
        PathBuf::from(dir),
        LogConfig::default(),
        None,
        0,
    )
    .await
    .expect("open");
    let guard = log.begin_txn_verification(7, 0);
    log.append_verified(txn_batch_at(7, 0, 0, "old"), None, 0, 1_000, guard)
        .await
        .expect("the older transaction's write");
    assert_eq!(log.txn_to_verify(&txn_batch_at(7, 0, 1, "same")), None);
    assert_eq!(
        log.txn_to_verify(&txn_batch_at(7, 1, 0, "next")),
        Some(7),
        "a write at a newer epoch is not in the open transaction"
    );
    log
}

#[test]
fn the_next_transactions_write_waits_for_the_older_ones_marker() {
    run(async {
        let log = open_at_epoch_0_then_overtaken("/data/verify-3").await;
        let guard = log.begin_txn_verification(7, 1);
        let end = log.log_end_offset();
        let refused = log
            .append_verified(txn_batch_at(7, 1, 0, "next"), None, 0, 1_000, guard)
            .await
            .expect_err("the older transaction is still open");
        assert_eq!(refused.error_code(), ErrorCode::ConcurrentTransactions);
        assert_eq!(log.log_end_offset(), end, "nothing written");
    });
}

#[test]
fn the_older_transactions_marker_leaves_the_next_ones_verification_standing() {
    run(async {
        let log = open_at_epoch_0_then_overtaken("/data/verify-4").await;
        let guard = log.begin_txn_verification(7, 1);
        // The coordinator answers once the older transaction completed:
        // its marker is here by then.
        log.append_marker(&marker_at(7, 1, ControlType::Commit), 0, 1_000)
            .await
            .expect("the older transaction's marker");
        let next = log
            .append_verified(txn_batch_at(7, 1, 0, "next"), None, 0, 1_000, guard)
            .await
            .expect("verified, and the marker ended only the older transaction");
        let end = log.log_end_offset();
        assert_eq!(
            log.last_stable_offset(end),
            next.base_offset,
            "the write opened a transaction of its own, after the marker"
        );
    });
}

#[test]
fn a_second_marker_ends_a_verification_begun_over_an_older_transaction() {
    run(async {
        let log = open_at_epoch_0_then_overtaken("/data/verify-5").await;
        let guard = log.begin_txn_verification(7, 1);
        log.append_marker(&marker_at(7, 1, ControlType::Commit), 0, 1_000)
            .await
            .expect("the older transaction's marker");
        // The verified transaction ends (aborted) before the write lands.
        log.append_marker(&marker_at(7, 2, ControlType::Abort), 0, 1_000)
            .await
            .expect("the verified transaction's marker");
        let end = log.log_end_offset();
        let refused = log
            .append_verified(txn_batch_at(7, 1, 0, "late"), None, 0, 1_000, guard)
            .await
            .expect_err("its transaction ended");
        assert_eq!(refused.error_code(), ErrorCode::InvalidTxnState);
        assert_eq!(log.last_stable_offset(end), end, "no transaction open");
    });
}
