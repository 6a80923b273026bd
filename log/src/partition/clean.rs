//! Log compaction (`cleanup.policy=compact`): one cleaning pass over a
//! partition's sealed segments, and finishing a pass a crash interrupted.
//!
//! Owns: deciding whether a log is due ([`PartitionLog::clean_plan`]: the
//! dirty ratio against `min.cleanable.dirty.ratio`, `min.compaction.lag.ms`
//! and `max.compaction.lag.ms`), building the key map over the dirty part,
//! rewriting the segments below the map's end with the records Kafka's
//! cleaner keeps, swapping them in crash-safely, and the first dirty offset
//! kept in `cleaner.checkpoint`.
//!
//! What a pass keeps, as Kafka's cleaner does: the latest record of each
//! key (by offset, over everything up to the map's end, the records of
//! aborted transactions left out: they are removed); records at or
//! past the map's end as they are; control batches; a tombstone until the
//! delete horizon (`delete.retention.ms` after the pass that first kept it,
//! KIP-534) has passed; and, for an idempotent producer, its last batch,
//! emptied to a bare header if none of its records stay, so its sequence
//! survives. Offsets never change: compaction leaves holes.
//!
//! Invariants:
//! - Only sealed segments wholly below `upto` (the high watermark) and
//!   below the active segment are rewritten, so truncation never reaches
//!   cleaned data and appends never wait for the cleaner.
//! - A rewrite is crash-safe: the new segment is written and synced as
//!   `<base>.log.cleaned` (with its indexes), renamed to `.swap` (the commit
//!   point), then the segments it replaces are deleted and the swap renamed
//!   into place. Opening a log deletes `.cleaned` files and finishes any
//!   `.swap`, deleting the old segments it covers, so a crash at any step
//!   leaves either the old segments or the new one, never both, never none.
//! - The swap happens under the I/O lock and only if the segments it
//!   replaces are still the log's (retention or truncation may have moved
//!   them meanwhile); otherwise the pass drops its work.

use sluice_core::batch::{RecordBatch, CONTROL_FLAG};
use sluice_core::compaction::{read_records, rebuild_batch, CleanRecord};

use super::*;
use crate::checkpoint::Checkpoint;
use crate::offset_map::KeyOffsetMap;
use crate::segment::{
    remove_files, remove_if_present, Preallocate, SegmentPaths, INDEX_EXTENSIONS,
};
use crate::storage::StorageFile;

/// Name of the file that keeps a compacted log's first dirty offset.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner.checkpoint";

/// Bytes a pass reads at a time: small reads keep the disk's queue short
/// for the appends' syncs that share it.
const CLEANER_READ_BYTES: usize = crate::segment::READ_CHUNK_BYTES;

/// Most bytes one batch's records may take once decompressed.
const MAX_UNCOMPRESSED_BATCH_BYTES: usize = 128 * 1024 * 1024;

/// Where the last cleaning pass stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct CleanerCheckpoint {
    /// Every offset below this was covered by a pass's key map.
    pub first_dirty_offset: i64,
    /// The earliest delete horizon of a tombstone the last pass kept
    /// (`i64::MAX`: none): once it passes, a pass is due to remove it.
    pub earliest_delete_horizon_ms: i64,
}

impl Checkpoint for CleanerCheckpoint {
    const KIND: u16 = 4;
}

/// What the cleaner would do with a log now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanPlan {
    /// Where the dirty part starts.
    pub first_dirty_offset: Offset,
    /// Nothing at or past this is cleaned (the active segment, the high
    /// watermark, `min.compaction.lag.ms`).
    pub first_uncleanable_offset: Offset,
    /// Bytes of the cleanable segments already cleaned.
    pub clean_bytes: u64,
    /// Bytes of the cleanable segments written since the last pass.
    pub dirty_bytes: u64,
    /// `max.compaction.lag.ms` has passed for the oldest dirty records.
    pub overdue: bool,
    /// A kept tombstone's delete horizon has passed: a pass removes it.
    pub tombstones_due: bool,
}

impl CleanPlan {
    /// Share of the cleanable bytes that is dirty.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// True when a pass should run: enough is dirty, or the oldest dirty
    /// records waited past `max.compaction.lag.ms`.
    pub fn is_due(&self, config: &LogConfig) -> bool {
        self.tombstones_due
            || (self.dirty_bytes > 0
                && (self.overdue || self.dirty_ratio() >= config.min_cleanable_dirty_ratio))
    }
}

