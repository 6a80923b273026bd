//! What the simulated clients were promised, and the checks against it.
//!
//! Owns: the acknowledged records of every partition (offset → value), the
//! records fetches returned, the topics whose creation or deletion was
//! acknowledged, and the values written by idempotent producers; and the
//! invariant checks that compare a shard's state or a read of a partition
//! with them.
//!
//! The invariants (each check counts itself in [`Checks`]):
//! - every acknowledged record is readable, at its offset, with its bytes,
//!   after any later crash the flush policy promises it survives (under
//!   `log.flush=always` every crash; otherwise a SIGKILL, and after a power
//!   loss only the records below the recovered log end);
//! - offsets are dense and increasing from the log start;
//! - high watermark ≤ log end offset, and under `log.flush=always` the high
//!   watermark is the durable offset: no fetch returns an unsynced record
//!   (and every record a fetch returned survives a power loss);
//! - no value is written twice (every produced value is unique, and an
//!   idempotent producer's retry must not add a copy);
//! - ListOffsets(latest) is at least the end of every record acknowledged
//!   before it was asked;
//! - an acknowledged topic creation or deletion survives every crash.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use sluice_core::batch::BatchIter;
use sluice_core::records::RecordIter;
use sluice_core::{Offset, PartitionId};

/// A topic partition.
pub type Tp = (String, PartitionId);

/// How many invariant checks ran, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    /// Per-step checks of a partition's offsets (hw ≤ leo, hw = durable).
    pub offsets: u64,
    /// Records compared with a fetch's answer.
    pub fetched_records: u64,
    /// Whole-partition reads after a restart or at the end.
    pub full_reads: u64,
    /// Acknowledged records found intact by full reads.
    pub acked_records_verified: u64,
    pub list_offsets: u64,
    pub metadata: u64,
    /// Group offset fetches compared with acknowledged commits.
    pub offset_fetches: u64,
    /// Whole-partition read_committed reads checked against transactions.
    pub read_committed: u64,
    /// Group offsets read back after a transaction that committed them.
    pub txn_offsets: u64,
    /// Records share consumers acquired, checked, and share partitions
    /// checked done with at the end.
    pub shares: u64,
    /// KIP-848 heartbeat answers applied, and partition ownerships
    /// compared between members.
    pub consumer_ownership: u64,
}

impl Checks {
    pub fn total(&self) -> u64 {
        self.offsets
            + self.fetched_records
            + self.full_reads
            + self.acked_records_verified
            + self.list_offsets
            + self.metadata
            + self.offset_fetches
            + self.consumer_ownership
            + self.read_committed
            + self.txn_offsets
            + self.shares
    }
}

/// The promises made so far.
#[derive(Debug, Default)]
pub struct Model {
    /// Under `log.flush=always`: acknowledged means durable.
    pub flush_always: bool,
    /// Topics whose creation was acknowledged, with the partition count
    /// acknowledged last; a topic leaves when its deletion is acknowledged.
    pub topics: BTreeMap<String, i32>,
    /// Topics a deletion was sent for and not yet answered, or answered
    /// with an error (it may have been committed all the same), until a
    /// check after a restart sees which.
    pub deleting: BTreeSet<String>,
    /// Topics whose deletion was acknowledged.
    pub deleted: BTreeSet<String>,
    /// Acknowledged records: offset → value.
    pub acked: BTreeMap<Tp, BTreeMap<Offset, Bytes>>,
    /// Records fetches returned: offset → value.
    pub observed: BTreeMap<Tp, BTreeMap<Offset, Bytes>>,
    /// Values idempotent producers wrote.
    pub idempotent_values: BTreeSet<Bytes>,
    /// Where the last fetch of each partition that returned records ended:
    /// a consumer reading on asks for it next, which is the read the log's
    /// read-ahead serves.
    pub fetched_next: BTreeMap<Tp, Offset>,
    pub checks: Checks,
}

impl Model {
    /// The end of the acknowledged records of `tp` (0 if none).
    pub fn acked_end(&self, tp: &Tp) -> Offset {
        self.acked
            .get(tp)
            .and_then(|m| m.keys().next_back())
            .map_or(0, |o| o + 1)
    }

