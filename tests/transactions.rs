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
//! And with raw requests (tests/clients/python/txn_raw.py, kafka-python's
//! protocol classes), KIP-890's check on the partition leader: a
//! transactional write to a partition not added to the transaction, or
//! sent after the transaction ended, is refused (INVALID_TXN_STATE, or
//! TRANSACTION_ABORTABLE from Produce v11) and opens no transaction; one
//! without a transactional id gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
//! and the group coordinator's: a TxnOffsetCommit without AddOffsetsToTxn,
//! or after the commit, is refused (INVALID_TXN_STATE, or
//! TRANSACTION_ABORTABLE from v4) and leaves no offset pending. And
//! transaction version 2 (KIP-890 part 2): partitions and offsets join
//! with the write, every EndTxn bumps the epoch, and the zombie's write of
//! the old epoch is refused.
//!
//! Over many small segments (sluice only: Kafka 4 refuses segments that
//! small), read_committed reads exactly the committed records with the
//! aborted transactions of sealed segments read from their transaction
//! indexes, before and after a SIGKILL, and memory holds only the active
//! segment's.
//!
//! And across a broker SIGKILL: a transaction committed right before the
//! kill is complete after the restart (its markers are written from the
//! coordinator's durable state), and one left open is aborted by its
//! producer's next instance. Kafka's own `kafka-transactions.sh` lists,
//! describes and finds the producers of an open transaction, printing what
//! it prints against Kafka but for ids and times.
//!
//! And exactly-once with a KIP-848 consumer (tests/clients/java/TxnGroupCheck.java,
//! the Java client, against Kafka 4.4 and sluice): the producer commits
//! offsets under the member's metadata; under the member's older epoch
//! for a partition it kept since (taken, as Kafka 4.4 takes it), an epoch
//! before it held it, a newer epoch, an unknown member or a group that
//! does not exist (refused).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::kafka::{self, tool};
use common::programs::java_program_lines;
use common::{python_interpreter, run, topic, Broker, CmdOutput, Spawned, Stream};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python/transactions.py")
}

/// The raw-protocol scenarios (kafka-python's request classes: requests a
/// transactional client would not send).
fn raw_script() -> PathBuf {
    script().with_file_name("txn_raw.py")
}

fn run_scenario(broker: &Broker, scenario: &str, prefix: &str) -> CmdOutput {
    run_script(&script(), broker, scenario, prefix)
}

