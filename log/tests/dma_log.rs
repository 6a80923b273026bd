//! The partition log on real disk through glommio DMA files.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{batch, batch_bases, records, run};
use sluice_core::config::LogConfig;
use sluice_core::ErrorCode;
use sluice_log::read_ahead::ReadAheadCounts;
use sluice_log::{BatchCache, DmaStorage, LogError, PartitionLog};

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

#[test]
fn appends_read_back_exactly_across_reopen() {
    let dir = common::tempdir();
    let path = dir.path().join("t-0");
    run(async {
        let log = PartitionLog::open(DmaStorage, path.clone(), small_segments(), None, 0)
            .await
            .expect("opens");
        let mut expected = Vec::new();
        for tag in 0..200u64 {
            let info = log
                .append(batch(tag, 3, 100, 1000 + tag as i64), 5, 0)
                .await
                .expect("append");
            assert_eq!(info.base_offset, tag as i64 * 3);
            assert_eq!(info.last_offset, tag as i64 * 3 + 2);
            for i in 0..3 {
                expected.push((info.base_offset + i, format!("{tag}:{i}:")));
            }
        }
        assert_eq!(log.flush().await.expect("flush"), 600);
        assert!(log.segment_count() > 1, "64 KiB segments rolled");
        let got = records(&read_all(&log, 0).await);
        assert_eq!(got.len(), 600);
        for ((o, v), (eo, ev)) in got.iter().zip(&expected) {
            assert_eq!(o, eo);
            assert!(v.starts_with(ev.as_bytes()));
        }
        log.close().await.expect("close");

        let log = PartitionLog::open(DmaStorage, path.clone(), small_segments(), None, 0)
            .await
            .expect("reopens");
        assert_eq!(log.open_report().active.bytes_cut, 0);
        assert_eq!(log.log_end_offset(), 600);
        assert_eq!(records(&read_all(&log, 0).await), got);
        // Reads from the middle start at the batch holding the offset.
        let mid = log.read(301, 1, 600).await.expect("read");
        assert_eq!(batch_bases(&mid), vec![300]);
        let info = log
            .append(batch(999, 1, 10, 5000), 6, 0)
            .await
            .expect("append after reopen");
        assert_eq!(info.base_offset, 600);
        log.close().await.expect("close");
    });
}

async fn read_all(log: &PartitionLog<DmaStorage>, from: i64) -> Vec<bytes::Bytes> {
    let mut out = Vec::new();
    let mut next = from;
    let end = log.log_end_offset();
    while next < end {
        let chunks = log.read(next, 64 * 1024, end).await.expect("read");
        assert!(
            !chunks.is_empty(),
            "read at {next} below end {end} returned nothing"
        );
        let bases = batch_bases(&chunks);
        assert!(bases[0] <= next);
        for c in &chunks {
            for b in sluice_core::batch::BatchIter::new(c.clone()) {
                next = b.expect("valid").next_offset();
            }
        }
        out.extend(chunks);
    }
    out
}

#[test]
fn out_of_range_reads_and_bad_batches_get_kafka_codes() {
    let dir = common::tempdir();
    run(async {
        let log = PartitionLog::open(
            DmaStorage,
            dir.path().join("p"),
            LogConfig::default(),
            None,
            0,
        )
        .await
        .expect("opens");
        log.append(batch(0, 2, 10, 0), 0, 0).await.expect("append");
        let err = log.read(3, 100, 2).await.unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::OffsetOutOfRange);
        assert!(log.read(2, 100, 2).await.expect("at end").is_empty());
        let mut bad = batch(1, 1, 10, 0);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let err = log.append(bad, 0, 0).await.unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::CorruptMessage);
        // Nothing of a rejected append is written: the next offset is unchanged.
        assert_eq!(log.log_end_offset(), 2);
        log.close().await.expect("close");
        assert!(matches!(
            log.append(batch(2, 1, 1, 0), 0, 0).await,
            Err(LogError::Closed)
        ));

        let strict = LogConfig {
            max_message_bytes: 100,
            segment_bytes: 4096,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(DmaStorage, dir.path().join("q"), strict, None, 0)
            .await
            .expect("opens");
        let err = log.append(batch(3, 1, 200, 0), 0, 0).await.unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::MessageTooLarge);
        let mut many = batch(4, 1, 10, 0);
        for tag in 5..80 {
            many.extend_from_slice(&batch(tag, 1, 10, 0));
        }
        let err = log.append(many, 0, 0).await.unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::RecordListTooLarge);
        assert_eq!(log.log_end_offset(), 0);
        log.close().await.expect("close");
    });
}

