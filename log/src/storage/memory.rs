//! An in-memory disk for crash and fault tests of the partition log.
//!
//! Owns: [`MemoryStorage`] (the disk, a cheap [`Clone`] sharing one state),
//! [`MemoryFile`] (an open file on it), [`MemoryBuf`] (a plain zeroed buffer)
//! and the fault switches ([`FaultOp`], [`MemoryStorage::fail_after`],
//! [`MemoryStorage::fail_path_ops`], [`MemoryStorage::set_capacity_bytes`]).
//! Only tests should use it: it keeps every byte in memory and panics loudly
//! when a caller breaks a precondition of [`StorageFile`] (unaligned writes).
//!
//! # The model
//!
//! - **Namespace.** A flat map from full path to file, plus a set of
//!   directories. Directory creation is durable at once (a simplification:
//!   the log creates its directories before it writes, and losing one would
//!   only lose its files, which the file model already covers). The
//!   filesystem root (`/`, or `""` for relative paths) always exists.
//! - **File data.** Every file has a *current* image (what reads see), a
//!   *durable* image (what survives a crash) and the ordered list of data
//!   operations (write, truncate; an allocate that grows the file is a
//!   truncate to its new length) made since its last `sync`. Invariant:
//!   durable image + pending operations, applied in order, = current image.
//!   `sync` applies the pending operations to the durable image and empties
//!   the list. `create` of an existing path truncates that file, like
//!   `O_TRUNC`: a data operation, not a directory one.
//! - **Directory entries.** There is a current namespace and a durable one.
//!   Creating a new file, renaming and removing change the current namespace
//!   at once and append an operation to the pending list of the directory
//!   they change; `sync_dir(dir)` applies that list to the durable namespace.
//!   A rename within one directory is one atomic operation and replaces its
//!   target, as rename(2) does. A rename across directories is two
//!   operations (an unlink in the source directory, a link in the target
//!   one) and is durable only once both directories are synced; until then a
//!   crash may keep either half, which POSIX allows.
//! - **Files outlive their names** while a handle is open (reads and writes
//!   go on, as after unlink(2)) or while a crash could still bring the name
//!   back (an unsynced remove or rename). Then they are freed.
//! - **`crash(seed)`** models power loss. For each directory, a random prefix
//!   of its pending operations reaches the durable namespace, which becomes
//!   the current one. For each file still named, a random prefix of its
//!   pending data operations reaches its durable image, and the last write of
//!   that prefix may be torn: then only its first *k* whole
//!   [`SECTOR_BYTES`] sectors land, for a random *k*. The result is both the
//!   current and the durable image. Every handle opened before the crash is
//!   stale. Choices come from a small SplitMix64 generator seeded with
//!   `seed`, so one seed always gives one outcome.
//! - **`crash_keep_all()`** models SIGKILL of the process: the kernel keeps
//!   every completed write and directory change, so everything current
//!   becomes durable; handles go stale.
//! - **Space.** Used bytes are the current lengths of the files that are
//!   named or open (what `du` and `df` would count). With a capacity set, a
//!   write, truncate or allocate that grows a file beyond it fails with
//!   `ENOSPC`;
//!   overwrites inside a file never do.
//! - **Faults.** Each operation is checked, before it runs, against the
//!   path rules of [`MemoryStorage::fail_path_ops`] (by [`FaultOp`]) and the
//!   budget of [`MemoryStorage::fail_after`]; only operations that succeed
//!   spend the budget. `create_dir_all`, `size` and `close` have no
//!   [`FaultOp`] and obey only the budget; `alloc` and the test helpers
//!   never fail. A crash keeps the fault settings.
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//!
//! use sluice_log::storage::memory::MemoryStorage;
//! use sluice_log::storage::{AlignedBuf, Storage, StorageFile, ALIGN};
//!
//! futures_lite::future::block_on(async {
//!     let disk = MemoryStorage::new();
//!     disk.create_dir_all(Path::new("/data")).await?;
//!     let file = disk.create(Path::new("/data/0.log")).await?;
//!     let mut buf = file.alloc(ALIGN);
//!     buf.as_mut_slice().fill(7);
//!     file.write_at(buf, 0).await?;
//!     file.sync().await?;
//!     disk.sync_dir(Path::new("/data")).await?;
//!
//!     disk.crash(42);
//!     assert_eq!(disk.file_bytes(Path::new("/data/0.log")), Some(vec![7; ALIGN]));
//!     assert!(file.size().await.is_err()); // opened before the crash
//!     Ok::<(), std::io::Error>(())
//! })
//! .expect("in-memory operations succeed");
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use sluice_core::rng::SplitMix64;

use super::{AlignedBuf, Storage, StorageFile, ALIGN};

/// Granularity of torn writes: a disk writes a sector entirely or not at all.
pub const SECTOR_BYTES: usize = 512;

/// `ENOSPC` on Linux: what a write to a full disk fails with.
const ENOSPC: i32 = 28;

/// An operation that [`MemoryStorage::fail_path_ops`] can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// [`StorageFile::write_at`].
    Write,
    /// [`StorageFile::read_local`].
    Read,
    /// [`StorageFile::sync`].
    Sync,
    /// [`StorageFile::truncate`].
    Truncate,
    /// [`StorageFile::allocate`].
    Allocate,
    /// [`Storage::create`].
    Create,
    /// [`Storage::open`].
    Open,
    /// [`Storage::rename`] (matched against both paths).
    Rename,
    /// [`Storage::remove`].
    Remove,
    /// [`Storage::sync_dir`].
    SyncDir,
    /// [`Storage::list`].
    List,
}

/// An in-memory disk that can lose unsynced data, tear writes and fail on
/// command (see the module docs for the model). Clones share one disk.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    state: Rc<RefCell<State>>,
}

/// An open file of a [`MemoryStorage`]. It goes stale at the next crash:
/// every later operation fails with "storage crashed".
pub struct MemoryFile {
    state: Rc<RefCell<State>>,
    inode: InodeId,
    /// The path it was opened by, for path fault rules (kept across renames).
    path: PathBuf,
    /// The crash generation it was opened in.
    generation: u64,
}

/// A zeroed buffer from [`MemoryFile::alloc`]; any file accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBuf {
    bytes: Vec<u8>,
}

type InodeId = u64;