    /// Records an acknowledged produce: `values` from `base_offset` on.
    pub fn ack(&mut self, tp: &Tp, base_offset: Offset, values: &[Bytes]) -> Result<(), String> {
        let records = self.acked.entry(tp.clone()).or_default();
        for (i, value) in values.iter().enumerate() {
            let offset = base_offset + i as Offset;
            if let Some(old) = records.insert(offset, value.clone()) {
                if old != value {
                    return Err(format!(
                        "{tp:?} offset {offset} acknowledged twice: {} then {}",
                        short(&old),
                        short(value)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks a fetch's records against what was acknowledged or fetched
    /// before (same offset, same bytes) and remembers them.
    pub fn check_fetched(
        &mut self,
        tp: &Tp,
        from: Offset,
        high_watermark: Offset,
        records: &Bytes,
    ) -> Result<(), String> {
        for (offset, value) in decode(records)? {
            if offset >= high_watermark {
                return Err(format!(
                    "{tp:?}: a fetch returned offset {offset}, at or past its high watermark {high_watermark}"
                ));
            }
            if offset < from {
                // Whole batches: the first may start before the offset asked.
                continue;
            }
            self.checks.fetched_records += 1;
            for (what, known) in [("acknowledged", &self.acked), ("fetched", &self.observed)] {
                if let Some(expected) = known.get(tp).and_then(|m| m.get(&offset)) {
                    if *expected != value {
                        return Err(format!(
                            "{tp:?} offset {offset}: fetched {}, but {} was {what} there",
                            short(&value),
                            short(expected)
                        ));
                    }
                }
            }
            self.observed
                .entry(tp.clone())
                .or_default()
                .insert(offset, value);
            self.fetched_next.insert(tp.clone(), offset + 1);
        }
        Ok(())
    }

    /// After a crash: forgets what the crash was allowed to lose. Without
    /// `log.flush=always` nothing is promised across a crash (appends wait
    /// in the process's write buffer, up to `log.write_buffer_bytes`, and
    /// the page cache is not synced): acknowledged records past the
    /// recovered log end may go (see [`Model::check_partition`]) and so may
    /// fetched ones.
    pub fn crashed(&mut self) {
        if !self.flush_always {
            self.observed.clear();
        }
    }

    /// Checks one whole partition read from its log start (`records`) up to
    /// its high watermark, after a restart or at the end.
    pub fn check_partition(
        &mut self,
        tp: &Tp,
        log_start_offset: Offset,
        high_watermark: Offset,
        records: &Bytes,
        may_have_lost_unsynced: bool,
    ) -> Result<(), String> {
        self.checks.full_reads += 1;
        // Dense and increasing from the log start (transaction markers
        // included: each takes an offset).
        let mut expected = log_start_offset;
        let mut markers = BTreeSet::new();
        for (offset, _, control) in decode_all(records)? {
            if control {
                markers.insert(offset);
            }
            if offset != expected {
                return Err(format!(
                    "{tp:?}: offsets not dense: expected {expected}, read {offset}"
                ));
            }
            expected += 1;
        }
        let read = decode(records)?;
        if expected != high_watermark {
            return Err(format!(
                "{tp:?}: read up to {expected}, but the high watermark is {high_watermark}"
            ));
        }
        // Every value at most once.
        let mut seen = BTreeSet::new();
        for (offset, value) in &read {
            if !seen.insert(value.clone()) {
                let how = if self.idempotent_values.contains(value) {
                    "an idempotent producer's retry was written twice"
                } else {
                    "a value was written twice"
                };
                return Err(format!("{tp:?} offset {offset}: {how}: {}", short(value)));
            }
        }
        let by_offset: BTreeMap<Offset, Bytes> = read.into_iter().collect();
        if may_have_lost_unsynced {
            // A power loss without `always`: records at or past the
            // recovered end were allowed to go. The transaction
            // coordinator may have written markers there since the start
            // (completing transactions it found prepared): their offsets
            // are past the recovered end too.
            if let Some(acked) = self.acked.get_mut(tp) {
                acked.retain(|offset, _| *offset < high_watermark && !markers.contains(offset));
            }
        }
        for (what, known) in [("acknowledged", &self.acked), ("fetched", &self.observed)] {
            for (offset, value) in known.get(tp).into_iter().flatten() {
                if *offset < log_start_offset {
                    continue;
                }
                match by_offset.get(offset) {
                    Some(read) if read == value => self.checks.acked_records_verified += 1,
                    Some(read) => {
                        return Err(format!(
                            "{tp:?} offset {offset}: {what} {}, but the log holds {}", short(value), short(read)
                        ))
                    }
                    None => {
                        return Err(format!(
                            "{tp:?} offset {offset}: {what} record {} is lost (log {log_start_offset}..{high_watermark})", short(value)
                        ))
                    }
                }
            }
        }
        // Fetched records past the read were only ever in memory: forget
        // nothing else, they were checked above.
        Ok(())
    }

    /// A topic is gone: forget its records.
    pub fn forget_topic(&mut self, topic: &str) {
        self.acked.retain(|(t, _), _| t != topic);
        self.observed.retain(|(t, _), _| t != topic);
    }
}

/// A value as a failure message shows it: its unique prefix.
pub fn short(value: &Bytes) -> String {
    let text = String::from_utf8_lossy(value);
    text.trim_end_matches('.').to_owned()
}

/// Every data record of `bytes` (whole batches) as (offset, value):
/// transaction markers left out.
pub fn decode(bytes: &Bytes) -> Result<Vec<(Offset, Bytes)>, String> {
    Ok(decode_all(bytes)?
        .into_iter()
        .filter(|(_, _, control)| !control)
        .map(|(offset, value, _)| (offset, value))
        .collect())
}

/// Every record of `bytes` (whole batches) as (offset, value, whether it
/// is a transaction marker).
pub fn decode_all(bytes: &Bytes) -> Result<Vec<(Offset, Bytes, bool)>, String> {
    let mut out = Vec::new();
    for batch in BatchIter::new(bytes.clone()) {
        let batch = batch.map_err(|e| format!("a batch does not decode: {e}"))?;
        batch
            .verify_crc()
            .map_err(|e| format!("a batch at {} fails its CRC: {e}", batch.base_offset()))?;
        let control = batch.is_control();
        for record in RecordIter::new(&batch).map_err(|e| format!("records: {e}"))? {
            let record = record.map_err(|e| format!("a record does not decode: {e}"))?;
            out.push((record.offset, record.value.unwrap_or_default(), control));
        }
    }
    Ok(out)
}
