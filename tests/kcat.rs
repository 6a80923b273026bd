//! kcat (librdkafka's command-line client) against a real broker: metadata,
//! produce from stdin, consume from the beginning, from an offset and from
//! the end, keys, and offsets for timestamps. Each test has its own broker.

mod common;

use std::process::Command;

use common::{kcat, topic, Broker, Spawned, Stream, CLIENT_TIMEOUT};

/// Lines with the bytes clients mangle when they are careless: every byte
/// value but the delimiter, UTF-8, tabs, carriage returns, long lines.
fn varied_lines(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut line = format!("{i:05} ").into_bytes();
            match i % 5 {
                0 => line.extend_from_slice("héllo wörld ✓ — ünïcödé".as_bytes()),
                1 => line.extend((0u8..=255).filter(|b| *b != b'\n')),
                2 => line.extend_from_slice(b"tab\there\rcarriage  spaces  "),
                3 => line.extend(std::iter::repeat_n(b'x', 1 + (i * 37) % 20_000)),
                _ => line.extend_from_slice(b"plain"),
            }
            line
        })
        .collect()
}

fn joined(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

#[test]
fn kcat_metadata_lists_this_broker_and_its_topics() {
    let broker = Broker::start();
    let t = topic("kcat-list");
    let out = kcat(&broker, &["-L"], b"");
    out.assert_success();
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        &lines[1..],
        [
            " 1 brokers:",
            &format!("  broker 0 at 127.0.0.1:{} (controller)", broker.port()),
            " 0 topics:"
        ],
        "{text}"
    );

    kcat(&broker, &["-P", "-t", &t, "-p", "0"], b"one\n").assert_success();
    let out = kcat(&broker, &["-L", "-t", &t], b"");
    out.assert_success();
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        &lines[1..],
        [
            " 1 brokers:",
            &format!("  broker 0 at 127.0.0.1:{} (controller)", broker.port()),
            " 1 topics:",
            &format!("  topic \"{t}\" with 1 partitions:"),
            "    partition 0, leader 0, replicas: 0, isrs: 0",
        ],
        "{text}"
    );
}

#[test]
fn kcat_file_of_lines_round_trips_byte_exact_from_beginning() {
    let broker = Broker::start();
    let t = topic("kcat-lines");
    let input = joined(&varied_lines(2000));
    kcat(&broker, &["-P", "-t", &t, "-p", "0"], &input).assert_success();
    let out = kcat(
        &broker,
        &["-C", "-t", &t, "-p", "0", "-o", "beginning", "-e", "-q"],
        b"",
    );
    out.assert_success();
    assert!(
        out.stdout == input,
        "consumed {} bytes differ from the {} produced",
        out.stdout.len(),
        input.len()
    );
}

#[test]
fn kcat_keys_come_back_with_their_values() {
    let broker = Broker::start();
    let t = topic("kcat-keys");
    let input: String = (0..300)
        .map(|i| format!("key-{i}:value {i} with spaces\n"))
        .collect();
    kcat(
        &broker,
        &["-P", "-t", &t, "-p", "0", "-K:"],
        input.as_bytes(),
    )
    .assert_success();
    let out = kcat(
        &broker,
        &[
            "-C",
            "-t",
            &t,
            "-p",
            "0",
            "-o",
            "0",
            "-e",
            "-q",
            "-f",
            "%o|%k|%s\n",
        ],
        b"",
    );
    out.assert_success();
    let expected: String = (0..300)
        .map(|i| format!("{i}|key-{i}|value {i} with spaces\n"))
        .collect();
    assert_eq!(out.stdout_text(), expected);
}

#[test]
fn kcat_consumes_from_absolute_offset_5_without_the_first_five() {
    let broker = Broker::start();
    let t = topic("kcat-offset");
    let input: String = (0..20).map(|i| format!("line-{i}\n")).collect();
    kcat(&broker, &["-P", "-t", &t, "-p", "0"], input.as_bytes()).assert_success();
    let out = kcat(
        &broker,
        &[
            "-C", "-t", &t, "-p", "0", "-o", "5", "-e", "-q", "-f", "%o:%s\n",
        ],
        b"",
    );
    out.assert_success();
    let expected: String = (5..20).map(|i| format!("{i}:line-{i}\n")).collect();
    assert_eq!(out.stdout_text(), expected);
}