#[derive(Default)]
struct State {
    inodes: BTreeMap<InodeId, Inode>,
    next_inode: InodeId,
    /// What `open` and `list` see.
    current_names: BTreeMap<PathBuf, InodeId>,
    /// What a crash starts from.
    durable_names: BTreeMap<PathBuf, InodeId>,
    dirs: BTreeSet<PathBuf>,
    /// Per directory, the entry changes not yet made durable by `sync_dir`.
    pending_dir_ops: BTreeMap<PathBuf, Vec<DirOp>>,
    /// Open handles of the current generation, per file.
    open_handles: BTreeMap<InodeId, usize>,
    /// Bumped by every crash; handles from older generations are stale.
    generation: u64,
    faults: Faults,
    capacity_bytes: Option<u64>,
}

#[derive(Default)]
struct Faults {
    /// Successful operations left before every operation fails.
    ops_before_failure: Option<u64>,
    /// (path substring, operation) pairs that fail.
    path_rules: Vec<(String, FaultOp)>,
}

#[derive(Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Data operations since the last sync, oldest first.
    pending: Vec<DataOp>,
}

enum DataOp {
    Write { pos_bytes: usize, bytes: Vec<u8> },
    Truncate { len_bytes: usize },
}

enum DirOp {
    /// A new name for a file: `create` of a new path, or the target half of
    /// a rename across directories.
    Link { path: PathBuf, inode: InodeId },
    /// A name goes away: `remove`, or the source half of a rename across
    /// directories.
    Unlink { path: PathBuf },
    /// A rename within one directory, atomic, replacing any file at `to`.
    Rename {
        from: PathBuf,
        to: PathBuf,
        inode: InodeId,
    },
}

impl MemoryStorage {
    /// An empty disk with no faults and no capacity limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates power loss; `rng_seed` picks which unsynced data and
    /// directory changes survive and which write is torn (see the module
    /// docs). Handles opened before go stale.
    pub fn crash(&self, rng_seed: u64) {
        let mut rng = SplitMix64::new(rng_seed);
        let mut guard = self.state.borrow_mut();
        let state = &mut *guard;
        for ops in std::mem::take(&mut state.pending_dir_ops).values() {
            let kept_ops = rng.up_to(ops.len());
            for op in &ops[..kept_ops] {
                op.apply(&mut state.durable_names);
            }
        }
        state.current_names = state.durable_names.clone();
        let named: BTreeSet<InodeId> = state.durable_names.values().copied().collect();
        for (id, inode) in &mut state.inodes {
            if named.contains(id) {
                inode.lose_unsynced(&mut rng);
            }
        }
        state.start_new_generation();
    }

    /// Simulates SIGKILL of the process: every completed write and directory
    /// change is kept and becomes durable. Handles opened before go stale.
    pub fn crash_keep_all(&self) {
        let mut guard = self.state.borrow_mut();
        let state = &mut *guard;
        for inode in state.inodes.values_mut() {
            inode.sync();
        }
        state.pending_dir_ops.clear();
        state.durable_names = state.current_names.clone();
        state.start_new_generation();
    }

    /// Makes every operation fail with "injected fault" after the next `ops`
    /// successful ones, until [`Self::clear_faults`].
    pub fn fail_after(&self, ops: u64) {
        self.state.borrow_mut().faults.ops_before_failure = Some(ops);
    }

    /// Makes `op` fail with "injected fault" on every path containing
    /// `substring`, until [`Self::clear_faults`]. Rules accumulate. A file
    /// operation matches the path its handle was opened by.
    pub fn fail_path_ops(&self, substring: &str, op: FaultOp) {
        let mut state = self.state.borrow_mut();
        state.faults.path_rules.push((substring.to_owned(), op));
    }

    /// Removes every fault set by [`Self::fail_after`] and
    /// [`Self::fail_path_ops`] (not the capacity).
    pub fn clear_faults(&self) {
        self.state.borrow_mut().faults = Faults::default();
    }

    /// Limits the total length of named and open files; growing past it
    /// fails with `ENOSPC`. `None` removes the limit.
    pub fn set_capacity_bytes(&self, capacity_bytes: Option<u64>) {
        self.state.borrow_mut().capacity_bytes = capacity_bytes;
    }

    /// The current image of the file at `path` (what a read would see), or
    /// `None` when no file has that name.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.borrow();
        let id = state.current_names.get(path)?;
        state.inodes.get(id).map(|inode| inode.current.clone())
    }

    /// True when a file or directory has that name now.
    pub fn exists(&self, path: &Path) -> bool {
        let state = self.state.borrow();
        state.current_names.contains_key(path) || state.is_dir(path)
    }

    /// Replaces the whole content of the file at `path` with `bytes`, in
    /// both the current and the durable image, creating the file and its
    /// directories if missing. As if the file and its directory had been
    /// synced first, so no later crash undoes it. Ignores the capacity.
    ///
    /// # Panics
    ///
    /// When a file has the name of `path`'s directory or one of its parents,
    /// or `path` is a directory.
    pub fn write_raw(&self, path: &Path, bytes: &[u8]) {
        let mut guard = self.state.borrow_mut();
        let state = &mut *guard;
        assert!(
            !state.is_dir(path),
            "write_raw: {} is a directory",
            path.display()
        );
        let parent = path.parent().unwrap_or(Path::new(""));
        for dir in parent.ancestors() {
            assert!(
                !state.current_names.contains_key(dir),
                "write_raw: {} is a file",
                dir.display()
            );
        }
        for dir in parent.ancestors().filter(|dir| dir.parent().is_some()) {
            state.dirs.insert(dir.to_path_buf());
        }
        if let Some(ops) = state.pending_dir_ops.remove(parent) {
            for op in &ops {
                op.apply(&mut state.durable_names);
            }
        }
        let id = match state.current_names.get(path) {
            Some(&id) => id,
            None => {
                let id = state.new_inode();
                state.current_names.insert(path.to_path_buf(), id);
                id
            }
        };
        state.durable_names.insert(path.to_path_buf(), id);
        let inode = state.inode_mut(id);
        inode.pending.clear();
        inode.current = bytes.to_vec();
        inode.durable = bytes.to_vec();
        state.collect_garbage();
    }

    /// XORs the byte at `pos` of the file at `path` with `xor_mask`, in both
    /// images. Unsynced data of the file is made durable first; its name is
    /// left as it is.
    ///
    /// # Panics
    ///
    /// When no file has that name or `pos` is not inside the file.
    pub fn corrupt(&self, path: &Path, pos: u64, xor_mask: u8) {
        self.with_synced_file(path, "corrupt", |image| {
            let len_bytes = image.len();
            let byte = usize::try_from(pos)
                .ok()
                .and_then(|pos| image.get_mut(pos))
                .unwrap_or_else(|| panic!("corrupt: position {pos} is past the end ({len_bytes})"));
            *byte ^= xor_mask;
        });
    }

    /// Sets the length of the file at `path` to `len` (zero-filling when it
    /// grows), in both images. Unsynced data of the file is made durable
    /// first; its name is left as it is. Ignores the capacity.
    ///
    /// # Panics
    ///
    /// When no file has that name or `len` does not fit in memory.
    pub fn truncate_raw(&self, path: &Path, len: u64) {
        let len_bytes = usize::try_from(len).expect("truncate_raw: length fits in memory");
        self.with_synced_file(path, "truncate_raw", |image| image.resize(len_bytes, 0));
    }

    /// Syncs the file at `path`, then changes both of its images with `edit`.
    fn with_synced_file(&self, path: &Path, helper: &str, edit: impl Fn(&mut Vec<u8>)) {
        let mut state = self.state.borrow_mut();
        let id = *state
            .current_names
            .get(path)
            .unwrap_or_else(|| panic!("{helper}: no file {}", path.display()));
        let inode = state.inode_mut(id);
        inode.sync();
        edit(&mut inode.current);
        edit(&mut inode.durable);
    }

    /// Runs one storage operation under the fault rules.
    fn run<T>(
        &self,
        op: Option<FaultOp>,
        paths: &[&Path],
        body: impl FnOnce(&mut State) -> io::Result<T>,
    ) -> io::Result<T> {
        self.state.borrow_mut().run(op, paths, body)
    }

    /// A new handle on `id`, counted as open so the file outlives its name.
    fn new_handle(&self, state: &mut State, id: InodeId, path: &Path) -> MemoryFile {
        *state.open_handles.entry(id).or_default() += 1;
        MemoryFile {
            state: Rc::clone(&self.state),
            inode: id,
            path: path.to_path_buf(),
            generation: state.generation,
        }
    }
}

