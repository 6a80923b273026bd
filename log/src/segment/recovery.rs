//! Recovery of a segment: the active one's tail scan on open, and loading
//! (or rebuilding) a sealed one's indexes when first needed.
//!
//! Owns: deciding which bytes of a segment are trusted after a crash. The
//! active segment is scanned from its last index entry that names a real
//! batch and that its time index covers, checking length, magic, CRC-32C
//! and offsets, and cut at the first bad byte; sealed segments are trusted
//! (they were synced whole before the next one was created), and only
//! their indexes are checked, lazily.

use std::rc::Rc;

use super::*;
use crate::scan::{scan_with, ScanStop};
use sluice_core::batch::check_log_batch;

impl<S: Storage> Segment<S> {
    /// Opens the last segment of a log and recovers it: loads and checks its
    /// indexes, scans from the last good index entry to the end of the file
    /// checking length, magic, CRC and offsets, cuts the file at the first
    /// bad byte and re-indexes what it scanned. Returns the segment and the
    /// number of bytes cut (zeros are not counted: the padding of a last
    /// page, or space preallocated ahead of the writes; nor, when
    /// `recycled` (its marker is there), the old bytes of a recycled file,
    /// counted apart).
    #[allow(clippy::too_many_arguments)]
    pub async fn recover_active(
        storage: &S,
        dir: &Path,
        base_offset: Offset,
        index_interval_bytes: u32,
        index_max_bytes: u32,
        holes_allowed: bool,
        recycled: bool,
        now_ms: i64,
    ) -> LogResult<(Self, RecoveryReport)> {
        let paths = SegmentPaths::new(dir, base_offset);
        let (file, file_len) = open_with_len(storage, &paths.log).await?;
        let (offset_index, time_index) =
            load_indexes::<S>(storage, &paths, index_max_bytes).await?;
        let mut seg: Segment<S> =
            Segment::with_file(base_offset, paths, Rc::new(file), index_max_bytes, now_ms);
        (seg.offset_index, seg.time_index) = (offset_index, time_index);
        let mut report = RecoveryReport::default();

        // A time entry at offset R holds the largest timestamp of the
        // batches below R, and one is written beside each offset entry
        // where that grew: so the batches past the last time entry are the
        // ones the scan must read for the segment's max timestamp (which
        // retention goes by). A power loss may keep more of the offset
        // index than of the time index: the scan starts no later than the
        // last time entry.
        let timed = seg.time_index.last().map(|e| e.relative_offset);
        let before = seg.offset_index.len();
        seg.offset_index
            .truncate_while(|e| timed.is_some_and(|r| e.relative_offset <= r));
        report.index_entries_dropped += before - seg.offset_index.len();

        // Start from the last index entry whose batch really is there (whole,
        // with its CRC, at the offset the entry names); drop entries that
        // point at anything else: an index written ahead of its data, or
        // damaged, whose bytes there merely look like a header.
        let (mut start_pos, mut start_offset) = (0u64, base_offset);
        while let Some(entry) = seg.offset_index.last().copied() {
            let pos = entry.position as u64;
            let offset = base_offset + entry.relative_offset as i64;
            let header = if pos + HEADER_BYTES as u64 <= file_len {
                let bytes = seg.file.read_at(pos, HEADER_BYTES).await.ok();
                bytes.and_then(|b| BatchHeader::peek(&b).ok())
            } else {
                None
            };
            let names_batch = match header {
                Some(h) if h.base_offset == offset && pos + h.size_bytes as u64 <= file_len => seg
                    .file
                    .read_at(pos, h.size_bytes)
                    .await
                    .is_ok_and(|b| check_log_batch(&b).is_ok()),
                _ => false,
            };
            if names_batch {
                (start_pos, start_offset) = (pos, offset);
                break;
            }
            report.index_entries_dropped += 1;
            let n = seg.offset_index.len() - 1;
            seg.offset_index.truncate(n);
        }
        // Time entries may only name offsets the offset index still knows.
        let last_indexed = seg.offset_index.last().map_or(0, |e| e.relative_offset);
        let before = seg.time_index.len();
        seg.time_index
            .truncate_while(|e| e.relative_offset <= last_indexed);
        report.index_entries_dropped += before - seg.time_index.len();
        seg.max_timestamp = seg.time_index.last().map_or(-1, |e| e.timestamp);
        report.scanned_from = start_pos;

        let mut pos = start_pos;
        let mut expected = start_offset;
        let mut valid_end = start_pos;
        let mut bytes_since = 0u64;
        let mut scanned = Vec::new();
        let end_reason = loop {
            if pos >= file_len {
                break None;
            }
            let want = (READ_CHUNK_BYTES as u64).min(file_len - pos) as usize;
            let chunk = seg
                .file
                .read_at(pos, want)
                .await
                .map_err(LogError::io("reading", &seg.paths.log))?;
            let stop = scan_with(&chunk, expected, holes_allowed, |b| scanned.push(b));
            report.batches_scanned += scanned.len();
            for b in scanned.drain(..) {
                let at = pos + b.position as u64;
                seg.index_batch(at, &b.header, index_interval_bytes, &mut bytes_since);
                expected = b.header.last_offset() + 1;
                valid_end = at + b.header.size_bytes as u64;
            }
            match stop {
                ScanStop::End => pos += chunk.len() as u64,
                ScanStop::NeedMore { position, needed } => {
                    let at = pos + position as u64;
                    if at + needed as u64 > file_len {
                        // The file ends here: zeros are the padding of the
                        // last page, anything else a torn batch.
                        let chunk_end = pos + chunk.len() as u64;
                        let rest_is_zero = chunk[position..].iter().all(|b| *b == 0);
                        if rest_is_zero && chunk_end >= file_len {
                            break None;
                        }
                        break Some(format!("torn batch: needs {needed} bytes at {at}"));
                    }
                    if position == 0 {
                        // One batch larger than a chunk: read it whole.
                        let whole = seg
                            .file
                            .read_at(at, needed)
                            .await
                            .map_err(LogError::io("reading", &seg.paths.log))?;
                        match scan_with(&whole, expected, holes_allowed, |b| scanned.push(b)) {
                            ScanStop::End => {
                                report.batches_scanned += scanned.len();
                                for b in scanned.drain(..) {
                                    seg.index_batch(
                                        at,
                                        &b.header,
                                        index_interval_bytes,
                                        &mut bytes_since,
                                    );
                                    expected = b.header.last_offset() + 1;
                                    valid_end = at + b.header.size_bytes as u64;
                                }
                                pos = valid_end;
                            }
                            ScanStop::Invalid { reason, .. } => break Some(reason.to_string()),
                            ScanStop::NeedMore { .. } => break Some("short read".into()),
                        }
                    } else {
                        pos = at;
                    }
                }
                ScanStop::Invalid {
                    reason: crate::scan::ScanError::ZeroPadding,
                    ..
                } => break None,
                ScanStop::Invalid { reason, .. } => break Some(reason.to_string()),
            }
        };
        let cut = file_len - valid_end;
        if cut > 0 {
            if recycled {
                // Past the data: the old segment's bytes, or a write torn
                // over them; either way nothing this segment acknowledged.
                // (The zero padding of its last page is its own.)
                report.recycled_bytes_dropped = file_len.saturating_sub(align_up(valid_end));
            } else {
                let tail = seg
                    .file
                    .read_at(valid_end, cut.min(64 * 1024 * 1024) as usize)
                    .await
                    .map_err(LogError::io("reading", &seg.paths.log))?;
                if end_reason.is_some() || tail.iter().any(|b| *b != 0) {
                    report.bytes_cut = cut;
                    report.cut_reason =
                        end_reason.or(Some("non-zero bytes after the last batch".into()));
                }
            }
            seg.file
                .truncate(valid_end)
                .await
                .map_err(LogError::io("truncating", &seg.paths.log))?;
            seg.file
                .sync()
                .await
                .map_err(LogError::io("syncing", &seg.paths.log))?;
        }
        seg.size_bytes = valid_end;
        seg.disk_bytes = valid_end;
        seg.issued_bytes = valid_end;
        // Cut to its data above, if it ran past it.
        seg.allocated_bytes = valid_end;
        seg.next_offset = expected;
        seg.bytes_since_index_entry = bytes_since;
        seg.recycled = recycled;
        seg.tail_page = read_tail_page::<S>(&seg.file, valid_end, &seg.paths.log).await?;
        // Rewrite the index files from memory: they may hold entries recovery
        // dropped, and this segment keeps appending to them.
        for path in [&seg.paths.index, &seg.paths.time_index] {
            create_empty(storage, path).await?;
        }
        seg.index_storage = Some(storage.clone());
        seg.mark_indexes_unpersisted();
        let seg = std::cell::RefCell::new(seg);
        Segment::persist_indexes_of(&seg, true).await?;
        Ok((seg.into_inner(), report))
    }

