//! The log's errors and their Kafka error codes.
//!
//! Owns: [`LogError`] and its one mapping to [`ErrorCode`].

use std::io;
use std::path::PathBuf;

use sluice_core::batch::BatchError;
use sluice_core::{ErrorCode, Offset};

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A batch given to `append` is not a valid v2 batch.
    #[error("invalid batch: {0}")]
    Batch(#[from] BatchError),
    /// The requested offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: Offset,
        log_start_offset: Offset,
        log_end_offset: Offset,
    },
    /// One batch is larger than `max_message_bytes`.
    #[error("batch of {size_bytes} bytes exceeds max.message.bytes {max_bytes}")]
    MessageTooLarge { size_bytes: usize, max_bytes: u32 },
    /// One append is larger than a whole segment.
    #[error("append of {size_bytes} bytes exceeds segment.bytes {max_bytes}")]
    RecordListTooLarge { size_bytes: usize, max_bytes: u64 },
    /// A CreateTime batch's timestamp lies outside the topic's
    /// `message.timestamp.before.max.ms` / `after.max.ms` of the broker's time.
    #[error("{0}")]
    InvalidTimestamp(String),
    /// An idempotent producer's batch breaks the sequence rules
    /// (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, ...).
    #[error("producer sequence check failed: {0}")]
    Sequence(ErrorCode),
    /// The disk refused an operation.
    #[error("storage error while {context} {path:?}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Bytes on disk that recovery trusted are not valid.
    #[error("corrupt data in {path:?} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// An earlier write or sync failed; the log accepts nothing until it is
    /// reopened (a failed fsync cannot be retried safely).
    #[error("log is offline after an earlier storage error")]
    Offline,
    /// The log was closed.
    #[error("log is closed")]
    Closed,
}

impl LogError {
    /// The Kafka error code a client is answered with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            LogError::Batch(e) => e.error_code(),
            LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            LogError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            LogError::RecordListTooLarge { .. } => ErrorCode::RecordListTooLarge,
            LogError::Sequence(code) => *code,
            LogError::InvalidTimestamp(_) => ErrorCode::InvalidTimestamp,
            LogError::Io { .. } | LogError::Corrupt { .. } | LogError::Offline => {
                ErrorCode::KafkaStorageError
            }
            LogError::Closed => ErrorCode::NotLeaderOrFollower,
        }
    }

    /// A write (not a sync) that failed because the disk or the quota is
    /// full: safe to retry once there is space.
    pub fn is_storage_full_write(&self) -> bool {
        match self {
            LogError::Io {
                context: "writing",
                source,
                ..
            } => {
                matches!(source.raw_os_error(), Some(ENOSPC) | Some(EDQUOT))
                    || matches!(
                        source.kind(),
                        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                    )
            }
            _ => false,
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io {
            context,
            path,
            source,
        }
    }
}

/// Linux's "no space left on device" and "disk quota exceeded".
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

/// Result of log operations.
pub type LogResult<T> = Result<T, LogError>;
