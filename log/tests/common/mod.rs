//! Helpers shared by the log's integration tests.
#![allow(dead_code)]

use std::future::Future;

use bytes::{Bytes, BytesMut};
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::records::RecordIter;

/// Runs `f` to completion on a fresh glommio executor on this thread,
/// kept awake as `sluice_log::wake` explains.
pub fn run<T>(f: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("glommio executor starts (io_uring available)")
        .run(async move {
            sluice_log::wake::keep_awake(sluice_log::wake::DEFAULT_WAKE_PERIOD);
            f.await
        })
}

/// One batch of `records` records whose values say which batch and record
/// they are, `value_bytes` long, stamped `timestamp`.
pub fn batch(tag: u64, records: usize, value_bytes: usize, timestamp: i64) -> BytesMut {
    let mut b = BatchBuilder::new(timestamp);
    for i in 0..records {
        let mut value = format!("{tag}:{i}:").into_bytes();
        value.resize(value_bytes.max(value.len()), b'x');
        b = b.record(None, Some(&value));
    }
    BytesMut::from(&b.build()[..])
}

/// (offset, value) of every record in `chunks`.
pub fn records(chunks: &[Bytes]) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    for chunk in chunks {
        for batch in BatchIter::new(chunk.clone()) {
            let batch = batch.expect("log returns valid batches");
            for r in RecordIter::new(&batch).expect("uncompressed") {
                let r = r.expect("valid record");
                out.push((r.offset, r.value.expect("value")));
            }
        }
    }
    out
}

/// Base offsets of the batches in `chunks`.
pub fn batch_bases(chunks: &[Bytes]) -> Vec<i64> {
    chunks
        .iter()
        .flat_map(|c| BatchIter::new(c.clone()).map(|b| b.expect("valid").base_offset()))
        .collect()
}

/// A temporary directory on a filesystem that supports O_DIRECT (the
/// target directory; /tmp is often tmpfs, which does not).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir under the target dir")
}

/// A tiny seeded RNG (splitmix64) so fault-injection runs replay exactly.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range");
        self.next_u64() % n
    }
}

/// Shortest and longest value [`value_at`] makes.
pub const VALUE_BYTES_MIN: usize = 10;
pub const VALUE_BYTES_MAX: usize = 3000;

/// The value of the record at `offset`, for tests whose content is a pure
/// function of the offset: `VALUE_BYTES_MIN..=VALUE_BYTES_MAX` bytes, the
/// offset (big-endian) first, then pseudo-random bytes seeded by the offset.
/// A reader can therefore check every record it gets back exactly.
pub fn value_at(offset: i64) -> Vec<u8> {
    let mut rng = SplitMix64::new(offset as u64 ^ 0x5eed_5eed_5eed_5eed);
    let span = (VALUE_BYTES_MAX - VALUE_BYTES_MIN + 1) as u64;
    let len = VALUE_BYTES_MIN + rng.below(span) as usize;
    let mut value = Vec::with_capacity(len + 8);
    value.extend_from_slice(&offset.to_be_bytes());
    while value.len() < len {
        value.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    value.truncate(len);
    value
}

/// One batch of `records` records meant to land at offsets `base..`: record
/// `i` holds `value_at(base + i)` and is stamped `base + i` (ms).
pub fn batch_at(base: i64, records: usize) -> BytesMut {
    let mut b = BatchBuilder::new(base);
    for i in 0..records as i64 {
        b = b.record_at(base + i, None, Some(&value_at(base + i)), &[]);
    }
    BytesMut::from(&b.build()[..])
}

/// What [`check_log_content`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogContent {
    /// Base offset of the first batch served.
    pub first_base: i64,
    pub batches: usize,
    pub records: usize,
}

/// Reads the whole log, from its log start to its log end, and checks what
/// it serves: every batch CRC-valid, offsets dense (each batch starts where
/// the previous one ended, the first holds the log start, the last ends at
/// the log end) and every record's value exactly `value_at(offset)`.
pub async fn check_log_content(
    log: &sluice_log::PartitionLog<sluice_log::DmaStorage>,
) -> Result<LogContent, String> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let mut content = LogContent {
        first_base: start,
        batches: 0,
        records: 0,
    };
    let mut next = start;
    while next < end {
        let chunks = log
            .read(next, 256 * 1024, end)
            .await
            .map_err(|e| format!("read at {next} (log {start}..{end}): {e}"))?;
        if chunks.is_empty() {
            return Err(format!("read at {next} below log end {end} served nothing"));
        }
        for chunk in chunks {
            for batch in BatchIter::new(chunk) {
                let batch = batch.map_err(|e| format!("invalid batch after offset {next}: {e}"))?;
                if content.batches == 0 {
                    if batch.base_offset() > start || batch.last_offset() < start {
                        return Err(format!(
                            "first batch {}..={} does not hold the log start {start}",
                            batch.base_offset(),
                            batch.last_offset()
                        ));
                    }
                    content.first_base = batch.base_offset();
                } else if batch.base_offset() != next {
                    return Err(format!(
                        "batch base {} where {next} was expected",
                        batch.base_offset()
                    ));
                }
                let mut expected = batch.base_offset();
                for record in RecordIter::new(&batch).map_err(|e| e.to_string())? {
                    let record = record.map_err(|e| format!("record at {expected}: {e}"))?;
                    if record.offset != expected {
                        return Err(format!(
                            "record offset {} where {expected} was expected",
                            record.offset
                        ));
                    }
                    let want = value_at(record.offset);
                    if record.value.as_deref() != Some(&want[..]) {
                        return Err(format!("record {} has the wrong value", record.offset));
                    }
                    if record.timestamp != record.offset {
                        return Err(format!(
                            "record {} stamped {}",
                            record.offset, record.timestamp
                        ));
                    }
                    expected += 1;
                    content.records += 1;
                }
                if expected != batch.next_offset() {
                    return Err(format!(
                        "batch {}..={} holds records up to {}",
                        batch.base_offset(),
                        batch.last_offset(),
                        expected - 1
                    ));
                }
                next = batch.next_offset();
                content.batches += 1;
            }
        }
    }
    if next != end {
        return Err(format!("batches end at {next}, the log end is {end}"));
    }
    Ok(content)
}
