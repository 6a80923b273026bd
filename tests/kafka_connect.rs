//! Kafka Connect on sluice: a distributed worker (Kafka's connect-runtime
//! from Maven Central, its config, offset and status topics compacted) runs
//! a FileStream source and sink that copy a file through a topic, and
//! resumes exactly where it was after a restart of the worker and after a
//! restart of the broker (`tests/clients/connect/run_connect.py` drives it;
//! the same script passes against Apache Kafka).
//!
//! The broker restart is a handshake: the script's restart command writes
//! a file and waits for an answer file; this test restarts the broker (same
//! port, same data) in between.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::oracle;
use common::{Broker, ProcessGuard};

/// The whole run's bound (the script's own is 600 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(660);

#[test]
fn kafka_connect_copies_a_file_and_resumes_after_restarts() {
    let mut broker = Broker::start();
    let work = tempfile::Builder::new()
        .prefix("connect-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temporary directory");
    let wanted = work.path().join("restart-wanted");
    let done = work.path().join("restart-done");
    // Waits at most 120 s for the test to restart the broker.
    let restart = format!(
        "touch '{w}' && for i in $(seq 1200); do [ -f '{d}' ] && rm -f '{d}' && exit 0; sleep 0.1; done; exit 1",
        w = wanted.display(),
        d = done.display()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let worker_dir = work.path().join("worker");
    // Dropped last: stops the worker even if the driver was killed.
    let _worker = StopsWorker(worker_dir.clone());
    let mut child = Command::new(common::python_interpreter())
        .arg(root.join("tests/clients/connect/run_connect.py"))
        .args(["--bootstrap", &broker.bootstrap(), "--work"])
        .arg(&worker_dir)
        .args(["--broker-restart-cmd", &restart, "--oracle"])
        .arg(root.join("scripts/kafka-oracle"))
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the Connect driver");
    // Read the driver's output as it comes, so its pipes never fill.
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let mut driver = ProcessGuard::new(child, "run_connect.py");
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let started = Instant::now();
    let mut restarts = 0;
    let status = loop {
        if let Some(status) = driver.try_wait() {
            break Some(status);
        }
        if started.elapsed() > RUN_TIMEOUT {
            driver.kill();
            break None;
        }
        if wanted.exists() {
            std::fs::remove_file(&wanted).expect("removing the restart request");
            broker.stop();
            broker.restart();
            restarts += 1;
            std::fs::write(&done, b"").expect("answering the restart request");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the Connect run failed ({status:?}):\n{stdout}\n{stderr}\n{}",
        broker.log_tail(40)
    );
    assert!(stdout.contains("run_connect: PASS"), "{stdout}");
    assert_eq!(restarts, 1, "the broker restart ran once: {stdout}");
}

/// Stops the Connect worker of a directory when dropped (the script stops
/// it on every path but its own kill).
struct StopsWorker(std::path::PathBuf);

impl Drop for StopsWorker {
    fn drop(&mut self) {
        let _ = oracle()
            .args(["connect-stop", "--data"])
            .arg(&self.0)
            .output();
    }
}
