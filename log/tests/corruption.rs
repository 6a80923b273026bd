//! Recovery from damaged files, on real disk.
//!
//! Each test builds one pristine log (several segments, the log start moved
//! off the first offset) and keeps two images of it: `crashed`, copied while
//! the log was open right after a flush (what SIGKILL leaves: the active
//! segment's indexes not yet written), and `clean`, copied after a clean
//! close. Every iteration damages one file of a fresh copy of an image, with
//! the position, mask or length drawn from a seeded RNG, reopens it and
//! checks what the log serves against what was written.
//!
//! Not covered, by design: damage inside a sealed segment, or inside the
//! active segment before its last index entry. Recovery trusts synced data
//! and only scans the active segment's tail from its last good index entry,
//! so such damage is not seen at open. Two more limits are asserted as they
//! are: a flip in a batch's partition leader epoch goes unseen (Kafka's
//! format leaves that field outside the CRC), and a damaged `.timeindex` may
//! make a lookup by time answer a later offset than the right one (index
//! files carry no checksum, and a timestamp cannot be checked without
//! reading the batches it covers).

mod common;

use std::path::{Path, PathBuf};

use common::{batch_at, check_log_content, run, SplitMix64};
use sluice_core::batch::{BatchHeader, BatchIter, HEADER_BYTES};
use sluice_core::config::LogConfig;
use sluice_log::checkpoint::{self, PartitionCheckpoint};
use sluice_log::partition::CHECKPOINT_FILE;
use sluice_log::segment::SegmentPaths;
use sluice_log::{DmaStorage, LogError, PartitionLog};

/// Iterations of each damage test; each opens a fresh copy of an image.
const ITERATIONS: usize = 60;
/// Segments the pristine log has (the last one active).
const SEGMENTS: usize = 5;
/// Batches the pristine log's active segment holds at least.
const ACTIVE_BATCHES_MIN: usize = 12;
/// Where the pristine log's log start is (moved by DeleteRecords).
const LOG_START: i64 = 3;
/// Bytes 12..16 of a batch hold its partition leader epoch, which Kafka's
/// batch format leaves outside the CRC (the broker stamps it in place).
const LEADER_EPOCH_BYTES: std::ops::Range<u64> = 12..16;

fn corruption_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

/// One batch of the pristine active segment, as it lies in the `.log` file.
#[derive(Debug, Clone, Copy)]
struct Span {
    position: u64,
    size_bytes: u64,
    base_offset: i64,
    next_offset: i64,
}

/// A pristine log and what is known about its active segment.
struct Pristine {
    root: tempfile::TempDir,
    crashed: PathBuf,
    clean: PathBuf,
    log_end: i64,
    active_base: i64,
    /// The active segment's batches, in order.
    spans: Vec<Span>,
    /// Where the active segment's data ends (the file is zero-padded to a page).
    data_end: u64,
}