impl Storage for MemoryStorage {
    type File = MemoryFile;

    async fn open(&self, path: &Path) -> io::Result<MemoryFile> {
        self.run(Some(FaultOp::Open), &[path], |state| {
            if state.is_dir(path) {
                return Err(is_a_directory(path));
            }
            let id = *state
                .current_names
                .get(path)
                .ok_or_else(|| not_found(path))?;
            Ok(self.new_handle(state, id, path))
        })
    }

    async fn create(&self, path: &Path) -> io::Result<MemoryFile> {
        self.run(Some(FaultOp::Create), &[path], |state| {
            let parent = state.existing_parent(path)?;
            let id = match state.current_names.get(path) {
                Some(&id) => {
                    state.inode_mut(id).apply(DataOp::Truncate { len_bytes: 0 });
                    id
                }
                None => {
                    let id = state.new_inode();
                    state.current_names.insert(path.to_path_buf(), id);
                    state.push_dir_op(
                        parent,
                        DirOp::Link {
                            path: path.to_path_buf(),
                            inode: id,
                        },
                    );
                    id
                }
            };
            Ok(self.new_handle(state, id, path))
        })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.run(None, &[path], |state| {
            for dir in path.ancestors() {
                if state.current_names.contains_key(dir) {
                    let kind = if dir == path {
                        io::ErrorKind::AlreadyExists
                    } else {
                        io::ErrorKind::NotADirectory
                    };
                    return Err(io::Error::new(kind, format!("{} is a file", dir.display())));
                }
            }
            for dir in path.ancestors().filter(|dir| dir.parent().is_some()) {
                state.dirs.insert(dir.to_path_buf());
            }
            Ok(())
        })
    }

    async fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.run(Some(FaultOp::List), &[dir], |state| {
            state.check_dir(dir)?;
            let files = state.current_names.keys();
            let mut names: Vec<String> = files
                .chain(&state.dirs)
                .filter(|path| path.parent() == Some(dir))
                .filter_map(|path| path.file_name())
                .map(|name| name.to_string_lossy().into_owned())
                .collect();
            names.sort();
            Ok(names)
        })
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.run(Some(FaultOp::Rename), &[from, to], |state| {
            let Some(&id) = state.current_names.get(from) else {
                if state.is_dir(from) {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("memory storage renames files only: {}", from.display()),
                    ));
                }
                return Err(not_found(from));
            };
            let from_parent = state.existing_parent(from)?;
            let to_parent = state.existing_parent(to)?;
            if from == to {
                return Ok(());
            }
            state.current_names.remove(from);
            state.current_names.insert(to.to_path_buf(), id);
            if from_parent == to_parent {
                let op = DirOp::Rename {
                    from: from.to_path_buf(),
                    to: to.to_path_buf(),
                    inode: id,
                };
                state.push_dir_op(to_parent, op);
            } else {
                let unlink = DirOp::Unlink {
                    path: from.to_path_buf(),
                };
                state.push_dir_op(from_parent, unlink);
                let link = DirOp::Link {
                    path: to.to_path_buf(),
                    inode: id,
                };
                state.push_dir_op(to_parent, link);
            }
            state.collect_garbage();
            Ok(())
        })
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        self.run(Some(FaultOp::Remove), &[path], |state| {
            if state.is_dir(path) {
                return Err(is_a_directory(path));
            }
            let parent = state.existing_parent(path)?;
            if state.current_names.remove(path).is_none() {
                return Err(not_found(path));
            }
            let op = DirOp::Unlink {
                path: path.to_path_buf(),
            };
            state.push_dir_op(parent, op);
            state.collect_garbage();
            Ok(())
        })
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.run(Some(FaultOp::SyncDir), &[dir], |state| {
            state.check_dir(dir)?;
            if let Some(ops) = state.pending_dir_ops.remove(dir) {
                for op in &ops {
                    op.apply(&mut state.durable_names);
                }
            }
            state.collect_garbage();
            Ok(())
        })
    }
}

impl MemoryFile {
    /// Runs one file operation: stale handles fail, then the fault rules.
    fn run<T>(
        &self,
        op: Option<FaultOp>,
        body: impl FnOnce(&mut State, InodeId) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.state.borrow_mut();
        if state.generation != self.generation {
            return Err(io::Error::other("storage crashed"));
        }
        let id = self.inode;
        state.run(op, &[self.path.as_path()], |state| body(state, id))
    }
}

