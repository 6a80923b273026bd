//! Production storage: glommio DMA files (O_DIRECT through io_uring).
//!
//! Owns: mapping the [`Storage`] interface onto glommio. Every data write is
//! an aligned O_DIRECT write of a [`DmaBuffer`] allocated by the file, so no
//! byte passes through the page cache.
//!
//! Invariant: no blocking call runs on the shard's thread. Reads, writes,
//! opens, renames and removals of files go through io_uring; what io_uring
//! cannot do (stat, mkdir, readdir, recursive removal) runs on the
//! executor's blocking-thread pool ([`off_thread`]), so a segment roll or a
//! topic's creation in the middle of appends never stalls the shard.
//!
//! Must run inside a glommio executor.
//!
//! glommio decides once per thread and block device whether reads may use
//! its polled (IOPOLL) ring, by reading the first block of the first file it
//! opens there. When that file is empty the read succeeds without touching
//! the device, and glommio wrongly concludes polling works; every later read
//! on a device without poll queues (most virtual disks) then fails with
//! EOPNOTSUPP. So before its first open on a device, each thread makes
//! glommio probe with a one-block file it writes for the purpose.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use glommio::io::{Directory, DmaBuffer, DmaFile, OpenOptions, ReadResult};

use super::{AlignedBuf, Storage, StorageFile};

/// Storage on a local filesystem through glommio DMA files.
#[derive(Debug, Clone, Copy, Default)]
pub struct DmaStorage;

/// An open DMA file.
#[derive(Debug)]
pub struct DmaStorageFile {
    file: DmaFile,
}

impl AlignedBuf for DmaBuffer {
    fn as_mut_slice(&mut self) -> &mut [u8] {
        self.as_bytes_mut()
    }
    fn len(&self) -> usize {
        DmaBuffer::len(self)
    }
}

fn to_io(e: glommio::GlommioError<()>) -> io::Error {
    io::Error::from(e)
}

thread_local! {
    /// Devices on which this thread already made glommio probe IOPOLL.
    static PROBED_DEVICES: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// Runs a blocking filesystem call on the executor's blocking-thread pool
/// (one thread per shard), so the shard keeps serving while it runs.
/// Dropping the future leaves the call to finish on its own.
pub async fn off_thread<R: Send + 'static>(call: impl FnOnce() -> R + Send + 'static) -> R {
    glommio::executor().spawn_blocking(call).await
}

/// Creates (or empties) `path` as a glommio DMA file open for reads and
/// writes, its device probed first (see the module docs): how the log
/// creates its files, and how `sluice iotune` creates its scratch files.
pub async fn create_file(path: &Path) -> io::Result<DmaFile> {
    probe_device_once(path).await?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(path)
        .await
        .map_err(to_io)
}

/// Makes glommio's IOPOLL probe for `path`'s device read a real block (see
/// the module docs), once per thread and device.
async fn probe_device_once(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let dev = {
        let dir = dir.clone();
        off_thread(move || std::fs::metadata(dir).map(|m| m.dev())).await?
    };
    if PROBED_DEVICES.with(|p| p.borrow().contains(&dev)) {
        return Ok(());
    }
    let probe = dir.join(format!(
        ".sluice-iopoll-probe-{:?}",
        std::thread::current().id()
    ));
    {
        let probe = probe.clone();
        off_thread(move || std::fs::write(probe, [0u8; super::ALIGN])).await?;
    }
    let opened = DmaFile::open(&probe).await.map_err(to_io);
    let closed = match opened {
        Ok(file) => file.close().await.map_err(to_io),
        Err(e) => Err(e),
    };
    glommio::io::remove(&probe).await.map_err(to_io)?;
    closed?;
    PROBED_DEVICES.with(|p| p.borrow_mut().insert(dev));
    Ok(())
}

impl Storage for DmaStorage {
    type File = DmaStorageFile;

    async fn open(&self, path: &Path) -> io::Result<DmaStorageFile> {
        probe_device_once(path).await?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(path)
            .await
            .map_err(to_io)?;
        Ok(DmaStorageFile { file })
    }

    async fn create(&self, path: &Path) -> io::Result<DmaStorageFile> {
        let file = create_file(path).await?;
        Ok(DmaStorageFile { file })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        off_thread(move || std::fs::create_dir_all(path)).await
    }

    async fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = dir.to_path_buf();
        off_thread(move || {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                if let Some(name) = entry?.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        })
        .await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        glommio::io::rename(from, to).await.map_err(to_io)
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        glommio::io::remove(path).await.map_err(to_io)
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // glommio's Directory::open fails with EBADF on relative paths.
        let dir = Directory::open(std::path::absolute(dir)?)
            .await
            .map_err(to_io)?;
        dir.sync().await.map_err(to_io)?;
        dir.close().await.map_err(to_io)
    }
}

impl StorageFile for DmaStorageFile {
    type Buf = DmaBuffer;
    type ReadBuf = ReadResult;

    fn alloc(&self, len: usize) -> DmaBuffer {
        self.file.alloc_dma_buffer(len)
    }

    async fn write_at(&self, buf: DmaBuffer, pos: u64) -> io::Result<()> {
        let len = buf.len();
        let written = self.file.write_at(buf, pos).await.map_err(to_io)?;
        if written != len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short O_DIRECT write: {written} of {len} bytes at {pos}"),
            ));
        }
        Ok(())
    }

    async fn read_local(&self, pos: u64, len: usize) -> io::Result<ReadResult> {
        self.file.read_at(pos, len).await.map_err(to_io)
    }

    fn slice(buf: &ReadResult, from: usize, len: usize) -> ReadResult {
        ReadResult::slice(buf, from, len).expect("slice within the read buffer")
    }

    async fn sync(&self) -> io::Result<()> {
        self.file.fdatasync().await.map_err(to_io)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.truncate(len).await.map_err(to_io)
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        self.file.pre_allocate(len, false).await.map_err(to_io)
    }

    async fn size(&self) -> io::Result<u64> {
        self.file.file_size().await.map_err(to_io)
    }

    async fn close(self) -> io::Result<()> {
        self.file.close().await.map_err(to_io)
    }
}