impl Pristine {
    fn build(seed: u64) -> Pristine {
        let root = common::tempdir();
        let live = root.path().join("live");
        let crashed = root.path().join("crashed");
        let clean = root.path().join("clean");
        let mut rng = SplitMix64::new(seed);
        let log_end = run(async {
            let log = PartitionLog::open(DmaStorage, live.clone(), corruption_config(), None, 0)
                .await
                .expect("opens");
            let mut in_active = 0usize;
            while log.segment_count() < SEGMENTS || in_active < ACTIVE_BATCHES_MIN {
                let segments = log.segment_count();
                let base = log.log_end_offset();
                let records = 1 + rng.below(4) as usize;
                log.append(batch_at(base, records), 0, 0)
                    .await
                    .expect("append");
                in_active = if log.segment_count() > segments {
                    1
                } else {
                    in_active + 1
                };
                assert!(log.segment_count() <= SEGMENTS, "active segment too small");
            }
            log.set_log_start_offset(LOG_START)
                .await
                .expect("DeleteRecords");
            log.flush().await.expect("flush");
            copy_dir(&live, &crashed);
            log.close().await.expect("close");
            copy_dir(&live, &clean);
            log.log_end_offset()
        });
        let active_base = segment_bases(&clean).into_iter().max().expect("segments");
        let bytes = std::fs::read(SegmentPaths::new(&clean, active_base).log).expect("read .log");
        let mut spans = Vec::new();
        let mut position = 0usize;
        while let Ok(header) = BatchHeader::peek(&bytes[position..]) {
            spans.push(Span {
                position: position as u64,
                size_bytes: header.size_bytes as u64,
                base_offset: header.base_offset,
                next_offset: header.last_offset() + 1,
            });
            position += header.size_bytes;
        }
        assert!(spans.len() >= ACTIVE_BATCHES_MIN);
        assert_eq!(spans[0].base_offset, active_base);
        assert_eq!(spans.last().expect("spans").next_offset, log_end);
        assert!(
            bytes[position..].iter().all(|b| *b == 0),
            "zero padding after the batches"
        );
        for image in [&crashed, &clean] {
            let image_bytes =
                std::fs::read(SegmentPaths::new(image, active_base).log).expect("read .log");
            // The crashed image's file may run on past the data, into space
            // preallocated ahead of the writes.
            assert!(image_bytes.len() >= bytes.len());
            let (data, ahead) = image_bytes.split_at(bytes.len());
            assert_eq!(data, bytes, "both images hold the same active data");
            assert!(ahead.iter().all(|b| *b == 0), "zeros after the data");
        }
        let pristine = Pristine {
            root,
            crashed,
            clean,
            log_end,
            active_base,
            spans,
            data_end: position as u64,
        };
        assert!(
            pristine.index_entries(&pristine.crashed).is_empty()
                && pristine.index_entries(&pristine.clean).len() >= 4,
            "the crashed image's active index is not written yet, the clean one's is"
        );
        pristine
    }

    fn active_paths(&self, dir: &Path) -> SegmentPaths {
        SegmentPaths::new(dir, self.active_base)
    }

    /// The active segment's offset index entries in `image`, as
    /// `(relative offset, position)`: the valid prefix, decoded as the log
    /// does (empty in `crashed`, whose index pages were not written yet).
    fn index_entries(&self, image: &Path) -> Vec<(u32, u32)> {
        // A segment's index file is created with its first page.
        let index = match std::fs::read(self.active_paths(image).index) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            read => read.expect("read .index"),
        };
        let mut entries: Vec<(u32, u32)> = Vec::new();
        for entry in index.chunks_exact(8) {
            let relative_offset = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let position = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]);
            let follows = entries
                .last()
                .is_none_or(|&(r, p)| relative_offset > r && position > p);
            if (relative_offset, position) == (0, 0) || !follows {
                break;
            }
            entries.push((relative_offset, position));
        }
        entries
    }

    /// Where recovery of `image` starts scanning: its active segment's last
    /// offset index entry (0 when the index is empty).
    fn scan_start(&self, image: &Path) -> u64 {
        self.index_entries(image)
            .last()
            .map_or(0, |&(_, position)| position as u64)
    }

    /// A fresh copy of `image` to damage.
    fn copy(&self, image: &Path, name: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        copy_dir(image, &dir);
        dir
    }

    /// The batch of the active segment holding `offset`, if any.
    fn span_holding(&self, offset: i64) -> Option<Span> {
        self.spans
            .iter()
            .copied()
            .find(|s| s.base_offset <= offset && offset < s.next_offset)
    }

    /// The batch of the active segment holding byte `position`, if any.
    fn span_at(&self, position: u64) -> Option<Span> {
        self.spans
            .iter()
            .copied()
            .find(|s| s.position <= position && position < s.position + s.size_bytes)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy dir");
    for entry in std::fs::read_dir(from).expect("list image") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy file");
    }
}

fn segment_bases(dir: &Path) -> Vec<i64> {
    std::fs::read_dir(dir)
        .expect("list dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            sluice_log::segment::parse_segment_name(&name, "log")
        })
        .collect()
}

fn flip(path: &Path, position: u64, mask: u8) {
    let mut bytes = std::fs::read(path).expect("read file to damage");
    bytes[position as usize] ^= mask;
    std::fs::write(path, bytes).expect("write damaged file");
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open file to truncate")
        .set_len(len)
        .expect("truncate");
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("file exists").len()
}

/// Opens a damaged copy. Opening must succeed: every damage these tests do
/// is one recovery promises to repair (a `LogError` would fail the test with
/// its message; a panic fails it anyway).
async fn reopen(dir: &Path, ctx: &str) -> PartitionLog<DmaStorage> {
    PartitionLog::open(DmaStorage, dir.to_owned(), corruption_config(), None, 0)
        .await
        .unwrap_or_else(|e: LogError| panic!("{ctx}: open refused a repairable log: {e}"))
}