/// What a cleaning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// The key map covered the log up to here (the next pass starts here).
    pub cleaned_to: Offset,
    /// Keys in the map.
    pub keys: usize,
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    /// A group was left as it was because retention or truncation changed
    /// its segments during the pass.
    pub groups_abandoned: usize,
}

/// Paces a cleaning pass: called with the bytes it read or wrote, so a
/// runner can hold it to a share of the disk and yield the CPU.
#[allow(async_fn_in_trait)]
pub trait CleanPacer {
    async fn pace(&self, bytes: u64);
}

/// No pacing (tests and tools).
pub struct NoPacing;

impl CleanPacer for NoPacing {
    async fn pace(&self, _bytes: u64) {}
}

/// The files of a segment being written by a pass (`.cleaned`) or
/// committed to replace others (`.swap`).
fn staged_paths(dir: &Path, base_offset: Offset, suffix: &str) -> SegmentPaths {
    let final_paths = SegmentPaths::new(dir, base_offset);
    let with = |p: &Path| {
        let mut name = p.file_name().expect("segment file name").to_os_string();
        name.push(suffix);
        p.with_file_name(name)
    };
    SegmentPaths {
        log: with(&final_paths.log),
        index: with(&final_paths.index),
        time_index: with(&final_paths.time_index),
        txn_index: with(&final_paths.txn_index),
        recycled: with(&final_paths.recycled),
    }
}

/// The base offset of a staged file name (`<base:020>.<ext>.<suffix>`).
fn parse_staged_name(name: &str, ext: &str, suffix: &str) -> Option<Offset> {
    parse_segment_name(name.strip_suffix(suffix)?.strip_suffix('.')?, ext)
}

/// Finishes what a crash interrupted, before a log is opened: deletes the
/// files of unfinished passes (`.cleaned`, and `.swap` indexes without a
/// `.log.swap`), and completes every committed swap. Returns the number of
/// files removed or renamed.
pub(super) async fn finish_interrupted_passes<S: Storage>(
    storage: &S,
    dir: &Path,
    names: &[String],
) -> LogResult<usize> {
    let mut touched = 0;
    let swaps: Vec<Offset> = names
        .iter()
        .filter_map(|n| parse_staged_name(n, "log", "swap"))
        .collect();
    for name in names {
        let stale_index = INDEX_EXTENSIONS
            .iter()
            .any(|ext| parse_staged_name(name, ext, "swap").is_some_and(|b| !swaps.contains(&b)));
        if name.ends_with(".cleaned") || stale_index {
            remove_if_present(storage, &dir.join(name)).await?;
            touched += 1;
        }
    }
    for base in swaps {
        let swap = staged_paths(dir, base, ".swap");
        // The old segments this one replaces: those after its base up to
        // its last offset (segments past that hold only later offsets).
        let last = last_offset_of(storage, &swap.log, base).await?;
        for name in names {
            let Some(old) = parse_segment_name(name, "log") else {
                continue;
            };
            if old > base && last.is_some_and(|l| old <= l) {
                remove_files(storage, &SegmentPaths::new(dir, old)).await?;
                touched += 1;
            }
        }
        let target = SegmentPaths::new(dir, base);
        for (from, to) in [
            (&swap.index, &target.index),
            (&swap.time_index, &target.time_index),
            (&swap.txn_index, &target.txn_index),
        ] {
            match storage.rename(from, to).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("renaming", from)(e)),
            }
        }
        storage
            .rename(&swap.log, &target.log)
            .await
            .map_err(LogError::io("renaming", &swap.log))?;
        tracing::info!(dir = ?dir, base_offset = base, "finished a compaction swap a crash interrupted");
        touched += 1;
    }
    if touched > 0 {
        storage
            .sync_dir(dir)
            .await
            .map_err(LogError::io("syncing directory", dir))?;
    }
    Ok(touched)
}