#[test]
fn kcat_consumes_from_end_only_messages_produced_after_it_started() {
    let broker = Broker::start();
    let t = topic("kcat-end");
    let old: String = (0..10).map(|i| format!("old-{i}\n")).collect();
    kcat(&broker, &["-P", "-t", &t, "-p", "0"], old.as_bytes()).assert_success();

    // At the end with -e: nothing to read, exits at once.
    let out = kcat(
        &broker,
        &["-C", "-t", &t, "-p", "0", "-o", "end", "-e", "-q"],
        b"",
    );
    out.assert_success();
    assert_eq!(out.stdout_text(), "");

    // A consumer waiting at the end gets exactly the new messages. kcat
    // reports reaching the end on stderr; only then are they produced, so
    // the test does not race the consumer's start.
    let mut consumer = Spawned::start(Command::new("kcat").arg("-b").arg(broker.bootstrap()).args(
        [
            "-C", "-t", &t, "-p", "0", "-o", "end", "-c", "3", "-f", "%o:%s\n",
        ],
    ));
    let reached = consumer.wait_for_line(Stream::Stderr, CLIENT_TIMEOUT, |l| {
        l.contains("Reached end of topic")
    });
    assert_eq!(
        reached,
        format!("% Reached end of topic {t} [0] at offset 10")
    );
    kcat(
        &broker,
        &["-P", "-t", &t, "-p", "0"],
        b"new-0\nnew-1\nnew-2\n",
    )
    .assert_success();
    let status = consumer.wait_exit(CLIENT_TIMEOUT);
    assert!(
        status.success(),
        "kcat consumer: {status}\n{}",
        consumer.output()
    );
    assert_eq!(
        consumer.lines(Stream::Stdout),
        ["10:new-0", "11:new-1", "12:new-2"]
    );
}

/// Needs ListOffsets with timestamps (and -o beginning needs ListOffsets).
#[test]
fn kcat_query_offsets_for_times_gives_first_offset_at_or_after_timestamp() {
    let broker = Broker::start();
    let t = topic("kcat-times");
    // Two producer runs: the second starts after the first has exited, so
    // its timestamps are later.
    kcat(&broker, &["-P", "-t", &t, "-p", "0"], b"a0\na1\na2\n").assert_success();
    kcat(&broker, &["-P", "-t", &t, "-p", "0"], b"b3\nb4\nb5\n").assert_success();
    let out = kcat(
        &broker,
        &[
            "-C",
            "-t",
            &t,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%o %T %s\n",
        ],
        b"",
    );
    out.assert_success();
    let stored: Vec<(i64, i64, String)> = out
        .stdout_text()
        .lines()
        .map(|l| {
            let mut fields = l.split(' ');
            let offset = fields
                .next()
                .expect("offset")
                .parse()
                .expect("numeric offset");
            let timestamp = fields
                .next()
                .expect("timestamp")
                .parse()
                .expect("numeric timestamp");
            (offset, timestamp, fields.next().expect("value").to_owned())
        })
        .collect();
    let values: Vec<(i64, &str)> = stored.iter().map(|(o, _, v)| (*o, v.as_str())).collect();
    assert_eq!(
        values,
        [
            (0, "a0"),
            (1, "a1"),
            (2, "a2"),
            (3, "b3"),
            (4, "b4"),
            (5, "b5")
        ]
    );
    let ts: Vec<i64> = stored.iter().map(|(_, t, _)| *t).collect();
    assert!(
        ts[2] < ts[3],
        "the second producer's timestamps are later: {ts:?}"
    );

    let query = |timestamp: i64| -> String {
        let out = kcat(&broker, &["-Q", "-t", &format!("{t}:0:{timestamp}")], b"");
        out.assert_success();
        out.stdout_text()
    };
    let answer = |offset: i64| format!("{t} [0] offset {offset}\n");
    // The first offset whose timestamp is at or after the one asked for.
    assert_eq!(query(ts[0]), answer(0));
    assert_eq!(query(ts[3]), answer(3));
    assert_eq!(query(ts[2] + 1), answer(3));
    assert_eq!(query(1), answer(0));
    // Past every record: no such offset.
    assert_eq!(query(ts[5] + 3_600_000), answer(-1));
    // -1 and -2 ask for the log end and the log start.
    assert_eq!(query(-1), answer(6));
    assert_eq!(query(-2), answer(0));
}