/// Reads from a random offset inside each batch of the active segment the
/// log still holds, one batch at a time, as a consumer fetching from there
/// would: each read must start with the batch holding that offset. Unlike a
/// sequential pass, these reads go through the offset index.
async fn check_point_reads(
    log: &PartitionLog<DmaStorage>,
    pristine: &Pristine,
    rng: &mut SplitMix64,
    ctx: &str,
) {
    let end = log.log_end_offset();
    for span in pristine.spans.iter().filter(|s| s.next_offset <= end) {
        let offset =
            span.base_offset + rng.below((span.next_offset - span.base_offset) as u64) as i64;
        let chunks = log
            .read(offset, 1, end)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: read at {offset}: {e}"));
        let first = chunks
            .first()
            .and_then(|c| BatchIter::new(c.clone()).next())
            .unwrap_or_else(|| panic!("{ctx}: read at {offset} served nothing"))
            .unwrap_or_else(|e| panic!("{ctx}: read at {offset} served a bad batch: {e}"));
        assert_eq!(
            (first.base_offset(), first.next_offset()),
            (span.base_offset, span.next_offset),
            "{ctx}: read at {offset} starts with another batch"
        );
    }
}

/// Checks everything the reopened log serves, appends one batch where it
/// ends, closes, reopens and checks again: a repaired log is a normal log.
async fn check_serves_and_extends(
    log: PartitionLog<DmaStorage>,
    dir: &Path,
    ctx: &str,
) -> PartitionLog<DmaStorage> {
    check_log_content(&log)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: after reopening: {e}"));
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let info = log
        .append(batch_at(end, 2), 0, 0)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: append after recovery: {e}"));
    assert_eq!(info.base_offset, end, "{ctx}");
    log.close()
        .await
        .unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
    let log = reopen(dir, ctx).await;
    let report = log.open_report();
    assert_eq!(report.active.bytes_cut, 0, "{ctx}: second open {report:?}");
    assert!(!report.checkpoint_rebuilt, "{ctx}: second open {report:?}");
    assert_eq!(log.log_start_offset(), start, "{ctx}");
    assert_eq!(log.log_end_offset(), end + 2, "{ctx}");
    check_log_content(&log)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: after the second open: {e}"));
    log
}

#[test]
fn flipped_byte_in_active_segment_cuts_that_batch_and_all_after() {
    let seed = 0xf11b_0001;
    let pristine = Pristine::build(seed);
    let mut rng = SplitMix64::new(seed ^ 1);
    run(async {
        let mut epoch_flips = 0;
        for i in 0..ITERATIONS {
            let image = if i % 2 == 0 {
                &pristine.crashed
            } else {
                &pristine.clean
            };
            // The crashed image runs on into preallocated zeros.
            let file_len = file_len(&pristine.active_paths(image).log);
            let scan_start = pristine.scan_start(image);
            let position = match rng.below(3) {
                // A header byte of a batch recovery scans.
                0 => {
                    let scanned: Vec<_> = pristine
                        .spans
                        .iter()
                        .filter(|s| s.position >= scan_start)
                        .collect();
                    let span = scanned[rng.below(scanned.len() as u64) as usize];
                    span.position + rng.below(HEADER_BYTES as u64)
                }
                // Anywhere in the scanned data.
                1 => scan_start + rng.below(pristine.data_end - scan_start),
                // Anywhere recovery scans, zero padding included.
                _ => scan_start + rng.below(file_len - scan_start),
            };
            let mask = 1 + rng.below(255) as u8;
            let ctx = format!(
                "seed {seed:#x} iteration {i} ({}): .log byte {position} ^= {mask:#04x}",
                if i % 2 == 0 { "crashed" } else { "clean" }
            );
            let dir = pristine.copy(image, &format!("flip-{i}"));
            flip(&pristine.active_paths(&dir).log, position, mask);

            let log = reopen(&dir, &ctx).await;
            let report = log.open_report().clone();
            match pristine.span_at(position) {
                Some(span) if LEADER_EPOCH_BYTES.contains(&(position - span.position)) => {
                    // Outside the CRC by Kafka's design: the batch is valid
                    // with another leader epoch. Nothing is lost.
                    epoch_flips += 1;
                    assert_eq!(log.log_end_offset(), pristine.log_end, "{ctx}");
                    assert_eq!(report.active.bytes_cut, 0, "{ctx}: {report:?}");
                }
                Some(span) => {
                    assert_eq!(
                        log.log_end_offset(),
                        span.base_offset,
                        "{ctx}: the damaged batch {}..{} and all after are cut ({report:?})",
                        span.base_offset,
                        span.next_offset
                    );
                    assert_eq!(
                        report.active.bytes_cut,
                        file_len - span.position,
                        "{ctx}: {report:?}"
                    );
                    assert!(report.active.cut_reason.is_some(), "{ctx}");
                }
                None => {
                    // Zero padding after the last batch: no batch is lost,
                    // but the non-zero byte is reported and cut.
                    assert_eq!(log.log_end_offset(), pristine.log_end, "{ctx}");
                    assert_eq!(
                        report.active.bytes_cut,
                        file_len - pristine.data_end,
                        "{ctx}: {report:?}"
                    );
                }
            }
            assert!(!report.checkpoint_rebuilt, "{ctx}");
            assert_eq!(log.log_start_offset(), LOG_START, "{ctx}");
            check_point_reads(&log, &pristine, &mut rng, &ctx).await;
            let log = check_serves_and_extends(log, &dir, &ctx).await;
            log.close().await.expect("close");
            std::fs::remove_dir_all(&dir).expect("remove copy");
        }
        println!("{epoch_flips} of {ITERATIONS} flips hit a leader epoch (outside the CRC)");
    });
}

