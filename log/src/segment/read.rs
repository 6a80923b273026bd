//! Reads of whole batches from a segment, by offset.
//!
//! Owns: turning an offset into batch-aligned bytes: the sparse index gives a
//! starting position, batch headers are walked from there, and the batches
//! asked for are returned as slices of the disk read (no copy) or, for
//! appends not yet written, as the shared bytes in memory.

use super::*;

/// Where a read from disk stopped because its byte budget ran out, with
/// batches left in the segment past it: the offset its reader asks for
/// next, the exact position of the batch holding it, how many bytes the
/// next read will want, and how many are written from `position` on (a
/// read-ahead must not read past them: a write may be under way there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadEnd {
    pub next_offset: Offset,
    pub position: u64,
    pub next_read_bytes: usize,
    pub written_bytes: u64,
}

/// A read's first chunk, already read (ahead): it starts at `position`,
/// the batch holding the offset asked for.
pub struct Resume<R> {
    pub position: u64,
    pub chunk: R,
}

/// What [`Segment::read_from`] returned, and what it leaves for the next
/// read.
pub struct SegmentRead<R> {
    pub chunks: Vec<ReadChunk<R>>,
    /// Where it stopped, when that was before the end of what is on disk.
    pub end: Option<ReadEnd>,
    /// Bytes it had read past `end.position`, starting with at least one
    /// whole batch: the next read from `end.next_offset` can resume from
    /// them instead of reading them again.
    pub rest: Option<Rest<R>>,
}

/// Bytes a read holds past where it stopped (see [`SegmentRead::rest`]).
pub struct Rest<R> {
    pub bytes: R,
    /// The length of the read buffer `bytes` is a slice of, which stays
    /// allocated while they are held.
    pub buffer_bytes: usize,
}

impl<S: Storage> Segment<S> {
    /// Whole batches from the one holding `from_offset` (which must lie in
    /// this segment), while their total stays within `max_bytes` (at least
    /// one) and they end before `upto`. Caller ensured indexes are loaded.
    pub async fn read(
        this: &std::cell::RefCell<Self>,
        from_offset: Offset,
        max_bytes: usize,
        upto: Offset,
    ) -> LogResult<Vec<ReadChunk<ReadBufOf<S>>>> {
        Ok(Self::read_from(this, from_offset, max_bytes, upto, None)
            .await?
            .chunks)
    }