/// The last offset of the batches in a (synced, whole) segment file.
async fn last_offset_of<S: Storage>(
    storage: &S,
    path: &Path,
    base_offset: Offset,
) -> LogResult<Option<Offset>> {
    let file = storage
        .open(path)
        .await
        .map_err(LogError::io("opening", path))?;
    let size = file
        .size()
        .await
        .map_err(LogError::io("reading size of", path))?;
    let corrupt = |position: u64, reason: String| LogError::Corrupt {
        path: path.to_owned(),
        position,
        reason,
    };
    let mut pos = 0u64;
    let mut last = None;
    while pos < size {
        let want = (size - pos).min(crate::segment::READ_CHUNK_BYTES as u64) as usize;
        let chunk = file
            .read_local(pos, want)
            .await
            .map_err(LogError::io("reading", path))?;
        let mut at = 0usize;
        while chunk.len() - at >= sluice_core::batch::HEADER_BYTES {
            let header = BatchHeader::peek(&chunk[at..])
                .map_err(|e| corrupt(pos + at as u64, e.to_string()))?;
            if header.base_offset < base_offset {
                let reason = "batch below the segment's base offset".to_string();
                return Err(corrupt(pos + at as u64, reason));
            }
            last = Some(header.last_offset());
            at += header.size_bytes;
        }
        if at == 0 {
            return Err(corrupt(pos, "segment ends inside a batch header".into()));
        }
        pos += at as u64;
    }
    file.close().await.map_err(LogError::io("closing", path))?;
    Ok(last)
}

/// Refuses a batch with a record without a key, as Kafka does for a
/// compacted topic (INVALID_RECORD). Control batches carry no keys to check.
pub(super) fn check_keys(batch: &[u8]) -> LogResult<()> {
    let batch = RecordBatch::parse_unchecked(Bytes::copy_from_slice(batch))?;
    if batch.is_control() {
        return Ok(());
    }
    let records = read_records(&batch, MAX_UNCOMPRESSED_BATCH_BYTES).map_err(|e| {
        tracing::debug!(error = %e, "produce to a compacted topic with unreadable records");
        BatchError::InvalidRecord("records of the batch cannot be read")
    })?;
    if records.iter().any(|r| r.key.is_none()) {
        return Err(
            BatchError::InvalidRecord("Compacted topic cannot accept message without key").into(),
        );
    }
    Ok(())
}

/// What one pass carries from batch to batch.
struct PassState<'a> {
    map: &'a KeyOffsetMap,
    /// The map covers the log up to here; later batches stay as they are.
    map_end: Offset,
    now_ms: i64,
    records_removed: u64,
    earliest_delete_horizon_ms: i64,
}

/// How one batch comes out of a pass.
enum Rewritten {
    Unchanged,
    Replaced(Bytes),
    Removed,
}

impl<S: Storage> PartitionLog<S> {
    /// Where the last pass stopped (the whole log is dirty without one).
    async fn cleaner_checkpoint(&self) -> CleanerCheckpoint {
        let path = self.dir.join(CLEANER_CHECKPOINT_FILE);
        let none = CleanerCheckpoint {
            first_dirty_offset: 0,
            earliest_delete_horizon_ms: i64::MAX,
        };
        // Read once; passes keep it current (plans run every backoff).
        let mut stored = match self.cleaner_state.get() {
            Some(c) => c,
            None => {
                let read = checkpoint::read::<S, CleanerCheckpoint>(&self.storage, &path).await;
                let c = match read {
                    Ok(c) => c.unwrap_or(none),
                    Err(e) => {
                        tracing::warn!(dir = ?self.dir, error = %e, "cleaner checkpoint damaged; the next pass covers the whole log");
                        none
                    }
                };
                self.cleaner_state.set(Some(c));
                c
            }
        };
        stored.first_dirty_offset = stored.first_dirty_offset.max(self.log_start_offset());
        stored
    }

    /// What a pass would cover now, with nothing at or past `upto` (the
    /// high watermark) cleaned; `None` when the log is not compacted or has
    /// no sealed segment to clean.
    pub async fn clean_plan(&self, upto: Offset, now_ms: i64) -> LogResult<Option<CleanPlan>> {
        if !self.config.borrow().cleanup_policy.compacts()
            || self.closed.get()
            || self.offline.get()
        {
            return Ok(None);
        }
        let sealed: Vec<_> = {
            let segments = self.segments.borrow();
            segments[..segments.len() - 1].to_vec()
        };
        let stored = self.cleaner_checkpoint().await;
        let first_dirty = stored.first_dirty_offset;
        let mut plan = CleanPlan {
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: self.log_start_offset(),
            clean_bytes: 0,
            dirty_bytes: 0,
            overdue: false,
            tombstones_due: now_ms >= stored.earliest_delete_horizon_ms,
        };
        let lag_limit = now_ms.saturating_sub(self.config.borrow().min_compaction_lag_ms);
        let overdue_before = now_ms.saturating_sub(self.config.borrow().max_compaction_lag_ms);
        for seg in sealed {
            Segment::ensure_indexes(&seg, &self.storage, self.index_interval_bytes()).await?;
            let (next, size, max_ts) = {
                let s = seg.borrow();
                (s.next_offset, s.size_bytes, s.max_timestamp)
            };
            if next > upto || max_ts > lag_limit {
                break;
            }
            plan.first_uncleanable_offset = next;
            if next <= self.log_start_offset() {
                continue;
            }
            if next > first_dirty {
                plan.dirty_bytes += size;
                plan.overdue |= max_ts >= 0 && max_ts < overdue_before;
            } else {
                plan.clean_bytes += size;
            }
        }
        if plan.first_uncleanable_offset <= first_dirty.max(self.log_start_offset()) {
            plan.dirty_bytes = 0;
        }
        Ok(Some(plan))
    }

