//! Small state files written atomically and validated on read.
//!
//! Owns: the checkpoint file frame and the write protocol: write a temp
//! file, fsync it, rename it over the old one, fsync the directory. A reader
//! therefore sees either the old or the new checkpoint whole, never a mix.
//! [`OnDisk`] remembers what a file holds, so a value it holds already is
//! not written again.
//!
//! Frame (big-endian): magic `SLCK`, format version u16, kind u16, payload
//! length u32, CRC-32C of the payload u32, then the rkyv payload, zero-padded
//! to an aligned size (the file is written with O_DIRECT). rkyv's validation
//! (bytecheck) runs on every read, after the CRC, so a damaged file is an
//! error, never undefined behaviour.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

use crate::error::{LogError, LogResult};
use crate::storage::transient::transient_file_turn;
use crate::storage::{align_up, AlignedBuf, Storage, StorageFile};

const MAGIC: &[u8; 4] = b"SLCK";
const FORMAT_VERSION: u16 = 1;
const FRAME_BYTES: usize = 16;
/// Largest payload a checkpoint may hold; bounds what a read allocates.
pub const CHECKPOINT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// What a partition remembers across restarts beyond its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PartitionCheckpoint {
    /// First offset readers may see (moved by retention and DeleteRecords).
    pub log_start_offset: i64,
}

/// A value that can be stored in a checkpoint file.
pub trait Checkpoint: Sized + rkyv::Archive {
    /// Distinguishes checkpoint kinds so one is never read as another.
    const KIND: u16;
}

impl Checkpoint for PartitionCheckpoint {
    const KIND: u16 = 1;
}

fn corrupt(path: &Path, reason: impl Into<String>) -> LogError {
    LogError::Corrupt {
        path: path.to_owned(),
        position: 0,
        reason: reason.into(),
    }
}

/// Encodes `value` into a checkpoint frame (unpadded).
pub fn encode<T>(value: &T) -> Vec<u8>
where
    T: Checkpoint
        + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    <T as rkyv::Archive>::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let payload = rkyv::to_bytes::<rancor::Error>(value)
        .expect("serializing a plain struct into memory cannot fail");
    let mut out = Vec::with_capacity(FRAME_BYTES + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&T::KIND.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes a checkpoint frame (trailing padding allowed).
pub fn decode<T>(bytes: &[u8]) -> Result<T, String>
where
    T: Checkpoint
        + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    <T as rkyv::Archive>::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    if bytes.len() < FRAME_BYTES || &bytes[..4] != MAGIC {
        return Err("not a checkpoint file (bad magic)".into());
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(format!("unknown checkpoint format version {version}"));
    }
    let kind = u16::from_be_bytes([bytes[6], bytes[7]]);
    if kind != T::KIND {
        return Err(format!(
            "checkpoint kind {kind} where {} was expected",
            T::KIND
        ));
    }
    let len = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let crc = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if len > CHECKPOINT_MAX_BYTES || bytes.len() < FRAME_BYTES + len {
        return Err(format!(
            "checkpoint payload length {len} does not fit the file"
        ));
    }
    let payload = &bytes[FRAME_BYTES..FRAME_BYTES + len];
    if crc32c::crc32c(payload) != crc {
        return Err("checkpoint CRC mismatch".into());
    }
    // rkyv needs the payload aligned for the archived type; one small copy.
    let mut aligned = AlignedVec::<16>::with_capacity(len);
    aligned.extend_from_slice(payload);
    rkyv::from_bytes::<T, rancor::Error>(&aligned).map_err(|e| format!("checkpoint payload: {e}"))
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `value` to `path` atomically: temp file, fsync, rename, fsync dir.
pub async fn write<S: Storage, T>(storage: &S, path: &Path, value: &T) -> LogResult<()>
where
    T: Checkpoint
        + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    <T as rkyv::Archive>::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    write_frame(storage, path, &encode(value)).await
}

/// What this process knows a checkpoint file holds, so that writing the
/// value it already holds can be skipped (a broker closing ten thousand
/// idle partitions otherwise syncs three files for each).
///
/// Invariant: `Holds(f)` only while the file's value encodes to a frame
/// of [`fingerprint`] `f` (learnt by reading it whole or by a write that
/// completed), `Absent` only while there is no file; anything in doubt
/// (a write that failed half way) is `Unknown`, which never skips.
#[derive(Debug, Default)]
pub struct OnDisk(Cell<Known>);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Known {
    #[default]
    Unknown,
    Absent,
    Holds(u64),
}

/// The fingerprint of a frame: std's 64-bit hash (SipHash) of its bytes,
/// length included. Two different values agree on it by chance with a
/// probability far below any disk's error rate.
fn fingerprint(frame: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    frame.hash(&mut hasher);
    hasher.finish()
}

