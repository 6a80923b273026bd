//! Truncation of the log's end (replication's divergence repair).
//!
//! Owns: cutting every batch at or above an offset, across segments, at
//! batch boundaries, and restarting an emptied log at a given offset.

use super::*;

impl<S: Storage> PartitionLog<S> {
    /// Removes every batch holding an offset at or above `offset`, so the
    /// log end becomes the base of the first removed batch (replication
    /// truncates at batch boundaries). When that would leave nothing at or
    /// above the log start (`offset` at or below it, or the first removed
    /// batch straddling it), the log is emptied and restarts at `offset`.
    pub async fn truncate_to(&self, offset: Offset, now_ms: i64) -> LogResult<Offset> {
        self.check_writable()?;
        let _permit = self
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        if offset >= self.log_end_offset() {
            return Ok(self.log_end_offset());
        }
        self.read_ahead.clear();
        if let Some((cache, key)) = &self.cache {
            cache.borrow_mut().truncate_from(*key, offset);
        }
        let result = self.truncate_locked(offset, now_ms).await;
        match result {
            Ok((end, unsealed_txn_index)) => {
                self.producers.borrow_mut().truncate_from(end);
                self.durable_offset.set(self.durable_offset.get().min(end));
                self.epochs.borrow_mut().truncate_from(end);
                if let Some(path) = unsealed_txn_index {
                    if let Err(e) = self.settle_unsealed_txn_index(&path).await {
                        return self.fail(e);
                    }
                }
                if let Err(e) = self.write_epochs().await {
                    return self.fail(e);
                }
                Ok(end)
            }
            Err(e) => self.fail(e),
        }
    }

    /// After a truncation that made a sealed segment active again: its
    /// aborted transactions (put back in memory by the unseal) are written
    /// to a producer snapshot before its transaction index at `path` goes,
    /// so a crash in between finds them in one or the other.
    async fn settle_unsealed_txn_index(&self, path: &Path) -> LogResult<()> {
        let snapshot = self.producer_snapshot_now();
        self.write_producer_snapshot(&snapshot).await?;
        crate::segment::remove_if_present(&self.storage, path).await?;
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(LogError::io("syncing directory", &self.dir))
    }

    /// Empties the log and restarts it at `offset`, wherever that is (a
    /// Raft follower that installs a snapshot past its log end; Kafka's
    /// `truncateFullyAndStartAt`).
    pub async fn truncate_fully_and_start_at(
        &self,
        offset: Offset,
        now_ms: i64,
    ) -> LogResult<Offset> {
        self.check_writable()?;
        let _permit = self
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        self.read_ahead.clear();
        if let Some((cache, key)) = &self.cache {
            cache.borrow_mut().truncate_from(*key, 0);
        }
        match self.start_over_at(offset, now_ms).await {
            Ok(end) => {
                self.producers.borrow_mut().truncate_from(0);
                self.durable_offset.set(end);
                self.epochs.borrow_mut().clear();
                if let Err(e) = self.write_epochs().await {
                    return self.fail(e);
                }
                Ok(end)
            }
            Err(e) => self.fail(e),
        }
    }

    /// [`Self::truncate_to`] under the I/O lock: the new log end, and the
    /// transaction index of the sealed segment it made active again, if it
    /// did (see [`Self::settle_unsealed_txn_index`]).
    pub(super) async fn truncate_locked(
        &self,
        offset: Offset,
        now_ms: i64,
    ) -> LogResult<(Offset, Option<PathBuf>)> {
        if offset <= self.log_start_offset() {
            return Ok((self.start_over_at(offset, now_ms).await?, None));
        }
        // Drop whole segments that start at or above the offset.
        let later: Vec<_> = {
            let mut segments = self.segments.borrow_mut();
            let keep = segments.partition_point(|s| s.borrow().base_offset < offset);
            segments.drain(keep..).collect()
        };
        self.remove_segments(later).await?;
        let active = self.active();
        let mut unsealed_txn_index = None;
        if active.borrow().sealed {
            Segment::ensure_indexes(&active, &self.storage, self.index_interval_bytes()).await?;
            Segment::unseal(&active, &self.storage).await?;
            // Its aborted transactions are the active segment's now: in
            // memory, until it seals again.
            let path = active.borrow().paths.txn_index.clone();
            let entries = txn_index::read(&self.storage, &path)
                .await?
                .unwrap_or_default();
            let mut producers = self.producers.borrow_mut();
            let txns = producers.txns_mut();
            txns.restore_aborted_before(entries);
            txns.forget_before(self.log_start_offset());
            unsealed_txn_index = Some(path);
        }
        match Segment::position_of(&active, offset).await? {
            // Cutting at the batch base would put the log end below the log
            // start: nothing visible survives, so start over instead.
            Some((_, base)) if base < self.log_start_offset() => {
                return Ok((self.start_over_at(offset, now_ms).await?, None));
            }
            Some((position, base)) => Segment::truncate_at(&active, position, base).await?,
            None => Segment::write_out(&active, true, self.preallocate()).await?,
        }
        Ok((self.log_end_offset(), unsealed_txn_index))
    }

    /// Empties the log and restarts it at `offset`, which becomes the log
    /// start. Caller holds the I/O lock.
    pub(super) async fn start_over_at(&self, offset: Offset, now_ms: i64) -> LogResult<Offset> {
        // The spare's offsets are below the old log start, maybe not below
        // the new one: it must never become a segment of this log now.
        self.drop_spare().await?;
        let all: Vec<_> = self.segments.borrow_mut().drain(..).collect();
        self.remove_segments(all).await?;
        let seg = Segment::create(
            &self.storage,
            &self.dir,
            offset,
            self.segment_index_bytes(),
            now_ms,
        )
        .await?;
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(LogError::io("syncing directory", &self.dir))?;
        self.segments.borrow_mut().push(Rc::new(RefCell::new(seg)));
        self.log_start_offset.set(offset);
        self.write_checkpoint().await?;
        Ok(offset)
    }

    pub(super) async fn remove_segments(&self, segments: Vec<SegmentCell<S>>) -> LogResult<()> {
        for seg in segments {
            let paths = seg.borrow().paths.clone();
            if let Ok(s) = Rc::try_unwrap(seg).map(RefCell::into_inner) {
                s.close().await?;
            }
            crate::segment::remove_files(&self.storage, &paths).await?;
        }
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(LogError::io("syncing directory", &self.dir))
    }
}