#[test]
fn truncated_active_segment_keeps_exactly_the_whole_batches_before_the_cut() {
    let seed = 0x7a11_0002;
    let pristine = Pristine::build(seed);
    let mut rng = SplitMix64::new(seed ^ 1);
    let pristine_bytes =
        std::fs::read(pristine.active_paths(&pristine.clean).log).expect("read .log");
    let file_len = pristine_bytes.len() as u64;
    run(async {
        for i in 0..ITERATIONS {
            let image = if i % 2 == 0 {
                &pristine.crashed
            } else {
                &pristine.clean
            };
            let len = match rng.below(4) {
                0 => rng.below(file_len + 1),
                // At or just around a batch boundary.
                1 => {
                    let span = pristine.spans[rng.below(pristine.spans.len() as u64) as usize];
                    (span.position + rng.below(3)).saturating_sub(1)
                }
                // Inside a batch header.
                2 => {
                    let span = pristine.spans[rng.below(pristine.spans.len() as u64) as usize];
                    span.position + rng.below(HEADER_BYTES as u64)
                }
                // Into the zero padding.
                _ => pristine.data_end + rng.below(file_len - pristine.data_end + 1),
            };
            let ctx = format!(
                "seed {seed:#x} iteration {i} ({}): .log truncated to {len} of {file_len}",
                if i % 2 == 0 { "crashed" } else { "clean" }
            );
            let dir = pristine.copy(image, &format!("truncate-{i}"));
            truncate(&pristine.active_paths(&dir).log, len);

            // The whole batches before the cut stay; the torn one goes.
            let (kept_end, expected_end) = pristine
                .spans
                .iter()
                .rev()
                .find(|s| s.position + s.size_bytes <= len)
                .map_or((0, pristine.active_base), |s| {
                    (s.position + s.size_bytes, s.next_offset)
                });
            let remnant = &pristine_bytes[kept_end as usize..len as usize];
            // A remnant of zeros (padding, or the high bytes of a base
            // offset) is not counted as cut data.
            let expected_cut = if remnant.iter().any(|b| *b != 0) {
                remnant.len() as u64
            } else {
                0
            };

            let log = reopen(&dir, &ctx).await;
            let report = log.open_report().clone();
            assert_eq!(log.log_end_offset(), expected_end, "{ctx}: {report:?}");
            assert_eq!(report.active.bytes_cut, expected_cut, "{ctx}: {report:?}");
            assert_eq!(log.log_start_offset(), LOG_START, "{ctx}");
            check_point_reads(&log, &pristine, &mut rng, &ctx).await;
            let log = check_serves_and_extends(log, &dir, &ctx).await;
            log.close().await.expect("close");
            std::fs::remove_dir_all(&dir).expect("remove copy");
        }
    });
}

