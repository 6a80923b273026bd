//! Faults stay local: a full disk, a partition whose files cannot be
//! opened, and a damaged metadata log, each against the real broker on real
//! disk.
//!
//! - A full disk (a small ext4 filesystem the test makes in a file and
//!   loop-mounts) makes Produce fail with KAFKA_STORAGE_ERROR while Fetch
//!   goes on serving; produce resumes once space is freed, and everything
//!   acknowledged is there after a SIGKILL.
//! - A partition whose log cannot be opened is offline alone: its clients
//!   get KAFKA_STORAGE_ERROR, a metric counts it, the other partitions
//!   serve, and a restart with the damage repaired serves it again.
//! - A metadata log that does not replay stops the process through the one
//!   fatal path: a clear message and exit status 3, not a hang.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::wire::{self, Conn};
use common::{metric_sum, metrics, run, topic, Broker};

const KAFKA_STORAGE_ERROR: i16 = 56;

fn connect(broker: &Broker) -> Conn {
    Conn::connect(broker.addr(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", broker.bootstrap()))
}

fn batch_of(value: &[u8]) -> Vec<u8> {
    wire::record_batch(1_700_000_000_000, &[(None, Some(value))])
}

/// Runs a command that must succeed (mkfs, mount, umount).
fn sh(program: &str, args: &[&str]) {
    let out = run(
        Command::new(program).args(args),
        b"",
        Duration::from_secs(60),
    );
    out.assert_success();
}

/// A small ext4 filesystem in a file, loop-mounted; unmounted and removed
/// on drop.
struct SmallFilesystem {
    image: PathBuf,
    mount: PathBuf,
}

impl SmallFilesystem {
    fn new(dir: &Path, mib: u64) -> SmallFilesystem {
        let image = dir.join("disk.img");
        let mount = dir.join("mnt");
        std::fs::create_dir_all(&mount).expect("mount point");
        let file = std::fs::File::create(&image).expect("image file");
        file.set_len(mib << 20).expect("image size");
        drop(file);
        sh(
            "mkfs.ext4",
            &["-q", "-F", "-m", "0", image.to_str().expect("utf-8 path")],
        );
        sh(
            "mount",
            &[
                "-o",
                "loop",
                image.to_str().expect("utf-8 path"),
                mount.to_str().expect("utf-8 path"),
            ],
        );
        SmallFilesystem { image, mount }
    }

    fn free_bytes(&self) -> u64 {
        let out = run(
            Command::new("df")
                .args(["--output=avail", "-B1"])
                .arg(&self.mount),
            b"",
            Duration::from_secs(10),
        );
        out.assert_success();
        out.stdout_text()
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes")
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = std::fs::remove_file(&self.image);
    }
}

#[test]
fn a_full_disk_fails_produce_keeps_fetch_and_resumes_when_space_returns() {
    let scratch = tempfile::Builder::new()
        .prefix("full-disk-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch dir");
    let fs = SmallFilesystem::new(scratch.path(), 96);
    let data = fs.mount.join("data");
    let mut broker = Broker::start_on(
        data.clone(),
        &[
            // Small index files, so the disk fills with records.
            ("SLUICE_LOG__SEGMENT_INDEX_BYTES", "262144"),
        ],
    );
    let t = topic("full-disk");
    let mut conn = connect(&broker);
    conn.metadata_v2(&[t.as_str()]).expect("auto-create");

    // Leave about 4 MiB free, then produce 64 KiB records until refused.
    let filler = fs.mount.join("filler");
    let keep_free = 4u64 << 20;
    let fill = fs.free_bytes().saturating_sub(keep_free);
    let file = std::fs::File::create(&filler).expect("filler");
    file.set_len(fill).expect("filler size");
    sh(
        "fallocate",
        &["-l", &fill.to_string(), filler.to_str().unwrap()],
    );
    drop(file);

    let value = |i: usize| format!("{i:08}").repeat(8 * 1024).into_bytes();
    let mut acked: Vec<(i64, usize)> = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        let answer = conn
            .produce_v3(&t, 0, -1, &batch_of(&value(i)))
            .expect("produce answered, even on a full disk");
        match answer.error_code {
            wire::ERROR_NONE => acked.push((answer.base_offset, i)),
            KAFKA_STORAGE_ERROR => {
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            other => panic!("produce on a full disk got error {other}"),
        }
    }
    assert!(refused >= 3, "the disk never filled: {} acked", acked.len());
    assert!(!acked.is_empty());
    let text = metrics(&broker);
    assert_eq!(
        metric_sum(&text, "sluice_log_storage_full_partitions"),
        Some(1)
    );
    assert_eq!(metric_sum(&text, "sluice_offline_partitions"), Some(0));

    // Reads keep working.
    let fetched = conn
        .fetch_v4(&t, 0, 0, 1 << 20)
        .expect("fetch on a full disk");
    assert_eq!(fetched.error_code, wire::ERROR_NONE);
    assert!(!fetched.records.is_empty());

    // Space returns: produce resumes.
    std::fs::remove_file(&filler).expect("removing the filler");
    let deadline = Instant::now() + Duration::from_secs(10);
    let resumed = loop {
        let answer = conn
            .produce_v3(&t, 0, -1, &batch_of(&value(1000)))
            .expect("produce answered");
        if answer.error_code == wire::ERROR_NONE {
            break answer;
        }
        assert_eq!(answer.error_code, KAFKA_STORAGE_ERROR);
        assert!(Instant::now() < deadline, "produce did not resume");
        std::thread::sleep(Duration::from_millis(100));
    };
    acked.push((resumed.base_offset, 1000));
    assert_eq!(
        metric_sum(&metrics(&broker), "sluice_log_storage_full_partitions"),
        Some(0)
    );

    // Everything acknowledged survives a SIGKILL, with its bytes.
    broker.kill();
    broker.restart();
    let mut conn = connect(&broker);
    for (offset, i) in acked {
        let fetched = conn.fetch_v4(&t, 0, offset, 1 << 20).expect("fetch");
        assert_eq!(fetched.error_code, wire::ERROR_NONE);
        let batches = wire::decode_batches(&fetched.records).expect("whole batches");
        let record = batches
            .first()
            .and_then(|b| b.records.first())
            .expect("a record");
        assert_eq!(record.offset, offset);
        assert_eq!(record.value, Some(value(i)), "offset {offset}");
    }
    drop(broker);
}

#[test]
fn a_partition_that_cannot_open_is_offline_alone_until_repaired() {
    let mut broker = Broker::start_with_env(&[("SLUICE_KAFKA__NUM_PARTITIONS", "2")]);
    let t = topic("offline");
    let mut conn = connect(&broker);
    conn.metadata_v2(&[t.as_str()]).expect("auto-create");
    for p in 0..2 {
        let answer = conn
            .produce_v3(&t, p, -1, &batch_of(b"before"))
            .expect("produce");
        assert_eq!(answer.error_code, wire::ERROR_NONE);
    }
    broker.stop();

    // Partition 1's segment becomes a directory: its log cannot open.
    let segment = broker
        .data_dir()
        .join(&t)
        .join("1")
        .join("00000000000000000000.log");
    let saved = segment.with_extension("saved");
    std::fs::rename(&segment, &saved).expect("moving the segment away");
    std::fs::create_dir(&segment).expect("a directory in its place");
    broker.restart();
    let mut conn = connect(&broker);
    let p0 = conn
        .produce_v3(&t, 0, -1, &batch_of(b"after"))
        .expect("produce");
    assert_eq!((p0.error_code, p0.base_offset), (wire::ERROR_NONE, 1));
    let p1 = conn
        .produce_v3(&t, 1, -1, &batch_of(b"after"))
        .expect("produce");
    assert_eq!(p1.error_code, KAFKA_STORAGE_ERROR);
    let f1 = conn.fetch_v4(&t, 1, 0, 1 << 20).expect("fetch");
    assert_eq!(f1.error_code, KAFKA_STORAGE_ERROR);
    let f0 = conn.fetch_v4(&t, 0, 0, 1 << 20).expect("fetch");
    assert_eq!((f0.error_code, f0.high_watermark), (wire::ERROR_NONE, 2));
    assert_eq!(
        metric_sum(&metrics(&broker), "sluice_offline_partitions"),
        Some(1)
    );
    assert!(broker.log().contains("could not open a partition"));
    broker.stop();

    // Repaired, the next start serves it again with its data.
    std::fs::remove_dir(&segment).expect("removing the directory");
    std::fs::rename(&saved, &segment).expect("restoring the segment");
    broker.restart();
    let mut conn = connect(&broker);
    let f1 = conn.fetch_v4(&t, 1, 0, 1 << 20).expect("fetch");
    assert_eq!((f1.error_code, f1.high_watermark), (wire::ERROR_NONE, 1));
    assert_eq!(
        metric_sum(&metrics(&broker), "sluice_offline_partitions"),
        Some(0)
    );
}

/// The end of the last whole batch in a segment file, and the offset after
/// it.
fn segment_end(bytes: &[u8]) -> (usize, i64) {
    let (mut at, mut next) = (0usize, 0i64);
    while at + 61 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        if len <= 0 || bytes[at + 16] != 2 || at + 12 + len as usize > bytes.len() {
            break;
        }
        let last_delta = i32::from_be_bytes(bytes[at + 23..at + 27].try_into().unwrap());
        next = base + i64::from(last_delta) + 1;
        at += 12 + len as usize;
    }
    (at, next)
}

#[test]
fn a_controller_log_that_does_not_replay_stops_the_node_with_a_clear_message() {
    let mut broker = Broker::start();
    let t = topic("meta");
    connect(&broker)
        .metadata_v2(&[t.as_str()])
        .expect("auto-create");
    broker.stop();

    // A record whose CRC is right but whose command is not one.
    let segment = broker
        .data_dir()
        .join("__cluster_metadata")
        .join("log")
        .join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).expect("the metadata segment");
    let (end, next) = segment_end(&bytes);
    assert!(
        next > 0,
        "the controller's Raft log holds the topic's creation"
    );
    let mut garbage = batch_of(b"{ this is not a metadata command");
    garbage[..8].copy_from_slice(&next.to_be_bytes());
    bytes.truncate(end);
    bytes.extend_from_slice(&garbage);
    std::fs::write(&segment, &bytes).expect("writing the damaged segment");

    let out = run(
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .arg("--data-dir")
            .arg(broker.data_dir())
            .arg("--kafka-addr")
            .arg(broker.bootstrap())
            .arg("--admin-addr")
            .arg(format!("127.0.0.1:{}", broker.admin_port()))
            .args(["--cores", "2"]),
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout_text(),
        out.stderr_text()
    );
    let stderr = out.stderr_text();
    assert!(
        stderr.contains("sluice: fatal: the controller quorum's metadata")
            && stderr.contains("corrupt"),
        "{stderr}"
    );
}