/// A log in `dir`/p with default configs, reading through `cache`.
async fn open_with_cache(
    dir: &std::path::Path,
    cache: &Rc<RefCell<BatchCache>>,
) -> PartitionLog<DmaStorage> {
    PartitionLog::open(
        DmaStorage,
        dir.join("p"),
        LogConfig::default(),
        Some(cache.clone()),
        0,
    )
    .await
    .expect("opens")
}

#[test]
fn batch_cache_serves_tailing_reads() {
    let dir = common::tempdir();
    run(async {
        let cache = Rc::new(RefCell::new(BatchCache::new(1 << 20)));
        let log = open_with_cache(dir.path(), &cache).await;
        for tag in 0..10 {
            log.append(batch(tag, 1, 100, 0), 0, 0)
                .await
                .expect("append");
        }
        log.flush().await.expect("flush");
        let got = log.read(4, 1 << 20, 10).await.expect("read");
        assert_eq!(batch_bases(&got), (4..10).collect::<Vec<_>>());
        assert_eq!(cache.borrow().hit_counts(), (1, 0));
        log.close().await.expect("close");
    });
}

#[test]
fn read_ahead_serves_a_reader_behind_and_forgets_truncated_bytes() {
    let dir = common::tempdir();
    run(async {
        // No batch cache: every read goes to disk (or to the read-ahead).
        let cache = Rc::new(RefCell::new(BatchCache::new(0)));
        let budget = cache.borrow().read_ahead_budget();
        budget.set_limit(1 << 20);
        let log = open_with_cache(dir.path(), &cache).await;
        let mut expected = Vec::new();
        for tag in 0..300u64 {
            let info = log
                .append(batch(tag, 3, 100, 0), 0, 0)
                .await
                .expect("append");
            for i in 0..3 {
                expected.push((info.base_offset + i, format!("{tag}:{i}:")));
            }
        }
        log.flush().await.expect("flush");
        // A consumer behind, 4 KiB a read: each read finds the one before
        // it started reading its bytes.
        let mut got = Vec::new();
        let mut from = 0;
        while from < 600 {
            let chunk = log.read(from, 4096, 900).await.expect("read");
            let recs = records(&chunk);
            from = recs.last().expect("a read behind returns data").0 + 1;
            got.extend(recs);
        }
        assert_eq!(got.len(), 600);
        for ((o, v), (eo, ev)) in got.iter().zip(&expected) {
            assert_eq!(o, eo);
            assert!(v.starts_with(ev.as_bytes()), "{v:?} at {o}");
        }
        let counts = budget.counts();
        let held = counts.started + counts.kept;
        assert!(held > 10, "read-aheads started or kept: {counts:?}");
        assert_eq!(counts.used, held - 1, "all but the last used: {counts:?}");
        assert!(budget.used_bytes() > 0, "the last one is held");

        // A read from the middle leaves a read-ahead for where it stopped;
        // the log is cut there and written again: the next read returns
        // the new batch, not the bytes read ahead of the cut.
        let first = records(&log.read(300, 4096, 900).await.expect("read"));
        let cut = first.last().expect("data").0 + 1;
        assert!(budget.used_bytes() > 0, "a read-ahead for {cut} is held");
        log.truncate_to(cut, 0).await.expect("truncate");
        assert_eq!(budget.used_bytes(), 0, "truncation drops read-aheads");
        let info = log
            .append(batch(7777, 3, 100, 0), 0, 0)
            .await
            .expect("append");
        assert_eq!(info.base_offset, cut);
        log.flush().await.expect("flush");
        let again = records(&log.read(cut, 4096, cut + 3).await.expect("read"));
        assert_eq!(again.first().map(|(o, _)| *o), Some(cut));
        assert!(again[0].1.starts_with(b"7777:0:"), "{:?}", again[0].1);

        // A reader elsewhere drops what was read ahead for another offset.
        let end = cut + 3;
        let _ = log.read(0, 4096, end).await.expect("read");
        assert!(budget.used_bytes() > 0);
        let _ = log.read(100, 4096, end).await.expect("read");
        let used_before = budget.counts().used;
        let _ = log.read(0, 4096, end).await.expect("read");
        assert_eq!(
            budget.counts().used,
            used_before,
            "no read-ahead for offset 0"
        );
        log.close().await.expect("close");
        assert_eq!(budget.used_bytes(), 0, "closing drops read-aheads");
    });
}

