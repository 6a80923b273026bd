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
//! Invariants: batches are whole and their offsets increase (contiguous
//! except in a compacted log, where the cleaner leaves holes); `disk_bytes <=
//! size_bytes`; every byte below `disk_bytes` was written by a completed
//! write; `unwritten` holds exactly the batches in `[disk_bytes, size_bytes)`.
//! The active `.log` file may run past the data: the zero padding of its
//! last page, space preallocated ahead of the writes ([`Preallocate`]), up
//! to `allocated_bytes`, and in a recycled file (`segment/recycle.rs`) the
//! old bytes of the segment it was.
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

use crate::chunk::ReadChunk;

mod preallocate;
mod read;
mod recycle;
pub use preallocate::Preallocate;
pub use read::{ReadEnd, Rest, Resume, SegmentRead};
pub use recycle::SPARE_FILE;
mod recovery;
use crate::error::{LogError, LogResult};
use crate::index::{relative, IndexEntry, OffsetEntry, SparseIndex, TimeEntry};
pub use recovery::RecoveryReport;

use crate::storage::transient::transient_file_turn;
use crate::storage::{align_down, align_up, AlignedBuf, Storage, StorageFile, ALIGN};

/// The buffer type reads of storage `S` return.
pub type ReadBufOf<S> = <<S as Storage>::File as StorageFile>::ReadBuf;

/// Bytes read at a time when scanning or serving reads from disk.
pub const READ_CHUNK_BYTES: usize = 256 * 1024;

/// File names of a segment, from its base offset (`<base:020>.log`, ...).
#[derive(Debug, Clone)]
pub struct SegmentPaths {
    pub log: PathBuf,
    pub index: PathBuf,
    pub time_index: PathBuf,
    /// Written when the segment seals (see [`crate::txn_index`]).
    pub txn_index: PathBuf,
    /// Present while an active segment's `.log` is a recycled file that
    /// may hold old bytes past its data (see `segment/recycle.rs`).
    pub recycled: PathBuf,
}

/// Extensions of the files that belong to a segment besides its `.log`.
pub const INDEX_EXTENSIONS: [&str; 3] = ["index", "timeindex", "txnindex"];

/// Extension of a recycled segment's marker (see `segment/recycle.rs`).
pub const RECYCLED_EXTENSION: &str = "recycled";

impl SegmentPaths {
    pub fn new(dir: &Path, base_offset: Offset) -> SegmentPaths {
        SegmentPaths {
            log: dir.join(format!("{base_offset:020}.log")),
            index: dir.join(format!("{base_offset:020}.index")),
            time_index: dir.join(format!("{base_offset:020}.timeindex")),
            txn_index: dir.join(format!("{base_offset:020}.txnindex")),
            recycled: dir.join(format!("{base_offset:020}.{RECYCLED_EXTENSION}")),
        }
    }

    /// Every file of the segment, its indexes first and its `.log` last
    /// (removed in this order, a `.log` present means a whole segment).
    pub fn files(&self) -> [&PathBuf; 4] {
        [&self.index, &self.time_index, &self.txn_index, &self.log]
    }

    /// The files that go with the segment besides its `.log`: its recycled
    /// marker and its indexes.
    pub fn side_files(&self) -> [&PathBuf; 4] {
        [
            &self.recycled,
            &self.index,
            &self.time_index,
            &self.txn_index,
        ]
    }
}

/// Removes every file of a segment that exists, its `.log` last.
pub async fn remove_files<S: Storage>(storage: &S, paths: &SegmentPaths) -> LogResult<()> {
    for path in paths.side_files().into_iter().chain([&paths.log]) {
        remove_if_present(storage, path).await?;
    }
    Ok(())
}

