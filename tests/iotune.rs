//! `sluice iotune`: the disk probe measures the data directory's disk and
//! writes the io-properties file; the broker starts with its `[chosen]`
//! settings, and every other source of settings wins over them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{run, Broker, CmdOutput};
use sluice_tuning::choose::smallest_good_enough;
use sluice_tuning::properties::IoProperties;
use sluice_tuning::{READ_SIZES, WRITE_SIZES};

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("iotune-")
        // O_DIRECT needs a real filesystem; /tmp may be tmpfs.
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a scratch directory under the target directory")
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("reading the data directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// An io-properties file holding only chosen settings, as a user could
/// write it (the broker reads nothing else from it).
fn write_chosen(data: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(data).expect("creating the data directory");
    let path = data.join("io-properties.toml");
    std::fs::write(&path, text).expect("writing io-properties.toml");
    path
}

/// `sluice iotune --data-dir data ARGS` with `env` added, which must
/// succeed.
fn iotune(data: &Path, args: &[&str], env: &[(&str, &Path)]) -> CmdOutput {
    let out = run(
        sluice()
            .arg("iotune")
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .envs(env.iter().copied()),
        b"",
        Duration::from_secs(120),
    );
    out.assert_success();
    out
}

fn config_of(data: &Path, env: &[(&str, &str)]) -> String {
    let out = run(
        sluice()
            .args(["config", "--data-dir"])
            .arg(data)
            .envs(env.iter().copied()),
        b"",
        Duration::from_secs(60),
    );
    out.assert_success();
    out.stdout_text()
}

#[test]
fn iotune_measures_the_disk_and_writes_the_file_it_prints() {
    let dir = scratch();
    let data = dir.path().join("data");
    let out = iotune(
        &data,
        &["--point-ms", "50", "--max-file-mib", "16", "--passes", "2"],
        &[],
    );
    let text = std::fs::read_to_string(data.join("io-properties.toml")).expect("the file");
    assert_eq!(out.stdout_text(), text);
    let p = IoProperties::from_toml(&text).expect("the file parses");

    let sizes = |points: &[sluice_tuning::properties::Point]| -> Vec<u64> {
        points.iter().map(|p| p.bytes).collect()
    };
    assert_eq!(sizes(&p.measured.write), WRITE_SIZES, "{text}");
    assert_eq!(sizes(&p.measured.read), READ_SIZES, "{text}");
    for point in p.measured.write.iter().chain(&p.measured.read) {
        assert!(
            point.depth == 1 && point.bandwidth > 0 && point.iops > 0,
            "{point:?}\n{text}"
        );
    }
    let m = &p.measured;
    assert!(
        m.read_bandwidth > 0 && m.write_bandwidth > 0 && m.read_iops > 0 && m.write_iops > 0,
        "{text}"
    );
    assert!(
        m.fdatasync_p50_us > 0 && m.fdatasync_p99_us >= m.fdatasync_p50_us,
        "{text}"
    );
    assert!(m.synced_write_bandwidth > 0, "{text}");
    assert_eq!((m.point_ms, m.max_file_bytes, m.passes), (50, 16 << 20, 2));

    // The chosen sizes are the rule's answer for what was measured.
    assert_eq!(
        Some(u64::from(p.chosen.log.write_buffer_bytes)),
        smallest_good_enough(&m.write),
        "{text}"
    );
    assert_eq!(
        Some(p.chosen.shard.read_ahead_read_bytes),
        smallest_good_enough(&m.read),
        "{text}"
    );
    // The probe's scratch files are gone.
    assert_eq!(names_in(&data), ["io-properties.toml"]);
}

#[test]
fn the_broker_starts_with_the_chosen_settings_and_every_other_setting_wins() {
    let dir = scratch();
    let data = dir.path().join("data");
    write_chosen(
        &data,
        "[chosen.log]\nwrite_buffer_bytes = 65536\n\n\
         [chosen.shard]\nread_ahead_read_bytes = 262144\n",
    );
    let config = config_of(&data, &[]);
    assert!(config.contains("write_buffer_bytes = 65536\n"), "{config}");
    assert!(
        config.contains("read_ahead_read_bytes = 262144\n"),
        "{config}"
    );
    let config = config_of(&data, &[("SLUICE_LOG__WRITE_BUFFER_BYTES", "131072")]);
    assert!(config.contains("write_buffer_bytes = 131072\n"), "{config}");
    assert!(
        config.contains("read_ahead_read_bytes = 262144\n"),
        "{config}"
    );

    let broker = Broker::start_on(data.clone(), &[]);
    let log = broker.log_tail(200);
    assert!(
        log.contains("disk settings from sluice iotune's io-properties")
            && log.contains("write_buffer_bytes=65536")
            && log.contains("read_ahead_read_bytes=262144"),
        "{log}"
    );
    drop(broker);
}

#[test]
fn a_broken_io_properties_file_stops_the_start_and_names_the_setting() {
    let dir = scratch();
    let data = dir.path().join("data");
    write_chosen(&data, "[chosen.log]\nwrite_bufer_bytes = 65536\n");
    let out = run(
        sluice().arg("serve").arg("--data-dir").arg(&data).args([
            "--kafka-addr",
            "127.0.0.1:1",
            "--admin-addr",
            "127.0.0.1:1",
        ]),
        b"",
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "{}", out.stderr_text());
    let err = out.stderr_text();
    assert!(err.contains("write_bufer_bytes"), "{err}");
    assert!(err.contains("io-properties.toml"), "{err}");
}

#[test]
fn iotune_replaces_a_broken_file_and_writes_where_it_is_told() {
    let dir = scratch();
    let data = dir.path().join("data");
    let args = ["--point-ms", "20", "--max-file-mib", "16", "--passes", "1"];
    // A broken file stops a broker, not the probe that replaces it.
    let broken = write_chosen(&data, "[chosen.log]\nwrite_bufer_bytes = 65536\n");
    iotune(&data, &args, &[]);
    let text = std::fs::read_to_string(&broken).expect("the file");
    IoProperties::from_toml(&text).expect("the replaced file parses");
    // A named file that does not exist yet is where the probe writes.
    let named = dir.path().join("disk.toml");
    iotune(&data, &args, &[("SLUICE_IO_PROPERTIES_FILE", &named)]);
    let text = std::fs::read_to_string(&named).expect("the named file");
    IoProperties::from_toml(&text).expect("the named file parses");
}