/// Reads a 1 MiB backlog (64 batches of about 16 KiB) 40 KiB at a time,
/// with each read ahead at least `min_read_bytes` when given; checks every
/// batch came back once, in order, and returns the read-ahead counts.
fn read_a_backlog_behind(min_read_bytes: Option<usize>) -> ReadAheadCounts {
    let dir = common::tempdir();
    run(async {
        let cache = Rc::new(RefCell::new(BatchCache::new(0)));
        let budget = cache.borrow().read_ahead_budget();
        budget.set_limit(8 << 20);
        if let Some(bytes) = min_read_bytes {
            budget.set_min_read_bytes(bytes);
        }
        let log = open_with_cache(dir.path(), &cache).await;
        for tag in 0..64u64 {
            log.append(batch(tag, 16, 1000, 0), 0, 0)
                .await
                .expect("append");
        }
        log.flush().await.expect("flush");
        let end = log.log_end_offset();
        let (mut from, mut bases, mut reads) = (0, Vec::new(), 0);
        while from < end {
            let chunk = log.read(from, 40 * 1024, end).await.expect("read");
            let got = batch_bases(&chunk);
            assert!(!got.is_empty(), "a read behind returns data at {from}");
            bases.extend(got);
            from = records(&chunk).last().expect("records").0 + 1;
            reads += 1;
        }
        assert_eq!(bases, (0..64).map(|b| b * 16).collect::<Vec<_>>());
        assert!(reads >= 32, "{reads} reads");
        let counts = budget.counts();
        assert_eq!(counts.used, counts.started + counts.kept, "{counts:?}");
        log.close().await.expect("close");
        assert_eq!(budget.used_bytes(), 0, "closing drops what was kept");
        counts
    })
}

#[test]
fn a_reader_behind_reads_each_byte_from_disk_once() {
    // Its disk reads are 256 KiB each, and what one does not return is
    // kept for the next, so about 4 reads from disk serve 32 Fetches.
    let counts = read_a_backlog_behind(None);
    assert!(
        counts.started <= 5,
        "1 MiB read with at most 6 reads from disk: {counts:?}"
    );
    assert!(counts.kept >= 20, "{counts:?}");
}

#[test]
fn a_read_ahead_reads_at_least_its_configured_size() {
    // shard.read_ahead_read_bytes at 1 MiB: a read ahead takes about the
    // rest of the backlog (ending where a batch starts), so two do it,
    // where the default, 256 KiB, takes more.
    let counts = read_a_backlog_behind(Some(1 << 20));
    let default = read_a_backlog_behind(None);
    assert!(counts.started <= 2, "{counts:?}");
    assert!(counts.started < default.started, "{counts:?} {default:?}");
}

