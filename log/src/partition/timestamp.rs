//! ListOffsets by timestamp.
//!
//! Owns: finding the first record at or after a timestamp, using each
//! segment's max timestamp and time index to skip ahead, then the batches'
//! max timestamps, then the records of the one batch that qualifies.

use super::*;

impl<S: Storage> PartitionLog<S> {
    /// The first offset whose record timestamp is at least `timestamp`, and
    /// that record's timestamp (ListOffsets by time); `None` when every
    /// record is older. Compressed batches answer with the first offset of
    /// the first batch whose max timestamp qualifies.
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> LogResult<Option<(Offset, i64)>> {
        let segments: Vec<_> = self.segments.borrow().clone();
        for seg in segments {
            Segment::ensure_indexes(&seg, &self.storage, self.index_interval_bytes()).await?;
            let (max_ts, start_offset, seg_end) = {
                let s = seg.borrow();
                let rel = s.time_index().lookup(timestamp);
                (s.max_timestamp, s.base_offset + rel as i64, s.next_offset)
            };
            if max_ts < timestamp || seg_end <= self.log_start_offset() {
                continue;
            }
            let mut from = start_offset.max(self.log_start_offset());
            while from < seg_end {
                let batches = Segment::read(&seg, from, 1 << 20, seg_end).await?;
                if batches.is_empty() {
                    break;
                }
                for chunk in batches {
                    for batch in sluice_core::batch::BatchIter::new_unchecked(chunk.into_bytes()) {
                        let batch = batch.map_err(|e| LogError::Corrupt {
                            path: seg.borrow().paths.log.clone(),
                            position: 0,
                            reason: e.to_string(),
                        })?;
                        from = batch.next_offset();
                        if batch.max_timestamp() < timestamp
                            || batch.last_offset() < self.log_start_offset()
                        {
                            continue;
                        }
                        // A batch straddling the log start may qualify only
                        // by records below it: then look further.
                        if let Some(found) =
                            first_record_at_or_after(&batch, timestamp, self.log_start_offset())
                        {
                            return Ok(Some(found));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// The first offset holding the log's largest timestamp, and that
    /// timestamp (ListOffsets with MAX_TIMESTAMP); `None` when the log
    /// holds no batch at or above the log start.
    pub async fn max_timestamp_offset(&self) -> LogResult<Option<(Offset, i64)>> {
        let segments: Vec<_> = self.segments.borrow().clone();
        let mut max_ts = None::<i64>;
        for seg in &segments {
            Segment::ensure_indexes(seg, &self.storage, self.index_interval_bytes()).await?;
            let (ts, end) = {
                let s = seg.borrow();
                (s.max_timestamp, s.next_offset)
            };
            if end > self.log_start_offset() && ts >= 0 && max_ts.is_none_or(|m| ts > m) {
                max_ts = Some(ts);
            }
        }
        match max_ts {
            Some(ts) => Ok(self
                .offset_for_timestamp(ts)
                .await?
                .map(|(offset, _)| (offset, ts))),
            None => Ok(None),
        }
    }
}

/// The first record of `batch` at or after `timestamp` (and not below
/// `log_start`), or `None` when no such record is in the batch; for a
/// compressed batch, the batch's first offset and its max timestamp.
fn first_record_at_or_after(
    batch: &RecordBatch,
    timestamp: i64,
    log_start: Offset,
) -> Option<(Offset, i64)> {
    let Ok(records) = RecordIter::new(batch) else {
        return Some((batch.base_offset().max(log_start), batch.max_timestamp()));
    };
    records
        .flatten()
        .find(|r| r.timestamp >= timestamp && r.offset >= log_start)
        .map(|r| (r.offset, r.timestamp))
}
