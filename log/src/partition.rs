//! One partition's durable log: the public face of this crate.
//!
//! Owns: the ordered list of segments, offset assignment, group commit,
//! roll, retention, truncation, the log start offset and its checkpoint, and
//! recovery on open.
//!
//! Invariants:
//! - Offsets are dense and increase: each batch's base offset is the previous
//!   batch's last offset + 1, across segments.
//! - `durable_offset <= log_end_offset`; every batch below `durable_offset`
//!   has been fdatasync'd.
//! - Only the last segment is active; every other segment is sealed (synced,
//!   exact length, indexes synced), which is why recovery scans only the tail.
//! - One writer at a time: every operation that writes, syncs, truncates or
//!   deletes files holds `io_lock`. Appends only touch memory, so they never
//!   wait for the disk unless the write buffer is full or a roll is due.
//!
//! ```no_run
//! # use sluice_log::{PartitionLog, DmaStorage};
//! # use sluice_core::config::LogConfig;
//! # async fn demo() -> Result<(), sluice_log::LogError> {
//! let log = PartitionLog::open(DmaStorage, "data/t/0".into(), LogConfig::default(), None, 0).await?;
//! let batch = sluice_core::batch::BatchBuilder::new(0).record(None, Some(b"v")).build();
//! let appended = log.append(bytes::BytesMut::from(&batch[..]), 0, 0).await?;
//! log.flush().await?; // durable; group commit shares one fdatasync among callers
//! let bytes = log.read(appended.base_offset, 1 << 20, log.log_end_offset()).await?;
//! # Ok(()) }
//! ```

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use glommio::sync::Semaphore;
use sluice_core::batch::{
    assign_in_place, check_batch, check_log_batch, peek_batch_size, stamp_log_append_time,
    BatchError, BatchHeader,
};
use sluice_core::batch::{Compression, RecordBatch};
use sluice_core::config::{CompressionType, FlushPolicy, LogConfig, TimestampType};
use sluice_core::recompress::recompress_batch;
use sluice_core::records::RecordIter;
use sluice_core::{LeaderEpoch, Offset};

use crate::cache::{BatchCache, CacheKey, SourceBuffer};
use crate::checkpoint::{self, PartitionCheckpoint};
use crate::chunk::ReadChunk;
use crate::error::{LogError, LogResult};
use crate::producers;
use crate::read_ahead::{ReadAheadBudget, ReadAheadSlot, Stop, READ_AHEAD_MAX_BYTES};
use crate::segment::{
    parse_segment_name, Preallocate, ReadBufOf, RecoveryReport, Resume, Segment,
    RECYCLED_EXTENSION, SPARE_FILE,
};
use crate::storage::Storage;
use crate::txn_index;
use sluice_core::producer_state::{ProducerStateTable, SequenceCheck};
use sluice_core::replication::EpochCache;
use sluice_core::txn::marker::{control_marker, Marker};
use sluice_core::txn::partition::AbortedTxn;
use sluice_core::txn::verification::{TxnVerifications, VerificationGuard};

mod clean;
mod epochs;
mod follower;
mod retention;
mod timestamp;
mod truncate;

pub use clean::{CleanOutcome, CleanPacer, CleanPlan, NoPacing, CLEANER_CHECKPOINT_FILE};
pub use epochs::EPOCH_CHECKPOINT_FILE;

/// Name of the partition checkpoint file inside the partition directory.
pub const CHECKPOINT_FILE: &str = "partition.checkpoint";

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// Largest batch max timestamp among the appended batches.
    pub max_timestamp: i64,
    pub batches: usize,
    pub size_bytes: usize,
    /// The batches were a retry of an idempotent producer's batches already
    /// in the log: nothing was written and the offsets are the originals.
    pub duplicate: bool,
    /// The broker's time stamped on the batches (a `LogAppendTime` log),
    /// else -1: what Produce answers as `log_append_time_ms`.
    pub log_append_time_ms: i64,
}

/// Most bytes a batch's records may take once decompressed for
/// recompression.
const MAX_UNCOMPRESSED_BATCH_BYTES: usize = 128 * 1024 * 1024;

/// `batches` with every batch in `codec` (a topic's `compression.type`),
/// as Kafka recompresses on append; the same buffer when all already are.
/// A batch that is not valid is refused as the append would refuse it.
fn recompressed(batches: BytesMut, codec: Compression) -> LogResult<BytesMut> {
    let mut parts: Vec<Bytes> = Vec::new();
    let mut changed = false;
    let mut at = 0usize;
    while at < batches.len() {
        let size = peek_batch_size(&batches[at..])?;
        let end = at.saturating_add(size).min(batches.len());
        check_batch(&batches[at..end])?;
        let batch = RecordBatch::parse_unchecked(Bytes::copy_from_slice(&batches[at..end]))?;
        let part = if batch.is_control() {
            None
        } else {
            recompress_batch(&batch, codec, MAX_UNCOMPRESSED_BATCH_BYTES).map_err(|e| {
                tracing::debug!(error = %e, "produce with records that cannot be recompressed");
                BatchError::InvalidRecord("records of the batch cannot be decompressed")
            })?
        };
        changed |= part.is_some();
        parts.push(part.unwrap_or_else(|| batch.into_bytes()));
        at = end;
    }
    if !changed {
        return Ok(batches);
    }
    let mut out = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
    for part in parts {
        out.extend_from_slice(&part);
    }
    Ok(out)
}

/// A producer a partition remembers, as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence it wrote (-1 when none: a marker only).
    pub last_sequence: i32,
    pub last_timestamp_ms: i64,
    /// The coordinator epoch of its last marker here, or -1.
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction here, or -1.
    pub txn_start_offset: Offset,
}

/// Who appends: a producer (control batches refused) or the transaction
/// coordinator (its markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Client,
    Coordinator,
}

/// What retention removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: Offset,
}

/// What opening the log found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    pub segments: usize,
    pub active: RecoveryReport,
    /// The checkpoint was missing or damaged and was rebuilt.
    pub checkpoint_rebuilt: bool,
    /// Stray files removed (temp files, index files without a segment, a
    /// spare segment file, recycled markers of sealed segments).
    pub stray_files_removed: usize,
}

type SegmentCell<S> = Rc<RefCell<Segment<S>>>;