impl StorageFile for MemoryFile {
    type Buf = MemoryBuf;
    type ReadBuf = Bytes;

    fn slice(buf: &Bytes, from: usize, len: usize) -> Bytes {
        buf.slice(from..from + len)
    }

    fn alloc(&self, len: usize) -> MemoryBuf {
        assert!(
            len % ALIGN == 0,
            "alloc length {len} is not a multiple of {ALIGN}"
        );
        MemoryBuf {
            bytes: vec![0; len],
        }
    }

    async fn write_at(&self, buf: MemoryBuf, pos: u64) -> io::Result<()> {
        assert!(
            pos % ALIGN as u64 == 0,
            "write_at position {pos} is not a multiple of {ALIGN}"
        );
        assert!(
            buf.len() % ALIGN == 0,
            "write_at length {} is not a multiple of {ALIGN}",
            buf.len()
        );
        self.run(Some(FaultOp::Write), |state, id| {
            if buf.is_empty() {
                return Ok(());
            }
            let pos_bytes = to_memory_size(pos)?;
            let end_bytes = pos_bytes
                .checked_add(buf.len())
                .ok_or_else(|| too_large(u64::MAX))?;
            state.reserve_growth(id, end_bytes)?;
            state.inode_mut(id).apply(DataOp::Write {
                pos_bytes,
                bytes: buf.bytes,
            });
            Ok(())
        })
    }

    async fn read_local(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        self.run(Some(FaultOp::Read), |state, id| {
            let image = &state.inode_mut(id).current;
            let file_len = image.len() as u64;
            if pos >= file_len {
                return Ok(Bytes::new());
            }
            // pos < file_len, a Vec length, so it fits in usize.
            let start = pos as usize;
            let end = start + len.min(image.len() - start);
            Ok(Bytes::copy_from_slice(&image[start..end]))
        })
    }

    async fn sync(&self) -> io::Result<()> {
        self.run(Some(FaultOp::Sync), |state, id| {
            state.inode_mut(id).sync();
            Ok(())
        })
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.run(Some(FaultOp::Truncate), |state, id| {
            let len_bytes = to_memory_size(len)?;
            state.reserve_growth(id, len_bytes)?;
            state.inode_mut(id).apply(DataOp::Truncate { len_bytes });
            Ok(())
        })
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        self.run(Some(FaultOp::Allocate), |state, id| {
            let len_bytes = to_memory_size(len)?;
            if len_bytes <= state.inode_mut(id).current.len() {
                return Ok(());
            }
            state.reserve_growth(id, len_bytes)?;
            state.inode_mut(id).apply(DataOp::Truncate { len_bytes });
            Ok(())
        })
    }

    async fn size(&self) -> io::Result<u64> {
        self.run(None, |state, id| {
            Ok(state.inode_mut(id).current.len() as u64)
        })
    }

    async fn close(self) -> io::Result<()> {
        // The handle is released by Drop, whether or not this fails.
        self.run(None, |_, _| Ok(()))
    }
}

impl Drop for MemoryFile {
    fn drop(&mut self) {
        // A failed borrow only leaks the file until the next crash; panicking
        // in drop would be worse.
        if let Ok(mut state) = self.state.try_borrow_mut() {
            if state.generation == self.generation {
                state.release_handle(self.inode);
            }
        }
    }
}

impl fmt::Debug for MemoryFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryFile")
            .field("path", &self.path)
            .field("inode", &self.inode)
            .field("generation", &self.generation)
            .finish()
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("MemoryStorage");
        match self.state.try_borrow() {
            Ok(state) => out
                .field("files", &state.current_names.len())
                .field("dirs", &state.dirs.len())
                .field("generation", &state.generation),
            Err(_) => out.field("state", &"<borrowed>"),
        }
        .finish()
    }
}

impl AlignedBuf for MemoryBuf {
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }
}

impl State {
    /// Checks faults, runs `body` and spends the fail-after budget if it
    /// succeeded.
    fn run<T>(
        &mut self,
        op: Option<FaultOp>,
        paths: &[&Path],
        body: impl FnOnce(&mut Self) -> io::Result<T>,
    ) -> io::Result<T> {
        if let Some(op) = op {
            let matches = |substring: &str| {
                paths
                    .iter()
                    .any(|path| path.to_string_lossy().contains(substring))
            };
            let rules = &self.faults.path_rules;
            if rules
                .iter()
                .any(|(sub, rule_op)| *rule_op == op && matches(sub))
            {
                return Err(injected_fault());
            }
        }
        if self.faults.ops_before_failure == Some(0) {
            return Err(injected_fault());
        }
        let result = body(self);
        if result.is_ok() {
            if let Some(ops) = &mut self.faults.ops_before_failure {
                *ops -= 1;
            }
        }
        result
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.parent().is_none() || self.dirs.contains(path)
    }

