//! One segment: a `.log` file of batches plus its `.index` and `.timeindex`.
//!
//! Owns: the segment's byte layout in memory and on disk, its write path
//! (buffered appends written out in aligned O_DIRECT writes, the partial last
//! page kept in memory and rewritten by the next write), its sparse indexes,
//! and reads of whole batches by offset.
//!
//! Regions of the active segment, by byte position:
//!
//! ```text
//! 0 ............ disk_bytes ............................ size_bytes
//! | on disk (complete writes) | unwritten: whole batches in memory |
//!              ^ tail_page holds [align_down(disk_bytes), disk_bytes)
//! ```
//!
//! Invariants: batches are whole and contiguous in offsets; `disk_bytes <=
//! size_bytes`; every byte below `disk_bytes` was written by a completed
//! write; `unwritten` holds exactly the batches in `[disk_bytes, size_bytes)`.
//! A sealed segment has no unwritten batches, its files are synced, and its
//! `.log` file is exactly `size_bytes` long.
//!
//! Callers (the partition log) serialise every operation that writes, syncs
//! or truncates through the log's I/O lock; reads need no lock.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use sluice_core::batch::{BatchHeader, HEADER_BYTES};
use sluice_core::Offset;

use crate::error::{LogError, LogResult};
use crate::index::{relative, IndexEntry, OffsetEntry, SparseIndex, TimeEntry};
use crate::scan::{scan, ScanStop};
use crate::storage::{align_down, align_up, AlignedBuf, Storage, StorageFile, ALIGN};

/// Bytes read at a time when scanning or serving reads from disk.
pub const READ_CHUNK_BYTES: usize = 256 * 1024;

/// File names of a segment, from its base offset (`<base:020>.log`, ...).
#[derive(Debug, Clone)]
pub struct SegmentPaths {
    pub log: PathBuf,
    pub index: PathBuf,
    pub time_index: PathBuf,
}

impl SegmentPaths {
    pub fn new(dir: &Path, base_offset: Offset) -> SegmentPaths {
        SegmentPaths {
            log: dir.join(format!("{base_offset:020}.log")),
            index: dir.join(format!("{base_offset:020}.index")),
            time_index: dir.join(format!("{base_offset:020}.timeindex")),
        }
    }
}

/// Parses a segment file name (`<base:020>.<ext>`) into its base offset.
pub fn parse_segment_name(name: &str, ext: &str) -> Option<Offset> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// An appended batch not yet written to disk.
#[derive(Debug, Clone)]
pub struct UnwrittenBatch {
    pub position: u64,
    pub header: BatchHeader,
    pub bytes: Bytes,
}

/// A write to the `.log` file issued but not yet awaited.
struct InFlightWrite {
    task: glommio::Task<std::io::Result<()>>,
    /// Logical end of the log once it completes.
    end: u64,
}

/// A segment's open `.index` and `.timeindex` files.
type IndexFiles<F> = (Rc<F>, Rc<F>);

/// One segment of a partition log.
pub struct Segment<S: Storage> {
    pub base_offset: Offset,
    pub paths: SegmentPaths,
    file: Rc<S::File>,
    /// Index files; open while the segment is active, `None` once sealed.
    index_files: Option<IndexFiles<S::File>>,
    offset_index: SparseIndex<OffsetEntry>,
    time_index: SparseIndex<TimeEntry>,
    /// False for a sealed segment whose indexes were not read yet.
    indexes_loaded: bool,
    index_max_bytes: u32,
    pub size_bytes: u64,
    disk_bytes: u64,
    /// End of the last write issued (>= `disk_bytes`; greater while a
    /// write is in flight).
    issued_bytes: u64,
    /// A write issued but not yet completed.
    in_flight: Option<InFlightWrite>,
    tail_page: Vec<u8>,
    unwritten: VecDeque<UnwrittenBatch>,
    unwritten_bytes: u64,
    pub next_offset: Offset,
    /// Largest batch max timestamp seen, or -1; known for the active segment
    /// and for sealed ones once their time index is loaded.
    pub max_timestamp: i64,
    bytes_since_index_entry: u64,
    /// When the segment was created or opened (ms), for roll by age.
    pub created_ms: i64,
    pub sealed: bool,
}