/// Opens the existing file at `path`, with its length.
pub(crate) async fn open_with_len<S: Storage>(
    storage: &S,
    path: &Path,
) -> LogResult<(S::File, u64)> {
    let file = storage
        .open(path)
        .await
        .map_err(LogError::io("opening", path))?;
    let len = file
        .size()
        .await
        .map_err(LogError::io("reading size of", path))?;
    Ok((file, len))
}

/// Removes `path` unless it is not there.
pub(crate) async fn remove_if_present<S: Storage>(storage: &S, path: &Path) -> LogResult<()> {
    match storage.remove(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("removing", path)(e)),
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
    /// What it counts in `unwritten_bytes`: its length, or more when it
    /// keeps a larger buffer alive (see [`Segment::append_charged`]).
    pub charged: u64,
}

/// A write to the `.log` file issued but not yet awaited.
struct InFlightWrite {
    task: glommio::Task<std::io::Result<()>>,
    /// Logical end of the log once it completes.
    end: u64,
    /// The tail page before this write was issued: restored if it fails,
    /// so the same bytes can be written again (a full disk is retried).
    prev_tail: Vec<u8>,
}

/// One segment of a partition log.
pub struct Segment<S: Storage> {
    pub base_offset: Offset,
    pub paths: SegmentPaths,
    file: Rc<S::File>,
    /// Where the index files are written while the segment is active,
    /// `None` once sealed. They are opened for each write of index pages
    /// (one every few MiB of appends) and closed after it, so an active
    /// segment holds one open file, its `.log`: 10,000 partitions need
    /// 10,000 descriptors, not 30,000.
    index_storage: Option<S>,
    offset_index: SparseIndex<OffsetEntry>,
    time_index: SparseIndex<TimeEntry>,
    /// False for a sealed segment whose indexes were not read yet.
    indexes_loaded: bool,
    /// True while the index files were synced since they were created or
    /// last written (false until their first sync, and again after a
    /// write without a sync or when the files are made anew): a sync of
    /// the indexes with no page to write then opens no file.
    index_files_synced: bool,
    index_max_bytes: u32,
    pub size_bytes: u64,
    disk_bytes: u64,
    /// End of the last write issued (>= `disk_bytes`; greater while a
    /// write is in flight).
    issued_bytes: u64,
    /// The `.log` file's length once the write in flight lands, as this
    /// segment made it: its data's aligned end, or further where it was
    /// preallocated ([`Preallocate`]).
    allocated_bytes: u64,
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
    /// Its `.log` is a recycled file with its marker present: the bytes
    /// past its data may be the old segment's, until it seals.
    recycled: bool,
}

impl<S: Storage> Segment<S> {
    /// The segment's `.log` file.
    pub(crate) fn file(&self) -> Rc<S::File> {
        self.file.clone()
    }

    /// Creates an empty active segment: its `.log` file. Its index files
    /// are created with their first page of entries (a partition written
    /// less than that has one file, not three: a topic of 10,000
    /// partitions creates 10,000 files, not 30,000); until then a missing
    /// index file reads as an empty index.
    pub async fn create(
        storage: &S,
        dir: &Path,
        base_offset: Offset,
        index_max_bytes: u32,
        now_ms: i64,
    ) -> LogResult<Self> {
        let paths = SegmentPaths::new(dir, base_offset);
        Self::create_log(storage, paths, base_offset, index_max_bytes, now_ms).await
    }

    /// Creates an empty active segment's three files at `paths` (the
    /// cleaner writes a segment under other names before it swaps it in,
    /// renaming all three).
    pub async fn create_at(
        storage: &S,
        paths: SegmentPaths,
        base_offset: Offset,
        index_max_bytes: u32,
        now_ms: i64,
    ) -> LogResult<Self> {
        let seg = Self::create_log(storage, paths, base_offset, index_max_bytes, now_ms).await?;
        for path in [&seg.paths.index, &seg.paths.time_index] {
            create_empty(storage, path).await?;
        }
        Ok(seg)
    }