    /// Loads a sealed segment's indexes if not loaded yet; a damaged or
    /// missing index is rebuilt by scanning the segment.
    pub async fn ensure_indexes(
        this: &std::cell::RefCell<Self>,
        storage: &S,
        interval: u32,
    ) -> LogResult<()> {
        let (paths, max_bytes, loaded) = {
            let seg = this.borrow();
            (seg.paths.clone(), seg.index_max_bytes, seg.indexes_loaded)
        };
        if loaded {
            return Ok(());
        }
        let (offset_index, time_index) = load_indexes::<S>(storage, &paths, max_bytes).await?;
        let valid = Self::check_loaded_index(this, &offset_index).await;
        let mut seg = this.borrow_mut();
        if valid && (!time_index.is_empty() || offset_index.is_empty()) {
            seg.max_timestamp = time_index.last().map_or(-1, |e| e.timestamp);
            seg.offset_index = offset_index;
            seg.time_index = time_index;
            seg.indexes_loaded = true;
            return Ok(());
        }
        drop(seg);
        tracing::warn!(segment = ?paths.log, "index missing or damaged; rebuilding from the segment");
        Self::rebuild_indexes(this, interval).await
    }

    pub(super) async fn check_loaded_index(
        this: &std::cell::RefCell<Self>,
        index: &SparseIndex<OffsetEntry>,
    ) -> bool {
        let (file, base, size) = {
            let seg = this.borrow();
            (seg.file.clone(), seg.base_offset, seg.size_bytes)
        };
        let Some(last) = index.last() else {
            return size < 2 * READ_CHUNK_BYTES as u64 || index.is_empty();
        };
        if last.position as u64 + HEADER_BYTES as u64 > size {
            return false;
        }
        match file.read_at(last.position as u64, HEADER_BYTES).await {
            Ok(b) => BatchHeader::peek(&b)
                .is_ok_and(|h| h.base_offset == base + last.relative_offset as i64),
            Err(_) => false,
        }
    }

