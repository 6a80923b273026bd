//! The metadata log: committed metadata commands, replayed at start.
//!
//! Owns: persistence of [`MetadataCommand`]s on the controller shard. Each
//! command is one record (JSON, so the log is readable with any Kafka tool's
//! dump) in a partition log of its own, appended and fdatasync'd before the
//! command is applied anywhere; opening replays every record through
//! [`MetadataState::apply`]. In a cluster the same commands become Raft
//! entries.

use std::cell::RefCell;
use std::path::PathBuf;

use bytes::BytesMut;
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::config::LogConfig;
use sluice_core::metadata::{MetadataCommand, MetadataState};
use sluice_core::records::RecordIter;
use sluice_log::LogError;

use crate::store::{Disk, PartitionStore};

/// The committed metadata and the log it came from.
pub struct MetadataLog {
    log: PartitionStore,
    state: RefCell<MetadataState>,
}

fn corrupt(log: &PartitionStore, reason: String) -> LogError {
    LogError::Corrupt {
        path: log.dir().to_owned(),
        position: 0,
        reason,
    }
}

impl MetadataLog {
    /// Opens the log in `dir` and replays it.
    pub async fn open(disk: &Disk, dir: PathBuf, now_ms: i64) -> Result<MetadataLog, LogError> {
        let config = LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = disk.open_log(dir.join("0"), config, None, now_ms).await?;
        let mut state = MetadataState::default();
        let end = log.log_end_offset();
        let mut next = log.log_start_offset();
        while next < end {
            let chunks = log.read(next, 1 << 20, end).await?;
            if chunks.is_empty() {
                break;
            }
            for chunk in chunks {
                for batch in BatchIter::new(chunk) {
                    let batch = batch.map_err(|e| corrupt(&log, e.to_string()))?;
                    for record in
                        RecordIter::new(&batch).map_err(|e| corrupt(&log, e.to_string()))?
                    {
                        let record = record.map_err(|e| corrupt(&log, e.to_string()))?;
                        let value = record.value.unwrap_or_default();
                        let command: MetadataCommand =
                            serde_json::from_slice(&value).map_err(|e| {
                                corrupt(&log, format!("metadata record {}: {e}", record.offset))
                            })?;
                        if let Err(e) = state.apply(&command) {
                            // A command is committed only after it applied on
                            // the controller, so this is a bug or damage.
                            tracing::error!(offset = record.offset, error = %e, "metadata command did not replay");
                        }
                    }
                    next = batch.next_offset();
                }
            }
        }
        tracing::info!(
            commands = state.applied,
            topics = state.topics.len(),
            "replayed the metadata log"
        );
        Ok(MetadataLog {
            log,
            state: RefCell::new(state),
        })
    }

    /// The state after every committed command.
    pub fn state(&self) -> std::cell::Ref<'_, MetadataState> {
        self.state.borrow()
    }

    /// Makes `command` durable, then applies it to the controller's state.
    /// Refuses (with nothing written) a command that does not apply.
    pub async fn commit(&self, command: &MetadataCommand, now_ms: i64) -> Result<(), CommitError> {
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