#[test]
fn damaged_active_indexes_are_rebuilt_without_losing_data() {
    let seed = 0x1de_0003;
    let pristine = Pristine::build(seed);
    let mut rng = SplitMix64::new(seed ^ 1);
    // Only the clean image has index entries for the active segment on disk.
    let image = &pristine.clean;
    let paths = pristine.active_paths(image);
    let index_len = file_len(&paths.index);
    let time_index_len = file_len(&paths.time_index);
    assert!(
        index_len > 0 && time_index_len > 0,
        "indexes written at close"
    );
    let entries_bytes = |path: &Path, entry_bytes: usize| {
        let bytes = std::fs::read(path).expect("read index");
        bytes
            .chunks_exact(entry_bytes)
            .take_while(|e| e.iter().any(|b| *b != 0))
            .count()
            * entry_bytes
    };
    let index_entries_bytes = entries_bytes(&paths.index, 8) as u64;
    let time_entries_bytes = entries_bytes(&paths.time_index, 12) as u64;
    let index_entries = pristine.index_entries(image);
    assert_eq!(index_entries.len() as u64 * 8, index_entries_bytes);
    assert!(index_entries.len() >= 4, "several index entries");
    run(async {
        for i in 0..ITERATIONS {
            let time = rng.below(2) == 0;
            let (len, entries) = if time {
                (time_index_len, time_entries_bytes)
            } else {
                (index_len, index_entries_bytes)
            };
            let dir = pristine.copy(image, &format!("index-{i}"));
            let dir_paths = pristine.active_paths(&dir);
            let path = if time {
                &dir_paths.time_index
            } else {
                &dir_paths.index
            };
            // The relative offset the offset index entry a flip damaged now
            // names, if the flip hit one.
            let mut damaged_entry = None;
            // Entry size, and where the low bytes of an entry's two fields are.
            let (entry_bytes, low_bytes) = if time { (12, [7, 11]) } else { (8, [3, 7]) };
            let damage = if rng.below(4) < 3 {
                let (position, mask) = match rng.below(3) {
                    // A small change to the low byte of a field: the entry
                    // most likely still decodes in order, so only a check
                    // against the log itself can catch it.
                    0 => {
                        let entry = rng.below(entries / entry_bytes);
                        let low_byte = low_bytes[rng.below(2) as usize];
                        (entry * entry_bytes + low_byte, 1u8 << rng.below(4))
                    }
                    1 => (rng.below(entries + 16), 1 + rng.below(255) as u8),
                    _ => (rng.below(len), 1 + rng.below(255) as u8),
                };
                flip(path, position, mask);
                if !time && position < entries {
                    let bytes = std::fs::read(path).expect("read damaged index");
                    let at = (position / 8 * 8) as usize;
                    let relative_offset = u32::from_be_bytes([
                        bytes[at],
                        bytes[at + 1],
                        bytes[at + 2],
                        bytes[at + 3],
                    ]);
                    damaged_entry = Some(relative_offset as i64);
                }
                format!("byte {position} ^= {mask:#04x}")
            } else {
                let to = rng.below(len + 1);
                truncate(path, to);
                format!("truncated to {to}")
            };
            let ctx = format!(
                "seed {seed:#x} iteration {i}: {} {damage}",
                if time { ".timeindex" } else { ".index" }
            );

            let log = reopen(&dir, &ctx).await;
            let report = log.open_report().clone();
            assert_eq!(log.log_end_offset(), pristine.log_end, "{ctx}: {report:?}");
            assert_eq!(report.active.bytes_cut, 0, "{ctx}: {report:?}");
            assert!(!report.checkpoint_rebuilt, "{ctx}");
            assert_eq!(log.log_start_offset(), LOG_START, "{ctx}");
            // Every record is stamped with its offset, so ListOffsets by
            // time must answer each timestamp with that very offset. Not
            // when the time index is damaged: it has no checksum and its
            // timestamps cannot be checked without reading the batches they
            // cover, so a damaged entry may start the search late. The answer
            // is then a later record, never an earlier or a missing one.
            let active_offsets = (pristine.log_end - pristine.active_base) as u64;
            for _ in 0..8 {
                let t = pristine.active_base + rng.below(active_offsets) as i64;
                let found = log
                    .offset_for_timestamp(t)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: offset for timestamp {t}: {e}"));
                match found {
                    Some((offset, timestamp)) if time => assert!(
                        offset >= t && timestamp == offset,
                        "{ctx}: offset for timestamp {t}: {found:?}"
                    ),
                    _ => assert_eq!(found, Some((t, t)), "{ctx}: offset for timestamp {t}"),
                }
            }
            check_point_reads(&log, &pristine, &mut rng, &ctx).await;
            // Truncation (replication) finds batches through the index too:
            // it must remove exactly the batch holding the offset and all
            // after. Aim at the damaged entry, if there is one.
            let aimed = damaged_entry
                .map(|r| pristine.active_base + r + rng.below(2) as i64)
                .and_then(|offset| Some((offset, pristine.span_holding(offset)?)));
            let target = match aimed {
                Some(aimed) => Some(aimed),
                None if rng.below(2) == 0 => {
                    let span = pristine.spans[rng.below(pristine.spans.len() as u64) as usize];
                    let offset = span.base_offset
                        + rng.below((span.next_offset - span.base_offset) as u64) as i64;
                    Some((offset, span))
                }
                None => None,
            };
            if let Some((offset, span)) = target {
                let end = log
                    .truncate_to(offset, 0)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: truncate to {offset}: {e}"));
                assert_eq!(end, span.base_offset, "{ctx}: truncate to {offset}");
            }
            let log = check_serves_and_extends(log, &dir, &ctx).await;
            log.close().await.expect("close");
            std::fs::remove_dir_all(&dir).expect("remove copy");
        }
    });
}