    /// An empty active segment over a new `.log` at `paths.log`.
    async fn create_log(
        storage: &S,
        paths: SegmentPaths,
        base_offset: Offset,
        index_max_bytes: u32,
        now_ms: i64,
    ) -> LogResult<Self> {
        let file = storage
            .create(&paths.log)
            .await
            .map_err(LogError::io("creating", &paths.log))?;
        let mut seg =
            Segment::with_file(base_offset, paths, Rc::new(file), index_max_bytes, now_ms);
        seg.index_storage = Some(storage.clone());
        Ok(seg)
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
        let (file, size_bytes) = open_with_len(storage, &paths.log).await?;
        let mut seg =
            Segment::with_file(base_offset, paths, Rc::new(file), index_max_bytes, now_ms);
        seg.indexes_loaded = false;
        (seg.size_bytes, seg.disk_bytes, seg.issued_bytes) = (size_bytes, size_bytes, size_bytes);
        seg.allocated_bytes = size_bytes;
        seg.next_offset = next_offset;
        seg.sealed = true;
        Ok(seg)
    }

    /// An empty, active segment over `file` with empty indexes loaded and no
    /// index files to write; the constructors adjust from here.
    fn with_file(
        base_offset: Offset,
        paths: SegmentPaths,
        file: Rc<S::File>,
        index_max_bytes: u32,
        now_ms: i64,
    ) -> Self {
        Segment {
            base_offset,
            paths,
            file,
            index_storage: None,
            offset_index: SparseIndex::new(index_max_bytes),
            time_index: SparseIndex::new(index_max_bytes),
            indexes_loaded: true,
            index_files_synced: false,
            index_max_bytes,
            size_bytes: 0,
            disk_bytes: 0,
            issued_bytes: 0,
            allocated_bytes: 0,
            in_flight: None,
            tail_page: Vec::new(),
            unwritten: VecDeque::new(),
            unwritten_bytes: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            bytes_since_index_entry: 0,
            created_ms: now_ms,
            sealed: false,
            recycled: false,
        }
    }

    /// The index files are about to be rewritten whole from memory.
    fn mark_indexes_unpersisted(&mut self) {
        self.offset_index.mark_unpersisted();
        self.time_index.mark_unpersisted();
        self.index_files_synced = false;
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
        let charged = bytes.len() as u64;
        self.append_charged(header, bytes, index_interval_bytes, charged);
    }