impl<S: Storage> Segment<S> {
    /// Creates an empty active segment's three files.
    pub async fn create(
        storage: &S,
        dir: &Path,
        base_offset: Offset,
        index_max_bytes: u32,
        now_ms: i64,
    ) -> LogResult<Self> {
        let paths = SegmentPaths::new(dir, base_offset);
        let file = storage
            .create(&paths.log)
            .await
            .map_err(LogError::io("creating", &paths.log))?;
        let index = storage
            .create(&paths.index)
            .await
            .map_err(LogError::io("creating", &paths.index))?;
        let time_index = storage
            .create(&paths.time_index)
            .await
            .map_err(LogError::io("creating", &paths.time_index))?;
        Ok(Segment {
            base_offset,
            paths,
            file: Rc::new(file),
            index_files: Some((Rc::new(index), Rc::new(time_index))),
            offset_index: SparseIndex::new(index_max_bytes),
            time_index: SparseIndex::new(index_max_bytes),
            indexes_loaded: true,
            index_max_bytes,
            size_bytes: 0,
            disk_bytes: 0,
            issued_bytes: 0,
            in_flight: None,
            tail_page: Vec::new(),
            unwritten: VecDeque::new(),
            unwritten_bytes: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            bytes_since_index_entry: 0,
            created_ms: now_ms,
            sealed: false,
        })
    }

    /// Opens a sealed segment without reading it: its end is `next_offset`
    /// (the next segment's base) and its size is the file's length.
    pub async fn open_sealed(
        storage: &S,
        dir: &Path,
        base_offset: Offset,
        next_offset: Offset,
        index_max_bytes: u32,
        now_ms: i64,
    ) -> LogResult<Self> {
        let paths = SegmentPaths::new(dir, base_offset);
        let file = storage
            .open(&paths.log)
            .await
            .map_err(LogError::io("opening", &paths.log))?;
        let size_bytes = file
            .size()
            .await
            .map_err(LogError::io("reading size of", &paths.log))?;
        Ok(Segment {
            base_offset,
            paths,
            file: Rc::new(file),
            index_files: None,
            offset_index: SparseIndex::new(index_max_bytes),
            time_index: SparseIndex::new(index_max_bytes),
            indexes_loaded: false,
            index_max_bytes,
            size_bytes,
            disk_bytes: size_bytes,
            issued_bytes: size_bytes,
            in_flight: None,
            tail_page: Vec::new(),
            unwritten: VecDeque::new(),
            unwritten_bytes: 0,
            next_offset,
            max_timestamp: -1,
            bytes_since_index_entry: 0,
            created_ms: now_ms,
            sealed: true,
        })
    }

