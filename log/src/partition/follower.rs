//! Appends on a follower: batches fetched from the leader go into the log
//! as they are (offsets, epochs and CRCs the leader gave them), after
//! every batch's CRC is checked, with no re-encoding. A compacted log
//! takes its leader's holes (offsets the cleaner removed) as they are.

use super::*;

impl<S: Storage> PartitionLog<S> {
    /// Appends `batches` (whole v2 batches as a Fetch response carries them)
    /// that must start at the log end and follow each other. A batch that
    /// fails its CRC, a gap or an overlap refuses the whole append and
    /// writes nothing. A trailing partial batch (a Fetch may cut the last
    /// one) is left out; the answer says how far the log got.
    pub async fn append_as_follower(&self, batches: Bytes, now_ms: i64) -> LogResult<AppendInfo> {
        self.append_as_follower_from(batches, None, now_ms).await
    }

    /// [`PartitionLog::append_as_follower`] of batches cut from `source`, a
    /// larger buffer they keep alive (the Fetch answer they came in): the
    /// batch cache and the write buffer count that buffer.
    pub async fn append_as_follower_from(
        &self,
        batches: Bytes,
        source: Option<SourceBuffer>,
        now_ms: i64,
    ) -> LogResult<AppendInfo> {
        self.check_writable()?;
        self.retry_after_storage_full().await?;
        let start = self.log_end_offset();
        let mut headers = Vec::new();
        let mut next = start;
        let mut max_timestamp = -1i64;
        let mut at = 0usize;
        while at < batches.len() {
            let size = match peek_batch_size(&batches[at..]) {
                Ok(size) if size <= batches.len() - at => size,
                // A cut last batch: the next fetch asks from here again.
                Ok(_) | Err(BatchError::Truncated { .. }) if !headers.is_empty() => break,
                Ok(size) => {
                    return Err(BatchError::Truncated {
                        needed: size,
                        available: batches.len() - at,
                    }
                    .into())
                }
                Err(e) => return Err(e.into()),
            };
            let header = check_log_batch(&batches[at..at + size])?;
            // A compacted leader's log has holes; any other log's must not.
            let hole_allowed =
                self.config.borrow().cleanup_policy.compacts() && header.base_offset > next;
            if header.base_offset != next && !hole_allowed {
                return Err(LogError::Corrupt {
                    path: self.dir.clone(),
                    position: at as u64,
                    reason: format!(
                        "replicated batch at offset {} where the log expects {next}",
                        header.base_offset
                    ),
                });
            }
            next = header.last_offset() + 1;
            max_timestamp = max_timestamp.max(header.max_timestamp);
            headers.push((at, header));
            at += size;
        }
        if headers.is_empty() {
            return Err(BatchError::InvalidRecord("no record batches").into());
        }
        let total = at;
        self.roll_for(total, next - start, now_ms).await?;
        if self.log_end_offset() != start {
            // Another append ran while this one waited for the roll.
            return Err(LogError::Corrupt {
                path: self.dir.clone(),
                position: 0,
                reason: "the log end moved during a follower append".into(),
            });
        }
        let count = headers.len();
        let active = self.active();
        self.store(&active, &batches.slice(..total), headers, now_ms, source);
        self.bound_write_buffer().await?;
        self.stats.borrow_mut().appends += 1;
        Ok(AppendInfo {
            base_offset: start,
            last_offset: next - 1,
            max_timestamp,
            batches: count,
            size_bytes: total,
            duplicate: false,
            log_append_time_ms: -1,
        })
    }
}