/// One partition's log, shared by the tasks of one shard (`Rc<PartitionLog>`).
pub struct PartitionLog<S: Storage> {
    storage: S,
    dir: PathBuf,
    /// Changed at run time by [`PartitionLog::set_config`] (a topic's
    /// configs altered); never borrowed across an await.
    config: RefCell<LogConfig>,
    segments: RefCell<Vec<SegmentCell<S>>>,
    log_start_offset: Cell<Offset>,
    durable_offset: Cell<Offset>,
    io_lock: Semaphore,
    offline: Cell<bool>,
    /// A write failed for want of space: appends are refused (after one
    /// retry of what is pending) until a write succeeds again.
    storage_full: Cell<bool>,
    closed: Cell<bool>,
    cache: Option<(Rc<RefCell<BatchCache>>, CacheKey)>,
    open_report: OpenReport,
    stats: RefCell<LogStats>,
    /// Idempotent producers' sequences, checked on every append.
    producers: RefCell<ProducerStateTable>,
    /// Transactional first writes being verified with their coordinator
    /// (KIP-890): a marker for the producer ends its guard.
    verifications: RefCell<TxnVerifications>,
    bytes_since_producer_snapshot: Cell<u64>,
    /// Where each leader epoch starts (see [`EpochCache`]); stored with
    /// the producer snapshot, the rest replayed from batch headers at open.
    epochs: RefCell<EpochCache>,
    /// What the partition checkpoint, the producer snapshot and the epoch
    /// file hold (`checkpoint::OnDisk`): a value they hold already is not
    /// written again.
    checkpoint_on_disk: checkpoint::OnDisk,
    producers_on_disk: checkpoint::OnDisk,
    epochs_on_disk: checkpoint::OnDisk,
    /// The cleaner checkpoint as last read or written (compacted logs).
    cleaner_state: Cell<Option<clean::CleanerCheckpoint>>,
    /// The disk read started ahead of a consumer that is behind.
    read_ahead: ReadAheadSlot<S>,
    /// The directory holds a spare `.log` (`segment::SPARE_FILE`) for the
    /// next roll, left by retention (`log.recycle_segments`).
    has_spare: Cell<bool>,
}

/// Counters of what a log did since it was opened (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Successful `append` calls.
    pub appends: u64,
    /// `flush` calls.
    pub flushes: u64,
    /// fdatasyncs of the active segment that flushes issued; group commit
    /// keeps this below `flushes` when flushes overlap.
    pub flush_syncs: u64,
    /// Rolls whose new segment reused a spare file.
    pub segments_recycled: u64,
}

impl std::ops::AddAssign for LogStats {
    fn add_assign(&mut self, other: LogStats) {
        self.appends += other.appends;
        self.flushes += other.flushes;
        self.flush_syncs += other.flush_syncs;
        self.segments_recycled += other.segments_recycled;
    }
}

impl<S: Storage> PartitionLog<S> {
    /// Opens (or creates) the log in `dir`, recovering it: trusts sealed
    /// segments and the checkpoint, scans only the active segment's tail
    /// from its last good index entry, cuts a torn tail and rebuilds what is
    /// missing. `cache` is the shard's batch cache, if any.
    pub async fn open(
        storage: S,
        dir: PathBuf,
        config: LogConfig,
        cache: Option<Rc<RefCell<BatchCache>>>,
        now_ms: i64,
    ) -> LogResult<Self> {
        config.validate().map_err(|reason| LogError::Corrupt {
            path: dir.clone(),
            position: 0,
            reason: format!("invalid log config: {reason}"),
        })?;
        storage
            .create_dir_all(&dir)
            .await
            .map_err(LogError::io("creating", &dir))?;
        let mut names = storage
            .list(&dir)
            .await
            .map_err(LogError::io("listing", &dir))?;
        let mut report = OpenReport::default();
        let finished = clean::finish_interrupted_passes(&storage, &dir, &names).await?;
        if finished > 0 {
            report.stray_files_removed += finished;
            names = storage
                .list(&dir)
                .await
                .map_err(LogError::io("listing", &dir))?;
        }
        let mut bases: Vec<Offset> = names
            .iter()
            .filter_map(|n| parse_segment_name(n, "log"))
            .collect();
        bases.sort_unstable();
        let active_base = bases.last().copied();
        // A recycled file's marker counts for the active segment only; a
        // spare is not kept across a restart (see `segment/recycle.rs`).
        let active_recycled = active_base.is_some_and(|base| {
            names
                .iter()
                .any(|n| parse_segment_name(n, RECYCLED_EXTENSION) == Some(base))
        });
        for name in &names {
            let index_orphan = crate::segment::INDEX_EXTENSIONS.iter().any(|ext| {
                parse_segment_name(name, ext).is_some_and(|b| bases.binary_search(&b).is_err())
            });
            let stale_marker = parse_segment_name(name, RECYCLED_EXTENSION)
                .is_some_and(|b| Some(b) != active_base);
            if name.ends_with(".tmp")
                || name.ends_with(".deleted")
                || name == SPARE_FILE
                || index_orphan
                || stale_marker
            {
                let path = dir.join(name);
                storage
                    .remove(&path)
                    .await
                    .map_err(LogError::io("removing", &path))?;
                report.stray_files_removed += 1;
            }
        }

        let checkpoint_path = dir.join(CHECKPOINT_FILE);
        let checkpoint_on_disk = checkpoint::OnDisk::default();
        let checkpoint = match checkpoint::read_noting::<S, PartitionCheckpoint>(
            &storage,
            &checkpoint_path,
            &checkpoint_on_disk,
        )
        .await
        {
            Ok(c) => c,
            Err(e @ LogError::Corrupt { .. }) => {
                tracing::warn!(error = %e, "partition checkpoint damaged; rebuilding it from the segments");
                None
            }
            Err(e) => return Err(e),
        };

        let mut segments = Vec::with_capacity(bases.len().max(1));
        if bases.is_empty() {
            let start = checkpoint.map_or(0, |c| c.log_start_offset.max(0));
            let seg =
                Segment::create(&storage, &dir, start, config.segment_index_bytes, now_ms).await?;
            storage
                .sync_dir(&dir)
                .await
                .map_err(LogError::io("syncing directory", &dir))?;
            segments.push(Rc::new(RefCell::new(seg)));
        } else {
            for pair in bases.windows(2) {
                let seg = Segment::open_sealed(
                    &storage,
                    &dir,
                    pair[0],
                    pair[1],
                    config.segment_index_bytes,
                    now_ms,
                )
                .await?;
                segments.push(Rc::new(RefCell::new(seg)));
            }
            let last = *bases.last().expect("bases is not empty");
            let (seg, active_report) = Segment::recover_active(
                &storage,
                &dir,
                last,
                config.index_interval_bytes,
                config.segment_index_bytes,
                config.cleanup_policy.compacts(),
                active_recycled,
                now_ms,
            )
            .await?;
            if active_report.bytes_cut > 0 {
                tracing::warn!(
                    dir = ?dir,
                    bytes_cut = active_report.bytes_cut,
                    reason = active_report.cut_reason.as_deref().unwrap_or(""),
                    "recovery cut an invalid tail off the active segment"
                );
            }
            report.active = active_report;
            segments.push(Rc::new(RefCell::new(seg)));
        }
        report.segments = segments.len();

        let first_base = segments[0].borrow().base_offset;
        let log_end = segments
            .last()
            .expect("one segment at least")
            .borrow()
            .next_offset;
        let log_start = match checkpoint {
            Some(c) => c.log_start_offset.clamp(first_base, log_end),
            None => first_base,
        };
        report.checkpoint_rebuilt = checkpoint.is_none_or(|c| c.log_start_offset != log_start);
        let read_ahead_budget = match &cache {
            Some(c) => c.borrow().read_ahead_budget(),
            None => ReadAheadBudget::new(0),
        };
        let log = PartitionLog {
            storage,
            dir,
            config: RefCell::new(config),
            segments: RefCell::new(segments),
            log_start_offset: Cell::new(log_start),
            durable_offset: Cell::new(log_end),
            io_lock: Semaphore::new(1),
            offline: Cell::new(false),
            storage_full: Cell::new(false),
            closed: Cell::new(false),
            cache: cache.map(|c| {
                let key = c.borrow_mut().register();
                (c, key)
            }),
            open_report: report,
            stats: RefCell::new(LogStats::default()),
            producers: RefCell::new(ProducerStateTable::default()),
            verifications: RefCell::new(TxnVerifications::default()),
            bytes_since_producer_snapshot: Cell::new(0),
            epochs: RefCell::new(EpochCache::default()),
            checkpoint_on_disk,
            producers_on_disk: checkpoint::OnDisk::default(),
            epochs_on_disk: checkpoint::OnDisk::default(),
            cleaner_state: Cell::new(None),
            read_ahead: ReadAheadSlot::new(read_ahead_budget),
            has_spare: Cell::new(false),
        };
        if log.open_report.checkpoint_rebuilt {
            log.write_checkpoint().await?;
        }
        log.rebuild_producer_state(now_ms).await?;
        log.settle_txn_indexes(&names).await?;
        Ok(log)
    }