    /// Opens the last segment of a log and recovers it: loads and checks its
    /// indexes, scans from the last good index entry to the end of the file
    /// checking length, magic, CRC and offsets, cuts the file at the first
    /// bad byte and re-indexes what it scanned. Returns the segment and the
    /// number of bytes cut (zero padding of a clean shutdown is not counted).
    pub async fn recover_active(
        storage: &S,
        dir: &Path,
        base_offset: Offset,
        index_interval_bytes: u32,
        index_max_bytes: u32,
        now_ms: i64,
    ) -> LogResult<(Self, RecoveryReport)> {
        let paths = SegmentPaths::new(dir, base_offset);
        let file = storage
            .open(&paths.log)
            .await
            .map_err(LogError::io("opening", &paths.log))?;
        let file_len = file
            .size()
            .await
            .map_err(LogError::io("reading size of", &paths.log))?;
        let (offset_index, time_index) =
            load_indexes::<S>(storage, &paths, index_max_bytes).await?;
        let mut seg: Segment<S> = Segment {
            base_offset,
            paths,
            file: Rc::new(file),
            index_files: None,
            offset_index,
            time_index,
            indexes_loaded: true,
            index_max_bytes,
            size_bytes: 0,
            disk_bytes: 0,
            issued_bytes: 0,
            in_flight: None,
            tail_page: Vec::new(),
            unwritten: VecDeque::new(),
            unwritten_bytes: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            bytes_since_index_entry: 0,
            created_ms: now_ms,
            sealed: false,
        };
        let mut report = RecoveryReport::default();

        // Start from the last index entry whose batch really is there; drop
        // entries that point at anything else.
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
            if header.is_some_and(|h| h.base_offset == offset) {
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
            let stop = scan(&chunk, expected, |b| scanned.push(b));
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
                        break Some(format!("torn batch: needs {needed} bytes at {at}"));
                    }
                    if position == 0 {
                        // One batch larger than a chunk: read it whole.
                        let whole = seg
                            .file
                            .read_at(at, needed)
                            .await
                            .map_err(LogError::io("reading", &seg.paths.log))?;
                        match scan(&whole, expected, |b| scanned.push(b)) {
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
        seg.next_offset = expected;
        seg.bytes_since_index_entry = bytes_since;
        seg.tail_page = read_tail_page::<S>(&seg.file, valid_end, &seg.paths.log).await?;
        // Rewrite the index files from memory: they may hold entries recovery
        // dropped, and this segment keeps appending to them.
        let index = storage
            .create(&seg.paths.index)
            .await
            .map_err(LogError::io("creating", &seg.paths.index))?;
        let time_index = storage
            .create(&seg.paths.time_index)
            .await
            .map_err(LogError::io("creating", &seg.paths.time_index))?;
        seg.index_files = Some((Rc::new(index), Rc::new(time_index)));
        seg.mark_indexes_unpersisted();
        seg.persist_indexes(true).await?;
        Ok((seg, report))
    }

    /// The index files are about to be rewritten whole from memory.
    fn mark_indexes_unpersisted(&mut self) {
        self.offset_index.mark_unpersisted();
        self.time_index.mark_unpersisted();
    }

    /// Adds index entries for a batch at `position`, as append does.
    fn index_batch(
        &mut self,
        position: u64,
        header: &BatchHeader,
        interval: u32,
        bytes_since: &mut u64,
    ) {
        if *bytes_since >= interval as u64 && position > 0 {
            if let Some(rel) = relative(self.base_offset, header.base_offset) {
                let entry = OffsetEntry {
                    relative_offset: rel,
                    position: position as u32,
                };
                if self.offset_index.last().is_none_or(|p| entry.follows(p))
                    && !self.offset_index.is_full()
                {
                    self.offset_index.push(entry);
                    let t = TimeEntry {
                        timestamp: self.max_timestamp,
                        relative_offset: rel,
                    };
                    if self.max_timestamp >= 0
                        && self.time_index.last().is_none_or(|p| t.follows(p))
                        && !self.time_index.is_full()
                    {
                        self.time_index.push(t);
                    }
                    *bytes_since = 0;
                }
            }
        }
        *bytes_since += header.size_bytes as u64;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
    }

    /// True when `bytes` more would not fit, by size or by offsets.
    pub fn is_full_for(&self, bytes: u64, last_offset: Offset, segment_bytes: u64) -> bool {
        let too_big = self.size_bytes > 0 && self.size_bytes + bytes > segment_bytes;
        let position_overflow = self.size_bytes + bytes > u32::MAX as u64;
        let offset_overflow =
            relative(self.base_offset, last_offset).is_none_or(|r| r > i32::MAX as u32);
        too_big
            || position_overflow
            || offset_overflow
            || self.offset_index.is_full()
            || self.time_index.is_full()
    }

    /// Appends one batch whose offsets are already assigned. Memory only:
    /// [`Segment::write_out`] puts it on disk.
    pub fn append(&mut self, header: BatchHeader, bytes: Bytes, index_interval_bytes: u32) {
        assert!(!self.sealed, "append to a sealed segment");
        assert_eq!(
            header.base_offset, self.next_offset,
            "offsets must be contiguous"
        );
        let position = self.size_bytes;
        let mut since = self.bytes_since_index_entry;
        self.index_batch(position, &header, index_interval_bytes, &mut since);
        self.bytes_since_index_entry = since;
        self.size_bytes += bytes.len() as u64;
        self.unwritten_bytes += bytes.len() as u64;
        self.next_offset = header.last_offset() + 1;
        self.unwritten.push_back(UnwrittenBatch {
            position,
            header,
            bytes,
        });
    }

    pub fn unwritten_bytes(&self) -> u64 {
        self.unwritten_bytes
    }

    /// Writes every unwritten batch to disk (no sync) in one aligned write
    /// that starts at the page holding the end of the previous write; at
    /// most one write is in flight per segment (queue depth 1), since each
    /// write rewrites the partial page the previous one ended in.
    ///
    /// With `wait`, returns once every write completed. Without it, returns
    /// once the new write is issued: the caller's next appends (validation,
    /// copies) overlap the disk. Also persists index pages once a page of
    /// entries is waiting. Caller holds the I/O lock.
    pub async fn write_out(this: &std::cell::RefCell<Self>, wait: bool) -> LogResult<()> {
        // Build the next write while the previous one may still be in flight.
        let next = {
            let seg = this.borrow();
            let start = align_down(seg.issued_bytes);
            let end = seg.size_bytes;
            if end == seg.issued_bytes {
                None
            } else {
                let len = (align_up(end) - start) as usize;
                let mut buf = seg.file.alloc(len);
                let out = buf.as_mut_slice();
                let tail_len = seg.tail_page.len();
                out[..tail_len].copy_from_slice(&seg.tail_page);
                for b in seg
                    .unwritten
                    .iter()
                    .filter(|b| b.position >= seg.issued_bytes)
                {
                    let at = (b.position - start) as usize;
                    out[at..at + b.bytes.len()].copy_from_slice(&b.bytes);
                }
                let used = (end - start) as usize;
                out[used..].fill(0);
                let tail_from = (align_down(end) - start) as usize;
                let new_tail = out[tail_from..used].to_vec();
                Some((buf, start, end, new_tail))
            }
        };
        Self::complete_in_flight(this).await?;
        if let Some((buf, start, end, new_tail)) = next {
            let mut seg = this.borrow_mut();
            debug_assert_eq!(align_down(seg.issued_bytes), start);
            seg.issued_bytes = end;
            seg.tail_page = new_tail;
            let file = seg.file.clone();
            let task = glommio::spawn_local(async move { file.write_at(buf, start).await });
            seg.in_flight = Some(InFlightWrite { task, end });
        }
        if wait {
            Self::complete_in_flight(this).await?;
        }
        let needs_index_write = {
            let seg = this.borrow();
            seg.offset_index.unpersisted_bytes() >= ALIGN
                || seg.time_index.unpersisted_bytes() >= ALIGN
        };
        if needs_index_write {
            Self::persist_indexes_of(this, false).await?;
        }
        Ok(())
    }

    /// Waits for the write in flight, if any, and moves what it covered
    /// from memory to disk.
    async fn complete_in_flight(this: &std::cell::RefCell<Self>) -> LogResult<()> {
        let Some(write) = this.borrow_mut().in_flight.take() else {
            return Ok(());
        };
        let result = write.task.await;
        let mut seg = this.borrow_mut();
        result.map_err(LogError::io("writing", &seg.paths.log))?;
        seg.disk_bytes = write.end;
        while seg
            .unwritten
            .front()
            .is_some_and(|b| b.position < write.end)
        {
            let b = seg.unwritten.pop_front().expect("front exists");
            seg.unwritten_bytes -= b.bytes.len() as u64;
        }
        Ok(())
    }

    /// Makes everything written so far durable (fdatasync of the `.log`).
    pub async fn sync(this: &std::cell::RefCell<Self>) -> LogResult<()> {
        let (file, path) = {
            let seg = this.borrow();
            (seg.file.clone(), seg.paths.log.clone())
        };
        file.sync().await.map_err(LogError::io("syncing", &path))
    }

    async fn persist_indexes(&mut self, sync: bool) -> LogResult<()> {
        let Some((index_file, time_file)) = self.index_files.clone() else {
            return Ok(());
        };
        if let Some((pos, bytes)) = self.offset_index.unpersisted_pages(ALIGN) {
            write_bytes::<S>(&index_file, pos, &bytes, &self.paths.index).await?;
            self.offset_index.mark_persisted();
        }
        if let Some((pos, bytes)) = self.time_index.unpersisted_pages(ALIGN) {
            write_bytes::<S>(&time_file, pos, &bytes, &self.paths.time_index).await?;
            self.time_index.mark_persisted();
        }
        if sync {
            index_file
                .sync()
                .await
                .map_err(LogError::io("syncing", &self.paths.index))?;
            time_file
                .sync()
                .await
                .map_err(LogError::io("syncing", &self.paths.time_index))?;
        }
        Ok(())
    }

    /// Writes unpersisted index pages (and syncs them if asked), without
    /// holding a borrow across the writes.
    pub async fn persist_indexes_of(this: &std::cell::RefCell<Self>, sync: bool) -> LogResult<()> {
        let (files, offset_pages, time_pages, paths) = {
            let seg = this.borrow();
            let Some(files) = seg.index_files.clone() else {
                return Ok(());
            };
            (
                files,
                seg.offset_index.unpersisted_pages(ALIGN),
                seg.time_index.unpersisted_pages(ALIGN),
                seg.paths.clone(),
            )
        };
        let (offset_len, time_len) = {
            let seg = this.borrow();
            (seg.offset_index.len(), seg.time_index.len())
        };
        if let Some((pos, bytes)) = offset_pages {
            write_bytes::<S>(&files.0, pos, &bytes, &paths.index).await?;
        }
        if let Some((pos, bytes)) = time_pages {
            write_bytes::<S>(&files.1, pos, &bytes, &paths.time_index).await?;
        }
        if sync {
            files
                .0
                .sync()
                .await
                .map_err(LogError::io("syncing", &paths.index))?;
            files
                .1
                .sync()
                .await
                .map_err(LogError::io("syncing", &paths.time_index))?;
        }
        let mut seg = this.borrow_mut();
        // Entries appended while the writes were in flight stay unpersisted.
        if seg.offset_index.len() == offset_len {
            seg.offset_index.mark_persisted();
        }
        if seg.time_index.len() == time_len {
            seg.time_index.mark_persisted();
        }
        Ok(())
    }

    /// Seals the segment: writes and syncs data and indexes (with a final
    /// time index entry for the segment's max timestamp), cuts the zero
    /// padding off the `.log` and closes the index files.
    pub async fn seal(this: &std::cell::RefCell<Self>) -> LogResult<()> {
        Self::write_out(this, true).await?;
        {
            let mut seg = this.borrow_mut();
            if let Some(rel) = relative(seg.base_offset, seg.next_offset) {
                let t = TimeEntry {
                    timestamp: seg.max_timestamp,
                    relative_offset: rel,
                };
                if seg.max_timestamp >= 0 && seg.time_index.last().is_none_or(|p| t.follows(p)) {
                    seg.time_index.push(t);
                }
            }
        }
        Self::persist_indexes_of(this, true).await?;
        let (file, size, path) = {
            let seg = this.borrow();
            (seg.file.clone(), seg.size_bytes, seg.paths.log.clone())
        };
        file.truncate(size)
            .await
            .map_err(LogError::io("truncating", &path))?;
        file.sync().await.map_err(LogError::io("syncing", &path))?;
        let mut seg = this.borrow_mut();
        seg.sealed = true;
        seg.tail_page = Vec::new();
        seg.index_files = None;
        Ok(())
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

    async fn check_loaded_index(
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

    async fn rebuild_indexes(this: &std::cell::RefCell<Self>, interval: u32) -> LogResult<()> {
        let (file, base, size, path, max_bytes) = {
            let seg = this.borrow();
            (
                seg.file.clone(),
                seg.base_offset,
                seg.size_bytes,
                seg.paths.log.clone(),
                seg.index_max_bytes,
            )
        };
        let mut scratch: Segment<S> = Segment {
            offset_index: SparseIndex::new(max_bytes),
            time_index: SparseIndex::new(max_bytes),
            ..this.borrow().shallow_clone()
        };
        scratch.max_timestamp = -1;
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
            let stop = scan(&chunk, expected, |b| found.push(b));
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
                    let stop = scan(&whole, expected, |b| found.push(b));
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

    fn shallow_clone(&self) -> Segment<S> {
        Segment {
            base_offset: self.base_offset,
            paths: self.paths.clone(),
            file: self.file.clone(),
            index_files: None,
            offset_index: SparseIndex::new(self.index_max_bytes),
            time_index: SparseIndex::new(self.index_max_bytes),
            indexes_loaded: false,
            index_max_bytes: self.index_max_bytes,
            size_bytes: self.size_bytes,
            disk_bytes: self.disk_bytes,
            issued_bytes: self.disk_bytes,
            in_flight: None,
            tail_page: Vec::new(),
            unwritten: VecDeque::new(),
            unwritten_bytes: 0,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            bytes_since_index_entry: 0,
            created_ms: self.created_ms,
            sealed: self.sealed,
        }
    }

    /// Whole batches from the one holding `from_offset` (which must lie in
    /// this segment), while their total stays within `max_bytes` (at least
    /// one) and they end before `upto`. Caller ensured indexes are loaded.
    pub async fn read(
        this: &std::cell::RefCell<Self>,
        from_offset: Offset,
        max_bytes: usize,
        upto: Offset,
    ) -> LogResult<Vec<Bytes>> {
        // Unwritten batches are served from memory, as they are.
        let (file, path, start_pos, start_base, disk_bytes) = {
            let seg = this.borrow();
            if let Some(first) = seg.unwritten.front() {
                if from_offset >= first.header.base_offset {
                    return Ok(seg.read_unwritten(from_offset, max_bytes, upto));
                }
            }
            let rel = relative(seg.base_offset, from_offset).unwrap_or(0);
            let (r, pos) = seg.offset_index.lookup(rel);
            (
                seg.file.clone(),
                seg.paths.log.clone(),
                pos as u64,
                seg.base_offset + r as i64,
                seg.disk_bytes,
            )
        };
        let mut pos = start_pos;
        let mut entry_unchecked = start_pos > 0;
        let mut out = Vec::new();
        let mut total = 0usize;
        'chunks: while pos < disk_bytes {
            let want = (max_bytes.max(READ_CHUNK_BYTES) as u64).min(disk_bytes - pos) as usize;
            let chunk = file
                .read_at(pos, want)
                .await
                .map_err(LogError::io("reading", &path))?;
            if std::mem::take(&mut entry_unchecked) && !entry_names_batch(&chunk, start_base) {
                warn_damaged_entry(&path, start_pos, start_base);
                pos = 0;
                continue;
            }
            // Batches taken from this chunk form one contiguous slice.
            let (mut at, mut take_from) = (0usize, None::<usize>);
            let mut stop = false;
            while at < chunk.len() {
                let rest = &chunk[at..];
                let header = match BatchHeader::peek(rest) {
                    Ok(h) => h,
                    Err(_) if rest.len() < HEADER_BYTES => break,
                    Err(e) => {
                        let position = pos + at as u64;
                        return Err(LogError::Corrupt {
                            path,
                            position,
                            reason: e.to_string(),
                        });
                    }
                };
                if header.last_offset() >= upto
                    || (total > 0 && total + header.size_bytes > max_bytes)
                {
                    stop = true;
                    break;
                }
                if header.size_bytes > rest.len() {
                    break;
                }
                if header.last_offset() >= from_offset {
                    take_from.get_or_insert(at);
                    total += header.size_bytes;
                }
                at += header.size_bytes;
            }
            if let Some(from) = take_from {
                out.push(chunk.slice(from..at));
            }
            if at == 0 && !stop {
                // The next batch is larger than the chunk: read it whole.
                let rest = &chunk[..];
                let Ok(header) = BatchHeader::peek(rest) else {
                    break 'chunks;
                };
                let whole = file
                    .read_at(pos, header.size_bytes)
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
                    total += whole.len();
                    out.push(whole);
                }
                at = header.size_bytes;
            }
            pos += at as u64;
            if stop || total >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    fn read_unwritten(&self, from_offset: Offset, max_bytes: usize, upto: Offset) -> Vec<Bytes> {
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

    /// Cuts the segment at byte `position` (a batch boundary) so its next
    /// offset becomes `next_offset`; writes and syncs the result. Caller
    /// holds the I/O lock.
    pub async fn truncate_at(
        this: &std::cell::RefCell<Self>,
        position: u64,
        next_offset: Offset,
    ) -> LogResult<()> {
        Self::write_out(this, true).await?;
        let (file, path) = {
            let mut seg = this.borrow_mut();
            let rel = relative(seg.base_offset, next_offset).unwrap_or(0);
            seg.offset_index
                .truncate_while(|e| (e.position as u64) < position);
            seg.time_index.truncate_while(|e| e.relative_offset < rel);
            seg.size_bytes = position;
            seg.disk_bytes = position;
            seg.issued_bytes = position;
            seg.next_offset = next_offset;
            seg.bytes_since_index_entry = 0;
            (seg.file.clone(), seg.paths.log.clone())
        };
        file.truncate(position)
            .await
            .map_err(LogError::io("truncating", &path))?;
        file.sync().await.map_err(LogError::io("syncing", &path))?;
        let max_timestamp = Self::max_timestamp_below(this, position).await?;
        let tail = read_tail_page::<S>(&file, position, &path).await?;
        {
            let mut seg = this.borrow_mut();
            seg.max_timestamp = max_timestamp;
            seg.tail_page = tail;
            seg.mark_indexes_unpersisted();
        }
        // The index files (open while active) are rewritten whole from memory.
        Self::persist_indexes_of(this, true).await
    }

    /// The largest batch max timestamp below byte `end` (a batch boundary),
    /// or -1, once the indexes hold no entry at or past `end`. A time index
    /// entry holds the largest timestamp *before* its batch, so the batches
    /// from the last offset index entry to `end` are read to finish the job.
    async fn max_timestamp_below(this: &std::cell::RefCell<Self>, end: u64) -> LogResult<i64> {
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

    /// Reopens index files for appending after a sealed segment becomes
    /// active again (truncation removed every segment after it).
    pub async fn unseal(this: &std::cell::RefCell<Self>, storage: &S) -> LogResult<()> {
        let paths = this.borrow().paths.clone();
        let index = storage
            .create(&paths.index)
            .await
            .map_err(LogError::io("creating", &paths.index))?;
        let time_index = storage
            .create(&paths.time_index)
            .await
            .map_err(LogError::io("creating", &paths.time_index))?;
        let (file, size) = {
            let mut seg = this.borrow_mut();
            seg.index_files = Some((Rc::new(index), Rc::new(time_index)));
            seg.sealed = false;
            seg.mark_indexes_unpersisted();
            (seg.file.clone(), seg.size_bytes)
        };
        let tail = read_tail_page::<S>(&file, size, &paths.log).await?;
        this.borrow_mut().tail_page = tail;
        Self::persist_indexes_of(this, true).await
    }

    /// Closes the segment's files.
    pub async fn close(self) -> LogResult<()> {
        if let Ok(file) = Rc::try_unwrap(self.file) {
            file.close()
                .await
                .map_err(LogError::io("closing", &self.paths.log))?;
        }
        if let Some((index, time)) = self.index_files {
            if let Ok(f) = Rc::try_unwrap(index) {
                f.close()
                    .await
                    .map_err(LogError::io("closing", &self.paths.index))?;
            }
            if let Ok(f) = Rc::try_unwrap(time) {
                f.close()
                    .await
                    .map_err(LogError::io("closing", &self.paths.time_index))?;
            }
        }
        Ok(())
    }

    pub fn offset_index(&self) -> &SparseIndex<OffsetEntry> {
        &self.offset_index
    }
    pub fn time_index(&self) -> &SparseIndex<TimeEntry> {
        &self.time_index
    }
    pub fn indexes_loaded(&self) -> bool {
        self.indexes_loaded
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
}

/// True when `bytes` start with the header of the batch based at
/// `base_offset`. Index files carry no checksum and recovery checks only the
/// last entry, so a damaged entry that still decodes in order is caught
/// here, when a read first uses it: trusted, it would send the read into the
/// middle of a batch (a spurious corruption error) or past batches it must
/// return (records silently skipped, or a truncation that keeps too much).
fn entry_names_batch(bytes: &[u8], base_offset: Offset) -> bool {
    BatchHeader::peek(bytes).is_ok_and(|h| h.base_offset == base_offset)
}

/// A damaged index entry was found; the caller walks the segment from its
/// start instead, which is slower but right.
fn warn_damaged_entry(path: &Path, position: u64, base_offset: Offset) {
    tracing::warn!(
        segment = ?path,
        position,
        base_offset,
        "offset index entry does not name the batch at its position; reading from the segment start"
    );
}

async fn write_bytes<S: Storage>(
    file: &S::File,
    pos: u64,
    bytes: &[u8],
    path: &Path,
) -> LogResult<()> {
    debug_assert_eq!(pos % ALIGN as u64, 0);
    debug_assert_eq!(bytes.len() % ALIGN, 0);
    let mut buf = file.alloc(bytes.len());
    buf.as_mut_slice().copy_from_slice(bytes);
    file.write_at(buf, pos)
        .await
        .map_err(LogError::io("writing", path))
}

async fn read_tail_page<S: Storage>(file: &S::File, end: u64, path: &Path) -> LogResult<Vec<u8>> {
    let start = align_down(end);
    if start == end {
        return Ok(Vec::new());
    }
    let bytes = file
        .read_at(start, (end - start) as usize)
        .await
        .map_err(LogError::io("reading", path))?;
    if bytes.len() as u64 != end - start {
        return Err(LogError::Corrupt {
            path: path.to_owned(),
            position: start,
            reason: "short tail page".into(),
        });
    }
    Ok(bytes.to_vec())
}

/// Reads a segment's index files (missing files are empty indexes).
async fn load_indexes<S: Storage>(
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

async fn read_whole<S: Storage>(storage: &S, path: &Path, max_bytes: usize) -> LogResult<Bytes> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_parse_only_twenty_digits() {
        assert_eq!(
            parse_segment_name("00000000000000000042.log", "log"),
            Some(42)
        );
        assert_eq!(
            parse_segment_name("00000000000000000042.index", "log"),
            None
        );
        assert_eq!(parse_segment_name("42.log", "log"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.log", "log"), None);
        assert_eq!(
            SegmentPaths::new(Path::new("d"), 7).log,
            PathBuf::from("d/00000000000000000007.log")
        );
    }
}
