//! Transactions with a real transactional client (confluent-kafka /
//! librdkafka), judged against Apache Kafka: each scenario of
//! tests/clients/python/transactions.py runs against the real broker and
//! must print exactly what it printed against Kafka 4.4
//! (tests/clients/python/expected/txn-*.txt, recorded by
//! tests/clients/python/transactions_oracle.sh --record).
//!
//! - commit-abort: read_committed reads exactly the committed records,
//!   read_uncommitted all of them, at the same offsets as Kafka (markers
//!   take an offset each).
//! - fence: a new instance of a transactional id fences the old one and
//!   aborts its open transaction; the old one's commit is fatal.
//! - timeout: a transaction past its timeout is aborted by the coordinator.
//! - lso: read_committed stops at the last stable offset, ListOffsets too.
//! - rpw: read-process-write with offsets committed in the transaction.
//!
//! And across a broker SIGKILL: a transaction committed right before the
//! kill is complete after the restart (its markers are written from the
//! coordinator's durable state), and one left open is aborted by its
//! producer's next instance.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{python_interpreter, run, topic, Broker, CmdOutput};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python/transactions.py")
}

fn run_scenario(broker: &Broker, scenario: &str, prefix: &str) -> CmdOutput {
    let out = run(
        Command::new(python_interpreter()).arg(script()).args([
            scenario,
            &broker.bootstrap(),
            prefix,
        ]),
        b"",
        Duration::from_secs(180),
    );
    assert!(
        out.status.success(),
        "{scenario} failed:\n{}\n--- stderr\n{}\n--- broker\n{}",
        out.stdout_text(),
        out.stderr_text(),
        broker.log_tail(40)
    );
    out
}

/// Runs SCENARIO and compares its lines with Kafka's.
fn matches_kafka(scenario: &str) {
    let broker = Broker::start();
    let out = run_scenario(&broker, scenario, &topic(scenario));
    let path = script()
        .with_file_name("expected")
        .join(format!("txn-{scenario}.txt"));
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let got = out.stdout_text();
    assert!(
        got == want,
        "{scenario}: sluice printed\n{got}\nKafka printed\n{want}\n--- stderr\n{}",
        out.stderr_text()
    );
}

#[test]
fn read_committed_reads_exactly_the_committed_records() {
    matches_kafka("commit-abort");
}

#[test]
fn a_new_instance_fences_the_old_producer_and_aborts_its_transaction() {
    matches_kafka("fence");
}

#[test]
fn a_transaction_past_its_timeout_is_aborted() {
    matches_kafka("timeout");
}

#[test]
fn read_committed_stops_at_the_last_stable_offset() {
    matches_kafka("lso");
}

#[test]
fn read_process_write_outputs_every_input_once_with_its_offsets() {
    matches_kafka("rpw");
}

#[test]
fn transactions_survive_a_broker_sigkill() {
    let mut broker = Broker::start();
    let prefix = topic("kill");
    run_scenario(&broker, "kill-before", &prefix);
    broker.kill();
    broker.restart();
    let out = run_scenario(&broker, "kill-after", &prefix);
    let got = out.stdout_text();
    assert!(
        got.contains("read_committed p0: 0:committed-1 3:committed-2 | ends at 6"),
        "after the restart:\n{got}"
    );
    assert!(
        got.contains("read_uncommitted p0: 0:committed-1 2:left-open 3:committed-2 | ends at 6"),
        "after the restart:\n{got}"
    );
}