#[test]
fn timestamps_find_first_record_at_or_after() {
    let dir = common::tempdir();
    run(async {
        let config = LogConfig {
            segment_bytes: 16 * 1024,
            ..small_segments()
        };
        let log = PartitionLog::open(DmaStorage, dir.path().join("p"), config.clone(), None, 0)
            .await
            .expect("opens");
        // Batch k holds 4 records stamped 10_000 + 10k + i.
        for k in 0..300i64 {
            let mut b = sluice_core::batch::BatchBuilder::new(10_000 + 10 * k);
            for i in 0..4 {
                b = b.record_at(10_000 + 10 * k + i, None, Some(&[7u8; 64]), &[]);
            }
            log.append(bytes::BytesMut::from(&b.build()[..]), 0, 0)
                .await
                .expect("append");
        }
        log.flush().await.expect("flush");
        assert!(log.segment_count() > 2);
        assert_eq!(
            log.offset_for_timestamp(0).await.expect("lookup"),
            Some((0, 10_000))
        );
        assert_eq!(
            log.offset_for_timestamp(10_002).await.expect("lookup"),
            Some((2, 10_002))
        );
        assert_eq!(
            log.offset_for_timestamp(10_005).await.expect("lookup"),
            Some((4, 10_010))
        );
        assert_eq!(
            log.offset_for_timestamp(12_503).await.expect("lookup"),
            Some((1003, 12_503))
        );
        assert_eq!(
            log.offset_for_timestamp(10_000 + 2990 + 3)
                .await
                .expect("lookup"),
            Some((1199, 12_993))
        );
        assert_eq!(
            log.offset_for_timestamp(13_000).await.expect("lookup"),
            None
        );
        log.close().await.expect("close");
        // Sealed segments' time indexes load lazily after reopen.
        let log = PartitionLog::open(DmaStorage, dir.path().join("p"), config, None, 0)
            .await
            .expect("reopens");
        assert_eq!(
            log.offset_for_timestamp(12_503).await.expect("lookup"),
            Some((1003, 12_503))
        );
        log.close().await.expect("close");
    });
}

#[test]
fn retention_truncation_and_log_start_offset() {
    let dir = common::tempdir();
    let path = dir.path().join("p");
    run(async {
        let config = LogConfig {
            retention_bytes: 100 * 1024,
            ..small_segments()
        };
        let log = PartitionLog::open(DmaStorage, path.clone(), config.clone(), None, 0)
            .await
            .expect("opens");
        for tag in 0..1000u64 {
            log.append(batch(tag, 1, 400, tag as i64), 0, 0)
                .await
                .expect("append");
        }
        log.flush().await.expect("flush");
        let before = log.segment_count();
        let outcome = log.apply_retention(0).await.expect("retention");
        assert!(outcome.segments_deleted > 0);
        assert_eq!(log.segment_count(), before - outcome.segments_deleted);
        assert!(
            log.size_bytes() >= 100 * 1024 - 64 * 1024
                && log.size_bytes() <= 100 * 1024 + 64 * 1024
        );
        let start = log.log_start_offset();
        assert_eq!(start, log.segment_bases()[0]);
        assert_eq!(
            log.read(start - 1, 10, 1000)
                .await
                .unwrap_err()
                .error_code(),
            ErrorCode::OffsetOutOfRange
        );
        assert_eq!(
            batch_bases(&log.read(start, 1, 1000).await.expect("read")),
            vec![start]
        );

        // DeleteRecords-style move of the start, kept across reopen.
        assert_eq!(
            log.set_log_start_offset(start + 5).await.expect("move"),
            start + 5
        );
        // Truncation cuts at batch boundaries and keeps earlier data.
        assert_eq!(log.truncate_to(990, 0).await.expect("truncate"), 990);
        assert_eq!(log.log_end_offset(), 990);
        let info = log
            .append(batch(5000, 2, 10, 0), 1, 0)
            .await
            .expect("append after truncate");
        assert_eq!(info.base_offset, 990);
        log.flush().await.expect("flush");
        log.close().await.expect("close");

        let log = PartitionLog::open(DmaStorage, path.clone(), config, None, 0)
            .await
            .expect("reopens");
        assert_eq!(log.log_start_offset(), start + 5);
        assert_eq!(log.log_end_offset(), 992);
        let tail = records(&log.read(989, 1 << 20, 992).await.expect("read"));
        assert_eq!(
            tail.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![989, 990, 991]
        );
        assert!(tail[1].1.starts_with(b"5000:0:"));
        log.close().await.expect("close");
    });
}