    /// Runs one cleaning pass as `plan` describes it (see the module
    /// docs), with a key map of at most `map_budget_bytes`. `pacer` is
    /// called with the bytes read and written.
    pub async fn clean<P: CleanPacer>(
        &self,
        plan: &CleanPlan,
        map_budget_bytes: usize,
        now_ms: i64,
        pacer: &P,
    ) -> LogResult<CleanOutcome> {
        self.check_writable()?;
        let mut outcome = CleanOutcome {
            segments_before: self.segment_count(),
            bytes_before: self.size_bytes(),
            ..Default::default()
        };
        let (map, map_end) = self.build_key_map(plan, map_budget_bytes, pacer).await?;
        outcome.keys = map.len();
        outcome.cleaned_to = map_end;
        if map_end <= plan.first_dirty_offset && !plan.tombstones_due {
            return Ok(outcome);
        }
        let mut pass = PassState {
            map: &map,
            map_end,
            now_ms,
            records_removed: 0,
            earliest_delete_horizon_ms: i64::MAX,
        };
        // Every segment holding an offset below the map's end is rewritten
        // (the clean part too: a newer record may supersede its keys),
        // grouped so that each group fits one segment.
        let candidates: Vec<SegmentCell<S>> = {
            let segments = self.segments.borrow();
            segments[..segments.len() - 1]
                .iter()
                .filter(|s| {
                    let s = s.borrow();
                    s.base_offset < map_end && s.next_offset > self.log_start_offset()
                })
                .cloned()
                .collect()
        };
        for group in self.group_segments(candidates) {
            if !self.clean_group(&group, &mut pass, pacer).await? {
                outcome.groups_abandoned += 1;
            }
        }
        outcome.records_removed = pass.records_removed;
        // A group the log changed under was not rewritten: the next pass
        // covers the same dirty part again, so the checkpoint stays.
        if outcome.groups_abandoned == 0 {
            let done = CleanerCheckpoint {
                first_dirty_offset: map_end,
                earliest_delete_horizon_ms: pass.earliest_delete_horizon_ms,
            };
            checkpoint::write(
                &self.storage,
                &self.dir.join(CLEANER_CHECKPOINT_FILE),
                &done,
            )
            .await?;
            self.cleaner_state.set(Some(done));
        }
        outcome.segments_after = self.segment_count();
        outcome.bytes_after = self.size_bytes();
        tracing::info!(
            dir = ?self.dir,
            cleaned_to = map_end,
            keys = outcome.keys,
            bytes_before = outcome.bytes_before,
            bytes_after = outcome.bytes_after,
            records_removed = outcome.records_removed,
            "compacted a log"
        );
        Ok(outcome)
    }