    /// [`Segment::read`], starting from `resume` when given (no index
    /// lookup, no first read), and saying where it stopped when that was
    /// before the end of what is on disk, with the bytes it read past that
    /// point. One read from disk serves it: once it returns a batch, it
    /// stops where the bytes of its read run out rather than read again
    /// for what little of the budget is left (a reader behind reads on
    /// from there, usually from bytes read ahead).
    pub async fn read_from(
        this: &std::cell::RefCell<Self>,
        from_offset: Offset,
        max_bytes: usize,
        upto: Offset,
        mut resume: Option<Resume<ReadBufOf<S>>>,
    ) -> LogResult<SegmentRead<ReadBufOf<S>>> {
        // Unwritten batches are served from memory, as they are.
        let (file, path, start_pos, start_base, disk_bytes) = {
            let seg = this.borrow();
            if let Some(first) = seg.unwritten.front() {
                if from_offset >= first.header.base_offset {
                    let batches = seg.read_unwritten(from_offset, max_bytes, upto);
                    let chunks = batches.into_iter().map(ReadChunk::Shared).collect();
                    return Ok(SegmentRead {
                        chunks,
                        end: None,
                        rest: None,
                    });
                }
            }
            let (base, pos) = match &resume {
                Some(r) => (from_offset, r.position),
                None => {
                    let rel = relative(seg.base_offset, from_offset).unwrap_or(0);
                    let (r, pos) = seg.offset_index.lookup(rel);
                    (seg.base_offset + r as i64, pos as u64)
                }
            };
            (
                seg.file.clone(),
                seg.paths.log.clone(),
                pos,
                base,
                seg.disk_bytes,
            )
        };
        let mut pos = start_pos;
        // A resumed read starts at a batch it walked to itself.
        let mut entry_unchecked = start_pos > 0 && resume.is_none();
        let mut out = Vec::new();
        let mut total = 0usize;
        let mut last_taken = None;
        let mut first_taken_at = None;
        // Stopped with batches left on disk: the budget ran out, or the
        // bytes read did.
        let mut stopped_early = false;
        let mut rest = None;
        let read_bytes = max_bytes.max(READ_CHUNK_BYTES);
        'chunks: while pos < disk_bytes {
            let want = (read_bytes as u64).min(disk_bytes - pos) as usize;
            let chunk = match resume.take() {
                // Bytes read ahead never reach past what was written then,
                // nor (the same) now; cut there all the same. A longer
                // resumed chunk is kept whole: what the budget leaves of it
                // becomes the rest.
                Some(r) if r.chunk.len() as u64 > disk_bytes - pos => {
                    S::File::slice(&r.chunk, 0, (disk_bytes - pos) as usize)
                }
                Some(r) => r.chunk,
                None => file
                    .read_local(pos, want)
                    .await
                    .map_err(LogError::io("reading", &path))?,
            };
            if std::mem::take(&mut entry_unchecked) && !entry_names_batch(&chunk, start_base) {
                warn_damaged_entry(&path, start_pos, start_base);
                pos = 0;
                continue;
            }
            // Batches taken from this chunk form one contiguous slice.
            let (mut at, mut take_from) = (0usize, None::<usize>);
            let mut stop = false;
            while at < chunk.len() {
                let unwalked = &chunk[at..];
                let header = match BatchHeader::peek(unwalked) {
                    Ok(h) => h,
                    Err(_) if unwalked.len() < HEADER_BYTES => break,
                    Err(e) => {
                        let position = pos + at as u64;
                        return Err(LogError::Corrupt {
                            path,
                            position,
                            reason: e.to_string(),
                        });
                    }
                };
                if header.last_offset() >= upto {
                    stop = true;
                    break;
                }
                if total > 0 && total + header.size_bytes > max_bytes {
                    (stop, stopped_early) = (true, true);
                    if header.size_bytes <= unwalked.len() {
                        rest = Some(Rest {
                            bytes: S::File::slice(&chunk, at, chunk.len() - at),
                            buffer_bytes: chunk.len(),
                        });
                    }
                    break;
                }
                if header.size_bytes > unwalked.len() {
                    break;
                }
                if header.last_offset() >= from_offset {
                    take_from.get_or_insert(at);
                    first_taken_at.get_or_insert(pos + at as u64);
                    total += header.size_bytes;
                    last_taken = Some(header.last_offset());
                }
                at += header.size_bytes;
            }
            if let Some(from) = take_from {
                out.push(ReadChunk::Local(S::File::slice(&chunk, from, at - from)));
            }
            if at == 0 && !stop {
                // The next batch is larger than the chunk: read it whole.
                let Ok(header) = BatchHeader::peek(&chunk) else {
                    break 'chunks;
                };
                let whole = file
                    .read_local(pos, header.size_bytes)
                    .await
                    .map_err(LogError::io("reading", &path))?;
                if whole.len() != header.size_bytes {
                    let reason = "batch runs past the end of the segment".to_string();
                    return Err(LogError::Corrupt {
                        path,
                        position: pos,
                        reason,
                    });
                }
                if header.last_offset() >= from_offset {
                    first_taken_at.get_or_insert(pos);
                    total += whole.len();
                    out.push(ReadChunk::Local(whole));
                    last_taken = Some(header.last_offset());
                }
                at = header.size_bytes;
            }
            pos += at as u64;
            if stop || total > 0 {
                // Stopped by the budget, by `upto` or by the end of the
                // bytes read: the next read starts at `pos`.
                stopped_early |= !stop;
                break;
            }
        }
        let end = match (last_taken, first_taken_at) {
            // One batch larger than the budget: a consumer's Fetch keeps it
            // only for its first partition with data, so the reader most
            // likely asks for the same offset again.
            (Some(_), Some(first)) if total > max_bytes => Some(ReadEnd {
                next_offset: from_offset,
                position: first,
                next_read_bytes: read_bytes,
                written_bytes: disk_bytes - first,
            }),
            (Some(last), _) if stopped_early && pos < disk_bytes => Some(ReadEnd {
                next_offset: last + 1,
                position: pos,
                next_read_bytes: read_bytes,
                written_bytes: disk_bytes - pos,
            }),
            _ => None,
        };
        Ok(SegmentRead {
            chunks: out,
            rest: rest.filter(|_| end.is_some_and(|e| e.position == pos)),
            end,
        })
    }

    /// The last batch start the offset index names after `position` and
    /// at most `len` bytes past it: a read of the bytes from `position` to
    /// there holds whole batches only (none cut at its end, to be read
    /// again by the next read).
    pub fn batch_start_within(&self, position: u64, len: usize) -> Option<u64> {
        let end = position.saturating_add(len as u64);
        let entries = self.offset_index.entries();
        let i = entries.partition_point(|e| u64::from(e.position) <= end);
        let start = u64::from(entries.get(i.checked_sub(1)?)?.position);
        (start > position).then_some(start)
    }

    pub(super) fn read_unwritten(
        &self,
        from_offset: Offset,
        max_bytes: usize,
        upto: Offset,
    ) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut total = 0usize;
        for b in &self.unwritten {
            if b.header.last_offset() < from_offset {
                continue;
            }
            if b.header.last_offset() >= upto
                || (!out.is_empty() && total + b.bytes.len() > max_bytes)
            {
                break;
            }
            total += b.bytes.len();
            out.push(b.bytes.clone());
        }
        out
    }

    /// Position of the first batch holding an offset at or above `offset`,
    /// and that batch's base offset; `None` when every batch ends below it.
    pub async fn position_of(
        this: &std::cell::RefCell<Self>,
        offset: Offset,
    ) -> LogResult<Option<(u64, Offset)>> {
        let (file, path, start, end) = {
            let seg = this.borrow();
            let rel = relative(seg.base_offset, offset).unwrap_or(0);
            let (r, pos) = seg.offset_index.lookup(rel);
            (
                seg.file.clone(),
                seg.paths.log.clone(),
                (pos as u64, seg.base_offset + r as i64),
                seg.disk_bytes,
            )
        };
        let (mut pos, start_base) = start;
        let mut entry_unchecked = pos > 0;
        while pos < end {
            let header_bytes = file
                .read_at(pos, HEADER_BYTES)
                .await
                .map_err(LogError::io("reading", &path))?;
            if std::mem::take(&mut entry_unchecked) && !entry_names_batch(&header_bytes, start_base)
            {
                warn_damaged_entry(&path, pos, start_base);
                pos = 0;
                continue;
            }
            let header = BatchHeader::peek(&header_bytes).map_err(|e| LogError::Corrupt {
                path: path.clone(),
                position: pos,
                reason: e.to_string(),
            })?;
            if header.last_offset() >= offset {
                return Ok(Some((pos, header.base_offset)));
            }
            pos += header.size_bytes as u64;
        }
        let seg = this.borrow();
        Ok(seg
            .unwritten
            .iter()
            .find(|b| b.header.last_offset() >= offset)
            .map(|b| (b.position, b.header.base_offset)))
    }

    /// The largest batch max timestamp below byte `end` (a batch boundary),
    /// or -1, once the indexes hold no entry at or past `end`. A time index
    /// entry holds the largest timestamp *before* its batch, so the batches
    /// from the last offset index entry to `end` are read to finish the job.
    pub(super) async fn max_timestamp_below(
        this: &std::cell::RefCell<Self>,
        end: u64,
    ) -> LogResult<i64> {
        let (file, path, mut pos, start_base, mut max_timestamp) = {
            let seg = this.borrow();
            let last = seg.offset_index.last();
            (
                seg.file.clone(),
                seg.paths.log.clone(),
                last.map_or(0, |e| e.position as u64),
                seg.base_offset + last.map_or(0, |e| e.relative_offset as i64),
                seg.time_index.last().map_or(-1, |e| e.timestamp),
            )
        };
        let mut entry_unchecked = pos > 0;
        while pos < end {
            let header_bytes = file
                .read_at(pos, HEADER_BYTES)
                .await
                .map_err(LogError::io("reading", &path))?;
            if std::mem::take(&mut entry_unchecked) && !entry_names_batch(&header_bytes, start_base)
            {
                warn_damaged_entry(&path, pos, start_base);
                (pos, max_timestamp) = (0, -1);
                continue;
            }
            let header = BatchHeader::peek(&header_bytes).map_err(|e| LogError::Corrupt {
                path: path.clone(),
                position: pos,
                reason: e.to_string(),
            })?;
            max_timestamp = max_timestamp.max(header.max_timestamp);
            pos += header.size_bytes as u64;
        }
        Ok(max_timestamp)
    }
}

/// True when `bytes` start with the header of the batch based at
/// `base_offset`. Index files carry no checksum and recovery checks only the
/// last entry, so a damaged entry that still decodes in order is caught
/// here, when a read first uses it: trusted, it would send the read into the
/// middle of a batch (a spurious corruption error) or past batches it must
/// return (records silently skipped, or a truncation that keeps too much).
pub(super) fn entry_names_batch(bytes: &[u8], base_offset: Offset) -> bool {
    BatchHeader::peek(bytes).is_ok_and(|h| h.base_offset == base_offset)
}

/// A damaged index entry was found; the caller walks the segment from its
/// start instead, which is slower but right.
pub(super) fn warn_damaged_entry(path: &Path, position: u64, base_offset: Offset) {
    tracing::warn!(
        segment = ?path,
        position,
        base_offset,
        "offset index entry does not name the batch at its position; reading from the segment start"
    );
}
