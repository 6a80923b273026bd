//! The metadata log format from before the controller quorum: committed
//! metadata commands and snapshots of the state. Production only opens it
//! to move an older data directory's metadata into the quorum
//! (`Controller::migrate_legacy`); writing it stays for the tests that make
//! such directories.
//!
//! Owns: persistence of [`LegacyCommand`]s on the controller shard. Each
//! command is one record (JSON, so the log is readable with any Kafka tool's
//! dump) in a partition log of its own, appended and fdatasync'd before the
//! command is applied anywhere. Every so often (`shard.
//! metadata_snapshot_commands` commands, and at least as many bytes of
//! commands as the last snapshot took) the whole [`LegacyState`] is
//! written as one record keyed `snapshot` at the start of a new segment,
//! synced, and the log start moved to it, so retention deletes every
//! segment before it: the log holds one snapshot and the commands since. Opening replays
//! from the log start: a snapshot record replaces the state, a command
//! applies to it.
//!
//! Invariants: the state after replay is the state after every committed
//! command, whether or not a snapshot was taken, and however a crash cut a
//! snapshot short (the log start moves only once the snapshot is durable;
//! a snapshot replayed after the commands it covers replaces the state
//! with the same state). Start-up reads at most one snapshot and the
//! commands after it.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;

use bytes::BytesMut;
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::config::LogConfig;
use sluice_core::metadata::legacy::{LegacyCommand, LegacyState};
use sluice_core::records::RecordIter;
use sluice_log::LogError;

use crate::store::{Disk, PartitionStore};

/// Key of a snapshot record (commands have none).
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// What the last opening replayed (for start-up logs and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// A snapshot record was found and installed.
    pub snapshot: bool,
    /// Commands applied after it (or from the start without one).
    pub commands: u64,
    /// Bytes of records read.
    pub bytes: u64,
}

/// The committed metadata and the log it came from.
pub struct MetadataLog {
    log: PartitionStore,
    state: RefCell<LegacyState>,
    /// Commands between snapshots (0: never).
    snapshot_commands: u64,
    commands_since_snapshot: Cell<u64>,
    bytes_since_snapshot: Cell<u64>,
    last_snapshot_bytes: Cell<u64>,
    replayed: Replayed,
}

fn corrupt(log: &PartitionStore, reason: String) -> LogError {
    LogError::Corrupt {
        path: log.dir().to_owned(),
        position: 0,
        reason,
    }
}

impl MetadataLog {
    /// Opens the log in `dir` and replays it; `snapshot_commands` is
    /// `shard.metadata_snapshot_commands`.
    pub async fn open(
        disk: &Disk,
        dir: PathBuf,
        snapshot_commands: u64,
        now_ms: i64,
    ) -> Result<MetadataLog, LogError> {
        let config = LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            // A snapshot is one record: room for a few hundred thousand
            // topics.
            max_message_bytes: 32 * 1024 * 1024,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = disk.open_log(dir.join("0"), config, None, now_ms).await?;
        let mut state = LegacyState::default();
        let mut replayed = Replayed::default();
        let end = log.log_end_offset();
        let mut next = log.log_start_offset();
        while next < end {
            let chunks = log.read(next, 1 << 20, end).await?;
            if chunks.is_empty() {
                break;
            }
            for chunk in chunks {
                replayed.bytes += chunk.len() as u64;
                for batch in BatchIter::new(chunk) {
                    let batch = batch.map_err(|e| corrupt(&log, e.to_string()))?;
                    for record in
                        RecordIter::new(&batch).map_err(|e| corrupt(&log, e.to_string()))?
                    {
                        let record = record.map_err(|e| corrupt(&log, e.to_string()))?;
                        let value = record.value.unwrap_or_default();
                        if record.key.as_deref() == Some(SNAPSHOT_KEY) {
                            state = serde_json::from_slice(&value).map_err(|e| {
                                corrupt(&log, format!("metadata snapshot {}: {e}", record.offset))
                            })?;
                            replayed.snapshot = true;
                            replayed.commands = 0;
                            continue;
                        }
                        let command: LegacyCommand =
                            serde_json::from_slice(&value).map_err(|e| {
                                corrupt(&log, format!("metadata record {}: {e}", record.offset))
                            })?;
                        if let Err(e) = state.apply(&command) {
                            // A command is committed only after it applied on
                            // the controller, so this is a bug or damage.
                            tracing::error!(offset = record.offset, error = %e, "metadata command did not replay");
                        }
                        replayed.commands += 1;
                    }
                    next = batch.next_offset();
                }
            }
        }
        tracing::info!(
            snapshot = replayed.snapshot,
            commands = replayed.commands,
            bytes = replayed.bytes,
            topics = state.topics.len(),
            "replayed the metadata log"
        );
        let log = MetadataLog {
            log,
            state: RefCell::new(state),
            snapshot_commands,
            commands_since_snapshot: Cell::new(replayed.commands),
            bytes_since_snapshot: Cell::new(replayed.bytes),
            last_snapshot_bytes: Cell::new(0),
            replayed,
        };
        // A log that grew without snapshots (an older version, or
        // snapshots off until now) is snapshotted before serving.
        if log.snapshot_due() {
            if let Err(e) = log.snapshot(now_ms).await {
                tracing::warn!(error = %e, "snapshotting the metadata log at start-up failed");
            }
        }
        Ok(log)
    }