    pub(super) async fn rebuild_indexes(
        this: &std::cell::RefCell<Self>,
        interval: u32,
    ) -> LogResult<()> {
        let (file, base, size, path, scratch) = {
            let seg = this.borrow();
            // Indexes are built in a scratch segment and swapped in whole.
            let scratch: Segment<S> = Segment::with_file(
                seg.base_offset,
                seg.paths.clone(),
                seg.file.clone(),
                seg.index_max_bytes,
                seg.created_ms,
            );
            (
                seg.file.clone(),
                seg.base_offset,
                seg.size_bytes,
                seg.paths.log.clone(),
                scratch,
            )
        };
        let mut scratch = scratch;
        let mut pos = 0u64;
        let mut expected = base;
        let mut since = 0u64;
        let mut found = Vec::new();
        while pos < size {
            let want = (READ_CHUNK_BYTES as u64).min(size - pos) as usize;
            let chunk = file
                .read_at(pos, want)
                .await
                .map_err(LogError::io("reading", &path))?;
            let stop = scan_with(&chunk, expected, true, |b| found.push(b));
            let mut advanced = 0u64;
            for b in found.drain(..) {
                scratch.index_batch(pos + b.position as u64, &b.header, interval, &mut since);
                expected = b.header.last_offset() + 1;
                advanced = b.position as u64 + b.header.size_bytes as u64;
            }
            match stop {
                ScanStop::End => pos += chunk.len() as u64,
                ScanStop::NeedMore {
                    position: 0,
                    needed,
                } => {
                    let whole = file
                        .read_at(pos, needed)
                        .await
                        .map_err(LogError::io("reading", &path))?;
                    let stop = scan_with(&whole, expected, true, |b| found.push(b));
                    for b in found.drain(..) {
                        scratch.index_batch(pos, &b.header, interval, &mut since);
                        expected = b.header.last_offset() + 1;
                    }
                    if stop != ScanStop::End {
                        return Err(LogError::Corrupt {
                            path,
                            position: pos,
                            reason: format!("{stop:?}"),
                        });
                    }
                    pos += needed as u64;
                }
                ScanStop::NeedMore { .. } => pos += advanced,
                ScanStop::Invalid { position, reason } => {
                    return Err(LogError::Corrupt {
                        path,
                        position: pos + position as u64,
                        reason: reason.to_string(),
                    });
                }
            }
        }
        if let Some(rel) = relative(base, expected) {
            let t = TimeEntry {
                timestamp: scratch.max_timestamp,
                relative_offset: rel,
            };
            if scratch.max_timestamp >= 0 && scratch.time_index.last().is_none_or(|p| t.follows(p))
            {
                scratch.time_index.push(t);
            }
        }
        let mut seg = this.borrow_mut();
        seg.offset_index = scratch.offset_index;
        seg.time_index = scratch.time_index;
        seg.max_timestamp = scratch.max_timestamp;
        seg.indexes_loaded = true;
        Ok(())
    }
}

