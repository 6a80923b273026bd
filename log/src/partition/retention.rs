//! Retention and the log start offset.
//!
//! Owns: deciding which whole sealed segments may go (below the log start,
//! and, unless the log is only compacted, older than `retention_ms` by
//! their newest record or beyond `retention_bytes`), deleting them after the new log start is
//! checkpointed, and moving the log start for DeleteRecords.

use super::*;

impl<S: Storage> PartitionLog<S> {
    /// Deletes whole sealed segments that retention allows to go: those
    /// below the log start offset, those older than `retention_ms` (by their
    /// newest record) and the oldest ones while the log exceeds
    /// `retention_bytes`. Moves the log start offset past them.
    pub async fn apply_retention(&self, now_ms: i64) -> LogResult<RetentionOutcome> {
        self.check_writable()?;
        let _permit = self
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        let expired = self
            .producers
            .borrow_mut()
            .expire(now_ms, self.config.borrow().producer_id_expiration_ms);
        if expired > 0 {
            tracing::debug!(dir = ?self.dir, expired, "expired idle producers");
        }
        let mut outcome = RetentionOutcome {
            log_start_offset: self.log_start_offset(),
            ..Default::default()
        };
        let sealed: Vec<_> = {
            let segments = self.segments.borrow();
            segments[..segments.len() - 1].to_vec()
        };
        let mut total = self.size_bytes();
        let mut doomed = Vec::new();
        for seg in sealed {
            let (size, next) = {
                let s = seg.borrow();
                (s.size_bytes, s.next_offset)
            };
            let below_start = next <= self.log_start_offset();
            let deletes = self.config.borrow().cleanup_policy.deletes();
            let too_big = deletes
                && self.config.borrow().retention_bytes >= 0
                && total - size >= self.config.borrow().retention_bytes as u64;
            let too_old = if deletes && self.config.borrow().retention_ms >= 0 {
                Segment::ensure_indexes(&seg, &self.storage, self.index_interval_bytes()).await?;
                let max_ts = seg.borrow().max_timestamp;
                now_ms - max_ts > self.config.borrow().retention_ms
            } else {
                false
            };
            if !(below_start || too_big || too_old) {
                break;
            }
            total -= size;
            doomed.push(seg);
        }
        if doomed.is_empty() {
            return Ok(outcome);
        }
        let new_start = {
            let segments = self.segments.borrow();
            let base = segments[doomed.len()].borrow().base_offset;
            base
        };
        // Checkpoint the new start first: a crash before the files go leaves
        // segments below the start, which the next pass deletes.
        if new_start > self.log_start_offset() {
            self.log_start_offset.set(new_start);
            self.forget_aborted_before(new_start);
        }
        self.write_checkpoint().await?;
        self.segments.borrow_mut().drain(..doomed.len());
        for seg in doomed {
            let seg = Rc::try_unwrap(seg).map_err(|_| ()).map(RefCell::into_inner);
            let (paths, size) = match &seg {
                Ok(s) => (s.paths.clone(), s.size_bytes),
                Err(()) => continue,
            };
            // Not while the disk is full: then the space goes back.
            let keep_as_spare = self.config.borrow().recycle_segments
                && !self.has_spare.get()
                && !self.storage_full.get()
                && seg.as_ref().is_ok_and(|s| s.file_unshared());
            if let Ok(s) = seg {
                s.close().await?;
            }
            if keep_as_spare {
                self.keep_as_spare(&paths).await?;
            } else {
                crate::segment::remove_files(&self.storage, &paths).await?;
            }
            outcome.segments_deleted += 1;
            outcome.bytes_deleted += size;
        }
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(LogError::io("syncing directory", &self.dir))?;
        if let Some((cache, key)) = &self.cache {
            cache
                .borrow_mut()
                .evict_below(*key, self.log_start_offset());
        }
        outcome.log_start_offset = self.log_start_offset();
        tracing::info!(dir = ?self.dir, segments = outcome.segments_deleted, bytes = outcome.bytes_deleted, "retention deleted segments");
        Ok(outcome)
    }

    /// Keeps a deleted segment's `.log` as the partition's spare (its other
    /// files go): the next roll writes over it (`segment/recycle.rs`).
    /// Durable with the caller's directory sync; a crash before it leaves
    /// the segment below the log start, which the next pass deletes.
    async fn keep_as_spare(&self, paths: &crate::segment::SegmentPaths) -> LogResult<()> {
        for path in paths.side_files() {
            crate::segment::remove_if_present(&self.storage, path).await?;
        }
        let spare = self.dir.join(SPARE_FILE);
        self.storage
            .rename(&paths.log, &spare)
            .await
            .map_err(LogError::io("renaming", &paths.log))?;
        self.has_spare.set(true);
        Ok(())
    }

    /// Aborted transactions wholly below the log start are no reader's
    /// concern any more.
    fn forget_aborted_before(&self, log_start: Offset) {
        self.producers
            .borrow_mut()
            .txns_mut()
            .forget_before(log_start);
    }

    /// Moves the log start offset up to `offset` (DeleteRecords); readers
    /// below it get `OffsetOutOfRange`, and retention deletes the segments
    /// wholly below it.
    pub async fn set_log_start_offset(&self, offset: Offset) -> LogResult<Offset> {
        self.check_writable()?;
        let end = self.log_end_offset();
        if offset > end || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: end,
            });
        }
        let _permit = self
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        if offset > self.log_start_offset() {
            self.log_start_offset.set(offset);
            self.forget_aborted_before(offset);
            self.write_checkpoint().await?;
            if let Some((cache, key)) = &self.cache {
                cache.borrow_mut().evict_below(*key, offset);
            }
        }
        Ok(self.log_start_offset())
    }
}
