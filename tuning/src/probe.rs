//! The disk probe: O_DIRECT reads and writes through io_uring (glommio's
//! `DmaFile`, as the log writes and reads its segments), one I/O size and
//! one number in flight per point, each point bounded in time and in bytes.
//!
//! Invariants: every file a point creates is removed before the point
//! returns, whether it succeeded or not (a removal that fails is logged);
//! no point writes more than `max_file_bytes` or runs past `point` (plus
//! the I/Os in flight when it ends).

use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::DmaFile;
use hdrhistogram::Histogram;
use sluice_core::rng::SplitMix64;
// Scratch files are created as the log creates its segments.
use sluice_log::storage::dma::create_file;

use crate::properties::Point;

/// What each point may spend.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub point: Duration,
    pub max_file_bytes: u64,
}

/// What one write point measured; `sync_us` is empty unless it synced.
pub struct Outcome {
    pub point: Point,
    pub sync_us: Histogram<u64>,
}

fn to_io<T>(e: glommio::GlommioError<T>) -> io::Error {
    io::Error::other(e.to_string())
}

fn point(bytes: u64, depth: u64, moved: u64, elapsed: Duration) -> Point {
    let secs = elapsed.as_secs_f64().max(1e-9);
    Point {
        bytes,
        depth,
        bandwidth: (moved as f64 / secs) as u64,
        iops: ((moved / bytes.max(1)) as f64 / secs) as u64,
    }
}

fn scratch_path(dir: &Path, what: &str) -> PathBuf {
    dir.join(format!(".iotune-{what}.tmp"))
}

/// Removes `file` (by path, so it goes even when I/O on it failed).
async fn discard(file: Rc<DmaFile>, path: &Path) {
    if let Err(e) = file.remove().await {
        tracing::warn!(path = %path.display(), error = %e, "removing a probe file");
    }
    let _ = file.close_rc().await;
}

/// Sequential writes of `bytes` into a new, growing file, `depth` in
/// flight; with `sync`, each write is followed by an fdatasync (depth
/// should then be 1) whose latency is recorded.
pub async fn write(
    dir: &Path,
    bytes: u64,
    depth: u64,
    sync: bool,
    limits: Limits,
) -> io::Result<Outcome> {
    let path = scratch_path(dir, &format!("write-{bytes}-{depth}"));
    let file = Rc::new(create_file(&path).await?);
    let result = write_into(&file, bytes, depth, sync, limits).await;
    discard(file, &path).await;
    result
}

async fn write_into(
    file: &Rc<DmaFile>,
    bytes: u64,
    depth: u64,
    sync: bool,
    limits: Limits,
) -> io::Result<Outcome> {
    let len = usize::try_from(bytes).map_err(io::Error::other)?;
    let buf = {
        let mut b = file.alloc_dma_buffer(len);
        b.as_bytes_mut().fill(0x5a);
        Rc::new(b)
    };
    let next = Rc::new(Cell::new(0u64));
    let moved = Rc::new(Cell::new(0u64));
    let sync_us = Rc::new(RefCell::new(
        Histogram::<u64>::new(3).map_err(io::Error::other)?,
    ));
    let start = Instant::now();
    let deadline = start + limits.point;
    let tasks: Vec<_> = (0..depth.max(1))
        .map(|_| {
            let (file, buf, next, moved, sync_us) = (
                file.clone(),
                buf.clone(),
                next.clone(),
                moved.clone(),
                sync_us.clone(),
            );
            glommio::spawn_local(async move {
                while Instant::now() < deadline {
                    let pos = next.get();
                    if pos + bytes > limits.max_file_bytes {
                        break;
                    }
                    next.set(pos + bytes);
                    file.write_rc_at(buf.clone(), pos).await.map_err(to_io)?;
                    if sync {
                        let t = Instant::now();
                        file.fdatasync().await.map_err(to_io)?;
                        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                        sync_us.borrow_mut().saturating_record(us);
                    }
                    moved.set(moved.get() + bytes);
                }
                Ok::<(), io::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let point = point(bytes, depth, moved.get(), start.elapsed());
    let sync_us = sync_us.borrow().clone();
    Ok(Outcome { point, sync_us })
}

/// A file of `len` bytes to read from (written with 1 MiB writes, 4 in
/// flight, and synced); [`ReadFile::discard`] removes it.
pub struct ReadFile {
    file: Rc<DmaFile>,
    path: PathBuf,
    len: u64,
}

impl ReadFile {
    pub async fn create(dir: &Path, len: u64) -> io::Result<ReadFile> {
        let path = scratch_path(dir, "read");
        let file = Rc::new(create_file(&path).await?);
        let fill = Limits {
            point: Duration::from_secs(3600),
            max_file_bytes: len,
        };
        let written = match write_into(&file, 1 << 20, 4, false, fill).await {
            Ok(_) => file.fdatasync().await.map_err(to_io),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            discard(file, &path).await;
            return Err(e);
        }
        let len = len / (1 << 20) * (1 << 20);
        Ok(ReadFile { file, path, len })
    }

    /// Reads of `bytes`, `depth` in flight: sequential (wrapping around at
    /// the end) or at random `bytes`-aligned positions.
    pub async fn read(
        &self,
        bytes: u64,
        depth: u64,
        random: bool,
        limits: Limits,
    ) -> io::Result<Point> {
        if bytes == 0 || bytes > self.len {
            return Err(io::Error::other(format!(
                "a read of {bytes} bytes from a file of {}",
                self.len
            )));
        }
        let len = usize::try_from(bytes).map_err(io::Error::other)?;
        let slots = self.len / bytes;
        let next = Rc::new(Cell::new(0u64));
        let rng = Rc::new(RefCell::new(SplitMix64::new(bytes ^ depth)));
        let moved = Rc::new(Cell::new(0u64));
        let start = Instant::now();
        let deadline = start + limits.point;
        let tasks: Vec<_> = (0..depth.max(1))
            .map(|_| {
                let (file, next, rng, moved) =
                    (self.file.clone(), next.clone(), rng.clone(), moved.clone());
                glommio::spawn_local(async move {
                    while Instant::now() < deadline && moved.get() < limits.max_file_bytes {
                        let slot = if random {
                            rng.borrow_mut().below(slots)
                        } else {
                            let slot = next.get() % slots;
                            next.set(slot + 1);
                            slot
                        };
                        let read = file
                            .read_at_aligned(slot * bytes, len)
                            .await
                            .map_err(to_io)?;
                        moved.set(moved.get() + read.len() as u64);
                    }
                    Ok::<(), io::Error>(())
                })
            })
            .collect();
        for task in tasks {
            task.await?;
        }
        Ok(point(bytes, depth, moved.get(), start.elapsed()))
    }

    pub async fn discard(self) {
        discard(self.file, &self.path).await;
    }
}