#[test]
fn time_retention_deletes_old_segments_only() {
    let dir = common::tempdir();
    run(async {
        let config = LogConfig {
            retention_ms: 1000,
            ..small_segments()
        };
        let log = PartitionLog::open(DmaStorage, dir.path().join("p"), config, None, 0)
            .await
            .expect("opens");
        for tag in 0..400u64 {
            // The first 200 batches are old (t=0), the rest new (t=10_000).
            let ts = if tag < 200 { 0 } else { 10_000 };
            log.append(batch(tag, 1, 400, ts), 0, 0)
                .await
                .expect("append");
        }
        let outcome = log.apply_retention(10_500).await.expect("retention");
        assert!(outcome.segments_deleted >= 1);
        assert!(
            log.log_start_offset() <= 200,
            "no new batch deleted: start {}",
            log.log_start_offset()
        );
        let again = log.apply_retention(10_500).await.expect("retention");
        assert_eq!(again.segments_deleted, 0);
        log.close().await.expect("close");
    });
}

#[test]
fn group_commit_shares_fdatasyncs_among_concurrent_flushes() {
    let dir = common::tempdir();
    run(async {
        let log = Rc::new(
            PartitionLog::open(
                DmaStorage,
                dir.path().join("p"),
                LogConfig::default(),
                None,
                0,
            )
            .await
            .expect("opens"),
        );
        let writers = 64u64;
        let tasks: Vec<_> = (0..writers)
            .map(|tag| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    let info = log
                        .append(batch(tag, 1, 100, 0), 0, 0)
                        .await
                        .expect("append");
                    let durable = log.flush().await.expect("flush");
                    (info.last_offset, durable)
                })
            })
            .collect();
        for task in tasks {
            let (last, durable) = task.await;
            assert!(
                durable > last,
                "flush returned {durable} before its append {last} was durable"
            );
        }
        let stats = log.stats();
        assert_eq!(stats.appends, writers);
        assert_eq!(stats.flushes, writers);
        assert!(stats.flush_syncs >= 1);
        assert!(
            stats.flush_syncs * 4 <= writers,
            "64 overlapping flushes took {} fdatasyncs; group commit should share them",
            stats.flush_syncs
        );
        assert_eq!(log.durable_offset(), writers as i64);
        log.close().await.expect("close");
    });
}

/// Recovery reads the active segment in 256 KiB chunks. A chunk that ended
/// one to six bytes into a batch header (whose first bytes, the high bytes
/// of a small base offset, are zero) was taken for the zero padding after
/// the last batch, and everything after it was cut: acknowledged,
/// fdatasync'd records lost at the next start (the soak test found it).
#[test]
fn recovery_keeps_batches_whose_header_straddles_a_read_chunk() {
    const CHUNK: usize = 256 * 1024;
    for into_header in 1..=6usize {
        let dir = common::tempdir();
        let path = dir.path().join("t-0");
        // No index entries past the start: recovery scans from byte 0.
        let config = LogConfig {
            index_interval_bytes: u32::MAX,
            ..LogConfig::default()
        };
        run(async {
            let log = PartitionLog::open(DmaStorage, path.clone(), config.clone(), None, 0)
                .await
                .expect("opens");
            let (mut position, mut tag) = (0usize, 0u64);
            // Fill up to a little before the chunk boundary with 1000-byte
            // records, then one batch sized so the next starts exactly
            // `into_header` bytes before the boundary.
            let target = CHUNK - into_header;
            while target - position > 4000 {
                let info = log
                    .append(batch(tag, 1, 1000, 0), 0, 0)
                    .await
                    .expect("append");
                position += info.size_bytes;
                tag += 1;
            }
            let gap = target - position;
            let filler = (0..4000)
                .map(|v| batch(tag, 1, v, 0))
                .find(|b| b.len() == gap)
                .expect("a batch of exactly the gap's size");
            position += log.append(filler, 0, 0).await.expect("append").size_bytes;
            tag += 1;
            assert_eq!(position, target);
            for _ in 0..50 {
                log.append(batch(tag, 1, 1000, 0), 0, 0)
                    .await
                    .expect("append");
                tag += 1;
            }
            let end = log.flush().await.expect("flush");
            assert_eq!(end, tag as i64);
            // No clean close: the next open recovers, as after a SIGKILL.
            drop(log);
            let log = PartitionLog::open(DmaStorage, path.clone(), config.clone(), None, 0)
                .await
                .expect("reopens");
            assert_eq!(
                (log.open_report().active.bytes_cut, log.log_end_offset()),
                (0, tag as i64),
                "a header {into_header} bytes into a read chunk"
            );
            log.close().await.expect("close");
        });
    }
}