    /// After the producer state is rebuilt at open: every sealed segment
    /// gets its transaction index if it has none (written from the
    /// rebuilt table: an upgrade from before these files, or a table
    /// replayed from the log start), the active segment's file (left by a
    /// crash mid-roll or by truncation) goes, and only the active
    /// segment's aborted transactions stay in memory.
    async fn settle_txn_indexes(&self, names: &[String]) -> LogResult<()> {
        let segments: Vec<SegmentCell<S>> = self.segments.borrow().clone();
        let Some((active, sealed)) = segments.split_last() else {
            return Ok(());
        };
        let indexed: std::collections::BTreeSet<Offset> = names
            .iter()
            .filter_map(|n| parse_segment_name(n, "txnindex"))
            .collect();
        let has_file = |base: Offset| indexed.contains(&base);
        let mut wrote = false;
        for seg in sealed {
            let (base, next, path) = {
                let s = seg.borrow();
                (s.base_offset, s.next_offset, s.paths.txn_index.clone())
            };
            if has_file(base) {
                continue;
            }
            let entries = self
                .producers
                .borrow()
                .txns()
                .aborted_with_markers_in(base, next);
            txn_index::write(&self.storage, &path, &entries).await?;
            wrote = true;
        }
        let (active_base, active_path) = {
            let a = active.borrow();
            (a.base_offset, a.paths.txn_index.clone())
        };
        if has_file(active_base) {
            self.storage
                .remove(&active_path)
                .await
                .map_err(LogError::io("removing", &active_path))?;
            wrote = true;
        }
        if wrote {
            self.storage
                .sync_dir(&self.dir)
                .await
                .map_err(LogError::io("syncing directory", &self.dir))?;
        }
        self.producers
            .borrow_mut()
            .txns_mut()
            .forget_before(active_base);
        Ok(())
    }

    /// Loads the producer state snapshot and replays the batch headers after
    /// it (at most `producer_snapshot_interval_bytes` of log, plus whatever
    /// came after the last snapshot before a crash).
    async fn rebuild_producer_state(&self, now_ms: i64) -> LogResult<()> {
        let end = self.log_end_offset();
        let snapshot = producers::read(&self.storage, &self.dir, &self.producers_on_disk).await;
        // A snapshot past the recovered end describes batches that are not
        // there: the table is rebuilt from the log instead.
        let snapshot = snapshot.filter(|s| {
            let usable = s.offset <= end;
            if !usable {
                tracing::warn!(dir = ?self.dir, snapshot = s.offset, log_end = end, "producer state snapshot past the log end; rebuilding from the log");
            }
            usable
        });
        let (mut table, from) = match snapshot {
            Some(s) => (
                producers::table_of(&s),
                s.offset.max(self.log_start_offset()),
            ),
            None => (ProducerStateTable::default(), self.log_start_offset()),
        };
        table.truncate_from(end);
        let (mut epochs, epochs_from) = self.read_epochs().await;
        epochs.truncate_from(end);
        // Both replays read the same headers: from the older of the two.
        let mut next = from.min(epochs_from).max(self.log_start_offset()).min(end);
        while next < end {
            let chunks = self.read_chunks(next, 1 << 20, end).await?;
            if chunks.is_empty() {
                break;
            }
            for chunk in &chunks {
                let mut at = 0;
                while at < chunk.len() {
                    let header =
                        BatchHeader::peek(&chunk[at..]).map_err(|e| LogError::Corrupt {
                            path: self.dir.clone(),
                            position: 0,
                            reason: format!("replaying producer state: {e}"),
                        })?;
                    if header.base_offset >= from {
                        producers::record_batch(&mut table, &header, &chunk[at..], now_ms);
                    }
                    epochs.assign(header.partition_leader_epoch, header.base_offset);
                    next = header.last_offset() + 1;
                    at += header.size_bytes;
                }
            }
        }
        *self.producers.borrow_mut() = table;
        *self.epochs.borrow_mut() = epochs;
        Ok(())
    }

    /// Writes the producer state snapshot for the current log end. Caller
    /// holds the I/O lock.
    async fn snapshot_producers(&self) -> LogResult<()> {
        let snapshot = self.producer_snapshot_now();
        self.write_producer_snapshot(&snapshot).await
    }

    /// The producer table as it is now, at the log end: taken before a
    /// sync that covers the log end and written after it, so a snapshot on
    /// disk never remembers a batch (a marker that closed a transaction,
    /// say) that a crash could still lose.
    fn producer_snapshot_now(&self) -> producers::ProducerSnapshot {
        producers::snapshot_of(&self.producers.borrow(), self.log_end_offset())
    }

