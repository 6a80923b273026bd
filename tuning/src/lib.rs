//! sluice-tuning: `sluice iotune`, the disk probe that writes the
//! io-properties file.
//!
//! [`run`] measures the filesystem of a directory with the I/O the log
//! does (O_DIRECT through io_uring) and returns [`IoProperties`]: the
//! settings chosen from it ([`choose`]) and what was measured
//! ([`properties`]). It runs its own glommio executor on the calling
//! thread, creates its scratch files in the directory and removes them
//! ([`probe`]). Every point is bounded by [`Options::point`] and
//! [`Options::max_file_bytes`] and their number by [`Options::passes`], so
//! the whole run is bounded too.

pub mod choose;
pub mod probe;
pub mod properties;

use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use properties::{Chosen, ChosenLog, ChosenShard, IoProperties, Measured, Point};

/// Write sizes tried for `log.write_buffer_bytes`, one write in flight (a
/// segment has one). Capped at the built-in default, 1 MiB: the probe may
/// make each partition's buffer smaller, never larger.
pub const WRITE_SIZES: [u64; 5] = [64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20];

/// Read sizes tried for `shard.read_ahead_read_bytes`, one read in flight
/// (a partition's read ahead): from the built-in least, 256 KiB, to the
/// most one read ahead reads, 4 MiB.
pub const READ_SIZES: [u64; 5] = [256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20];

/// How [`run`] measures.
#[derive(Debug, Clone)]
pub struct Options {
    /// A directory on the filesystem to measure (the data directory).
    pub dir: PathBuf,
    /// How long each point runs.
    pub point: Duration,
    /// How many times the one-in-flight sweeps run (each size keeps its
    /// best pass; at least 1).
    pub passes: u32,
    /// The most bytes a point writes (and the size of the file reads are
    /// measured on); at least [`MIN_FILE_BYTES`].
    pub max_file_bytes: u64,
}

/// The smallest `max_file_bytes`: room for the largest read four times.
pub const MIN_FILE_BYTES: u64 = 16 << 20;

/// Measures `options.dir`'s disk; progress goes to the log (`tracing`).
pub fn run(options: &Options) -> io::Result<IoProperties> {
    if options.max_file_bytes < MIN_FILE_BYTES {
        return Err(io::Error::other(format!(
            "max file bytes {} is below {MIN_FILE_BYTES}",
            options.max_file_bytes
        )));
    }
    if options.point.is_zero() {
        return Err(io::Error::other("a point of 0 ms measures nothing"));
    }
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("iotune")
        .make()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let options = options.clone();
    executor.run(async move {
        // glommio 0.9.0 can park with a task runnable (see its module).
        sluice_log::wake::keep_awake(Duration::from_millis(100));
        measure(&options).await
    })
}

async fn measure(options: &Options) -> io::Result<IoProperties> {
    let limits = probe::Limits {
        point: options.point,
        max_file_bytes: options.max_file_bytes,
    };
    let dir = options.dir.as_path();
    let logged = |what: &str, p: &Point| {
        tracing::info!(
            "{what}: {} bytes x {} in flight: {} MB/s, {} I/Os per s",
            p.bytes,
            p.depth,
            p.bandwidth / 1_000_000,
            p.iops
        );
    };

    let mut write_passes = Vec::new();
    for _ in 0..options.passes.max(1) {
        let mut pass = Vec::new();
        for bytes in WRITE_SIZES {
            let p = probe::write(dir, bytes, 1, false, limits).await?.point;
            logged("sequential write", &p);
            pass.push(p);
        }
        write_passes.push(pass);
    }
    let write = choose::best_of(&write_passes);
    let write_bw = probe::write(dir, 256 << 10, 4, false, limits).await?.point;
    logged("sequential write", &write_bw);
    let write_iops = probe::write(dir, 4 << 10, 32, false, limits).await?.point;
    logged("sequential write", &write_iops);
    let synced = probe::write(dir, 256 << 10, 1, true, limits).await?;
    logged("write + fdatasync", &synced.point);
    let sync_us = synced.sync_us;

    let file = probe::ReadFile::create(dir, options.max_file_bytes).await?;
    let reads = async {
        let mut read_passes = Vec::new();
        for _ in 0..options.passes.max(1) {
            let mut pass = Vec::new();
            for bytes in READ_SIZES {
                let p = file.read(bytes, 1, false, limits).await?;
                logged("sequential read", &p);
                pass.push(p);
            }
            read_passes.push(pass);
        }
        let read = choose::best_of(&read_passes);
        let read_bw = file.read(1 << 20, 4, false, limits).await?;
        logged("sequential read", &read_bw);
        let read_iops = file.read(4 << 10, 32, true, limits).await?;
        logged("random read", &read_iops);
        Ok::<_, io::Error>((read, read_bw, read_iops))
    }
    .await;
    file.discard().await;
    let (read, read_bw, read_iops) = reads?;

    let defaults = sluice_core::config::NodeConfig::default();
    let write_buffer_bytes = choose::smallest_good_enough(&write)
        .and_then(|b| u32::try_from(b).ok())
        .unwrap_or(defaults.log.write_buffer_bytes);
    let read_ahead_read_bytes =
        choose::smallest_good_enough(&read).unwrap_or(defaults.shard.read_ahead_read_bytes);
    Ok(IoProperties {
        chosen: Chosen {
            log: ChosenLog { write_buffer_bytes },
            shard: ChosenShard {
                read_ahead_read_bytes,
            },
        },
        measured: Measured {
            directory: options.dir.display().to_string(),
            unix_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            point_ms: u64::try_from(options.point.as_millis()).unwrap_or(u64::MAX),
            passes: options.passes.max(1),
            max_file_bytes: options.max_file_bytes,
            read_iops: read_iops.iops,
            read_bandwidth: read_bw.bandwidth,
            write_iops: write_iops.iops,
            write_bandwidth: write_bw.bandwidth,
            fdatasync_p50_us: sync_us.value_at_quantile(0.5),
            fdatasync_p99_us: sync_us.value_at_quantile(0.99),
            synced_write_bandwidth: synced.point.bandwidth,
            write,
            read,
        },
    })
}