#[test]
fn damaged_checkpoint_is_rebuilt_without_losing_data() {
    let seed = 0xc4ec_0004;
    let pristine = Pristine::build(seed);
    let mut rng = SplitMix64::new(seed ^ 1);
    let frame_bytes = checkpoint::encode(&PartitionCheckpoint {
        log_start_offset: LOG_START,
    })
    .len() as u64;
    let checkpoint_len = file_len(&pristine.clean.join(CHECKPOINT_FILE));
    run(async {
        for i in 0..ITERATIONS {
            let image = if i % 2 == 0 {
                &pristine.crashed
            } else {
                &pristine.clean
            };
            let dir = pristine.copy(image, &format!("checkpoint-{i}"));
            let path = dir.join(CHECKPOINT_FILE);
            let (damage, frame_damaged) = match rng.below(3) {
                0 => {
                    let position = rng.below(frame_bytes);
                    let mask = 1 + rng.below(255) as u8;
                    flip(&path, position, mask);
                    (format!("byte {position} ^= {mask:#04x}"), true)
                }
                1 => {
                    // Anywhere: past the frame is zero padding nobody reads.
                    let position = rng.below(checkpoint_len);
                    let mask = 1 + rng.below(255) as u8;
                    flip(&path, position, mask);
                    (
                        format!("byte {position} ^= {mask:#04x}"),
                        position < frame_bytes,
                    )
                }
                _ => {
                    let to = rng.below(checkpoint_len);
                    truncate(&path, to);
                    (format!("truncated to {to}"), to < frame_bytes)
                }
            };
            let ctx = format!(
                "seed {seed:#x} iteration {i} ({}): checkpoint {damage}",
                if i % 2 == 0 { "crashed" } else { "clean" }
            );

            let log = reopen(&dir, &ctx).await;
            let report = log.open_report().clone();
            assert_eq!(log.log_end_offset(), pristine.log_end, "{ctx}: {report:?}");
            assert_eq!(report.active.bytes_cut, 0, "{ctx}: {report:?}");
            assert_eq!(
                report.checkpoint_rebuilt, frame_damaged,
                "{ctx}: {report:?}"
            );
            // A lost checkpoint falls back to the first segment's base: the
            // log may serve more than before (records below the old log
            // start), never less.
            let start = if frame_damaged { 0 } else { LOG_START };
            assert_eq!(log.log_start_offset(), start, "{ctx}");
            check_point_reads(&log, &pristine, &mut rng, &ctx).await;
            let log = check_serves_and_extends(log, &dir, &ctx).await;
            log.close().await.expect("close");
            std::fs::remove_dir_all(&dir).expect("remove copy");
        }
    });
}
