//! The disk a shard's logs live on, chosen when the shard is made.
//!
//! Owns: [`Disk`] (glommio DMA files in production, the log crate's
//! in-memory disk under the simulator) and [`PartitionStore`], a partition
//! log on either, with the operations the shard and the controller quorum
//! use. Dispatch is one
//! `match` per call (no generic parameter spreads through the shard, the
//! groups and the Kafka handlers).
//!
//! Invariant: every byte a shard reads or writes goes through its `Disk`;
//! the simulator's crashes and faults therefore reach all of it.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::cache::SourceBuffer;
use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use sluice_core::config::LogConfig;
use sluice_core::txn::verification::VerificationGuard;
use sluice_core::Offset;

use crate::checkpoint::{self, Checkpoint};
use crate::storage::dma::off_thread;
use crate::storage::Storage;
use crate::{
    AppendInfo, BatchCache, CleanOutcome, CleanPacer, CleanPlan, DmaStorage, LogResult, LogStats,
    MemoryStorage, OpenReport, PartitionLog, RetentionOutcome,
};

/// Where a shard's files are.
#[derive(Clone)]
pub enum Disk {
    /// Real files, O_DIRECT through glommio.
    Dma,
    /// The in-memory disk (simulation and tests).
    Memory(MemoryStorage),
}

impl Disk {
    /// Opens (recovering) the partition log in `dir`.
    pub async fn open_log(
        &self,
        dir: PathBuf,
        config: LogConfig,
        cache: Option<Rc<RefCell<BatchCache>>>,
        now_ms: i64,
    ) -> LogResult<PartitionStore> {
        Ok(match self {
            Disk::Dma => PartitionStore::Dma(
                PartitionLog::open(DmaStorage, dir, config, cache, now_ms).await?,
            ),
            Disk::Memory(disk) => PartitionStore::Memory(
                PartitionLog::open(disk.clone(), dir, config, cache, now_ms).await?,
            ),
        })
    }