/// What recovery of the active segment found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Byte position the scan started from (the last good index entry).
    pub scanned_from: u64,
    /// Bytes cut off the end because they were not valid batches.
    pub bytes_cut: u64,
    /// Why the cut was made.
    pub cut_reason: Option<String>,
    /// Index entries dropped because they did not match the log.
    pub index_entries_dropped: usize,
    /// Valid batches the scan walked.
    pub batches_scanned: usize,
    /// Bytes cut off a recycled file past its data: its old segment's,
    /// or a write torn over them (not counted in `bytes_cut`).
    pub recycled_bytes_dropped: u64,
}

/// Reads a segment's index files (missing files are empty indexes).
pub(super) async fn load_indexes<S: Storage>(
    storage: &S,
    paths: &SegmentPaths,
    max_bytes: u32,
) -> LogResult<(SparseIndex<OffsetEntry>, SparseIndex<TimeEntry>)> {
    let offset_bytes = read_whole::<S>(storage, &paths.index, max_bytes as usize).await?;
    let time_bytes = read_whole::<S>(storage, &paths.time_index, max_bytes as usize).await?;
    let (offset_index, _) = SparseIndex::decode(&offset_bytes, max_bytes);
    let (time_index, _) = SparseIndex::decode(&time_bytes, max_bytes);
    Ok((offset_index, time_index))
}

pub(super) async fn read_whole<S: Storage>(
    storage: &S,
    path: &Path,
    max_bytes: usize,
) -> LogResult<Bytes> {
    let _turn = transient_file_turn().await;
    let file = match storage.open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Bytes::new()),
        Err(e) => return Err(LogError::io("opening", path)(e)),
    };
    let size = file
        .size()
        .await
        .map_err(LogError::io("reading size of", path))?;
    let bytes = file
        .read_at(0, (size as usize).min(max_bytes))
        .await
        .map_err(LogError::io("reading", path))?;
    file.close().await.map_err(LogError::io("closing", path))?;
    Ok(bytes)
}
