//! The broker's lifecycle as an operator sees it: one start-up line, a
//! clean stop on SIGINT as on SIGTERM, and a start that fails loudly when
//! the Kafka port is taken.

mod common;

use std::fs::File;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, Broker, ProcessGuard};

#[test]
fn sigint_stops_the_broker_cleanly_after_one_serving_line() {
    let mut broker = Broker::start();
    broker.stop_with(libc::SIGINT);
    let port = broker.port();
    let stdout = broker.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let expected = format!(
        "serving: cores 2, data dir {}, kafka 127.0.0.1:{port} (advertised 127.0.0.1:{port}), admin 127.0.0.1:{}",
        broker.data_dir().display(),
        broker.admin_port()
    );
    assert!(
        lines[0].starts_with("sluice ") && lines[0].contains(&expected),
        "{stdout}"
    );
    assert_eq!(lines[1], "sluice stopped");

    // And it starts again on the same data directory.
    broker.restart();
    broker.stop();
    assert_eq!(
        broker
            .stdout()
            .lines()
            .filter(|l| *l == "sluice stopped")
            .count(),
        2
    );
}

#[test]
fn serve_exits_with_an_error_when_the_kafka_port_is_taken() {
    // Held without SO_REUSEPORT, so the broker's bind fails.
    let taken = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    let port = taken.local_addr().expect("bound").port();
    let dir = tempfile::Builder::new()
        .prefix("port-taken-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("creating a temporary directory");
    let stderr_path = dir.path().join("broker.stderr");
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--kafka-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-addr")
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(["--cores", "2"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).expect("creating the stderr file"))
        .spawn()
        .expect("spawning sluice");
    let mut process = ProcessGuard::new(child, format!("sluice on taken port {port}"));
    let status = process.wait_timeout(Duration::from_secs(20));
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    match status {
        Some(status) => assert!(!status.success(), "exited with {status} though it never served\n{stderr}"),
        None => panic!(
            "the broker still runs 20 s after failing to bind its Kafka port {port}; it should exit non-zero\n{stderr}"
        ),
    }
    drop(taken);
}