    /// Removes a closed partition's directory and everything in it.
    pub async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        match self {
            Disk::Dma => {
                let dir = dir.to_path_buf();
                off_thread(move || std::fs::remove_dir_all(dir)).await
            }
            Disk::Memory(disk) => {
                for file in memory_files(disk, dir).await? {
                    disk.remove(&file).await?;
                    if let Some(parent) = file.parent() {
                        disk.sync_dir(parent).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Writes a checkpoint file atomically (see [`crate::checkpoint::write`]).
    pub async fn write_checkpoint<T>(&self, path: &Path, value: &T) -> LogResult<()>
    where
        T: Checkpoint
            + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
        <T as rkyv::Archive>::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
            + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
    {
        match self {
            Disk::Dma => checkpoint::write(&DmaStorage, path, value).await,
            Disk::Memory(disk) => checkpoint::write(disk, path, value).await,
        }
    }

    /// Reads a checkpoint file: `None` when there is none.
    pub async fn read_checkpoint<T>(&self, path: &Path) -> LogResult<Option<T>>
    where
        T: Checkpoint
            + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
        <T as rkyv::Archive>::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
            + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
    {
        match self {
            Disk::Dma => checkpoint::read(&DmaStorage, path).await,
            Disk::Memory(disk) => checkpoint::read(disk, path).await,
        }
    }

    /// True when `dir` exists (on the in-memory disk, which keeps
    /// directories once made: when it holds a file at any depth).
    pub async fn dir_exists(&self, dir: &Path) -> bool {
        match self {
            Disk::Dma => {
                let dir = dir.to_path_buf();
                off_thread(move || dir.is_dir()).await
            }
            Disk::Memory(disk) => memory_files(disk, dir)
                .await
                .is_ok_and(|files| !files.is_empty()),
        }
    }

    /// Removes an empty directory (a deleted topic's); errors are ignored
    /// by callers (it may hold another partition still).
    pub async fn remove_empty_dir(&self, dir: &Path) {
        if let Disk::Dma = self {
            let dir = dir.to_path_buf();
            let _ = off_thread(move || std::fs::remove_dir(dir)).await;
        }
    }
}

/// Every file under `dir` on the in-memory disk, at any depth.
async fn memory_files(disk: &MemoryStorage, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for name in disk.list(&dir).await? {
            let path = dir.join(name);
            if disk.list(&path).await.is_ok() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// One partition's log, on whichever [`Disk`] the shard has.
pub enum PartitionStore {
    Dma(PartitionLog<DmaStorage>),
    Memory(PartitionLog<MemoryStorage>),
}

/// Runs `$body` with `$log` bound to the inner log, whatever its storage.
macro_rules! with_log {
    ($self:expr, $log:ident => $body:expr) => {
        match $self {
            PartitionStore::Dma($log) => $body,
            PartitionStore::Memory($log) => $body,
        }
    };
}

impl PartitionStore {
    pub fn open_report(&self) -> &OpenReport {
        with_log!(self, l => l.open_report())
    }
    pub fn dir(&self) -> &Path {
        with_log!(self, l => l.dir())
    }
    pub fn log_start_offset(&self) -> Offset {
        with_log!(self, l => l.log_start_offset())
    }
    pub fn log_end_offset(&self) -> Offset {
        with_log!(self, l => l.log_end_offset())
    }
    pub fn durable_offset(&self) -> Offset {
        with_log!(self, l => l.durable_offset())
    }
    pub fn size_bytes(&self) -> u64 {
        with_log!(self, l => l.size_bytes())
    }
    pub fn stats(&self) -> LogStats {
        with_log!(self, l => l.stats())
    }
    pub fn is_offline(&self) -> bool {
        with_log!(self, l => l.is_offline())
    }
    pub fn is_storage_full(&self) -> bool {
        with_log!(self, l => l.is_storage_full())
    }
    pub async fn append(&self, batches: BytesMut, now_ms: i64) -> LogResult<AppendInfo> {
        with_log!(self, l => l.append(batches, 0, now_ms).await)
    }
    /// [`PartitionStore::append`] stamping the batches with `leader_epoch`;
    /// `source` as in [`PartitionLog::append_from`].
    pub async fn append_in_epoch(
        &self,
        batches: BytesMut,
        source: Option<SourceBuffer>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> LogResult<AppendInfo> {
        with_log!(self, l => l.append_from(batches, source, leader_epoch, now_ms).await)
    }
    /// [`PartitionLog::txn_to_verify`].
    pub fn txn_to_verify(&self, batches: &[u8]) -> Option<i64> {
        with_log!(self, l => l.txn_to_verify(batches))
    }
    /// [`PartitionLog::begin_txn_verification`].
    pub fn begin_txn_verification(&self, producer_id: i64, epoch: i16) -> VerificationGuard {
        with_log!(self, l => l.begin_txn_verification(producer_id, epoch))
    }
    /// [`PartitionLog::end_txn_verification`].
    pub fn end_txn_verification(&self, guard: VerificationGuard) {
        with_log!(self, l => l.end_txn_verification(guard))
    }
    /// [`PartitionLog::append_verified`].
    pub async fn append_verified(
        &self,
        batches: BytesMut,
        source: Option<SourceBuffer>,
        leader_epoch: i32,
        now_ms: i64,
        guard: VerificationGuard,
    ) -> LogResult<AppendInfo> {
        with_log!(self, l => l.append_verified(batches, source, leader_epoch, now_ms, guard).await)
    }
    /// [`PartitionLog::append_marker`].
    pub async fn append_marker(
        &self,
        marker: &sluice_core::txn::marker::Marker,
        leader_epoch: i32,
        now_ms: i64,
    ) -> LogResult<AppendInfo> {
        with_log!(self, l => l.append_marker(marker, leader_epoch, now_ms).await)
    }
    /// [`PartitionLog::append_coordinator`].
    pub async fn append_coordinator(
        &self,
        batches: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> LogResult<AppendInfo> {
        with_log!(self, l => l.append_coordinator(batches, leader_epoch, now_ms).await)
    }
    /// [`PartitionLog::active_producers`].
    pub fn active_producers(&self) -> Vec<crate::partition::ActiveProducer> {
        with_log!(self, l => l.active_producers())
    }
    /// [`PartitionLog::last_stable_offset`].
    pub fn last_stable_offset(&self, hw: Offset) -> Offset {
        with_log!(self, l => l.last_stable_offset(hw))
    }
    /// [`PartitionLog::aborted_between`].
    pub async fn aborted_between(
        &self,
        from: Offset,
        to: Offset,
    ) -> LogResult<Vec<sluice_core::txn::partition::AbortedTxn>> {
        with_log!(self, l => l.aborted_between(from, to).await)
    }
    /// [`PartitionLog::aborted_in_memory`].
    pub fn aborted_in_memory(&self) -> usize {
        with_log!(self, l => l.aborted_in_memory())
    }
    /// [`PartitionLog::append_as_follower_from`].
    pub async fn append_as_follower(
        &self,
        batches: Bytes,
        source: Option<SourceBuffer>,
        now_ms: i64,
    ) -> LogResult<AppendInfo> {
        with_log!(self, l => l.append_as_follower_from(batches, source, now_ms).await)
    }
    /// [`PartitionLog::start_epoch`].
    pub async fn start_epoch(&self, epoch: i32) -> LogResult<()> {
        with_log!(self, l => l.start_epoch(epoch).await)
    }
    /// [`PartitionLog::leader_epochs`].
    pub fn leader_epochs(&self) -> sluice_core::replication::EpochCache {
        with_log!(self, l => l.leader_epochs())
    }
    /// [`PartitionLog::latest_epoch`].
    pub fn latest_epoch(&self) -> Option<i32> {
        with_log!(self, l => l.latest_epoch())
    }
    /// [`PartitionLog::end_offset_for_epoch`].
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, Offset) {
        with_log!(self, l => l.end_offset_for_epoch(epoch))
    }
    /// Removes every batch at or above `offset` (see [`PartitionLog::truncate_to`]).
    pub async fn truncate_to(&self, offset: Offset, now_ms: i64) -> LogResult<Offset> {
        with_log!(self, l => l.truncate_to(offset, now_ms).await)
    }
    /// Empties the log and restarts it at `offset`.
    pub async fn truncate_fully_and_start_at(
        &self,
        offset: Offset,
        now_ms: i64,
    ) -> LogResult<Offset> {
        with_log!(self, l => l.truncate_fully_and_start_at(offset, now_ms).await)
    }
    /// Seals the active segment and starts a new one (if it has data).
    pub async fn roll_now(&self, now_ms: i64) -> LogResult<()> {
        with_log!(self, l => l.roll_now(now_ms).await)
    }
    pub async fn flush(&self) -> LogResult<Offset> {
        with_log!(self, l => l.flush().await)
    }
    /// Whole batches from `from_offset` below `upto`, up to `max_bytes`
    /// (at least one batch), in the pieces the log holds them in (batch
    /// cache entries, disk reads), and the bytes copied to make them
    /// shareable (disk reads: their buffer stays on this thread).
    pub async fn read_record_pieces(
        &self,
        from_offset: Offset,
        max_bytes: usize,
        upto: Offset,
        next_bytes: usize,
    ) -> LogResult<(Vec<Bytes>, usize)> {
        with_log!(self, l => {
            let chunks = l.read_chunks_ahead(from_offset, max_bytes, upto, next_bytes).await?;
            let mut copied = 0;
            let pieces = chunks
                .into_iter()
                .map(|chunk| {
                    if chunk.is_local() {
                        copied += chunk.len();
                    }
                    chunk.into_bytes()
                })
                .collect();
            Ok((pieces, copied))
        })
    }
    pub async fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        upto: Offset,
    ) -> LogResult<Vec<Bytes>> {
        with_log!(self, l => l.read(from, max_bytes, upto).await)
    }
    pub async fn apply_retention(&self, now_ms: i64) -> LogResult<RetentionOutcome> {
        with_log!(self, l => l.apply_retention(now_ms).await)
    }
    /// What a compaction pass would cover (see [`PartitionLog::clean_plan`]).
    pub async fn clean_plan(&self, upto: Offset, now_ms: i64) -> LogResult<Option<CleanPlan>> {
        with_log!(self, l => l.clean_plan(upto, now_ms).await)
    }
    /// Runs one compaction pass (see [`PartitionLog::clean`]).
    pub async fn clean<P: CleanPacer>(
        &self,
        plan: &CleanPlan,
        map_budget_bytes: usize,
        now_ms: i64,
        pacer: &P,
    ) -> LogResult<CleanOutcome> {
        with_log!(self, l => l.clean(plan, map_budget_bytes, now_ms, pacer).await)
    }
    /// The log's settings.
    pub fn config(&self) -> LogConfig {
        with_log!(self, l => l.config().clone())
    }
    /// Applies changed settings (see [`PartitionLog::set_config`]).
    pub fn set_config(&self, config: LogConfig) {
        with_log!(self, l => l.set_config(config))
    }
    pub async fn set_log_start_offset(&self, offset: Offset) -> LogResult<Offset> {
        with_log!(self, l => l.set_log_start_offset(offset).await)
    }
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> LogResult<Option<(Offset, i64)>> {
        with_log!(self, l => l.offset_for_timestamp(timestamp).await)
    }
    pub async fn max_timestamp_offset(&self) -> LogResult<Option<(Offset, i64)>> {
        with_log!(self, l => l.max_timestamp_offset().await)
    }
    pub async fn close(&self) -> LogResult<()> {
        with_log!(self, l => l.close().await)
    }
}
