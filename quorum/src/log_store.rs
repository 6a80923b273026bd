//! The Raft log of a controller voter, durable on the node's disk.
//!
//! Owns: the entries (one record per entry in a partition log of its own,
//! at the offset equal to the entry's Raft index, stamped with its term as
//! the leader epoch; the value is the entry as JSON, so the log is readable
//! with a Kafka dump tool), the vote and the last purged log id (checkpoint
//! files beside it).
//!
//! Invariants: an append is reported flushed to openraft only after its
//! fdatasync; a vote is saved (file synced, renamed, directory synced)
//! before `save_vote` returns; offset == Raft index for every entry, so a
//! truncation or a purge is a truncation or a log-start move at that
//! offset; the purged log id is durable before the log start moves past it;
//! a purge seals the active segment, so files hold about two snapshots'
//! worth of entries.

use std::cell::Cell;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::PathBuf;
use std::rc::Rc;

use bytes::BytesMut;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::config::LogConfig;
use sluice_core::records::RecordIter;
use sluice_log::checkpoint::Checkpoint;
use sluice_log::{Disk, LogError, PartitionStore};

use crate::{Controller, Entry, LogId, Vote};

/// Wall-clock milliseconds for segment timestamps (virtual in the simulator).
pub type WallClock = Rc<dyn Fn() -> i64>;

/// A JSON value in a checkpoint file: the vote.
#[derive(Debug, Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct StoredVote {
    pub json: String,
}

impl Checkpoint for StoredVote {
    const KIND: u16 = 16;
}

/// A JSON value in a checkpoint file: the last purged log id.
#[derive(Debug, Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct StoredPurged {
    pub json: String,
}

impl Checkpoint for StoredPurged {
    const KIND: u16 = 17;
}

const VOTE_FILE: &str = "vote.checkpoint";
const PURGED_FILE: &str = "purged.checkpoint";
const LOG_DIR: &str = "log";

struct Inner {
    disk: Disk,
    dir: PathBuf,
    log: PartitionStore,
    vote: Cell<Option<Vote>>,
    purged: Cell<Option<LogId>>,
    wall: WallClock,
    acks_before_sync: Cell<bool>,
}

/// A voter's Raft log, vote and purge point. Clones share it (openraft
/// reads entries through a clone while it appends through another).
#[derive(Clone)]
pub struct RaftLogStore {
    inner: Rc<Inner>,
}

fn to_io(e: LogError) -> io::Error {
    io::Error::other(e.to_string())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl RaftLogStore {
    /// Opens (recovering) the log, vote and purge point in `dir`.
    pub async fn open(disk: Disk, dir: PathBuf, wall: WallClock) -> io::Result<RaftLogStore> {
        let config = LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            // An entry carries one command; a topic of 100,000 partitions
            // is the largest.
            max_message_bytes: 8 * 1024 * 1024,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = disk
            .open_log(dir.join(LOG_DIR), config, None, wall())
            .await
            .map_err(to_io)?;
        let vote = match disk
            .read_checkpoint::<StoredVote>(&dir.join(VOTE_FILE))
            .await
            .map_err(to_io)?
        {
            Some(stored) => Some(
                serde_json::from_str(&stored.json)
                    .map_err(|e| invalid(format!("the saved vote: {e}")))?,
            ),
            None => None,
        };
        let purged = match disk
            .read_checkpoint::<StoredPurged>(&dir.join(PURGED_FILE))
            .await
            .map_err(to_io)?
        {
            Some(stored) => Some(
                serde_json::from_str(&stored.json)
                    .map_err(|e| invalid(format!("the purged log id: {e}")))?,
            ),
            None => None,
        };
        Ok(RaftLogStore {
            inner: Rc::new(Inner {
                disk,
                dir,
                log,
                vote: Cell::new(vote),
                purged: Cell::new(purged),
                wall,
                acks_before_sync: Cell::new(false),
            }),
        })
    }

    /// A deliberately broken durability rule, for the simulator's proof that
    /// it catches lost acknowledged writes: appends are reported durable
    /// without an fdatasync. Production never turns it on.
    pub fn set_acks_before_sync(&self, on: bool) {
        self.inner.acks_before_sync.set(on);
    }

    /// The log's first and next offsets (Raft indexes).
    pub fn offsets(&self) -> (i64, i64) {
        (
            self.inner.log.log_start_offset(),
            self.inner.log.log_end_offset(),
        )
    }

    /// Entries with indexes in `[from, to)`, as stored.
    async fn read_entries(&self, from: u64, to: u64) -> io::Result<Vec<Entry>> {
        let log = &self.inner.log;
        let from = (from as i64).max(log.log_start_offset());
        let to = (to as i64).min(log.log_end_offset());
        let mut entries = Vec::with_capacity((to - from).max(0) as usize);
        let mut next = from;
        while next < to {
            let chunks = log.read(next, 1 << 20, to).await.map_err(to_io)?;
            if chunks.is_empty() {
                break;
            }
            for chunk in chunks {
                for batch in BatchIter::new(chunk) {
                    let batch = batch.map_err(|e| invalid(e.to_string()))?;
                    for record in RecordIter::new(&batch).map_err(|e| invalid(e.to_string()))? {
                        let record = record.map_err(|e| invalid(e.to_string()))?;
                        if record.offset < from || record.offset >= to {
                            continue;
                        }
                        let value = record.value.unwrap_or_default();
                        let entry: Entry = serde_json::from_slice(&value).map_err(|e| {
                            invalid(format!("corrupt raft log entry at {}: {e}", record.offset))
                        })?;
                        if entry.log_id.index() != record.offset as u64 {
                            return Err(invalid(format!(
                                "raft log entry {} stored at offset {}",
                                entry.log_id.index(),
                                record.offset
                            )));
                        }
                        entries.push(entry);
                    }
                    next = batch.next_offset();
                }
            }
        }
        Ok(entries)
    }

    async fn last_log_id(&self) -> io::Result<Option<LogId>> {
        let (start, end) = self.offsets();
        if end > start {
            let last = self.read_entries(end as u64 - 1, end as u64).await?;
            return Ok(last.into_iter().next().map(|e| e.log_id));
        }
        Ok(self.inner.purged.get())
    }
}

fn index_range<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(i) => i.saturating_add(1),
        Bound::Excluded(i) => *i,
        Bound::Unbounded => u64::MAX,
    };
    (from, to.min(i64::MAX as u64))
}