/// [`read`], noting in `on_disk` what the file holds.
pub async fn read_noting<S: Storage, T>(
    storage: &S,
    path: &Path,
    on_disk: &OnDisk,
) -> LogResult<Option<T>>
where
    T: Checkpoint
        + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    <T as rkyv::Archive>::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    on_disk.0.set(Known::Unknown);
    let read = read::<S, T>(storage, path).await;
    on_disk.0.set(match &read {
        Ok(None) => Known::Absent,
        Ok(Some(value)) => Known::Holds(fingerprint(&encode(value))),
        Err(_) => Known::Unknown,
    });
    read
}

/// [`write`], unless `on_disk` says the file holds `value` already, or
/// says there is no file and `absent_reads_as_value` (the reader treats a
/// missing file as this value).
pub async fn write_unless_held<S: Storage, T>(
    storage: &S,
    path: &Path,
    value: &T,
    on_disk: &OnDisk,
    absent_reads_as_value: bool,
) -> LogResult<()>
where
    T: Checkpoint
        + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    <T as rkyv::Archive>::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let frame = encode(value);
    let fingerprint = fingerprint(&frame);
    match on_disk.0.get() {
        Known::Holds(f) if f == fingerprint => return Ok(()),
        Known::Absent if absent_reads_as_value => return Ok(()),
        _ => {}
    }
    on_disk.0.set(Known::Unknown);
    write_frame(storage, path, &frame).await?;
    on_disk.0.set(Known::Holds(fingerprint));
    Ok(())
}

/// Writes an encoded frame to `path` atomically.
async fn write_frame<S: Storage>(storage: &S, path: &Path, frame: &[u8]) -> LogResult<()> {
    let tmp = temp_path(path);
    let _turn = transient_file_turn().await;
    let file = storage
        .create(&tmp)
        .await
        .map_err(LogError::io("creating", &tmp))?;
    let mut buf = file.alloc(align_up(frame.len() as u64) as usize);
    let slice = buf.as_mut_slice();
    slice[..frame.len()].copy_from_slice(frame);
    slice[frame.len()..].fill(0);
    file.write_at(buf, 0)
        .await
        .map_err(LogError::io("writing", &tmp))?;
    file.sync().await.map_err(LogError::io("syncing", &tmp))?;
    file.close().await.map_err(LogError::io("closing", &tmp))?;
    storage
        .rename(&tmp, path)
        .await
        .map_err(LogError::io("renaming", &tmp))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    storage
        .sync_dir(dir)
        .await
        .map_err(LogError::io("syncing directory", dir))?;
    Ok(())
}

/// Reads the checkpoint at `path`: `Ok(None)` when there is none, an error
/// when the file exists but is damaged.
pub async fn read<S: Storage, T>(storage: &S, path: &Path) -> LogResult<Option<T>>
where
    T: Checkpoint
        + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    <T as rkyv::Archive>::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let Some((bytes, _)) = read_prefix(storage, path, FRAME_BYTES + CHECKPOINT_MAX_BYTES).await?
    else {
        return Ok(None);
    };
    decode(&bytes)
        .map(Some)
        .map_err(|reason| corrupt(path, reason))
}

/// The first `max_bytes` of the small file at `path` and its whole size,
/// read at once; `None` when there is no file.
pub(crate) async fn read_prefix<S: Storage>(
    storage: &S,
    path: &Path,
    max_bytes: usize,
) -> LogResult<Option<(bytes::Bytes, u64)>> {
    let file = match storage.open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io("opening", path)(e)),
    };
    let size = file
        .size()
        .await
        .map_err(LogError::io("reading size of", path))?;
    let len = (size as usize).min(max_bytes);
    let bytes = if len == 0 {
        bytes::Bytes::new()
    } else {
        file.read_at(0, len)
            .await
            .map_err(LogError::io("reading", path))?
    };
    file.close().await.map_err(LogError::io("closing", path))?;
    Ok(Some((bytes, size)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let value = PartitionCheckpoint {
            log_start_offset: 42,
        };
        let mut frame = encode(&value);
        frame.extend_from_slice(&[0u8; 100]);
        assert_eq!(decode::<PartitionCheckpoint>(&frame), Ok(value));
        for i in 0..FRAME_BYTES + 8 {
            let mut bad = frame.clone();
            bad[i] ^= 0x01;
            assert!(
                decode::<PartitionCheckpoint>(&bad).is_err(),
                "flip at {i} accepted"
            );
        }
        assert!(decode::<PartitionCheckpoint>(&frame[..10]).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<PartitionCheckpoint>(&bytes);
        }
    }
}
