//! The disk a shard's logs live on, chosen when the shard is made.
//!
//! Owns: [`Disk`] (glommio DMA files in production, the log crate's
//! in-memory disk under the simulator) and [`PartitionStore`], a partition
//! log on either, with the operations the shard uses. Dispatch is one
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
use sluice_core::config::LogConfig;
use sluice_core::Offset;
use sluice_log::storage::Storage;
use sluice_log::{
    AppendInfo, BatchCache, DmaStorage, LogResult, LogStats, MemoryStorage, OpenReport,
    PartitionLog, RetentionOutcome,
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
            Disk::Dma => std::fs::remove_dir_all(dir),
            Disk::Memory(disk) => {
                for name in disk.list(dir).await? {
                    disk.remove(&dir.join(name)).await?;
                }
                disk.sync_dir(dir).await
            }
        }
    }

    /// Removes an empty directory (a deleted topic's); errors are ignored
    /// by callers (it may hold another partition still).
    pub fn remove_empty_dir(&self, dir: &Path) {
        if let Disk::Dma = self {
            let _ = std::fs::remove_dir(dir);
        }
    }
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
    /// Seals the active segment and starts a new one (if it has data).
    pub async fn roll_now(&self, now_ms: i64) -> LogResult<()> {
        with_log!(self, l => l.roll_now(now_ms).await)
    }
    pub async fn flush(&self) -> LogResult<Offset> {
        with_log!(self, l => l.flush().await)
    }
    /// Whole batches from `from_offset` below `upto`, up to `max_bytes`
    /// (at least one batch), as one record set: the cached or read bytes
    /// themselves when they are one chunk, else one copy joining them.
    pub async fn read_record_set(
        &self,
        from_offset: Offset,
        max_bytes: usize,
        upto: Offset,
    ) -> LogResult<Bytes> {
        with_log!(self, l => {
            let mut chunks = l.read_chunks(from_offset, max_bytes, upto).await?;
            if chunks.len() == 1 {
                return Ok(chunks.pop().map(|c| c.into_bytes()).unwrap_or_default());
            }
            let mut joined = BytesMut::with_capacity(chunks.iter().map(|c| c.len()).sum());
            for chunk in &chunks {
                joined.extend_from_slice(chunk);
            }
            Ok(joined.freeze())
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
