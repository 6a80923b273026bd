//! Recycled segment files: the `.log` of a segment retention deleted,
//! kept as the partition's spare and renamed into place as its next
//! segment, so the writes of that segment go over blocks already written.
//!
//! Why: an O_DIRECT write into a new file (or into space `fallocate`
//! reserved) changes the file's extents, so io_uring hands it to a worker
//! and each fdatasync commits the change; a write over blocks already
//! written changes nothing but the data. fio (256 KiB writes, fdatasync,
//! depth 4) overwrites an old file at about twice the rate it writes a
//! preallocated one.
//!
//! Owns: the spare's name in a partition directory ([`SPARE_FILE`]), the
//! marker of a segment made from it (`<base>.recycled`), and
//! [`Segment::recycle`].
//!
//! Invariants:
//! - A spare holds only batches of its own partition below the log start
//!   (only retention makes one, of a segment wholly below it, and a log
//!   that starts over lower removes it), so every old batch in a recycled
//!   file has offsets below its new segment's base: recovery's offset check
//!   can never take one for new data.
//! - A partition has at most one spare; opening and closing a log remove it.
//! - A segment made from a spare has its marker from before the rename
//!   until it seals (sealing cuts its file to its data): recovery of an
//!   active segment with a marker counts the old bytes past its data as a
//!   recycled file's, not as damage.

use super::*;

/// The spare `.log` of a partition directory, waiting to be its next
/// segment.
pub const SPARE_FILE: &str = "segment.spare";

impl<S: Storage> Segment<S> {
    /// An empty active segment at `base_offset` over the file at `spare`
    /// (renamed to the segment's `.log`), which keeps its length: the
    /// segment's writes go over its old bytes. The rename and the marker
    /// are durable with the caller's next directory sync.
    pub async fn recycle(
        storage: &S,
        dir: &Path,
        spare: &Path,
        base_offset: Offset,
        index_max_bytes: u32,
        now_ms: i64,
    ) -> LogResult<Self> {
        let paths = SegmentPaths::new(dir, base_offset);
        // The marker first: a `.log` that may hold old bytes never exists
        // without it (a marker without its `.log` is removed at open).
        create_empty(storage, &paths.recycled).await?;
        storage
            .rename(spare, &paths.log)
            .await
            .map_err(LogError::io("renaming", spare))?;
        let (file, len) = open_with_len(storage, &paths.log).await?;
        let mut seg =
            Segment::with_file(base_offset, paths, Rc::new(file), index_max_bytes, now_ms);
        seg.index_storage = Some(storage.clone());
        seg.allocated_bytes = len;
        seg.recycled = true;
        Ok(seg)
    }

    /// True when nothing but this segment holds its `.log` open (no read
    /// in flight): its file may then be recycled without a reader seeing
    /// another segment's bytes.
    pub(crate) fn file_unshared(&self) -> bool {
        Rc::strong_count(&self.file) == 1
    }
}