impl RaftLogReader<Controller> for RaftLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (from, to) = index_range(&range);
        self.read_entries(from, to).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner.vote.get())
    }
}

impl RaftLogStorage<Controller> for RaftLogStore {
    type LogReader = RaftLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<Controller>, io::Error> {
        Ok(LogState {
            last_purged_log_id: self.inner.purged.get(),
            last_log_id: self.last_log_id().await?,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let json = serde_json::to_string(vote).map_err(|e| invalid(e.to_string()))?;
        self.inner
            .disk
            .write_checkpoint(&self.inner.dir.join(VOTE_FILE), &StoredVote { json })
            .await
            .map_err(to_io)?;
        self.inner.vote.set(Some(*vote));
        Ok(())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<Controller>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let now = (self.inner.wall)();
        let mut batches = BytesMut::new();
        let mut first: Option<u64> = None;
        let mut term = 0;
        for entry in entries {
            let index = entry.log_id.index();
            first.get_or_insert(index);
            term = entry.log_id.committed_leader_id().term;
            let value = serde_json::to_vec(&entry).map_err(|e| invalid(e.to_string()))?;
            // One batch per entry: a truncation cuts at batch boundaries.
            batches.extend_from_slice(&BatchBuilder::new(now).record(None, Some(&value)).build());
        }
        let Some(first) = first else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        let end = self.inner.log.log_end_offset();
        if first as i64 != end {
            let e = invalid(format!(
                "raft log append at index {first} where the log ends at {end}"
            ));
            callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
        let result = async {
            self.inner
                .log
                .append_in_epoch(batches, None, term.min(i32::MAX as u64) as i32, now)
                .await?;
            if self.inner.acks_before_sync.get() {
                return Ok(self.inner.log.durable_offset());
            }
            self.inner.log.flush().await
        }
        .await;
        match result {
            Ok(_) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let e = to_io(e);
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index() + 1) as i64;
        if from >= self.inner.log.log_end_offset() {
            return Ok(());
        }
        let now = (self.inner.wall)();
        let end = self.inner.log.truncate_to(from, now).await.map_err(to_io)?;
        if end != from {
            return Err(invalid(format!(
                "raft log truncation after index {} left the log end at {end}",
                from - 1
            )));
        }
        self.inner.log.flush().await.map_err(to_io)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let json = serde_json::to_string(&log_id).map_err(|e| invalid(e.to_string()))?;
        self.inner
            .disk
            .write_checkpoint(&self.inner.dir.join(PURGED_FILE), &StoredPurged { json })
            .await
            .map_err(to_io)?;
        self.inner.purged.set(Some(log_id));
        let start = log_id.index() as i64 + 1;
        let log = &self.inner.log;
        if start > log.log_end_offset() {
            // A snapshot from the leader covers more than this log holds.
            log.truncate_fully_and_start_at(start, (self.inner.wall)())
                .await
                .map_err(to_io)?;
        } else {
            // Seal the active segment, so that the next purge finds it
            // wholly below the log start and deletes it: the files hold
            // the entries of about two snapshots at most.
            let now = (self.inner.wall)();
            log.roll_now(now).await.map_err(to_io)?;
            log.set_log_start_offset(start).await.map_err(to_io)?;
            log.apply_retention(now).await.map_err(to_io)?;
        }
        Ok(())
    }
}
