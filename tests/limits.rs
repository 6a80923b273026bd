//! The broker's limits, exercised on raw TCP: connections in total and per
//! address (Kafka's `max.connections`, `max.connections.per.ip`), idle
//! connections (`connections.max.idle.ms`), requests whose bytes stop
//! arriving, the admin endpoint's own limits, Fetch's byte budget across
//! partitions and shards, and long polls that leave nothing parked once
//! they are answered. Each test has its own broker.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::wire::{self, Conn};
use common::{metric_sum, metrics, topic, wait_for_metric, Broker};

fn connect(broker: &Broker) -> Conn {
    Conn::connect(broker.addr(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", broker.bootstrap()))
}

/// A connection that answered ApiVersions.
fn served(broker: &Broker) -> Conn {
    let mut conn = connect(broker);
    let versions = conn.api_versions_v0().expect("ApiVersions answered");
    assert_eq!(versions.error_code, wire::ERROR_NONE);
    conn
}

/// Waits until a new connection is served (the broker may still be
/// counting a connection that was just closed).
fn served_within(broker: &Broker, timeout: Duration) -> Conn {
    let deadline = Instant::now() + timeout;
    loop {
        let mut conn = connect(broker);
        conn.stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("read timeout");
        match conn.api_versions_v0() {
            Ok(v) if v.error_code == wire::ERROR_NONE => return conn,
            other if Instant::now() >= deadline => {
                panic!("no connection served within {timeout:?}: {other:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Reads until the broker closes `s` (EOF or a reset), within 10 s.
fn assert_closed_by_broker(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn a_connection_over_max_connections_per_ip_is_closed_at_once() {
    let broker = Broker::start_with_env(&[("SLUICE_KAFKA__MAX_CONNECTIONS_PER_IP", "3")]);
    // The harness's own readiness connection may still be counted.
    let first = served_within(&broker, Duration::from_secs(5));
    let _second = served(&broker);
    let _third = served(&broker);
    let mut fourth = connect(&broker);
    fourth
        .expect_closed(Duration::from_secs(5))
        .expect("the fourth connection from 127.0.0.1 is closed");
    let refused = metric_sum(&metrics(&broker), "sluice_kafka_connections_refused_total");
    assert_eq!(refused, Some(1));
    drop(first);
    served_within(&broker, Duration::from_secs(5));
}

#[test]
fn at_max_connections_a_new_connection_waits_until_one_closes() {
    let broker = Broker::start_with_env(&[("SLUICE_KAFKA__MAX_CONNECTIONS", "2")]);
    let first = served_within(&broker, Duration::from_secs(5));
    let _second = served(&broker);
    // The kernel completes the handshake (backlog), but the broker does not
    // accept: the request waits.
    let mut third = connect(&broker);
    let id = third.next_correlation_id();
    third
        .send(&wire::request_frame(wire::API_VERSIONS, 0, id, &[]))
        .expect("sending ApiVersions");
    third
        .stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("read timeout");
    let mut byte = [0u8; 1];
    let early = third.stream.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the third connection was served at max.connections: {early:?}"
    );
    drop(first);
    third
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let frame = third.read_frame().expect("answered once a slot is free");
    assert_eq!(i32::from_be_bytes(frame[..4].try_into().unwrap()), id);
}

#[test]
fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let broker = Broker::start_with_env(&[("SLUICE_KAFKA__CONNECTIONS_MAX_IDLE_MS", "1000")]);
    let mut idle = served(&broker);
    let mut busy = served(&broker);
    let started = Instant::now();
    // The busy one sends a request every 300 ms for 3 s.
    while started.elapsed() < Duration::from_secs(3) {
        busy.api_versions_v0()
            .expect("a busy connection stays open");
        std::thread::sleep(Duration::from_millis(300));
    }
    idle.expect_closed(Duration::from_secs(1))
        .expect("the idle connection was closed");
    let timed_out = metric_sum(
        &metrics(&broker),
        "sluice_kafka_connections_timed_out_total",
    );
    assert!(timed_out >= Some(1), "{timed_out:?}");
}

#[test]
fn stalled_half_frames_are_closed_and_hold_no_request_budget() {
    // A budget of 1 MiB: before frames were charged as they arrive, one
    // header claiming 100 MiB took all of it and stopped every other
    // connection of its shard.
    let broker = Broker::start_with_env(&[
        ("SLUICE_KAFKA__REQUEST_STALL_TIMEOUT_MS", "1500"),
        ("SLUICE_KAFKA__QUEUED_MAX_REQUEST_BYTES", "1048576"),
    ]);
    let mut stalled: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(broker.addr()).expect("connect");
            s.write_all(&(104_857_599i32).to_be_bytes()).expect("size");
            s.write_all(&[0u8; 100]).expect("a little of the body");
            s
        })
        .collect();
    // Meanwhile other connections are served at once.
    for _ in 0..4 {
        let mut conn = served(&broker);
        conn.metadata_v2(&[]).expect("Metadata while frames stall");
    }
    for s in &mut stalled {
        assert_closed_by_broker(s, "a stalled frame's connection was not closed");
    }
    let timed_out = wait_for_metric(
        &broker,
        "sluice_kafka_connections_timed_out_total",
        Duration::from_secs(5),
        |n| n >= 20,
    );
    assert!(timed_out >= 20, "{timed_out}");
}

#[test]
fn the_admin_endpoint_closes_stalled_requests_and_bounds_its_connections() {
    let broker = Broker::start_with_env(&[("SLUICE_KAFKA__REQUEST_STALL_TIMEOUT_MS", "1000")]);
    let admin = format!("127.0.0.1:{}", broker.admin_port());
    // 70 connections that send half a request head and stop: the ones over
    // the limit are closed at once, the rest at the stall deadline.
    let mut stalled: Vec<TcpStream> = (0..70)
        .map(|_| {
            let mut s = TcpStream::connect(&admin).expect("connect");
            s.write_all(b"GET /metr").expect("half a head");
            s
        })
        .collect();
    let started = Instant::now();
    for s in &mut stalled {
        assert_closed_by_broker(s, "a stalled admin connection was not closed");
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(metrics(&broker).contains("sluice_kafka_connections 0"));
}

/// Produces `count` batches of one `value_bytes` record each to `partition`.
fn produce(conn: &mut Conn, topic: &str, partition: i32, count: usize, value_bytes: usize) {
    let value = vec![b'v'; value_bytes];
    for _ in 0..count {
        let batch = wire::record_batch(1_700_000_000_000, &[(None, Some(&value))]);
        let answer = conn
            .produce_v3(topic, partition, -1, &batch)
            .expect("produce answered");
        assert_eq!(answer.error_code, wire::ERROR_NONE);
    }
}

/// A broker whose topics get `partitions` partitions, a topic named after
/// `test` auto-created on it, and a connection it serves.
fn with_topic(partitions: usize, test: &str) -> (Broker, String, Conn) {
    let partitions = partitions.to_string();
    let broker = Broker::start_with_env(&[("SLUICE_KAFKA__NUM_PARTITIONS", &partitions)]);
    let t = topic(test);
    let mut conn = served(&broker);
    conn.metadata_v2(&[t.as_str()]).expect("auto-create");
    (broker, t, conn)
}

#[test]
fn fetch_stays_within_max_bytes_across_partitions_and_shards() {
    let (_broker, t, mut conn) = with_topic(4, "fetch-budget");
    // The partitions spread over both shards; each gets 10 batches of ~10 KiB.
    for p in 0..4 {
        produce(&mut conn, &t, p, 10, 10_000);
    }
    let batch_bytes = wire::record_batch(0, &[(None, Some(&[0u8; 10_000]))]).len();
    let all: Vec<_> = (0..4).map(|p| (p, 0i64, 1 << 20)).collect();
    for max_bytes in [25_000usize, 65_000, 150_000, 1 << 20] {
        let answers = conn
            .fetch_many_v4(&t, &all, max_bytes as i32, 0, 1)
            .expect("fetch answered");
        assert_eq!(
            answers.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            [0, 1, 2, 3],
            "every partition answered, in the request's order"
        );
        let total: usize = answers.iter().map(|(_, a)| a.records.len()).sum();
        assert!(
            total <= max_bytes,
            "{total} record bytes in a fetch of max_bytes {max_bytes}"
        );
        // Whole batches only, and as many as fit.
        assert_eq!(total % batch_bytes, 0);
        assert_eq!(total, (max_bytes / batch_bytes).min(40) * batch_bytes);
        for (_, a) in &answers {
            assert_eq!((a.error_code, a.high_watermark), (0, 10));
        }
    }
    // A first batch larger than max_bytes still comes back alone, as Kafka
    // returns it so that a consumer can make progress.
    let answers = conn
        .fetch_many_v4(&t, &all, 100, 0, 1)
        .expect("fetch answered");
    let sizes: Vec<usize> = answers.iter().map(|(_, a)| a.records.len()).collect();
    assert_eq!(sizes, [batch_bytes, 0, 0, 0]);
}

/// A Fetch returns one batch larger than its partition's budget, for the
/// first partition with data, so a consumer whose budget is smaller than a
/// batch still makes progress, and no more than one (Kafka's
/// `minOneMessage`). The owner reads its partitions at once, and must still
/// skip an empty first partition and give no second partition an oversized
/// batch. (Kafka takes the partitions in the request's order; sluice in
/// the order it asks their owner shards.)
#[test]
fn one_partition_returns_a_batch_larger_than_its_budget() {
    let (_broker, t, mut conn) = with_topic(3, "at-least-one");
    produce(&mut conn, &t, 2, 1, 2_000);
    let batch_bytes = wire::record_batch(0, &[(None, Some(&[0u8; 2_000]))]).len();
    let all: Vec<_> = (0..3).map(|p| (p, 0i64, 100)).collect();
    let sizes = |conn: &mut Conn| -> Vec<usize> {
        let answers = conn
            .fetch_many_v4(&t, &all, 1 << 20, 0, 1)
            .expect("fetch answered");
        answers.iter().map(|(_, a)| a.records.len()).collect()
    };
    assert_eq!(sizes(&mut conn), [0, 0, batch_bytes]);
    produce(&mut conn, &t, 1, 1, 2_000);
    let both = sizes(&mut conn);
    assert!(
        both == [0, batch_bytes, 0] || both == [0, 0, batch_bytes],
        "one oversized batch, from a partition with data: {both:?}"
    );
}

#[test]
fn a_long_poll_answered_by_one_shard_leaves_nothing_parked_on_the_others() {
    let broker = Broker::start_with_env(&[("SLUICE_KAFKA__NUM_PARTITIONS", "4")]);
    let t = topic("long-poll");
    let mut conn = served(&broker);
    conn.metadata_v2(&[t.as_str()]).expect("auto-create");
    let all: Vec<_> = (0..4).map(|p| (p, 0i64, 1 << 20)).collect();
    // Polls that time out, many times, on both shards.
    for _ in 0..50 {
        let answers = conn.fetch_many_v4(&t, &all, 1 << 20, 5, 1).expect("fetch");
        assert!(answers.iter().all(|(_, a)| a.records.is_empty()));
    }
    // A 30 s poll answered by a produce to one partition.
    let poller = {
        let t = t.clone();
        let mut conn = served(&broker);
        std::thread::spawn(move || {
            let started = Instant::now();
            let answers = conn
                .fetch_many_v4(&t, &all, 1 << 20, 30_000, 1)
                .expect("fetch");
            (started.elapsed(), answers)
        })
    };
    wait_for_metric(
        &broker,
        "sluice_parked_fetch_watches",
        Duration::from_secs(10),
        |n| n >= 1,
    );
    produce(&mut conn, &t, 3, 1, 100);
    let (waited, answers) = poller.join().expect("the poller");
    assert!(waited < Duration::from_secs(20), "{waited:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|(_, a)| !a.records.is_empty())
            .count(),
        1
    );
    // The other shard's watch was cancelled, not left to its deadline.
    let parked = wait_for_metric(
        &broker,
        "sluice_parked_fetch_watches",
        Duration::from_secs(2),
        |n| n == 0,
    );
    assert_eq!(parked, 0);
    let text = metrics(&broker);
    assert_eq!(metric_sum(&text, "sluice_mesh_calls_in_flight"), Some(0));
}

/// Open descriptors of process `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("listing /proc/{pid}/fd: {e}"))
}

/// A partition holds one open file (its active segment's `.log`; the
/// indexes are opened only to write a page), and files held open for a
/// moment (checkpoints, index pages) are bounded per shard. So a topic of
/// 1,200 partitions opens under a limit of 2,000 descriptors: before, each
/// partition held three files (3,600), and all of them wrote their first
/// checkpoint through a temporary file at once, and partitions went
/// offline with "Too many open files".
#[test]
fn a_topic_of_many_partitions_opens_within_a_tight_descriptor_limit() {
    const PARTITIONS: usize = 1_200;
    const LIMIT: usize = 2_000;
    let broker = Broker::start();
    let before = open_files(broker.pid());
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &broker.pid().to_string()])
        .arg(format!("--nofile={LIMIT}:{LIMIT}"))
        .status()
        .expect("running prlimit (util-linux)");
    assert!(limited.success(), "prlimit failed");
    let name = topic("many");
    let created = common::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice")).args([
            "topic",
            "create",
            &name,
            "-p",
            &PARTITIONS.to_string(),
            "--bootstrap",
            &broker.bootstrap(),
        ]),
        b"",
        Duration::from_secs(120),
    );
    created.assert_success();
    // Every partition opened and leads, none offline.
    let mut conn = served(&broker);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let metadata = conn.metadata_v2(&[&name]).expect("metadata");
        let leading = metadata
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter(|(_, error, leader)| *error == wire::ERROR_NONE && *leader >= 0)
            .count();
        if leading == PARTITIONS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{leading} of {PARTITIONS} partitions lead\n{}",
            broker.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for partition in [0, 599, 1_199] {
        produce(&mut conn, &name, partition, 3, 100);
    }
    let text = metrics(&broker);
    assert_eq!(metric_sum(&text, "sluice_offline_partitions"), Some(0));
    let log = broker.log();
    assert!(
        !log.contains("Too many open files"),
        "{}",
        broker.log_tail(20)
    );
    let opened = open_files(broker.pid()) - before;
    assert!(
        opened <= PARTITIONS + 100,
        "{opened} descriptors opened for {PARTITIONS} partitions"
    );
}
