//! The one narrow positional interface through which the log reaches a disk.
//!
//! Owns: the [`Storage`] and [`StorageFile`] traits and their two
//! implementations: [`dma::DmaStorage`] (glommio DMA files, O_DIRECT, for
//! production) and [`memory::MemoryStorage`] (in memory; can tear writes, drop
//! unsynced data on a simulated crash and fail on command, for crash and
//! fault tests).
//!
//! Invariants every implementation keeps:
//! - `write_at` takes a buffer from the same file's `alloc`, a position that
//!   is a multiple of [`ALIGN`] and a length that is a multiple of [`ALIGN`].
//! - Written bytes are readable at once, but durable only after `sync`
//!   returns; directory changes (create, rename, remove) are durable only
//!   after `sync_dir` of their directory returns.
//! - `read_at` takes any position and length and returns fewer bytes only at
//!   end of file.
//!
//! Futures are `!Send`: everything runs on one shard's executor.

pub mod dma;
pub mod memory;
pub mod transient;

use std::io;
use std::path::Path;

use bytes::Bytes;

/// Alignment of positions and lengths for `write_at` (a page; O_DIRECT needs
/// at least the device's logical block size, and 4 KiB covers every device).
pub const ALIGN: usize = 4096;

/// Rounds `n` up to a multiple of [`ALIGN`].
pub fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN as u64) * ALIGN as u64
}

/// Rounds `n` down to a multiple of [`ALIGN`].
pub fn align_down(n: u64) -> u64 {
    n / ALIGN as u64 * ALIGN as u64
}

/// A buffer suitable for `write_at` on the file that allocated it.
pub trait AlignedBuf {
    /// The whole buffer, to fill before writing.
    fn as_mut_slice(&mut self) -> &mut [u8];
    /// Length in bytes (a multiple of [`ALIGN`]).
    fn len(&self) -> usize;
    /// True when the buffer is zero bytes long.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A directory tree of files, as the log sees it.
#[allow(async_fn_in_trait)] // single-threaded executors: futures need not be Send
pub trait Storage: Clone + 'static {
    type File: StorageFile;

    /// Opens an existing file for reading and writing.
    async fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// Creates a file for reading and writing, truncating any existing one.
    async fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Creates a directory and its parents.
    async fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of a directory (not recursive, any order).
    async fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Renames a file, replacing any file at `to`.
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    async fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    async fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// One open file, written and read by position.
#[allow(async_fn_in_trait)]
pub trait StorageFile: 'static {
    type Buf: AlignedBuf + 'static;
    /// Bytes returned by [`StorageFile::read_local`].
    type ReadBuf: std::ops::Deref<Target = [u8]> + Clone + 'static;

    /// A buffer of `len` bytes (a multiple of [`ALIGN`]) for `write_at`. Its
    /// contents are unspecified: callers fill every byte they will write.
    fn alloc(&self, len: usize) -> Self::Buf;
    /// Writes all of `buf` at `pos` (both aligned).
    async fn write_at(&self, buf: Self::Buf, pos: u64) -> io::Result<()>;
    /// Reads up to `len` bytes at `pos`; fewer only at end of file. The
    /// result may be tied to this thread (glommio's read buffers are), which
    /// is what lets a fetch served on the owning shard skip a copy.
    async fn read_local(&self, pos: u64, len: usize) -> io::Result<Self::ReadBuf>;
    /// Reads like [`StorageFile::read_local`] into a `Bytes` that may cross
    /// threads (one copy).
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        Ok(Bytes::copy_from_slice(&self.read_local(pos, len).await?))
    }
    /// `len` bytes of `buf` from `from` on, sharing its memory.
    fn slice(buf: &Self::ReadBuf, from: usize, len: usize) -> Self::ReadBuf;
    /// Makes every completed write durable (fdatasync).
    async fn sync(&self) -> io::Result<()>;
    /// Sets the file's length.
    async fn truncate(&self, len: u64) -> io::Result<()>;
    /// Grows the file to at least `len` bytes, reading as zeros, with its
    /// blocks reserved (`fallocate(2)` without `FALLOC_FL_KEEP_SIZE`);
    /// never shrinks it. Durable like a write: after the next `sync`.
    async fn allocate(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    async fn size(&self) -> io::Result<u64>;
    /// Closes the file.
    async fn close(self) -> io::Result<()>;
}