    /// Writes `snapshot` (every batch below its offset durable). Caller
    /// holds the I/O lock.
    async fn write_producer_snapshot(
        &self,
        snapshot: &producers::ProducerSnapshot,
    ) -> LogResult<()> {
        debug_assert!(snapshot.offset <= self.durable_offset.get());
        // A missing snapshot reads as an empty table replayed from the log
        // start: an empty one taken there need not be written.
        let absent_reads_as_it = snapshot.is_empty() && snapshot.offset == self.log_start_offset();
        producers::write(
            &self.storage,
            &self.dir,
            snapshot,
            &self.producers_on_disk,
            absent_reads_as_it,
        )
        .await?;
        self.bytes_since_producer_snapshot.set(0);
        self.write_epochs().await
    }

    /// Applies Kafka's idempotent producer rules to the batches of one
    /// append: `Some` for a retried single batch already in the log (answer
    /// with its original offsets), an error for a batch to refuse.
    fn check_sequences(&self, batches: &BytesMut, origin: Origin) -> LogResult<Option<AppendInfo>> {
        let table = self.producers.borrow();
        let mut scratch: Option<ProducerStateTable> = None;
        let mut at = 0usize;
        let mut single = true;
        while at < batches.len() {
            let header = BatchHeader::peek(&batches[at..]).expect("checked by the caller");
            let batch_at = at;
            let first_batch = at == 0;
            at += header.size_bytes;
            single &= first_batch && at == batches.len();
            if header.producer_id < 0 {
                continue;
            }
            let view = scratch.as_ref().unwrap_or(&table);
            if header.is_control() || origin == Origin::Coordinator {
                // A marker, or a coordinator's batch in a producer's name,
                // carries no sequence: only its epoch is checked, and a
                // marker's coordinator epoch.
                let coordinator_epoch =
                    control_marker(&header, &batches[batch_at..]).map_or(-1, |(_, epoch)| epoch);
                view.check_marker(header.producer_id, header.producer_epoch, coordinator_epoch)
                    .map_err(LogError::Sequence)?;
                continue;
            }
            match view.check(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.last_sequence(),
            ) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate {
                    first_offset,
                    last_offset,
                } if single => {
                    return Ok(Some(AppendInfo {
                        base_offset: first_offset,
                        last_offset,
                        max_timestamp: header.max_timestamp,
                        batches: 1,
                        size_bytes: header.size_bytes,
                        duplicate: true,
                        log_append_time_ms: -1,
                    }));
                }
                SequenceCheck::Duplicate { .. } => {
                    return Err(LogError::Sequence(
                        sluice_core::ErrorCode::DuplicateSequenceNumber,
                    ))
                }
                SequenceCheck::Reject(code) => return Err(LogError::Sequence(code)),
            }
            if at < batches.len() {
                // Later batches of this append must follow this one.
                let scratch = scratch.get_or_insert_with(|| table.clone());
                producers::record_batch(scratch, &header, &batches[batch_at..], 0);
            }
        }
        Ok(None)
    }

    /// What opening found and repaired.
    pub fn open_report(&self) -> &OpenReport {
        &self.open_report
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> std::cell::Ref<'_, LogConfig> {
        self.config.borrow()
    }

    /// How far the active segment's file is grown ahead of its writes:
    /// only where every acknowledged append is synced ([`Preallocate`]
    /// says why).
    fn preallocate(&self) -> Preallocate {
        let config = self.config.borrow();
        if config.flush != FlushPolicy::Always {
            return Preallocate::NONE;
        }
        Preallocate {
            step: config.preallocate_bytes,
            limit: config.segment_bytes,
        }
    }

    /// Bytes between sparse index entries (fixed at open).
    fn index_interval_bytes(&self) -> u32 {
        self.config.borrow().index_interval_bytes
    }

    /// Largest index file (fixed at open).
    fn segment_index_bytes(&self) -> u32 {
        self.config.borrow().segment_index_bytes
    }

    /// Applies changed settings (a topic's configs altered at run time):
    /// from the next append, roll, retention pass and cleaning pass on.
    /// The settings fixed at open (the flush policy, the index sizes, the
    /// write buffer) keep their values.
    pub fn set_config(&self, config: LogConfig) {
        let mut current = self.config.borrow_mut();
        let kept = LogConfig {
            flush: current.flush,
            index_interval_bytes: current.index_interval_bytes,
            segment_index_bytes: current.segment_index_bytes,
            write_buffer_bytes: current.write_buffer_bytes,
            ..config
        };
        if kept.validate().is_ok() {
            *current = kept;
        }
    }
    /// First offset readers may see.
    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset.get()
    }
    /// Offset the next appended record will get.
    /// The last stable offset under high watermark `hw`: where a
    /// read_committed consumer stops ([`sluice_core::txn::partition`]).
    pub fn last_stable_offset(&self, hw: Offset) -> Offset {
        self.producers
            .borrow_mut()
            .txns_mut()
            .last_stable_offset(hw)
    }

    /// Every producer the partition remembers, with its open transaction's
    /// first offset (DescribeProducers).
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        let table = self.producers.borrow();
        let open: std::collections::BTreeMap<i64, Offset> = table.txns().open().collect();
        let mut out: Vec<ActiveProducer> = table
            .entries()
            .map(|(producer_id, e)| ActiveProducer {
                producer_id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_sequence),
                last_timestamp_ms: e.last_append_ms,
                coordinator_epoch: e.coordinator_epoch,
                txn_start_offset: open.get(&producer_id).copied().unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// How many aborted transactions are held in memory (those whose
    /// markers are in the active segment).
    pub fn aborted_in_memory(&self) -> usize {
        self.producers.borrow().txns().aborted_len()
    }

    /// The aborted transactions a read of `[from, to)` overlaps, for a
    /// read_committed Fetch's answer.
    ///
    /// Sealed segments' are read from their transaction indexes, from the
    /// segment that holds `from` on, until an entry shows that no later
    /// marker can concern offsets below `to` (Kafka's early stop); the
    /// active segment's are in memory. A roll (or a truncation) while the
    /// files are read moves entries between memory and files: the read
    /// starts again then, so none is missed.
    pub async fn aborted_between(&self, from: Offset, to: Offset) -> LogResult<Vec<AbortedTxn>> {
        'again: loop {
            let (sealed, active_base) = {
                let segments = self.segments.borrow();
                let first = segments
                    .partition_point(|s| s.borrow().base_offset <= from)
                    .saturating_sub(1);
                let last = segments.len().saturating_sub(1);
                let active_base = segments.last().map_or(0, |s| s.borrow().base_offset);
                (segments[first.min(last)..last].to_vec(), active_base)
            };
            let mut out = Vec::new();
            for seg in sealed {
                let path = seg.borrow().paths.txn_index.clone();
                // A segment retention removed meanwhile has none: its
                // records are gone too.
                let entries = txn_index::read(&self.storage, &path)
                    .await?
                    .unwrap_or_default();
                let mut complete = false;
                for t in entries {
                    if t.overlaps(from, to) {
                        out.push(t);
                    }
                    complete |= t.completes_reads_below(to);
                }
                if complete {
                    return Ok(out);
                }
            }
            if self.active().borrow().base_offset != active_base {
                continue 'again;
            }
            out.extend(
                self.producers
                    .borrow()
                    .txns()
                    .aborted_between(from.max(active_base), to),
            );
            return Ok(out);
        }
    }

    pub fn log_end_offset(&self) -> Offset {
        self.active().borrow().next_offset
    }
    /// What this log did since it was opened.
    pub fn stats(&self) -> LogStats {
        *self.stats.borrow()
    }
    /// Every offset below this has been fdatasync'd.
    pub fn durable_offset(&self) -> Offset {
        self.durable_offset.get()
    }
    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments
            .borrow()
            .iter()
            .map(|s| s.borrow().size_bytes)
            .sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.borrow().len()
    }
    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<Offset> {
        self.segments
            .borrow()
            .iter()
            .map(|s| s.borrow().base_offset)
            .collect()
    }

    fn active(&self) -> SegmentCell<S> {
        self.segments
            .borrow()
            .last()
            .expect("a log always has a segment")
            .clone()
    }

    fn check_writable(&self) -> LogResult<()> {
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        if self.offline.get() {
            return Err(LogError::Offline);
        }
        Ok(())
    }

    /// True once a storage error took the log offline: it accepts no
    /// appends and serves no reads until it is opened again.
    pub fn is_offline(&self) -> bool {
        self.offline.get()
    }

    /// True while the disk is full: appends get a storage error; reads go on.
    pub fn is_storage_full(&self) -> bool {
        self.storage_full.get()
    }

    /// Marks the log offline after a failed write or sync. A write that
    /// failed for want of space is the exception: nothing it covered counts
    /// as written, so it is safe to retry, and the log stays online for
    /// reads and retries at the next append (a failed fdatasync is never
    /// retried: after it the page state is unknown).
    fn fail<T>(&self, e: LogError) -> LogResult<T> {
        if e.is_storage_full_write() {
            if !self.storage_full.replace(true) {
                tracing::warn!(dir = ?self.dir, error = %e, "disk full; produce refused until a write succeeds");
            }
            return Err(e);
        }
        if matches!(e, LogError::Io { .. }) {
            tracing::error!(dir = ?self.dir, error = %e, "storage error; partition log goes offline");
            self.offline.set(true);
        }
        Err(e)
    }

    /// While the disk is full: writes out what is pending; `Ok` once that
    /// succeeds (space came back), the storage error while it does not.
    async fn retry_after_storage_full(&self) -> LogResult<()> {
        if !self.storage_full.get() {
            return Ok(());
        }
        let _permit = self
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        self.check_writable()?;
        if !self.storage_full.get() {
            return Ok(());
        }
        // The spare kept for the next roll is the first space to give back.
        self.drop_spare().await?;
        let active = self.active();
        if let Err(e) = Segment::write_out(&active, true, self.preallocate()).await {
            return self.fail(e);
        }
        self.storage_full.set(false);
        tracing::info!(dir = ?self.dir, "disk has space again; produce resumes");
        Ok(())
    }

    /// Rolls the active segment first when `total` bytes holding `records`
    /// offsets from the log end would not fit it (or it is too old);
    /// re-checks after every wait, since other appends may run meanwhile.
    async fn roll_for(&self, total: usize, records: i64, now_ms: i64) -> LogResult<()> {
        while self.roll_due(total, records, now_ms) {
            let _permit = self
                .io_lock
                .acquire_permit(1)
                .await
                .map_err(|_| LogError::Closed)?;
            self.check_writable()?;
            if self.roll_due(total, records, now_ms) {
                if let Err(e) = self.roll(now_ms).await {
                    return self.fail(e);
                }
            }
        }
        Ok(())
    }

    /// True when `total` bytes holding `records` offsets from the log end
    /// do not fit the active segment, or it is older than `segment.ms`.
    fn roll_due(&self, total: usize, records: i64, now_ms: i64) -> bool {
        let active = self.active();
        let seg = active.borrow();
        seg.is_full_for(
            total as u64,
            self.log_end_offset() + records - 1,
            self.config.borrow().segment_bytes,
        ) || (seg.size_bytes > 0
            && now_ms - seg.created_ms >= self.config.borrow().segment_ms as i64)
            || (seg.size_bytes > 0
                && self.config.borrow().cleanup_policy.compacts()
                && now_ms.saturating_sub(seg.created_ms)
                    >= self.config.borrow().max_compaction_lag_ms)
    }

    /// Validates `batches` (one or more whole v2 batches, as a produce
    /// request carries them), assigns their offsets and leader epoch in place
    /// and appends them. The bytes are in memory (and in the batch cache)
    /// when this returns, not yet durable: call [`PartitionLog::flush`].
    pub async fn append(
        &self,
        batches: BytesMut,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> LogResult<AppendInfo> {
        self.append_from(batches, None, leader_epoch, now_ms).await
    }

    /// [`PartitionLog::append`] of batches cut from `source`, a larger
    /// buffer they keep alive (a produce request's frame): the batch cache
    /// and the write buffer count that buffer, not only the batches.
    pub async fn append_from(
        &self,
        batches: BytesMut,
        source: Option<SourceBuffer>,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> LogResult<AppendInfo> {
        self.append_as(batches, source, leader_epoch, now_ms, Origin::Client, None)
            .await
    }

    /// True when `batches` hold a transactional data batch whose producer
    /// has no transaction open here at the batch's epoch: its first write
    /// in the partition in this transaction, which the leader verifies
    /// with the transaction coordinator first
    /// ([`PartitionLog::begin_txn_verification`]). A transaction open at
    /// an older epoch is the last one, its marker still due (under
    /// transaction version 2 the next transaction's first write can come
    /// first): the write is not in it. The producer id.
    pub fn txn_to_verify(&self, batches: &[u8]) -> Option<i64> {
        let header = BatchHeader::peek(batches).ok()?;
        let first_at_its_epoch = || match self.producers.borrow().open_txn_epoch(header.producer_id)
        {
            None => true,
            Some(open) => open < header.producer_epoch,
        };
        (header.is_transactional()
            && !header.is_control()
            && header.producer_id >= 0
            && first_at_its_epoch())
        .then_some(header.producer_id)
    }

    /// Starts verifying a transactional first write of `producer_id` at
    /// `epoch`: the guard to append it with
    /// ([`PartitionLog::append_verified`]), which holds until a marker for
    /// the producer is written, sparing the one that ends the producer's
    /// older transaction when one is open here now.
    pub fn begin_txn_verification(&self, producer_id: i64, epoch: i16) -> VerificationGuard {
        let older_txn_open = self
            .producers
            .borrow()
            .open_txn_epoch(producer_id)
            .is_some_and(|open| open < epoch);
        self.verifications
            .borrow_mut()
            .begin(producer_id, older_txn_open)
    }

    /// Ends a verification whose write will not be appended (refused by
    /// the coordinator, or its caller gone).
    pub fn end_txn_verification(&self, guard: VerificationGuard) {
        self.verifications.borrow_mut().end(guard);
    }

    /// [`PartitionLog::append_from`] of a verified transactional first
    /// write: refused with INVALID_TXN_STATE, nothing written, when a
    /// marker for its producer came since the verification began (its
    /// transaction ended: appending would open one nobody will end).
    pub async fn append_verified(
        &self,
        batches: BytesMut,
        source: Option<SourceBuffer>,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
        guard: VerificationGuard,
    ) -> LogResult<AppendInfo> {
        let appended = self
            .append_as(
                batches,
                source,
                leader_epoch,
                now_ms,
                Origin::Client,
                Some(guard),
            )
            .await;
        self.end_txn_verification(guard);
        appended
    }

    /// Appends a transaction marker (a WriteTxnMarkers from the transaction
    /// coordinator) as a leader in `leader_epoch`. A marker older than its
    /// producer's epoch is refused (INVALID_PRODUCER_EPOCH) and nothing is
    /// written.
    pub async fn append_marker(
        &self,
        marker: &Marker,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> LogResult<AppendInfo> {
        let batch = BytesMut::from(&marker.to_batch(now_ms)[..]);
        self.append_coordinator(batch, leader_epoch, now_ms).await
    }

    /// Appends batches a coordinator wrote (its records, a transaction's
    /// offsets in the producer's name, markers): control batches are
    /// allowed and producer sequences are not checked (a coordinator's
    /// batches carry none), only producer epochs, as Kafka treats its
    /// coordinator's appends.
    pub async fn append_coordinator(
        &self,
        batches: BytesMut,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> LogResult<AppendInfo> {
        self.append_as(
            batches,
            None,
            leader_epoch,
            now_ms,
            Origin::Coordinator,
            None,
        )
        .await
    }

    async fn append_as(
        &self,
        mut batches: BytesMut,
        source: Option<SourceBuffer>,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
        origin: Origin,
        verified: Option<VerificationGuard>,
    ) -> LogResult<AppendInfo> {
        self.check_writable()?;
        // On a full disk nothing more is buffered: what is pending must be
        // written first, so memory does not grow while the disk is full.
        self.retry_after_storage_full().await?;
        // Check every batch before touching anything: a bad batch anywhere
        // rejects the whole append and nothing is written.
        let mut records = 0i64;
        let mut count = 0usize;
        let mut max_timestamp = -1i64;
        let mut at = 0usize;
        if batches.is_empty() {
            return Err(BatchError::InvalidRecord("no record batches").into());
        }
        let compression_type = self.config.borrow().compression_type;
        if let CompressionType::Codec(codec) = compression_type {
            batches = recompressed(batches, codec)?;
        }
        while at < batches.len() {
            let size = peek_batch_size(&batches[at..])?;
            if size > batches.len() - at {
                return Err(BatchError::Truncated {
                    needed: size,
                    available: batches.len() - at,
                }
                .into());
            }
            if size > self.config.borrow().max_message_bytes as usize {
                return Err(LogError::MessageTooLarge {
                    size_bytes: size,
                    max_bytes: self.config.borrow().max_message_bytes,
                });
            }
            let header = check_batch(&batches[at..at + size])?;
            if header.is_control() && origin == Origin::Client {
                // Kafka's rule: only the transaction coordinator ends a
                // transaction.
                return Err(BatchError::InvalidRecord(
                    "clients are not allowed to write control records",
                )
                .into());
            }
            if header.is_transactional() && header.producer_id < 0 {
                return Err(BatchError::InvalidRecord(
                    "a transactional batch without a producer id",
                )
                .into());
            }
            if self.config.borrow().cleanup_policy.compacts() {
                clean::check_keys(&batches[at..at + size])?;
            }
            self.check_timestamps(&header, now_ms)?;
            records += header.records_count as i64;
            max_timestamp = max_timestamp.max(header.max_timestamp);
            count += 1;
            at += size;
        }
        let total = batches.len();
        if total as u64 > self.config.borrow().segment_bytes {
            return Err(LogError::RecordListTooLarge {
                size_bytes: total,
                max_bytes: self.config.borrow().segment_bytes,
            });
        }

        self.roll_for(total, records, now_ms).await?;

        // Check producer sequences, assign offsets and append, with no await
        // in between, so no other append can slip between check and record
        // (nor a marker between a verification's last check and the write).
        if let Some(producer_id) = self.txn_to_verify(&batches) {
            let broken = |guard: VerificationGuard| {
                producer_id != guard.producer_id || !self.verifications.borrow().holds(guard)
            };
            if verified.is_some_and(broken) {
                return Err(LogError::Sequence(sluice_core::ErrorCode::InvalidTxnState));
            }
            // A transaction open here at an older epoch: its marker is
            // still due, and the write would join that transaction. The
            // producer tries again.
            if self.producers.borrow().txns().is_open(producer_id) {
                return Err(LogError::Sequence(
                    sluice_core::ErrorCode::ConcurrentTransactions,
                ));
            }
        }
        if let Some(outcome) = self.check_sequences(&batches, origin)? {
            return Ok(outcome);
        }
        let active = self.active();
        let base_offset = self.log_end_offset();
        // Offsets and epoch lie outside the CRC: the batches checked above
        // stay valid, so their headers are only re-read, never re-hashed.
        let mut headers = Vec::with_capacity(count);
        let mut next = base_offset;
        let mut at = 0usize;
        let log_append_time =
            self.config.borrow().message_timestamp_type == TimestampType::LogAppendTime;
        while at < total {
            let size = peek_batch_size(&batches[at..]).expect("checked above");
            assign_in_place(&mut batches[at..at + size], next, leader_epoch);
            if log_append_time {
                // The one case where the broker re-hashes a batch, as Kafka.
                stamp_log_append_time(&mut batches[at..at + size], now_ms);
            }
            let header = BatchHeader::peek(&batches[at..]).expect("checked above");
            next = header.last_offset() + 1;
            headers.push((at, header));
            at += size;
        }
        let frozen = batches.freeze();
        self.store(&active, &frozen, headers, now_ms, source);
        let info = AppendInfo {
            base_offset,
            last_offset: next - 1,
            max_timestamp: if log_append_time {
                now_ms
            } else {
                max_timestamp
            },
            batches: count,
            size_bytes: total,
            duplicate: false,
            log_append_time_ms: if log_append_time { now_ms } else { -1 },
        };

        self.bound_write_buffer().await?;
        self.stats.borrow_mut().appends += 1;
        Ok(info)
    }

    /// Kafka's timestamp bounds for a CreateTime batch: its first record no
    /// earlier than `message.timestamp.before.max.ms` before the broker's
    /// time, its latest no later than `after.max.ms` after it.
    fn check_timestamps(&self, header: &BatchHeader, now_ms: i64) -> LogResult<()> {
        let config = self.config.borrow();
        if config.message_timestamp_type == TimestampType::LogAppendTime {
            return Ok(());
        }
        let earliest = now_ms.saturating_sub(config.message_timestamp_before_max_ms);
        let latest = now_ms.saturating_add(config.message_timestamp_after_max_ms);
        if header.base_timestamp < earliest {
            return Err(LogError::InvalidTimestamp(format!(
                "Timestamp {} of a batch is out of range. The timestamp should be within [{earliest}, {latest}]",
                header.base_timestamp
            )));
        }
        if header.max_timestamp > latest {
            return Err(LogError::InvalidTimestamp(format!(
                "Timestamp {} of a batch is out of range. The timestamp should be within [{earliest}, {latest}]",
                header.max_timestamp
            )));
        }
        Ok(())
    }

    /// Puts checked batches (slices of `frozen`, offsets assigned) in the
    /// batch cache, the producer table, the epoch cache and the active
    /// segment. No await: callers keep it together with their checks.
    /// `source` is the buffer `frozen` was cut from, if it still lies in it
    /// (recompression makes new batches).
    fn store(
        &self,
        active: &SegmentCell<S>,
        frozen: &Bytes,
        headers: Vec<(usize, BatchHeader)>,
        now_ms: i64,
        source: Option<SourceBuffer>,
    ) {
        let source = source.filter(|s| {
            let at = frozen.as_ptr() as usize;
            at >= s.id && at - s.id + frozen.len() <= s.len
        });
        // What the source holds beyond these batches, charged once to the
        // write buffer with the first of them.
        let mut beyond = source.map_or(0, |s| (s.len - frozen.len()) as u64);
        let mut seg = active.borrow_mut();
        let mut stored = 0u64;
        for (at, header) in headers {
            let bytes = frozen.slice(at..at + header.size_bytes);
            if let Some((cache, key)) = &self.cache {
                cache.borrow_mut().insert(
                    *key,
                    header.base_offset,
                    header.last_offset(),
                    bytes.clone(),
                    source,
                );
            }
            producers::record_batch(&mut self.producers.borrow_mut(), &header, &bytes, now_ms);
            if header.is_control() {
                self.verifications.borrow_mut().clear(header.producer_id);
            }
            self.epochs
                .borrow_mut()
                .assign(header.partition_leader_epoch, header.base_offset);
            stored += header.size_bytes as u64;
            let charged = header.size_bytes as u64 + std::mem::take(&mut beyond);
            seg.append_charged(header, bytes, self.index_interval_bytes(), charged);
        }
        self.bytes_since_producer_snapshot
            .set(self.bytes_since_producer_snapshot.get() + stored);
    }

    /// Bounds the write buffer: writes out (without syncing) once it is full.
    async fn bound_write_buffer(&self) -> LogResult<()> {
        let active = self.active();
        if active.borrow().unwritten_bytes() >= self.config.borrow().write_buffer_bytes as u64 {
            let _permit = self
                .io_lock
                .acquire_permit(1)
                .await
                .map_err(|_| LogError::Closed)?;
            if !self.offline.get() {
                let active = self.active();
                if let Err(e) = Segment::write_out(&active, false, self.preallocate()).await {
                    return self.fail(e);
                }
            }
        }
        Ok(())
    }

    /// Makes everything appended before this call durable. Callers that
    /// arrive while a sync is in flight share the next one (group commit).
    /// Returns the durable offset.
    pub async fn flush(&self) -> LogResult<Offset> {
        self.stats.borrow_mut().flushes += 1;
        let target = self.log_end_offset();
        if self.durable_offset.get() >= target {
            return Ok(self.durable_offset.get());
        }
        let _permit = self
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        if self.durable_offset.get() >= target {
            return Ok(self.durable_offset.get());
        }
        self.check_writable()?;
        let upto = self.log_end_offset();
        let snapshot = (self.bytes_since_producer_snapshot.get()
            >= self.config.borrow().producer_snapshot_interval_bytes)
            .then(|| self.producer_snapshot_now());
        let active = self.active();
        if let Err(e) = Segment::write_out(&active, true, self.preallocate()).await {
            return self.fail(e);
        }
        self.storage_full.set(false);
        self.stats.borrow_mut().flush_syncs += 1;
        if let Err(e) = Segment::sync(&active).await {
            return self.fail(e);
        }
        self.durable_offset.set(self.durable_offset.get().max(upto));
        if let Some(snapshot) = snapshot {
            if let Err(e) = self.write_producer_snapshot(&snapshot).await {
                return self.fail(e);
            }
        }
        Ok(self.durable_offset.get())
    }

    /// Seals the active segment and starts a new one at the log end offset.
    /// Caller holds the I/O lock.
    async fn roll(&self, now_ms: i64) -> LogResult<()> {
        let active = self.active();
        Segment::seal(&active).await?;
        let (base, next, txn_index_path) = {
            let a = active.borrow();
            (a.base_offset, a.next_offset, a.paths.txn_index.clone())
        };
        // Everything in the sealed segment is synced now; its aborted
        // transactions go to its index before the next segment exists.
        self.durable_offset.set(self.durable_offset.get().max(next));
        let aborted = self
            .producers
            .borrow()
            .txns()
            .aborted_with_markers_in(base, next);
        txn_index::write(&self.storage, &txn_index_path, &aborted).await?;
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(LogError::io("syncing directory", &self.dir))?;
        let seg = self.create_segment(next, now_ms).await?;
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(LogError::io("syncing directory", &self.dir))?;
        // One step, no await: a reader sees the sealed segment's entries
        // either in memory or in its file.
        self.segments.borrow_mut().push(Rc::new(RefCell::new(seg)));
        self.producers.borrow_mut().txns_mut().forget_before(next);
        let snapshot = self.producer_snapshot_now();
        self.write_producer_snapshot(&snapshot).await?;
        tracing::debug!(dir = ?self.dir, base_offset = next, "rolled a new segment");
        Ok(())
    }

    /// A new active segment at `base`: the spare file renamed, if there is
    /// one and `log.recycle_segments` is on, else a new file. Durable with
    /// the caller's directory sync.
    async fn create_segment(&self, base: Offset, now_ms: i64) -> LogResult<Segment<S>> {
        if self.has_spare.get() && self.config.borrow().recycle_segments {
            self.has_spare.set(false);
            let spare = self.dir.join(SPARE_FILE);
            let index_bytes = self.segment_index_bytes();
            match Segment::recycle(&self.storage, &self.dir, &spare, base, index_bytes, now_ms)
                .await
            {
                Ok(seg) => {
                    self.stats.borrow_mut().segments_recycled += 1;
                    return Ok(seg);
                }
                // A new file will do. A marker the failed rename left
                // beside it only makes recovery count bytes past its data
                // as old ones; open removes it once the segment is sealed.
                Err(e) => {
                    tracing::warn!(dir = ?self.dir, error = %e, "could not reuse the spare segment file")
                }
            }
        }
        Segment::create(
            &self.storage,
            &self.dir,
            base,
            self.segment_index_bytes(),
            now_ms,
        )
        .await
    }

    /// Removes the spare file, if the log has one.
    pub(super) async fn drop_spare(&self) -> LogResult<()> {
        if self.has_spare.replace(false) {
            crate::segment::remove_if_present(&self.storage, &self.dir.join(SPARE_FILE)).await?;
        }
        Ok(())
    }

    /// Rolls the active segment now if it holds any data.
    pub async fn roll_now(&self, now_ms: i64) -> LogResult<()> {
        self.check_writable()?;
        let _permit = self
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        if self.active().borrow().size_bytes == 0 {
            return Ok(());
        }
        match self.roll(now_ms).await {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }

    /// Whole batches starting with the one that holds `from_offset`, up to
    /// `max_bytes` in total but at least one batch when one exists, and only
    /// batches that end before `upto` (pass the high watermark or
    /// [`PartitionLog::log_end_offset`]). Empty at the end of the log;
    /// `OffsetOutOfRange` below the log start or above the log end. Batches
    /// read from disk stay in the read buffer (no copy); see [`ReadChunk`].
    pub async fn read_chunks(
        &self,
        from_offset: Offset,
        max_bytes: usize,
        upto: Offset,
    ) -> LogResult<Vec<ReadChunk<ReadBufOf<S>>>> {
        self.read_chunks_ahead(from_offset, max_bytes, upto, max_bytes)
            .await
    }

    /// [`PartitionLog::read_chunks`] for a reader whose next read will want
    /// about `next_bytes` (a consumer's partition budget, where this read
    /// may have had less of the Fetch's budget left): what a read-ahead
    /// reads, when one starts (see [`crate::read_ahead`]).
    pub async fn read_chunks_ahead(
        &self,
        from_offset: Offset,
        max_bytes: usize,
        upto: Offset,
        next_bytes: usize,
    ) -> LogResult<Vec<ReadChunk<ReadBufOf<S>>>> {
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if from_offset < start || from_offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset: from_offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        let upto = upto.min(end);
        if from_offset >= upto {
            return Ok(Vec::new());
        }
        if let Some((cache, key)) = &self.cache {
            if let Some(hit) = cache.borrow_mut().read(*key, from_offset, max_bytes, upto) {
                return Ok(hit.into_iter().map(ReadChunk::Shared).collect());
            }
        }
        let mut from = from_offset;
        loop {
            let Some(seg) = self.segment_for(from) else {
                return Ok(Vec::new());
            };
            Segment::ensure_indexes(&seg, &self.storage, self.index_interval_bytes()).await?;
            let generation = self.read_ahead.generation();
            let resume = self
                .read_ahead
                .take(&seg, from)
                .await
                .map(|(position, chunk)| Resume { position, chunk });
            let read = Segment::read_from(&seg, from, max_bytes, upto, resume).await?;
            let out = read.chunks;
            if let Some(end) = read.end {
                // More of the segment waits on disk: read it now, while
                // this answer goes out and the next Fetch comes, starting
                // with the whole batches this read did not take.
                let read_bytes = next_bytes
                    .max(end.next_read_bytes)
                    .max(self.read_ahead.min_read_bytes())
                    .min(READ_AHEAD_MAX_BYTES);
                let stop = Stop {
                    next_offset: end.next_offset,
                    position: end.position,
                    written_end: end.position + end.written_bytes,
                    read_bytes,
                };
                let rest = read.rest.map(|r| (r.bytes, r.buffer_bytes));
                self.read_ahead.follow(&seg, generation, stop, rest);
            }
            let seg_end = seg.borrow().next_offset;
            // An empty segment (or one emptied by a race with truncation):
            // move on to the next one.
            if !out.is_empty() || seg_end >= upto || seg_end <= from {
                return Ok(out);
            }
            from = seg_end;
        }
    }

    /// [`PartitionLog::read_chunks`] as `Bytes` that may cross threads (one
    /// copy of what came from disk).
    pub async fn read(
        &self,
        from_offset: Offset,
        max_bytes: usize,
        upto: Offset,
    ) -> LogResult<Vec<Bytes>> {
        let chunks = self.read_chunks(from_offset, max_bytes, upto).await?;
        Ok(chunks.into_iter().map(ReadChunk::into_bytes).collect())
    }

    /// The segment whose offsets include `offset` (the last one with a base
    /// at or below it).
    fn segment_for(&self, offset: Offset) -> Option<SegmentCell<S>> {
        let segments = self.segments.borrow();
        let i = segments.partition_point(|s| s.borrow().base_offset <= offset);
        i.checked_sub(1).map(|i| segments[i].clone())
    }

    async fn write_checkpoint(&self) -> LogResult<()> {
        let value = PartitionCheckpoint {
            log_start_offset: self.log_start_offset(),
        };
        let path = self.dir.join(CHECKPOINT_FILE);
        checkpoint::write_unless_held(
            &self.storage,
            &path,
            &value,
            &self.checkpoint_on_disk,
            false,
        )
        .await
    }

    /// Flushes everything, writes the active segment's indexes and the
    /// checkpoint, and closes every file. The log refuses work afterwards.
    pub async fn close(&self) -> LogResult<()> {
        if self.closed.get() {
            return Ok(());
        }
        let permit = self
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        self.closed.set(true);
        self.read_ahead.clear();
        if !self.offline.get() {
            let active = self.active();
            Segment::write_out(&active, true, self.preallocate()).await?;
            Segment::trim_preallocated(&active).await?;
            Segment::sync(&active).await?;
            Segment::persist_indexes_of(&active, true).await?;
            self.durable_offset.set(self.log_end_offset());
            self.write_checkpoint().await?;
            self.snapshot_producers().await?;
        }
        // A closed broker holds no space for segments to come.
        self.drop_spare().await?;
        let all: Vec<_> = self.segments.borrow().clone();
        for seg in all {
            // Other tasks may still hold the segment; its file closes when
            // the last reference drops.
            if let Ok(s) = Rc::try_unwrap(seg).map(RefCell::into_inner) {
                s.close().await?;
            }
        }
        if let Some((cache, key)) = &self.cache {
            cache.borrow_mut().unregister(*key);
        }
        drop(permit);
        self.io_lock.close();
        Ok(())
    }
}
