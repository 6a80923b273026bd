//! Kafka Streams with `processing.guarantee=exactly_once_v2` against the
//! real broker: a word-count application (tests/clients/streams), killed
//! with SIGKILL mid-stream twice (once restarted on its state directory,
//! once on a fresh one that restores from the changelog), must print
//! exactly what it printed against Apache Kafka 4.4
//! (tests/clients/streams/expected.txt): every count once, no duplicate
//! update, the final counts those of the input.
//!
//! It exercises what Streams needs of a broker under exactly-once: one
//! transactional producer per task thread fencing its killed predecessor,
//! offsets committed in transactions, read_committed restores of the
//! compacted changelog, a repartition topic (whose records Streams deletes
//! with DeleteRecords), and transactions aborted by their timeout.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{run, Broker};

fn streams_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/streams")
}

#[test]
fn exactly_once_word_count_survives_sigkills_with_the_counts_kafka_gives() {
    let dir = streams_dir();
    // The jars (kafka-streams 4.4.0 and its dependencies), pinned by the
    // pom; offline and quick once fetched.
    let fetched = run(
        Command::new("mvn")
            .args(["-q", "-B", "-ntp", "dependency:copy-dependencies"])
            .current_dir(&dir),
        b"",
        Duration::from_secs(300),
    );
    assert!(
        fetched.status.success(),
        "fetching the Kafka Streams jars:\n{}",
        fetched.stderr_text()
    );
    let broker = Broker::start();
    let work = tempfile::Builder::new()
        .prefix("streams-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temporary directory");
    let out = run(
        Command::new(dir.join("run.sh"))
            .arg(broker.bootstrap())
            .arg(work.path()),
        b"",
        Duration::from_secs(400),
    );
    let want = std::fs::read_to_string(dir.join("expected.txt")).expect("the expected lines");
    let got = out.stdout_text();
    assert!(
        out.status.success() && got == want,
        "sluice printed\n{got}\nKafka printed\n{want}\n--- stderr\n{}\n--- broker\n{}",
        out.stderr_text(),
        broker.log_tail(40)
    );
}
