//! The io-properties file `sluice iotune` writes and the broker reads.
//!
//! Two tables: `[chosen]` holds broker settings under their configuration
//! names (`[chosen.log]`, `[chosen.shard]`), which the broker's
//! configuration loader layers over its built-in defaults and under every
//! other source (`sluice_core::config::load`); `[measured]` holds what the
//! probe measured, for people and tools (its four headline figures carry
//! the names Seastar's io-properties use), and is not read by the broker.
//! Bandwidths are in bytes per second, latencies in microseconds.

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoProperties {
    pub chosen: Chosen,
    pub measured: Measured,
}

/// The settings the broker takes from the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chosen {
    pub log: ChosenLog,
    pub shard: ChosenShard,
}

/// `[chosen.log]`: `log.write_buffer_bytes`, the size of a partition's
/// writes when producers keep it busy (one write in flight per segment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChosenLog {
    pub write_buffer_bytes: u32,
}

/// `[chosen.shard]`: `shard.read_ahead_read_bytes`, the least one read
/// ahead of a reader reads at once (one in flight per partition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChosenShard {
    pub read_ahead_read_bytes: u64,
}

/// What was measured, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// The directory whose filesystem was measured.
    pub directory: String,
    /// When, in seconds since the Unix epoch.
    pub unix_time: u64,
    /// How long each point ran (at most; it also stops at `max_file_bytes`).
    pub point_ms: u64,
    /// How many times the one-in-flight sweeps ran (`write` and `read`
    /// keep each size's best).
    pub passes: u32,
    pub max_file_bytes: u64,
    /// 4 KiB random O_DIRECT reads, 32 in flight: reads per second.
    pub read_iops: u64,
    /// 1 MiB sequential O_DIRECT reads, 4 in flight.
    pub read_bandwidth: u64,
    /// 4 KiB sequential O_DIRECT writes into a growing file, 32 in flight.
    pub write_iops: u64,
    /// 256 KiB sequential O_DIRECT writes into a growing file, 4 in flight.
    pub write_bandwidth: u64,
    /// 256 KiB writes each followed by fdatasync, one at a time: the
    /// fdatasync latency's median and 99th percentile, and the bandwidth.
    pub fdatasync_p50_us: u64,
    pub fdatasync_p99_us: u64,
    pub synced_write_bandwidth: u64,
    /// Sequential writes of each size, one in flight, each its best pass
    /// (what `write_buffer_bytes` was chosen from).
    pub write: Vec<Point>,
    /// Sequential reads of each size, one in flight, each its best pass
    /// (what `read_ahead_read_bytes` was chosen from).
    pub read: Vec<Point>,
}

/// One measured point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Bytes per I/O.
    pub bytes: u64,
    /// I/Os in flight.
    pub depth: u64,
    /// Bytes per second.
    pub bandwidth: u64,
    /// I/Os per second.
    pub iops: u64,
}

impl IoProperties {
    /// The file's text: a comment saying what wrote it, then the tables.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let body = toml::to_string(self)?;
        Ok(format!(
            "# Written by `sluice iotune`: the disk under {} as measured then.\n\
             # The broker takes [chosen] at start, over its built-in defaults and\n\
             # under its configuration file, SLUICE_* variables and flags.\n\n{body}",
            self.measured.directory
        ))
    }

    pub fn from_toml(text: &str) -> Result<IoProperties, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IoProperties {
        let point = |bytes, bandwidth| Point {
            bytes,
            depth: 1,
            bandwidth,
            iops: bandwidth / bytes,
        };
        IoProperties {
            chosen: Chosen {
                log: ChosenLog {
                    write_buffer_bytes: 262_144,
                },
                shard: ChosenShard {
                    read_ahead_read_bytes: 1 << 20,
                },
            },
            measured: Measured {
                directory: "/data".into(),
                unix_time: 1,
                point_ms: 1000,
                passes: 3,
                max_file_bytes: 1 << 30,
                read_iops: 50_000,
                read_bandwidth: 1_500_000_000,
                write_iops: 40_000,
                write_bandwidth: 1_400_000_000,
                fdatasync_p50_us: 400,
                fdatasync_p99_us: 900,
                synced_write_bandwidth: 500_000_000,
                write: vec![point(65_536, 600_000_000), point(262_144, 1_100_000_000)],
                read: vec![point(1 << 20, 1_200_000_000)],
            },
        }
    }

    #[test]
    fn the_file_reads_back_as_written() {
        let p = sample();
        let text = p.to_toml().expect("serializes");
        assert!(text.starts_with("# Written by `sluice iotune`"), "{text}");
        assert!(
            text.contains("[chosen.log]\nwrite_buffer_bytes = 262144\n"),
            "{text}"
        );
        assert_eq!(IoProperties::from_toml(&text).expect("parses"), p);
    }
}