    /// The state after every committed command.
    pub fn state(&self) -> std::cell::Ref<'_, LegacyState> {
        self.state.borrow()
    }

    /// What opening replayed.
    pub fn replayed(&self) -> Replayed {
        self.replayed
    }

    /// The log's start and end offsets (a snapshot moves the start).
    pub fn offsets(&self) -> (i64, i64) {
        (self.log.log_start_offset(), self.log.log_end_offset())
    }

    /// Makes `command` durable, then applies it to the controller's state.
    /// Refuses (with nothing written) a command that does not apply. Takes
    /// a snapshot afterwards when one is due (a failed snapshot is logged:
    /// the command is committed regardless).
    pub async fn commit(&self, command: &LegacyCommand, now_ms: i64) -> Result<(), CommitError> {
        let mut next = self.state.borrow().clone();
        next.apply(command).map_err(CommitError::Rejected)?;
        let value = serde_json::to_vec(command).expect("metadata commands serialize");
        let batch = BatchBuilder::new(now_ms).record(None, Some(&value)).build();
        self.log
            .append(BytesMut::from(&batch[..]), now_ms)
            .await
            .map_err(CommitError::Log)?;
        self.log.flush().await.map_err(CommitError::Log)?;
        *self.state.borrow_mut() = next;
        self.commands_since_snapshot
            .set(self.commands_since_snapshot.get() + 1);
        self.bytes_since_snapshot
            .set(self.bytes_since_snapshot.get() + batch.len() as u64);
        if self.snapshot_due() {
            if let Err(e) = self.snapshot(now_ms).await {
                tracing::warn!(error = %e, "snapshotting the metadata log failed; it is retried after the next commands");
            }
        }
        Ok(())
    }

    fn snapshot_due(&self) -> bool {
        self.snapshot_commands > 0
            && self.commands_since_snapshot.get() >= self.snapshot_commands
            && self.bytes_since_snapshot.get() >= self.last_snapshot_bytes.get()
    }

    /// Writes the state as one record at the start of a new segment, makes
    /// it durable, then moves the log start to it and lets retention delete
    /// every segment before it.
    async fn snapshot(&self, now_ms: i64) -> Result<(), LogError> {
        let value = serde_json::to_vec(&*self.state.borrow()).expect("metadata state serializes");
        let batch = BatchBuilder::new(now_ms)
            .record(Some(SNAPSHOT_KEY), Some(&value))
            .build();
        self.log.roll_now(now_ms).await?;
        let info = self.log.append(BytesMut::from(&batch[..]), now_ms).await?;
        self.log.flush().await?;
        self.log.set_log_start_offset(info.base_offset).await?;
        self.log.apply_retention(now_ms).await?;
        self.commands_since_snapshot.set(0);
        self.bytes_since_snapshot.set(0);
        self.last_snapshot_bytes.set(batch.len() as u64);
        tracing::info!(
            offset = info.base_offset,
            bytes = batch.len(),
            topics = self.state.borrow().topics.len(),
            "snapshotted the metadata log"
        );
        Ok(())
    }

    /// Flushes and closes the log.
    pub async fn close(&self) -> Result<(), LogError> {
        self.log.close().await
    }
}

/// Why a command was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{0}")]
    Rejected(sluice_core::metadata::MetadataError),
    #[error("metadata log: {0}")]
    Log(LogError),
}

impl CommitError {
    /// The Kafka error code for the client.
    pub fn error_code(&self) -> sluice_core::ErrorCode {
        match self {
            CommitError::Rejected(e) => e.error_code(),
            CommitError::Log(e) => e.error_code(),
        }
    }
}