fn run_script(script: &PathBuf, broker: &Broker, scenario: &str, prefix: &str) -> CmdOutput {
    let out = run(
        Command::new(python_interpreter()).arg(script).args([
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

/// Runs SCENARIO of transactions.py and compares its lines with Kafka's.
fn matches_kafka(scenario: &str) {
    script_matches_kafka(&script(), scenario);
}

/// Runs SCENARIO of `script` and compares its lines with Kafka's.
fn script_matches_kafka(script_path: &PathBuf, scenario: &str) {
    let broker = Broker::start();
    let out = run_script(script_path, &broker, scenario, &topic(scenario));
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
fn a_transactional_write_to_a_partition_not_added_is_refused() {
    script_matches_kafka(&raw_script(), "unadded");
}

#[test]
fn a_late_write_after_the_commit_opens_no_transaction() {
    script_matches_kafka(&raw_script(), "late");
}

#[test]
fn a_transactional_write_without_a_transactional_id_is_refused() {
    script_matches_kafka(&raw_script(), "no-id");
}

/// Transaction version 2 on the wire (Produce v12, EndTxn v5): a write
/// joins its transaction without AddPartitionsToTxn; every EndTxn bumps
/// the epoch and says so; a retried EndTxn is answered as the first; the
/// zombie's write under the old epoch is refused and writes nothing; an
/// abort with nothing ongoing bumps the epoch too; a commit with nothing
/// ongoing is INVALID_TXN_STATE. As Kafka 4.4 answers.
#[test]
fn transaction_version_2_bumps_the_epoch_per_transaction_and_fences_the_zombie() {
    script_matches_kafka(&raw_script(), "version2");
}

/// TxnOffsetCommit v5 puts the group's partition in the transaction
/// without AddOffsetsToTxn; the offsets appear at the commit.
#[test]
fn transaction_version_2_offsets_join_without_add_offsets() {
    script_matches_kafka(&raw_script(), "offsets-version2");
}

#[test]
fn transactional_offsets_without_add_offsets_are_refused() {
    script_matches_kafka(&raw_script(), "offsets-unadded");
}

#[test]
fn transactional_offsets_after_the_commit_are_refused_and_leave_nothing_pending() {
    script_matches_kafka(&raw_script(), "offsets-late");
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

/// The `.txnindex` files of partition 0 of `topic`, with their sizes.
fn txn_indexes(data_dir: &std::path::Path, topic: &str) -> Vec<(String, u64)> {
    let dir = data_dir.join(topic).join("0");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut found: Vec<(String, u64)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let size = entry.metadata().map_or(0, |m| m.len());
            name.ends_with(".txnindex").then_some((name, size))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn aborted_transactions_of_sealed_segments_are_read_from_their_indexes() {
    let mut broker = Broker::start();
    let prefix = topic("segments");
    let expected = [
        "read_committed: 135 records, as expected: True",
        "read_uncommitted: 200 records, as expected: True",
    ];
    let out = run_scenario(&broker, "segments", &prefix);
    let got = out.stdout_text();
    for line in expected {
        assert!(
            got.contains(line),
            "{line}
not in:
{got}"
        );
    }
    let seg_topic = format!("{prefix}-seg");
    let indexes = txn_indexes(&broker.data_dir(), &seg_topic);
    assert!(indexes.len() >= 5, "sealed segments' indexes: {indexes:?}");
    assert!(
        indexes.iter().filter(|(_, size)| *size > 0).count() >= 3,
        "indexes holding aborted transactions (34 bytes each): {indexes:?}"
    );
    // 13 transactions aborted; memory keeps only the active segment's.
    let in_memory = common::metric_sum(&common::metrics(&broker), "sluice_txn_aborted_in_memory")
        .expect("the gauge is exported");
    assert!(in_memory < 13, "{in_memory} aborted transactions in memory");

    broker.kill();
    broker.restart();
    let out = run_scenario(&broker, "segments-read", &prefix);
    let got = out.stdout_text();
    for line in expected {
        assert!(
            got.contains(line),
            "after the restart: {line}
not in:
{got}"
        );
    }
}

/// `sluice txn list | describe | describe-producers` against sluice and
/// against Kafka 4.4, while one transaction is open over two partitions
/// and another id has committed: the same states, epochs, timeouts,
/// partitions and producers (ids, times and coordinator ids aside).
#[test]
fn sluice_txn_shows_what_it_shows_against_kafka() {
    let broker = Broker::start();
    let kafka = common::kafka::KafkaNode::start();
    let shown = |bootstrap: &str| -> Vec<String> {
        let prefix = topic("cli");
        let mut open = Spawned::start(
            Command::new(python_interpreter())
                .arg(script())
                .args(["hold-open", bootstrap, &prefix])
                .stdin(std::process::Stdio::piped()),
        );
        open.wait_for_line(Stream::Stdout, Duration::from_secs(60), |l| l == "open");
        let sluice = |args: &[&str]| {
            let out = run(
                Command::new(env!("CARGO_BIN_EXE_sluice"))
                    .args(args)
                    .args(["--bootstrap", bootstrap])
                    .env("RUST_BACKTRACE", "0"),
                b"",
                Duration::from_secs(60),
            );
            out.assert_success();
            out.stdout_text()
        };
        let cells =
            |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_owned).collect() };
        let mut lines = Vec::new();
        // list: each of this test's ids and its state.
        for row in sluice(&["txn", "list"]).lines().skip(1).map(cells) {
            if let Some(id) = row[0].strip_prefix(&prefix) {
                lines.push(format!("list {id} {}", row[3]));
            }
        }
        lines.sort();
        // describe: the state, epoch and timeout, and the partitions.
        let described = sluice(&["txn", "describe", &format!("{prefix}-open")]);
        let first = described.lines().next().unwrap_or_default();
        let words = cells(first);
        let after = |w: &str| {
            words
                .iter()
                .position(|x| x == w)
                .and_then(|i| words.get(i + 1))
                .map(|next| next.trim_end_matches(',').to_owned())
                .unwrap_or_default()
        };
        lines.push(format!(
            "describe state {} epoch {} timeout {}",
            after("state"),
            after("epoch"),
            after("timeout")
        ));
        for row in described.lines().skip(3).map(cells) {
            lines.push(format!(
                "describe partition {} {}",
                row[0].trim_start_matches(&prefix),
                row[1]
            ));
        }
        // describe-producers: epoch, last sequence, coordinator epoch and
        // the open transaction's first offset of each producer.
        let t = format!("{prefix}-t");
        for row in sluice(&[
            "txn",
            "describe-producers",
            "--topic",
            &t,
            "--partition",
            "0",
        ])
        .lines()
        .skip(1)
        .map(cells)
        {
            lines.push(format!(
                "producer epoch {} last-sequence {} coordinator-epoch {} txn-start {}",
                row[1], row[2], row[4], row[5]
            ));
        }
        open.close_stdin();
        lines
    };
    let here = shown(&broker.bootstrap());
    let there = shown(&kafka.bootstrap());
    assert_eq!(here, there, "sluice (left) and Kafka (right)");
    assert!(
        here.contains(&"describe state Ongoing epoch 0 timeout 60000".to_owned()),
        "{here:#?}"
    );
}

/// `transactional.id.expiration.ms`: an id with no transaction in progress
/// is forgotten once idle that long (a tombstone in `__transaction_state`,
/// so it stays forgotten after a restart, here one with the 7-day default
/// that would otherwise have kept it): `kafka-transactions.sh list` no
/// longer shows it and `describe` fails as Kafka's does for an id it does
/// not know.
#[test]
fn an_idle_transactional_id_expires_for_good() {
    const EXPIRY: &str = "SLUICE_TRANSACTION__TRANSACTIONAL_ID_EXPIRATION_MS";
    let mut broker = Broker::start_with_env(&[(EXPIRY, "2000")]);
    let prefix = topic("expiry");
    let id = format!("{prefix}-tx");
    let out = run_scenario(&broker, "commit-once", &prefix).stdout_text();
    assert_eq!(out, "committed\n");
    let listed = |broker: &Broker| {
        tool(
            "org.apache.kafka.tools.TransactionsCommand",
            &broker.bootstrap(),
            &["list"],
        )
        .stdout_text()
        .lines()
        .any(|l| l.split_whitespace().next() == Some(id.as_str()))
    };
    assert!(listed(&broker), "the id is listed right after its commit");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while listed(&broker) {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle id was not forgotten\n{}",
            broker.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let describe = common::kafka::tool_output(
        "org.apache.kafka.tools.TransactionsCommand",
        &broker.bootstrap(),
        &["describe", "--transactional-id", &id],
    );
    assert!(
        !describe.status.success() && describe.stderr_text().contains("the ID could not be found"),
        "describe of a forgotten id:\n{}\n{}",
        describe.stdout_text(),
        describe.stderr_text()
    );
    broker.kill();
    broker.set_env(EXPIRY, "604800000");
    broker.restart();
    assert!(!listed(&broker), "the id came back after a restart");
}

/// `kafka-transactions.sh` (Kafka's TransactionsCommand) while one
/// transaction is open over two partitions and another id has committed:
/// the columns and values Kafka 4.4 prints for the same scenario (checked
/// against it by hand: only producer ids, times and the coordinator's
/// broker id differ); then `abort` of the open one in one partition.
#[test]
fn kafka_transactions_tool_lists_describes_and_shows_producers() {
    let broker = Broker::start();
    let prefix = topic("tool");
    let mut open = Spawned::start(
        Command::new(python_interpreter())
            .arg(script())
            .args(["hold-open", &broker.bootstrap(), &prefix])
            .stdin(std::process::Stdio::piped()),
    );
    open.wait_for_line(Stream::Stdout, Duration::from_secs(60), |l| l == "open");
    let tool = |args: &[&str]| {
        tool(
            "org.apache.kafka.tools.TransactionsCommand",
            &broker.bootstrap(),
            args,
        )
        .stdout_text()
    };
    // Rows as whitespace-separated cells.
    let rows = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .filter(|r: &Vec<String>| !r.is_empty())
            .collect()
    };

    let list = rows(&tool(&["list"]));
    assert_eq!(
        list[0],
        [
            "TransactionalId",
            "Coordinator",
            "ProducerId",
            "TransactionState"
        ],
        "list:\n{list:?}"
    );
    let states: Vec<(&str, &str)> = list[1..]
        .iter()
        .filter(|r| r[0].starts_with(&prefix))
        .map(|r| (r[0].as_str(), r[3].as_str()))
        .collect();
    let (done, still_open) = (format!("{prefix}-done"), format!("{prefix}-open"));
    assert!(
        states.contains(&(done.as_str(), "CompleteCommit")),
        "list:\n{list:?}"
    );
    assert!(
        states.contains(&(still_open.as_str(), "Ongoing")),
        "list:\n{list:?}"
    );

    let describe = rows(&tool(&["describe", "--transactional-id", &still_open]));
    assert_eq!(
        describe[0],
        [
            "CoordinatorId",
            "TransactionalId",
            "ProducerId",
            "ProducerEpoch",
            "TransactionState",
            "TransactionTimeoutMs",
            "CurrentTransactionStartTimeMs",
            "TransactionDurationMs",
            "TopicPartitions"
        ],
        "describe:\n{describe:?}"
    );
    let row = &describe[1];
    assert_eq!(
        (
            row[1].as_str(),
            row[3].as_str(),
            row[4].as_str(),
            row[5].as_str()
        ),
        (still_open.as_str(), "0", "Ongoing", "60000"),
        "describe:\n{describe:?}"
    );
    // In no particular order (Kafka prints its set's order).
    let mut partitions: Vec<&str> = row[8].split(',').collect();
    partitions.sort_unstable();
    assert_eq!(
        partitions,
        [format!("{prefix}-t-0"), format!("{prefix}-t-1")],
        "describe:\n{describe:?}"
    );

    let t = format!("{prefix}-t");
    let producers = rows(&tool(&[
        "describe-producers",
        "--topic",
        &t,
        "--partition",
        "0",
    ]));
    assert_eq!(
        producers[0],
        [
            "ProducerId",
            "ProducerEpoch",
            "LatestCoordinatorEpoch",
            "LastSequence",
            "LastTimestamp",
            "CurrentTransactionStartOffset"
        ],
        "describe-producers:\n{producers:?}"
    );
    // The committed producer (its marker's coordinator epoch, nothing
    // open) and the open one (from offset 2: record 0, marker 1).
    let shapes: Vec<(String, String, String)> = producers[1..]
        .iter()
        .map(|r| (r[1].clone(), r[3].clone(), r[5].clone()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("0".to_owned(), "0".to_owned(), "None".to_owned()),
            ("0".to_owned(), "0".to_owned(), "2".to_owned())
        ],
        "describe-producers:\n{producers:?}"
    );
    assert_eq!(
        producers[1][2], "0",
        "the committed one's marker epoch: {producers:?}"
    );

    // `abort` ends the open transaction in partition 0 by hand (the
    // operator's way out of a hanging transaction): it finds the producer
    // whose transaction starts at offset 2 and writes its abort marker
    // there with WriteTxnMarkers. Partition 0's last stable offset moves
    // to its end; partition 1, where the transaction is still open, stays.
    let aborted = tool(&[
        "abort",
        "--topic",
        &t,
        "--partition",
        "0",
        "--start-offset",
        "2",
    ]);
    let ends = run_scenario(&broker, "ends", &prefix).stdout_text();
    assert_eq!(
        ends,
        "p0: read_committed end 4, read_uncommitted end 4\n\
         p1: read_committed end 0, read_uncommitted end 1\n",
        "after abort (it printed {aborted:?})"
    );
    open.close_stdin();
}

/// Transactions on a cluster of three: the transaction state is
/// replicated, and the partitions of a transaction (replication factor 1,
/// spread over the brokers) mostly lie on brokers other than the
/// coordinator's, whose markers go there with WriteTxnMarkers. The
/// commit-abort scenario prints what it prints against Kafka.
///
/// Ignored for now (`cargo test --test transactions -- --ignored` runs
/// it): in one full run of the suite, broker 0 of the fresh cluster did
/// not answer ApiVersions for tens of seconds after it was declared
/// ready, before any transaction began (the cluster start stall seen in
/// tests/replication.rs and tests/reassignment.rs), and the scenario
/// timed out. It passes on its own; it comes back once that stall is found.
#[test]
#[ignore = "the cluster start stall (see the doc comment)"]
fn a_cluster_writes_markers_to_partitions_other_brokers_lead() {
    let cluster = Broker::start_cluster(3);
    let prefix = topic("cluster-txn");
    let out = run_scenario(&cluster[0], "commit-abort", &prefix);
    let want = std::fs::read_to_string(
        script()
            .with_file_name("expected")
            .join("txn-commit-abort.txt"),
    )
    .expect("the expected lines");
    assert_eq!(out.stdout_text(), want, "stderr:\n{}", out.stderr_text());
    // The markers crossed brokers: some broker served WriteTxnMarkers
    // (only another broker's coordinator sends it; the placement of 2 + 50
    // partitions over 3 brokers never puts them all on one).
    let served = |b: &Broker| {
        common::metrics(b).lines().any(|l| {
            l.starts_with("sluice_kafka_request_total_seconds_count{api=\"WriteTxnMarkers\"")
                && !l.ends_with(" 0")
        })
    };
    assert!(
        cluster.iter().any(served),
        "no broker was asked for markers by another one"
    );
}

/// Transaction version 2 on a cluster of three: a partition leader that is
/// not its producer's coordinator adds the partition with an
/// AddPartitionsToTxn v5 of its own (no client sends one at version 2),
/// and the raw version 2 scenarios print what they print against Kafka.
/// Tries fresh names until a leader had to ask another broker (the
/// placement decides), at most five times.
///
/// Ignored with the cluster test above, for the same cluster start stall
/// (`cargo test --test transactions -- --ignored` runs it).
#[test]
#[ignore = "the cluster start stall (see a_cluster_writes_markers_to_partitions_other_brokers_lead)"]
fn transaction_version_2_in_a_cluster_adds_partitions_through_their_leaders() {
    let cluster = Broker::start_cluster(3);
    let asked_by_a_broker = |b: &Broker| {
        common::metrics(b).lines().any(|l| {
            l.starts_with("sluice_kafka_request_total_seconds_count{api=\"AddPartitionsToTxn\"")
                && !l.ends_with(" 0")
        })
    };
    for attempt in 0..5 {
        for scenario in ["version2", "offsets-version2"] {
            let prefix = topic(&format!("cluster-v2-{attempt}"));
            let out = run_script(&raw_script(), &cluster[0], scenario, &prefix);
            let want = std::fs::read_to_string(
                script()
                    .with_file_name("expected")
                    .join(format!("txn-{scenario}.txt")),
            )
            .expect("the expected lines");
            assert_eq!(out.stdout_text(), want, "stderr:\n{}", out.stderr_text());
        }
        if cluster.iter().any(asked_by_a_broker) {
            return;
        }
    }
    panic!("no partition leader ever asked another broker's coordinator");
}

#[test]
fn offsets_committed_in_transactions_are_checked_against_kip848_members_as_kafka_checks_them() {
    let expected = [
        "read from the input: 10",
        "member epoch: 2",
        "the member's metadata: committed",
        "the member moved to epoch 3, still holding 1 partition",
        "the member's older epoch, for a partition held since: committed",
        "an epoch before the partition was given: CommitFailedException",
        "an epoch before the partition was given: aborted",
        "an epoch past the member's: CommitFailedException",
        "an epoch past the member's: aborted",
        "a member the group does not have: CommitFailedException",
        "a member the group does not have: aborted",
        "a generation in a group that does not exist: CommitFailedException",
        "a generation in a group that does not exist: aborted",
        "no member, another group: committed",
        "committed for the group: 9",
        "committed for the simple group: 6",
        "committed for the missing group: none",
        "committed records in the output: 10",
    ];
    let prefix = topic("txn-group");
    kafka::assert_same_with_fast_heartbeats(&expected, |bootstrap| {
        java_program_lines("TxnGroupCheck.java", &[bootstrap, &prefix])
    });
}