    /// Ok when `dir` is an existing directory, else NotFound (or
    /// NotADirectory for a file).
    fn check_dir(&self, dir: &Path) -> io::Result<()> {
        if self.is_dir(dir) {
            Ok(())
        } else if self.current_names.contains_key(dir) {
            Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is a file", dir.display()),
            ))
        } else {
            Err(not_found(dir))
        }
    }

    /// The directory `path` would live in, which must exist; `path` itself
    /// must not be a directory.
    fn existing_parent<'p>(&self, path: &'p Path) -> io::Result<&'p Path> {
        if self.is_dir(path) {
            return Err(is_a_directory(path));
        }
        let parent = path.parent().ok_or_else(|| is_a_directory(path))?;
        self.check_dir(parent)?;
        Ok(parent)
    }

    fn new_inode(&mut self) -> InodeId {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, Inode::default());
        id
    }

    fn inode_mut(&mut self, id: InodeId) -> &mut Inode {
        self.inodes
            .get_mut(&id)
            .expect("a file is kept while a name or an open handle refers to it")
    }

    fn push_dir_op(&mut self, dir: &Path, op: DirOp) {
        self.pending_dir_ops
            .entry(dir.to_path_buf())
            .or_default()
            .push(op);
    }

    /// ENOSPC when growing file `id` to `new_len_bytes` would take the used
    /// bytes past the capacity.
    fn reserve_growth(&mut self, id: InodeId, new_len_bytes: usize) -> io::Result<()> {
        let Some(capacity_bytes) = self.capacity_bytes else {
            return Ok(());
        };
        let old_len_bytes = self.inode_mut(id).current.len();
        let growth_bytes = new_len_bytes.saturating_sub(old_len_bytes) as u64;
        if growth_bytes > 0 && self.used_bytes().saturating_add(growth_bytes) > capacity_bytes {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        Ok(())
    }

    /// Current lengths of the files that are named or open.
    fn used_bytes(&self) -> u64 {
        let live: BTreeSet<InodeId> = self
            .current_names
            .values()
            .chain(self.open_handles.keys())
            .copied()
            .collect();
        live.iter()
            .filter_map(|id| self.inodes.get(id))
            .map(|inode| inode.current.len() as u64)
            .sum()
    }

    fn release_handle(&mut self, id: InodeId) {
        if let Some(count) = self.open_handles.get_mut(&id) {
            *count -= 1;
            if *count == 0 {
                self.open_handles.remove(&id);
                self.collect_garbage();
            }
        }
    }

    /// After a crash: old handles are stale and unreachable files go.
    fn start_new_generation(&mut self) {
        self.generation += 1;
        self.open_handles.clear();
        self.collect_garbage();
    }

    /// Frees files that no name, pending directory change or open handle
    /// refers to: nothing can reach them again.
    fn collect_garbage(&mut self) {
        let mut live: BTreeSet<InodeId> = BTreeSet::new();
        live.extend(self.current_names.values());
        live.extend(self.durable_names.values());
        live.extend(self.open_handles.keys());
        let pending = self.pending_dir_ops.values().flatten();
        live.extend(pending.filter_map(DirOp::inode));
        self.inodes.retain(|id, _| live.contains(id));
    }
}

impl Inode {
    /// Applies `op` to the current image and remembers it until the sync.
    fn apply(&mut self, op: DataOp) {
        op.apply(&mut self.current, usize::MAX);
        self.pending.push(op);
    }

    /// Makes the current image durable.
    fn sync(&mut self) {
        // Replaying the pending operations costs what was written since the
        // last sync; copying the current image would cost the whole file.
        for op in self.pending.drain(..) {
            op.apply(&mut self.durable, usize::MAX);
        }
        debug_assert_eq!(self.durable.len(), self.current.len());
    }

    /// Power loss: a random prefix of the pending operations reaches the
    /// durable image, the last write of it possibly torn.
    fn lose_unsynced(&mut self, rng: &mut SplitMix64) {
        let kept_ops = rng.up_to(self.pending.len());
        for (index, op) in self.pending[..kept_ops].iter().enumerate() {
            let is_last = index + 1 == kept_ops;
            let kept_bytes = match op {
                DataOp::Write { bytes, .. } if is_last && rng.coin_flip() => {
                    // Torn: only whole sectors land, and not all of them.
                    let sectors = bytes.len() / SECTOR_BYTES;
                    rng.up_to(sectors.saturating_sub(1)) * SECTOR_BYTES
                }
                _ => usize::MAX,
            };
            op.apply(&mut self.durable, kept_bytes);
        }
        self.pending.clear();
        self.current = self.durable.clone();
    }
}

impl DataOp {
    /// Applies the operation to `image`; a write lands only its first
    /// `kept_bytes` bytes (usize::MAX for all of them).
    fn apply(&self, image: &mut Vec<u8>, kept_bytes: usize) {
        match self {
            DataOp::Write { pos_bytes, bytes } => {
                let bytes = &bytes[..kept_bytes.min(bytes.len())];
                if bytes.is_empty() {
                    return;
                }
                // Checked against overflow when the write was accepted.
                let end_bytes = pos_bytes + bytes.len();
                if image.len() < end_bytes {
                    image.resize(end_bytes, 0);
                }
                image[*pos_bytes..end_bytes].copy_from_slice(bytes);
            }
            DataOp::Truncate { len_bytes } => image.resize(*len_bytes, 0),
        }
    }
}

impl DirOp {
    fn apply(&self, names: &mut BTreeMap<PathBuf, InodeId>) {
        match self {
            DirOp::Link { path, inode } => {
                names.insert(path.clone(), *inode);
            }
            DirOp::Unlink { path } => {
                names.remove(path);
            }
            DirOp::Rename { from, to, inode } => {
                names.remove(from);
                names.insert(to.clone(), *inode);
            }
        }
    }

    /// The file a crash could give this name to.
    fn inode(&self) -> Option<InodeId> {
        match self {
            DirOp::Link { inode, .. } | DirOp::Rename { inode, .. } => Some(*inode),
            DirOp::Unlink { .. } => None,
        }
    }
}

fn to_memory_size(bytes: u64) -> io::Result<usize> {
    usize::try_from(bytes).map_err(|_| too_large(bytes))
}

fn too_large(bytes: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{bytes} bytes do not fit in memory storage"),
    )
}