    /// [`Segment::append`] counting the batch as `charged` bytes of the
    /// write buffer: at least its length, the whole buffer it was cut from
    /// when that is larger (a produce frame), so a small batch that keeps a
    /// large frame alive fills the write buffer and is written out soon.
    pub fn append_charged(
        &mut self,
        header: BatchHeader,
        bytes: Bytes,
        index_interval_bytes: u32,
        charged: u64,
    ) {
        let charged = charged.max(bytes.len() as u64);
        assert!(!self.sealed, "append to a sealed segment");
        assert!(
            header.base_offset >= self.next_offset,
            "offsets must increase"
        );
        let position = self.size_bytes;
        let mut since = self.bytes_since_index_entry;
        self.index_batch(position, &header, index_interval_bytes, &mut since);
        self.bytes_since_index_entry = since;
        self.size_bytes += bytes.len() as u64;
        self.unwritten_bytes += charged;
        self.next_offset = header.last_offset() + 1;
        self.unwritten.push_back(UnwrittenBatch {
            position,
            header,
            bytes,
            charged,
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
    /// copies) overlap the disk. A write that would extend the file first
    /// grows it ahead as `preallocate` says, in the same task. Also
    /// persists index pages once a page of entries is waiting. Caller holds
    /// the I/O lock.
    pub async fn write_out(
        this: &std::cell::RefCell<Self>,
        wait: bool,
        preallocate: Preallocate,
    ) -> LogResult<()> {
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
            {
                let mut seg = this.borrow_mut();
                debug_assert_eq!(align_down(seg.issued_bytes), start);
                seg.issued_bytes = end;
                let prev_tail = std::mem::replace(&mut seg.tail_page, new_tail);
                let write_end = align_up(end);
                let grow_to = preallocate.target(write_end, seg.allocated_bytes);
                seg.allocated_bytes = grow_to.unwrap_or(write_end).max(seg.allocated_bytes);
                let file = seg.file.clone();
                // The path only for the rare write that grows the file.
                let grow = grow_to.map(|len| (len, seg.paths.log.clone()));
                let task = glommio::spawn_local(async move {
                    if let Some((len, path)) = grow {
                        // A hint: without the space, the write grows the file.
                        if let Err(e) = file.allocate(len).await {
                            tracing::debug!(?path, len, error = %e, "preallocating a segment failed");
                        }
                    }
                    file.write_at(buf, start).await
                });
                seg.in_flight = Some(InFlightWrite {
                    task,
                    end,
                    prev_tail,
                });
            }
            if !wait {
                // Let the write task run and the reactor submit it now, so the
                // disk works while the caller goes on.
                glommio::executor().yield_task_queue_now().await;
            }
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
        if let Err(e) = result {
            // Nothing it covered counts as written: the bytes stay in
            // `unwritten` and the next write-out issues them again from
            // the last position that reached the disk.
            seg.issued_bytes = seg.disk_bytes;
            seg.tail_page = write.prev_tail;
            return Err(LogError::io("writing", &seg.paths.log)(e));
        }
        seg.disk_bytes = write.end;
        while seg
            .unwritten
            .front()
            .is_some_and(|b| b.position < write.end)
        {
            let b = seg.unwritten.pop_front().expect("front exists");
            seg.unwritten_bytes -= b.charged;
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

    /// Writes unpersisted index pages (and syncs them if asked), without
    /// holding a borrow across the writes.
    pub async fn persist_indexes_of(this: &std::cell::RefCell<Self>, sync: bool) -> LogResult<()> {
        let (storage, offset_pages, time_pages, paths) = {
            let seg = this.borrow();
            let Some(storage) = seg.index_storage.clone() else {
                return Ok(());
            };
            (
                storage,
                seg.offset_index.unpersisted_pages(ALIGN),
                seg.time_index.unpersisted_pages(ALIGN),
                seg.paths.clone(),
            )
        };
        let (offset_len, time_len, synced_before) = {
            let seg = this.borrow();
            (
                seg.offset_index.len(),
                seg.time_index.len(),
                seg.index_files_synced,
            )
        };
        if offset_pages.is_some() || time_pages.is_some() {
            // Pages about to be written are not synced, whatever happens.
            this.borrow_mut().index_files_synced = false;
        }
        for (pages, path) in [
            (offset_pages, &paths.index),
            (time_pages, &paths.time_index),
        ] {
            if pages.is_none() && (!sync || synced_before) {
                continue;
            }
            let _turn = transient_file_turn().await;
            let file = match storage.open(path).await {
                Ok(file) => file,
                // Not created yet (see `create`): its first page creates
                // it; with nothing to write there is nothing to sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if pages.is_none() {
                        continue;
                    }
                    storage
                        .create(path)
                        .await
                        .map_err(LogError::io("creating", path))?
                }
                Err(e) => return Err(LogError::io("opening", path)(e)),
            };
            if let Some((pos, bytes)) = pages {
                write_bytes::<S>(&file, pos, &bytes, path).await?;
            }
            if sync {
                file.sync().await.map_err(LogError::io("syncing", path))?;
            }
            file.close().await.map_err(LogError::io("closing", path))?;
        }
        let mut seg = this.borrow_mut();
        if sync {
            seg.index_files_synced = true;
        }
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
    /// padding off the `.log`; its index files are not written again.
    pub async fn seal(this: &std::cell::RefCell<Self>) -> LogResult<()> {
        Self::write_out(this, true, Preallocate::NONE).await?;
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
        // Its file holds its own data alone now; the marker's removal is
        // durable with the next directory sync (a marker left by a crash
        // beside a sealed segment is removed at open).
        let marker = {
            let seg = this.borrow();
            let storage = seg.index_storage.clone().filter(|_| seg.recycled);
            storage.map(|storage| (storage, seg.paths.recycled.clone()))
        };
        if let Some((storage, marker)) = marker {
            remove_if_present(&storage, &marker).await?;
        }
        let mut seg = this.borrow_mut();
        seg.recycled = false;
        seg.allocated_bytes = size;
        seg.sealed = true;
        seg.tail_page = Vec::new();
        seg.index_storage = None;
        Ok(())
    }

    /// Cuts the segment at byte `position` (a batch boundary) so its next
    /// offset becomes `next_offset`; writes and syncs the result. Caller
    /// holds the I/O lock.
    pub async fn truncate_at(
        this: &std::cell::RefCell<Self>,
        position: u64,
        next_offset: Offset,
    ) -> LogResult<()> {
        Self::write_out(this, true, Preallocate::NONE).await?;
        let (file, path) = {
            let mut seg = this.borrow_mut();
            let rel = relative(seg.base_offset, next_offset).unwrap_or(0);
            seg.offset_index
                .truncate_while(|e| (e.position as u64) < position);
            seg.time_index.truncate_while(|e| e.relative_offset < rel);
            seg.size_bytes = position;
            seg.disk_bytes = position;
            seg.issued_bytes = position;
            seg.allocated_bytes = position;
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
        // The index files are rewritten whole from memory.
        Self::persist_indexes_of(this, true).await
    }

    /// Reopens index files for appending after a sealed segment becomes
    /// active again (truncation removed every segment after it).
    pub async fn unseal(this: &std::cell::RefCell<Self>, storage: &S) -> LogResult<()> {
        let paths = this.borrow().paths.clone();
        for path in [&paths.index, &paths.time_index] {
            create_empty(storage, path).await?;
        }
        let (file, size) = {
            let mut seg = this.borrow_mut();
            seg.index_storage = Some(storage.clone());
            seg.sealed = false;
            seg.mark_indexes_unpersisted();
            (seg.file.clone(), seg.size_bytes)
        };
        let tail = read_tail_page::<S>(&file, size, &paths.log).await?;
        this.borrow_mut().tail_page = tail;
        Self::persist_indexes_of(this, true).await
    }

    /// Cuts space preallocated past the data's last page off the `.log`
    /// (before its log closes: a closed broker holds no reserved space);
    /// durable with the next sync. Caller holds the I/O lock, with no
    /// write in flight.
    pub async fn trim_preallocated(this: &std::cell::RefCell<Self>) -> LogResult<()> {
        let (file, end, path) = {
            let seg = this.borrow();
            debug_assert!(seg.in_flight.is_none());
            let end = align_up(seg.size_bytes);
            if seg.allocated_bytes <= end {
                return Ok(());
            }
            (seg.file.clone(), end, seg.paths.log.clone())
        };
        file.truncate(end)
            .await
            .map_err(LogError::io("truncating", &path))?;
        this.borrow_mut().allocated_bytes = end;
        Ok(())
    }

    /// Closes the segment's files.
    pub async fn close(self) -> LogResult<()> {
        if let Ok(file) = Rc::try_unwrap(self.file) {
            file.close()
                .await
                .map_err(LogError::io("closing", &self.paths.log))?;
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

/// Creates `path` empty (truncating any file there) and closes it.
pub(super) async fn create_empty<S: Storage>(storage: &S, path: &Path) -> LogResult<()> {
    let _turn = transient_file_turn().await;
    let file = storage
        .create(path)
        .await
        .map_err(LogError::io("creating", path))?;
    file.close().await.map_err(LogError::io("closing", path))
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
