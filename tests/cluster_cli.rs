//! `sluice dev cluster --brokers 3` starts a local cluster in one command
//! and stops it cleanly on Ctrl-C; `sluice cluster info` describes it
//! (brokers, controller quorum and lag, partitions per broker).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, kcat_at, run, ProcessGuard, CLIENT_TIMEOUT};

/// A base port whose Kafka, internal and admin ports (+0..2, +100..102,
/// +200..202) were all free a moment ago.
fn free_base_port() -> u16 {
    for _ in 0..200 {
        let base = free_port();
        if base > 60_000 {
            continue;
        }
        let all_free = [0u16, 1, 2, 100, 101, 102, 200, 201, 202]
            .iter()
            .all(|d| std::net::TcpListener::bind(("127.0.0.1", base + d)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free run of ports");
}

fn info(bootstrap: &str) -> String {
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_sluice")).args([
            "cluster",
            "info",
            "--bootstrap",
            bootstrap,
        ]),
        b"",
        CLIENT_TIMEOUT,
    );
    out.stdout_text()
}

#[test]
fn dev_cluster_starts_three_brokers_that_cluster_info_describes_and_stops_on_ctrl_c() {
    let dir = tempfile::Builder::new()
        .prefix("dev-cluster-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temporary directory");
    let base = free_base_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "dev",
            "cluster",
            "--brokers",
            "3",
            "--base-port",
            &base.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting sluice dev cluster");
    let mut cluster = ProcessGuard::new(child, "sluice dev cluster");
    let bootstrap = format!("127.0.0.1:{}", base + 1);

    // Every broker live, a quorum leader with all three voters.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut report = String::new();
    while !(report.matches(" live ").count() == 3 && report.contains("controller quorum: leader")) {
        assert!(
            Instant::now() < deadline,
            "the cluster did not come up:\n{report}"
        );
        assert!(cluster.try_wait().is_none(), "sluice dev cluster exited");
        std::thread::sleep(Duration::from_millis(200));
        report = info(&bootstrap);
    }
    assert_eq!(report.matches("(voter)").count(), 3, "{report}");

    // A topic through one broker shows up in the partition counts.
    let created = kcat_at(
        &format!("127.0.0.1:{base}"),
        &["-L", "-t", "dev-topic"],
        b"",
    );
    created.assert_success();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !report.contains("partitions: 1 in 1 topics, 0 without a leader") {
        assert!(Instant::now() < deadline, "no partition listed:\n{report}");
        std::thread::sleep(Duration::from_millis(100));
        report = info(&bootstrap);
    }

    // Ctrl-C: every broker stops, then the command exits cleanly.
    assert!(cluster.signal(libc::SIGINT));
    let status = cluster
        .wait_timeout(Duration::from_secs(60))
        .expect("sluice dev cluster stops after Ctrl-C");
    assert!(status.success(), "{status}");
    for id in 1..=3 {
        let log = std::fs::read_to_string(dir.path().join(format!("node-{id}/broker.log")))
            .expect("each broker's log");
        assert!(
            log.contains("sluice stopped"),
            "broker {id} did not stop cleanly:\n{log}"
        );
    }
}