fn injected_fault() -> io::Error {
    io::Error::other("injected fault")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

fn is_a_directory(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::IsADirectory,
        format!("{} is a directory", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures_lite::future::block_on;

    const DIR: &str = "/data/topic-0";
    const SEEDS: u64 = 64;

    fn dir() -> PathBuf {
        PathBuf::from(DIR)
    }

    fn file_path(name: &str) -> PathBuf {
        dir().join(name)
    }

    /// A disk with [`DIR`] created.
    async fn disk() -> io::Result<MemoryStorage> {
        let storage = MemoryStorage::new();
        storage.create_dir_all(&dir()).await?;
        Ok(storage)
    }

    /// Writes one ALIGN block of `fill` bytes at `pos`.
    async fn write_block(file: &MemoryFile, pos: u64, fill: u8) -> io::Result<()> {
        let mut buf = file.alloc(ALIGN);
        buf.as_mut_slice().fill(fill);
        file.write_at(buf, pos).await
    }

    /// A file of one synced block of `fill`, its creation synced too.
    async fn durable_file(storage: &MemoryStorage, name: &str, fill: u8) -> io::Result<MemoryFile> {
        let file = storage.create(&file_path(name)).await?;
        write_block(&file, 0, fill).await?;
        file.sync().await?;
        storage.sync_dir(&dir()).await?;
        Ok(file)
    }

    fn assert_error(result: io::Result<impl fmt::Debug>, kind: io::ErrorKind, message: &str) {
        let error = result.expect_err("the operation must fail");
        assert_eq!(error.kind(), kind);
        assert_eq!(error.to_string(), message);
    }

    fn assert_crashed(result: io::Result<impl fmt::Debug>) {
        assert_error(result, io::ErrorKind::Other, "storage crashed");
    }

    fn error_kind<T>(result: io::Result<T>) -> Result<(), io::ErrorKind> {
        result.map(|_| ()).map_err(|error| error.kind())
    }

    fn assert_injected(result: io::Result<impl fmt::Debug>) {
        assert_error(result, io::ErrorKind::Other, "injected fault");
    }

    fn assert_enospc(result: io::Result<impl fmt::Debug>) {
        let error = result.expect_err("the disk is full");
        assert_eq!(error.raw_os_error(), Some(ENOSPC));
    }

    #[test]
    fn unsynced_write_is_lost_or_torn_for_some_seeds_and_synced_data_always_survives(
    ) -> io::Result<()> {
        let (mut lost, mut kept, mut torn) = (0, 0, 0);
        for seed in 0..SEEDS {
            let storage = block_on(async {
                let storage = disk().await?;
                let file = durable_file(&storage, "0.log", 0xAA).await?;
                write_block(&file, ALIGN as u64, 0xBB).await?;
                Ok::<_, io::Error>(storage)
            })?;
            storage.crash(seed);
            let bytes = storage
                .file_bytes(&file_path("0.log"))
                .expect("a synced create survives");
            assert_eq!(&bytes[..ALIGN], &[0xAA; ALIGN][..]);
            let tail = &bytes[ALIGN..];
            assert_eq!(tail.len() % SECTOR_BYTES, 0);
            assert!(tail.iter().all(|&byte| byte == 0xBB));
            match tail.len() {
                0 => lost += 1,
                ALIGN => kept += 1,
                _ => torn += 1,
            }
        }
        assert!(lost > 0, "lost {lost}");
        assert!(kept > 0, "kept {kept}");
        assert!(torn > 0, "torn {torn}");
        assert_eq!(lost + kept + torn, SEEDS);
        Ok(())
    }

    #[test]
    fn same_seed_gives_same_crash_outcome() -> io::Result<()> {
        /// The directory listing and the images of files a, b and c.
        type Outcome = (Vec<String>, Vec<Option<Vec<u8>>>);
        let outcome = |seed: u64| -> io::Result<Outcome> {
            block_on(async {
                let storage = disk().await?;
                let a = durable_file(&storage, "a", 1).await?;
                for block in 1..8u8 {
                    write_block(&a, u64::from(block) * ALIGN as u64, block).await?;
                }
                let b = storage.create(&file_path("b")).await?;
                write_block(&b, 0, 9).await?;
                storage.rename(&file_path("b"), &file_path("c")).await?;
                storage.crash(seed);
                let names = storage.list(&dir()).await?;
                let images = ["a", "b", "c"].map(|name| storage.file_bytes(&file_path(name)));
                Ok((names, images.to_vec()))
            })
        };
        assert_eq!(outcome(42)?, outcome(42)?);
        assert_eq!(outcome(7)?, outcome(7)?);
        Ok(())
    }

    #[test]
    fn crash_keep_all_keeps_unsynced_writes_and_directory_changes() -> io::Result<()> {
        block_on(async {
            let storage = disk().await?;
            let a = storage.create(&file_path("a")).await?;
            write_block(&a, 0, 0x11).await?;
            let b = storage.create(&file_path("b")).await?;
            write_block(&b, 0, 0x22).await?;
            storage.rename(&file_path("b"), &file_path("c")).await?;
            storage.create(&file_path("d")).await?;
            storage.remove(&file_path("d")).await?;

            storage.crash_keep_all();
            assert_eq!(storage.list(&dir()).await?, ["a", "c"]);
            assert_eq!(storage.file_bytes(&file_path("a")), Some(vec![0x11; ALIGN]));
            assert_eq!(storage.file_bytes(&file_path("c")), Some(vec![0x22; ALIGN]));

            // Everything became durable, so a power loss now loses nothing.
            storage.crash(3);
            assert_eq!(storage.list(&dir()).await?, ["a", "c"]);
            assert_eq!(storage.file_bytes(&file_path("a")), Some(vec![0x11; ALIGN]));
            assert_eq!(storage.file_bytes(&file_path("c")), Some(vec![0x22; ALIGN]));
            Ok(())
        })
    }

    #[test]
    fn create_without_sync_dir_vanishes_for_some_seeds() -> io::Result<()> {
        let (mut vanished, mut survived) = (0, 0);
        for seed in 0..SEEDS {
            let storage = block_on(async {
                let storage = disk().await?;
                durable_file(&storage, "a", 0x01).await?;
                let b = storage.create(&file_path("b")).await?;
                write_block(&b, 0, 0x02).await?;
                b.sync().await?; // data durable, name not
                Ok::<_, io::Error>(storage)
            })?;
            storage.crash(seed);
            assert_eq!(storage.file_bytes(&file_path("a")), Some(vec![0x01; ALIGN]));
            match storage.file_bytes(&file_path("b")) {
                None => vanished += 1,
                Some(bytes) => {
                    assert_eq!(bytes, vec![0x02; ALIGN]);
                    survived += 1;
                }
            }
        }
        assert!(vanished > 0 && survived > 0, "{vanished} {survived}");
        Ok(())
    }

    #[test]
    fn rename_replaces_target_and_a_crash_keeps_old_or_new_state_whole() -> io::Result<()> {
        let (mut old_state, mut new_state) = (0, 0);
        for seed in 0..SEEDS {
            let storage = block_on(async {
                let storage = disk().await?;
                durable_file(&storage, "final", 0x01).await?;
                durable_file(&storage, "tmp", 0x02).await?;
                storage
                    .rename(&file_path("tmp"), &file_path("final"))
                    .await?;
                assert_eq!(storage.list(&dir()).await?, ["final"]);
                assert_eq!(
                    storage.file_bytes(&file_path("final")),
                    Some(vec![0x02; ALIGN])
                );
                Ok::<_, io::Error>(storage)
            })?;
            storage.crash(seed);
            let tmp = storage.file_bytes(&file_path("tmp"));
            let final_bytes = storage.file_bytes(&file_path("final"));
            if tmp.is_some() {
                assert_eq!(tmp, Some(vec![0x02; ALIGN]));
                assert_eq!(final_bytes, Some(vec![0x01; ALIGN]));
                old_state += 1;
            } else {
                assert_eq!(final_bytes, Some(vec![0x02; ALIGN]));
                new_state += 1;
            }
        }
        assert!(old_state > 0 && new_state > 0, "{old_state} {new_state}");

        // Once the directory is synced the rename always survives.
        for seed in 0..SEEDS {
            let storage = block_on(async {
                let storage = disk().await?;
                durable_file(&storage, "final", 0x01).await?;
                durable_file(&storage, "tmp", 0x02).await?;
                storage
                    .rename(&file_path("tmp"), &file_path("final"))
                    .await?;
                storage.sync_dir(&dir()).await?;
                Ok::<_, io::Error>(storage)
            })?;
            storage.crash(seed);
            assert!(!storage.exists(&file_path("tmp")));
            assert_eq!(
                storage.file_bytes(&file_path("final")),
                Some(vec![0x02; ALIGN])
            );
        }
        Ok(())
    }

    #[test]
    fn rename_across_directories_is_durable_after_both_are_synced() -> io::Result<()> {
        for seed in 0..SEEDS {
            let other = PathBuf::from("/data/topic-1");
            let storage = block_on(async {
                let storage = disk().await?;
                storage.create_dir_all(&other).await?;
                durable_file(&storage, "x", 0x05).await?;
                storage.rename(&file_path("x"), &other.join("x")).await?;
                storage.sync_dir(&dir()).await?;
                storage.sync_dir(&other).await?;
                Ok::<_, io::Error>(storage)
            })?;
            storage.crash(seed);
            assert!(!storage.exists(&file_path("x")));
            assert_eq!(
                storage.file_bytes(&other.join("x")),
                Some(vec![0x05; ALIGN])
            );
        }
        Ok(())
    }

    #[test]
    fn remove_without_sync_dir_comes_back_for_some_seeds() -> io::Result<()> {
        let (mut gone, mut back) = (0, 0);
        for seed in 0..SEEDS {
            let storage = block_on(async {
                let storage = disk().await?;
                let a = durable_file(&storage, "a", 0x07).await?;
                a.close().await?;
                storage.remove(&file_path("a")).await?;
                assert!(!storage.exists(&file_path("a")));
                Ok::<_, io::Error>(storage)
            })?;
            storage.crash(seed);
            match storage.file_bytes(&file_path("a")) {
                None => gone += 1,
                Some(bytes) => {
                    assert_eq!(bytes, vec![0x07; ALIGN]);
                    back += 1;
                }
            }
        }
        assert!(gone > 0 && back > 0, "{gone} {back}");
        Ok(())
    }

    #[test]
    fn unsynced_truncate_is_undone_for_some_seeds() -> io::Result<()> {
        let mut lengths = BTreeSet::new();
        for seed in 0..SEEDS {
            let storage = block_on(async {
                let storage = disk().await?;
                let file = durable_file(&storage, "a", 0x03).await?;
                write_block(&file, ALIGN as u64, 0x03).await?;
                file.sync().await?;
                file.truncate(100).await?;
                Ok::<_, io::Error>(storage)
            })?;
            storage.crash(seed);
            let bytes = storage.file_bytes(&file_path("a")).expect("durable file");
            assert!(bytes.iter().all(|&byte| byte == 0x03));
            lengths.insert(bytes.len());
        }
        assert_eq!(lengths, BTreeSet::from([100, 2 * ALIGN]));
        Ok(())
    }

    #[test]
    fn handles_opened_before_a_crash_are_stale() -> io::Result<()> {
        block_on(async {
            let storage = disk().await?;
            let file = durable_file(&storage, "a", 0x09).await?;
            let other = storage.open(&file_path("a")).await?;

            storage.crash(5);
            assert_crashed(write_block(&file, 0, 1).await);
            assert_crashed(file.read_at(0, 1).await);
            assert_crashed(file.sync().await);
            assert_crashed(file.truncate(0).await);
            assert_crashed(file.size().await);
            assert_crashed(file.close().await);

            let reopened = storage.open(&file_path("a")).await?;
            assert_eq!(
                reopened.read_at(0, 2).await?,
                Bytes::from_static(&[0x09, 0x09])
            );

            storage.crash_keep_all();
            assert_crashed(reopened.size().await);
            assert_crashed(other.size().await);
            let reopened = storage.open(&file_path("a")).await?;
            assert_eq!(reopened.size().await?, ALIGN as u64);
            Ok(())
        })
    }

    #[test]
    fn fail_after_fails_every_operation_after_the_budget_until_cleared() -> io::Result<()> {
        block_on(async {
            let storage = disk().await?;
            let file = storage.create(&file_path("a")).await?;

            storage.fail_after(2);
            // Failed operations do not spend the budget.
            let missing = storage.open(&file_path("missing")).await;
            assert_eq!(error_kind(missing), Err(io::ErrorKind::NotFound));
            write_block(&file, 0, 0x0C).await?;
            assert_eq!(file.size().await?, ALIGN as u64);
            assert_injected(file.read_at(0, 1).await);
            assert_injected(file.sync().await);
            assert_injected(storage.list(&dir()).await);
            assert_injected(storage.create_dir_all(Path::new("/other")).await);
            assert_injected(file.size().await);

            storage.clear_faults();
            assert_eq!(file.read_at(0, 1).await?, Bytes::from_static(&[0x0C]));
            assert_eq!(storage.list(&dir()).await?, ["a"]);

            storage.fail_after(0);
            assert_injected(file.size().await);
            Ok(())
        })
    }

    #[test]
    fn fail_path_ops_fails_only_the_given_operation_on_matching_paths() -> io::Result<()> {
        block_on(async {
            let storage = disk().await?;
            let index = storage.create(&file_path("0.index")).await?;
            let log = storage.create(&file_path("0.log")).await?;

            storage.fail_path_ops(".index", FaultOp::Sync);
            storage.fail_path_ops("final", FaultOp::Rename);
            write_block(&index, 0, 1).await?;
            assert_injected(index.sync().await);
            log.sync().await?;
            // Matched on the target path too.
            assert_injected(
                storage
                    .rename(&file_path("0.log"), &file_path("final"))
                    .await,
            );
            storage
                .rename(&file_path("0.log"), &file_path("1.log"))
                .await?;

            storage.clear_faults();
            index.sync().await?;
            storage
                .rename(&file_path("1.log"), &file_path("final"))
                .await?;
            assert_eq!(storage.list(&dir()).await?, ["0.index", "final"]);
            Ok(())
        })
    }

    #[test]
    fn capacity_rejects_growth_with_enospc_until_space_is_freed() -> io::Result<()> {
        block_on(async {
            let storage = disk().await?;
            storage.set_capacity_bytes(Some(2 * ALIGN as u64));
            let a = storage.create(&file_path("a")).await?;
            write_block(&a, 0, 1).await?;
            write_block(&a, ALIGN as u64, 2).await?;
            let b = storage.create(&file_path("b")).await?;
            assert_enospc(write_block(&b, 0, 3).await);
            assert_enospc(a.truncate(3 * ALIGN as u64).await);
            // Overwrites and shrinking need no space.
            write_block(&a, 0, 4).await?;
            assert_eq!(a.size().await?, 2 * ALIGN as u64);

            // An open file keeps its space after its name goes.
            storage.remove(&file_path("a")).await?;
            assert_enospc(write_block(&b, 0, 3).await);
            assert_eq!(a.read_at(0, 1).await?, Bytes::from_static(&[4]));
            a.close().await?;
            write_block(&b, 0, 3).await?;
            write_block(&b, ALIGN as u64, 3).await?;
            assert_enospc(write_block(&b, 2 * ALIGN as u64, 3).await);

            storage.set_capacity_bytes(None);
            write_block(&b, 2 * ALIGN as u64, 3).await?;
            assert_eq!(b.size().await?, 3 * ALIGN as u64);
            Ok(())
        })
    }

    #[test]
    fn reads_past_end_of_file_are_short_or_empty() -> io::Result<()> {
        block_on(async {
            let storage = disk().await?;
            let file = storage.create(&file_path("a")).await?;
            write_block(&file, 0, 0x5A).await?;
            file.truncate(5000).await?;

            let read = file.read_at(4000, 2000).await?;
            let mut expected = vec![0x5A; ALIGN - 4000];
            expected.resize(1000, 0);
            assert_eq!(read, Bytes::from(expected));
            assert_eq!(file.read_at(5000, 10).await?, Bytes::new());
            assert_eq!(file.read_at(9000, 1).await?, Bytes::new());
            assert_eq!(file.read_at(0, 0).await?, Bytes::new());
            assert_eq!(file.size().await?, 5000);
            Ok(())
        })
    }

    #[test]
    fn namespace_lists_direct_entries_and_reports_missing_paths() -> io::Result<()> {
        use io::ErrorKind::{AlreadyExists, IsADirectory, NotADirectory, NotFound};
        block_on(async {
            let storage = disk().await?;
            storage.create_dir_all(&dir().join("sub/deeper")).await?;
            let a = storage.create(&file_path("a")).await?;
            write_block(&a, 0, 1).await?;

            assert_eq!(storage.list(&dir()).await?, ["a", "sub"]);
            assert_eq!(storage.list(Path::new("/data")).await?, ["topic-0"]);
            assert_eq!(
                error_kind(storage.list(Path::new("/missing")).await),
                Err(NotFound)
            );
            assert_eq!(
                error_kind(storage.list(&file_path("a")).await),
                Err(NotADirectory)
            );
            assert_eq!(
                error_kind(storage.open(&file_path("b")).await),
                Err(NotFound)
            );
            assert_eq!(error_kind(storage.open(&dir()).await), Err(IsADirectory));
            let orphan = Path::new("/missing/a");
            assert_eq!(error_kind(storage.create(orphan).await), Err(NotFound));
            assert_eq!(
                error_kind(storage.remove(&file_path("b")).await),
                Err(NotFound)
            );
            let rename = storage.rename(&file_path("b"), &file_path("c")).await;
            assert_eq!(error_kind(rename), Err(NotFound));
            let mkdir = storage.create_dir_all(&file_path("a")).await;
            assert_eq!(error_kind(mkdir), Err(AlreadyExists));
            assert!(storage.exists(&dir().join("sub")));
            assert!(!storage.exists(&file_path("b")));

            // create of an existing file truncates it.
            let again = storage.create(&file_path("a")).await?;
            assert_eq!(again.size().await?, 0);
            assert_eq!(a.size().await?, 0);
            Ok(())
        })
    }

    #[test]
    fn raw_helpers_change_current_and_durable_images() -> io::Result<()> {
        for seed in 0..SEEDS {
            let storage = MemoryStorage::new();
            let path = file_path("raw");
            storage.write_raw(&path, &[1, 2, 3, 4]);
            storage.corrupt(&path, 1, 0xFF);
            assert_eq!(storage.file_bytes(&path), Some(vec![1, 0xFD, 3, 4]));
            storage.truncate_raw(&path, 3);

            // Unsynced data is made durable before a helper changes it.
            let file = block_on(storage.open(&path))?;
            block_on(write_block(&file, 0, 0x10))?;
            storage.corrupt(&path, 0, 0x01);

            storage.crash(seed);
            let mut expected = vec![0x10; ALIGN];
            expected[0] = 0x11;
            assert_eq!(storage.file_bytes(&path), Some(expected));
            storage.truncate_raw(&path, 2);
            storage.crash(seed);
            assert_eq!(storage.file_bytes(&path), Some(vec![0x11, 0x10]));
            assert_eq!(block_on(storage.list(&dir()))?, ["raw"]);
        }
        Ok(())
    }

    #[test]
    fn alloc_returns_a_zeroed_buffer_of_the_requested_length() -> io::Result<()> {
        let storage = block_on(disk())?;
        let file = block_on(storage.create(&file_path("a")))?;
        let mut buf = file.alloc(2 * ALIGN);
        assert_eq!(buf.len(), 2 * ALIGN);
        assert!(buf.as_mut_slice().iter().all(|&byte| byte == 0));
        assert!(file.alloc(0).is_empty());
        Ok(())
    }

    #[test]
    #[should_panic(expected = "write_at position 512 is not a multiple of 4096")]
    fn write_at_panics_on_an_unaligned_position() {
        let storage = block_on(disk()).expect("in-memory setup");
        let file = block_on(storage.create(&file_path("a"))).expect("in-memory setup");
        let buf = file.alloc(ALIGN);
        let _ = block_on(file.write_at(buf, 512));
    }

    #[test]
    #[should_panic(expected = "alloc length 100 is not a multiple of 4096")]
    fn alloc_panics_on_an_unaligned_length() {
        let storage = block_on(disk()).expect("in-memory setup");
        let file = block_on(storage.create(&file_path("a"))).expect("in-memory setup");
        let _ = file.alloc(100);
    }
}