    /// Maps every key in the dirty part to its latest offset, batch by
    /// batch until the budget is spent; returns the map and the offset it
    /// covers up to (a batch boundary).
    async fn build_key_map<P: CleanPacer>(
        &self,
        plan: &CleanPlan,
        budget_bytes: usize,
        pacer: &P,
    ) -> LogResult<(KeyOffsetMap, Offset)> {
        let mut map = KeyOffsetMap::new(budget_bytes);
        let mut next = plan.first_dirty_offset.max(self.log_start_offset());
        let end = plan.first_uncleanable_offset;
        // The aborted transactions of the segment being read: its index
        // (and the memory's, for the active one) read once per segment.
        let mut aborted: Vec<AbortedTxn> = Vec::new();
        let mut aborted_until = next;
        'read: while next < end {
            let chunks = self.read(next, CLEANER_READ_BYTES, end).await?;
            if chunks.is_empty() {
                break;
            }
            for chunk in chunks {
                pacer.pace(chunk.len() as u64).await;
                for batch in sluice_core::batch::BatchIter::new_unchecked(chunk) {
                    let batch = batch.map_err(|e| self.corrupt_batch(next, e.to_string()))?;
                    if batch.last_offset() < next {
                        continue;
                    }
                    if batch.base_offset() >= aborted_until {
                        let base = batch.base_offset();
                        aborted_until = self
                            .segment_for(base)
                            .map_or(end, |s| s.borrow().next_offset)
                            .clamp(base + 1, end.max(base + 1));
                        aborted = self.aborted_between(base, aborted_until).await?;
                    }
                    // An aborted transaction's records are garbage: they
                    // must not make a committed value of their key go.
                    if batch.attributes() & CONTROL_FLAG == 0 && !is_aborted(&batch, &aborted) {
                        let records = match read_records(&batch, MAX_UNCOMPRESSED_BATCH_BYTES) {
                            Ok(r) => r,
                            Err(e) => {
                                tracing::warn!(dir = ?self.dir, offset = batch.base_offset(), error = %e, "cleaner cannot read a batch; its records are kept");
                                Vec::new()
                            }
                        };
                        let cost =
                            KeyOffsetMap::cost(records.iter().filter_map(|r| r.key.as_deref()));
                        if !map.fits(cost) {
                            break 'read;
                        }
                        for r in &records {
                            if let Some(key) = &r.key {
                                map.insert(key, r.offset);
                            }
                        }
                    }
                    next = batch.last_offset() + 1;
                }
            }
        }
        Ok((map, next.min(end)))
    }

    /// The transaction index of the cleaned segment that replaces
    /// `group`: the group's entries, in marker order (markers stay).
    async fn write_group_txn_index(
        &self,
        group: &[SegmentCell<S>],
        staged: &SegmentPaths,
    ) -> LogResult<()> {
        let mut entries = Vec::new();
        for seg in group {
            let path = seg.borrow().paths.txn_index.clone();
            entries.extend(
                txn_index::read(&self.storage, &path)
                    .await?
                    .unwrap_or_default(),
            );
        }
        txn_index::write(&self.storage, &staged.txn_index, &entries).await
    }

    fn corrupt_batch(&self, offset: Offset, reason: String) -> LogError {
        LogError::Corrupt {
            path: self.dir.clone(),
            position: 0,
            reason: format!("cleaner reading at offset {offset}: {reason}"),
        }
    }

    /// Consecutive segments whose total size fits one segment and whose
    /// offsets fit one segment's relative offsets.
    fn group_segments(&self, segments: Vec<SegmentCell<S>>) -> Vec<Vec<SegmentCell<S>>> {
        let mut groups: Vec<Vec<SegmentCell<S>>> = Vec::new();
        let mut size = 0u64;
        for seg in segments {
            let (seg_size, seg_next) = {
                let s = seg.borrow();
                (s.size_bytes, s.next_offset)
            };
            let fits = groups.last().is_some_and(|g| {
                let base = g[0].borrow().base_offset;
                size + seg_size <= self.config.borrow().segment_bytes
                    && seg_next - base <= i32::MAX as i64
            });
            if fits {
                size += seg_size;
                groups.last_mut().expect("a group").push(seg);
            } else {
                size = seg_size;
                groups.push(vec![seg]);
            }
        }
        groups
    }

    /// Rewrites one group of segments into one and swaps it in; `false`
    /// when the log changed under the pass and the group was left alone.
    async fn clean_group<P: CleanPacer>(
        &self,
        group: &[SegmentCell<S>],
        pass: &mut PassState<'_>,
        pacer: &P,
    ) -> LogResult<bool> {
        let now_ms = pass.now_ms;
        let base = group[0].borrow().base_offset;
        let end = group
            .last()
            .expect("a group is not empty")
            .borrow()
            .next_offset;
        let staged = staged_paths(&self.dir, base, ".cleaned");
        let cleaned = Rc::new(RefCell::new(
            Segment::create_at(
                &self.storage,
                staged.clone(),
                base,
                self.segment_index_bytes(),
                now_ms,
            )
            .await?,
        ));
        let mut changed = false;
        let write = self
            .rewrite_into(&cleaned, group, pass, pacer, &mut changed)
            .await;
        let sealed = match write {
            Ok(()) => match Segment::seal(&cleaned).await {
                Ok(()) => self.write_group_txn_index(group, &staged).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Ok(s) = Rc::try_unwrap(cleaned).map(RefCell::into_inner) {
            s.close().await?;
        }
        if sealed.is_err() || (!changed && group.len() == 1) {
            // Nothing to swap in: a failed write, or a segment the pass
            // would leave exactly as it is.
            let _ = remove_files(&self.storage, &staged).await;
            return sealed.map(|()| true);
        }
        let swapped = self.swap_in(group, base, end, &staged).await;
        match swapped {
            Ok(true) => Ok(true),
            Ok(false) => {
                remove_files(&self.storage, &staged).await?;
                Ok(false)
            }
            Err(e) => self.fail(e),
        }
    }

    /// Writes the batches of `group` that the pass keeps into `cleaned`;
    /// notes whether any batch changed.
    async fn rewrite_into<P: CleanPacer>(
        &self,
        cleaned: &RefCell<Segment<S>>,
        group: &[SegmentCell<S>],
        pass: &mut PassState<'_>,
        pacer: &P,
        changed: &mut bool,
    ) -> LogResult<()> {
        let interval = self.index_interval_bytes();
        for seg in group {
            Segment::ensure_indexes(seg, &self.storage, interval).await?;
            let (mut from, seg_end) = {
                let s = seg.borrow();
                (s.base_offset, s.next_offset)
            };
            let aborted = self.aborted_between(from, seg_end).await?;
            while from < seg_end {
                let chunks = Segment::read(seg, from, CLEANER_READ_BYTES, seg_end).await?;
                if chunks.is_empty() {
                    break;
                }
                for chunk in chunks {
                    let chunk = chunk.into_bytes();
                    pacer.pace(chunk.len() as u64).await;
                    for batch in sluice_core::batch::BatchIter::new_unchecked(chunk) {
                        let batch = batch.map_err(|e| self.corrupt_batch(from, e.to_string()))?;
                        if batch.last_offset() < from {
                            continue;
                        }
                        from = batch.last_offset() + 1;
                        let kept = match self.rewrite_batch(&batch, &aborted, pass) {
                            Rewritten::Unchanged => batch.bytes().clone(),
                            Rewritten::Replaced(bytes) => {
                                *changed = true;
                                bytes
                            }
                            Rewritten::Removed => {
                                *changed = true;
                                continue;
                            }
                        };
                        let header = BatchHeader::peek(&kept).expect("a checked batch");
                        pacer.pace(kept.len() as u64).await;
                        cleaned.borrow_mut().append(header, kept, interval);
                        if cleaned.borrow().unwritten_bytes()
                            >= self.config.borrow().write_buffer_bytes as u64
                        {
                            Segment::write_out(cleaned, false, Preallocate::NONE).await?;
                        }
                    }
                }
            }
        }
        // The group's end stays the segment's end, holes and all.
        let mut c = cleaned.borrow_mut();
        let end = group.last().expect("a group").borrow().next_offset;
        c.next_offset = c.next_offset.max(end);
        Ok(())
    }

    /// Kafka's cleaner rules for one batch (see the module docs).
    fn rewrite_batch(
        &self,
        batch: &RecordBatch,
        aborted: &[AbortedTxn],
        pass: &mut PassState<'_>,
    ) -> Rewritten {
        let (map, now_ms) = (pass.map, pass.now_ms);
        if batch.last_offset() >= pass.map_end || batch.is_control() {
            return Rewritten::Unchanged;
        }
        let records = match read_records(batch, MAX_UNCOMPRESSED_BATCH_BYTES) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(dir = ?self.dir, offset = batch.base_offset(), error = %e, "cleaner cannot read a batch; it is kept as it is");
                return Rewritten::Unchanged;
            }
        };
        let horizon = batch.delete_horizon_ms();
        let aborted = is_aborted(batch, aborted);
        let keep = |r: &CleanRecord| {
            let Some(key) = &r.key else {
                return false;
            };
            if aborted {
                return false;
            }
            if map.latest(key).is_some_and(|latest| latest > r.offset) {
                return false;
            }
            !(r.is_tombstone && horizon.is_some_and(|h| now_ms >= h))
        };
        let kept: Vec<&CleanRecord> = records.iter().filter(|r| keep(r)).collect();
        pass.records_removed += (records.len() - kept.len()) as u64;
        let keeps_tombstones = kept.iter().any(|r| r.is_tombstone);
        let needs_horizon = horizon.is_none() && keeps_tombstones;
        if keeps_tombstones {
            let h =
                horizon.unwrap_or(now_ms.saturating_add(self.config.borrow().delete_retention_ms));
            pass.earliest_delete_horizon_ms = pass.earliest_delete_horizon_ms.min(h);
        }
        if kept.len() == records.len() && !needs_horizon {
            return Rewritten::Unchanged;
        }
        let producers_last = kept.is_empty()
            && batch.producer_id() >= 0
            && self
                .producers
                .borrow()
                .get(batch.producer_id())
                .and_then(|p| p.batches.back())
                .is_some_and(|b| b.last_offset == batch.last_offset());
        if kept.is_empty() && !producers_last {
            return Rewritten::Removed;
        }
        let new_horizon =
            needs_horizon.then(|| now_ms.saturating_add(self.config.borrow().delete_retention_ms));
        match rebuild_batch(batch, &kept, new_horizon) {
            Ok(bytes) => Rewritten::Replaced(bytes),
            Err(e) => {
                tracing::warn!(dir = ?self.dir, offset = batch.base_offset(), error = %e, "cleaner cannot rewrite a batch; it is kept as it is");
                Rewritten::Unchanged
            }
        }
    }

    /// Renames a segment's files, the `.log` last (a `.log.swap` present
    /// means its indexes were renamed before it), and makes the renames
    /// durable.
    async fn rename_segment_files(&self, from: &SegmentPaths, to: &SegmentPaths) -> LogResult<()> {
        for (from, to) in from.files().into_iter().zip(to.files()) {
            self.storage
                .rename(from, to)
                .await
                .map_err(LogError::io("renaming", from))?;
        }
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(LogError::io("syncing directory", &self.dir))
    }

    /// Swaps the written `.cleaned` segment in for `group`, under the I/O
    /// lock; `false` when the group is no longer the log's.
    async fn swap_in(
        &self,
        group: &[SegmentCell<S>],
        base: Offset,
        end: Offset,
        staged: &SegmentPaths,
    ) -> LogResult<bool> {
        let _permit = self
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        self.check_writable()?;
        let at = {
            let segments = self.segments.borrow();
            let Some(at) = segments.iter().position(|s| Rc::ptr_eq(s, &group[0])) else {
                return Ok(false);
            };
            let same = at + group.len() < segments.len()
                && group
                    .iter()
                    .zip(&segments[at..])
                    .all(|(a, b)| Rc::ptr_eq(a, b));
            if !same {
                return Ok(false);
            }
            at
        };
        let swap = staged_paths(&self.dir, base, ".swap");
        self.rename_segment_files(staged, &swap).await?;
        // Committed: from here a crash finishes the swap at the next open.
        for old in &group[1..] {
            let paths = old.borrow().paths.clone();
            remove_files(&self.storage, &paths).await?;
        }
        self.rename_segment_files(&swap, &SegmentPaths::new(&self.dir, base))
            .await?;
        let created_ms = group[0].borrow().created_ms;
        let fresh = Segment::open_sealed(
            &self.storage,
            &self.dir,
            base,
            end,
            self.segment_index_bytes(),
            created_ms,
        )
        .await?;
        let old: Vec<SegmentCell<S>> = self
            .segments
            .borrow_mut()
            .splice(at..at + group.len(), [Rc::new(RefCell::new(fresh))])
            .collect();
        for seg in old {
            // Readers may still hold an old segment; its file (unlinked)
            // closes when the last of them lets go.
            if let Ok(s) = Rc::try_unwrap(seg).map(RefCell::into_inner) {
                s.close().await?;
            }
        }
        if let Some((cache, key)) = &self.cache {
            cache.borrow_mut().evict_below(*key, end);
        }
        Ok(true)
    }
}

/// True for a data batch of a transaction that was aborted: its
/// producer's aborted transaction (among `aborted`, those the batch's
/// read overlaps) spans it, before its marker.
fn is_aborted(batch: &RecordBatch, aborted: &[AbortedTxn]) -> bool {
    if !batch.is_transactional() || batch.is_control() {
        return false;
    }
    let (producer, base) = (batch.producer_id(), batch.base_offset());
    aborted
        .iter()
        .any(|t| t.producer_id == producer && t.first_offset <= base && base < t.last_offset)
}
