//! Client quotas, end to end:
//!
//! - differential: `kafka-configs.sh` sets, describes and deletes user,
//!   client-id and IP quotas on sluice and on a Kafka 4.x node, and refuses
//!   bad values with the same messages;
//! - differential: an address over its `connection_creation_rate` has the
//!   same connections answered and closed by sluice as by Kafka;
//! - enforcement: a producer whose client id has a `producer_byte_rate`
//!   and one without, side by side, with Kafka's perf tool: the first is
//!   throttled (the client sees `throttle_time_ms`, the broker counts it)
//!   and sends no faster than its quota allows, the second is never
//!   throttled; a consumer's `consumer_byte_rate` and a
//!   `request_percentage` are enforced likewise.
//!
//! - the controller mutation quota (KIP-599), differential: the Java
//!   AdminClient creates, grows and deletes topics as a client id with a
//!   `controller_mutation_rate`, and each step ends the same way on sluice
//!   as on Kafka (refused with THROTTLING_QUOTA_EXCEEDED and a throttle, or
//!   done).
//!
//! - per broker, not per shard: one client with a connection on each of
//!   the broker's two shards is held to its quota once, as Kafka holds a
//!   client with several connections to one broker, and to one
//!   `controller_mutation_rate` bucket.
//!
//! The rate checks are bounds a slower machine only makes easier: a quota
//! of q bytes/s over a window of 11 one-second samples lets a client send
//! at most about q × (elapsed + 11 s).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::kafka::{tool, tool_output, KafkaNode};
use common::programs::java_client;
use common::wire::{self, Conn};
use common::{metric_sum, metrics, python_at, run, Broker};

const CONFIGS: &str = "org.apache.kafka.tools.ConfigCommand";
const TOPICS: &str = "org.apache.kafka.tools.TopicCommand";
const PRODUCER_PERF: &str = "org.apache.kafka.tools.ProducerPerformance";
const CONSUMER_PERF: &str = "org.apache.kafka.tools.ConsumerPerformance";

/// The tool's answer with its lines in a comparable form: quota lines with
/// their keys sorted (the tool prints them in hash order), errors reduced
/// to their cause, lines sorted.
fn normalized(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some((entity, values)) = line.split_once(" are ") {
                let mut values: Vec<&str> = values.split(", ").collect();
                values.sort_unstable();
                return Some(format!("{entity} are {}", values.join(", ")));
            }
            if line.starts_with("Caused by:") || line.starts_with("Completed") {
                return Some(line.to_owned());
            }
            None
        })
        .collect()
}

fn configs(bootstrap: &str, args: &[&str]) -> BTreeSet<String> {
    let out = tool_output(CONFIGS, bootstrap, args);
    normalized(&format!("{}{}", out.stdout_text(), out.stderr_text()))
}

#[test]
fn kafka_configs_manages_client_quotas_on_sluice_as_on_kafka() {
    let broker = Broker::start();
    let kafka = KafkaNode::start();
    let (s, k) = (broker.bootstrap(), kafka.bootstrap());
    let alters: &[&[&str]] = &[
        &[
            "--alter",
            "--add-config",
            "producer_byte_rate=1048576,consumer_byte_rate=2097152,request_percentage=50",
            "--entity-type",
            "clients",
            "--entity-name",
            "c1",
        ],
        &[
            "--alter",
            "--add-config",
            "producer_byte_rate=1000",
            "--entity-type",
            "users",
            "--entity-default",
        ],
        &[
            "--alter",
            "--add-config",
            "producer_byte_rate=2000,controller_mutation_rate=0.5",
            "--entity-type",
            "users",
            "--entity-name",
            "u1",
            "--entity-type",
            "clients",
            "--entity-name",
            "c1",
        ],
        &[
            "--alter",
            "--add-config",
            "consumer_byte_rate=3000",
            "--entity-type",
            "clients",
            "--entity-default",
        ],
        // Refused by the broker, with Kafka's messages.
        &[
            "--alter",
            "--add-config",
            "producer_byte_rate=1.5",
            "--entity-type",
            "clients",
            "--entity-name",
            "c2",
        ],
        &[
            "--alter",
            "--add-config",
            "producer_byte_rate=0",
            "--entity-type",
            "clients",
            "--entity-name",
            "c2",
        ],
        // IP quotas (KIP-612), and what the broker refuses of them (the
        // tool itself refuses other keys and names that are not addresses).
        &[
            "--alter",
            "--add-config",
            "connection_creation_rate=50",
            "--entity-type",
            "ips",
            "--entity-name",
            "127.0.0.1",
        ],
        &[
            "--alter",
            "--add-config",
            "connection_creation_rate=200",
            "--entity-type",
            "ips",
            "--entity-default",
        ],
        &[
            "--alter",
            "--add-config",
            "connection_creation_rate=1.5",
            "--entity-type",
            "ips",
            "--entity-name",
            "10.1.2.3",
        ],
        &[
            "--alter",
            "--add-config",
            "connection_creation_rate=3000000000",
            "--entity-type",
            "ips",
            "--entity-name",
            "10.1.2.3",
        ],
    ];
    for args in alters {
        let (on_sluice, on_kafka) = (configs(&s, args), configs(&k, args));
        assert!(!on_sluice.is_empty(), "{args:?}");
        assert_eq!(on_sluice, on_kafka, "{args:?}");
    }
    let describes: &[&[&str]] = &[
        &["--describe", "--entity-type", "clients"],
        &["--describe", "--entity-type", "users"],
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-type",
            "clients",
        ],
        &[
            "--describe",
            "--entity-type",
            "clients",
            "--entity-name",
            "c1",
        ],
        &["--describe", "--entity-type", "users", "--entity-default"],
        &["--describe", "--entity-type", "ips"],
        &[
            "--describe",
            "--entity-type",
            "ips",
            "--entity-name",
            "127.0.0.1",
        ],
        &["--describe", "--entity-type", "ips", "--entity-default"],
    ];
    for args in describes {
        let on_sluice = configs(&s, args);
        assert!(!on_sluice.is_empty(), "{args:?}");
        assert_eq!(on_sluice, kafka_answer(&k, args, &on_sluice), "{args:?}");
    }
    // Deleting an entity's last key removes the entity.
    let delete = [
        "--alter",
        "--delete-config",
        "producer_byte_rate,consumer_byte_rate,request_percentage",
        "--entity-type",
        "clients",
        "--entity-name",
        "c1",
    ];
    assert_eq!(configs(&s, &delete), configs(&k, &delete));
    let c1 = [
        "--describe",
        "--entity-type",
        "clients",
        "--entity-name",
        "c1",
    ];
    let on_sluice = configs(&s, &c1);
    assert!(on_sluice.is_empty(), "{on_sluice:?}");
    assert_eq!(on_sluice, kafka_answer(&k, &c1, &on_sluice));
}

/// Kafka's answer to a describe; Kafka applies an alteration through its
/// metadata log after answering it, so a describe may lag: it is asked
/// again (a few times) while it differs from `expected`.
fn kafka_answer(kafka: &str, args: &[&str], expected: &BTreeSet<String>) -> BTreeSet<String> {
    let mut answer = configs(kafka, args);
    for _ in 0..3 {
        if answer == *expected {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        answer = configs(kafka, args);
    }
    answer
}

/// A perf tool's metric (`--print-metrics`), e.g.
/// `producer-metrics:produce-throttle-time-max:{client-id=slow} : 1063.000`;
/// NaN (never recorded) reads as 0.
fn perf_metric(text: &str, name: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.contains(&format!(":{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    let value = line.rsplit(':').next().unwrap_or("").trim();
    value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .unwrap_or(0.0)
}

/// Records per second in ProducerPerformance's final line
/// (`5000 records sent, 408.06 records/sec (0.39 MB/sec), ...`).
fn records_per_sec(text: &str, records: u64) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{records} records sent,")))
        .unwrap_or_else(|| panic!("no final line in {text}"));
    line.split(", ")
        .nth(1)
        .and_then(|f| f.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {line}"))
}

fn produce_perf(bootstrap: &str, topic: &str, client_id: &str, records: u64) -> String {
    let client = format!("client.id={client_id}");
    let records = records.to_string();
    let out = tool(
        PRODUCER_PERF,
        bootstrap,
        &[
            "--topic",
            topic,
            "--num-records",
            &records,
            "--record-size",
            "1000",
            "--throughput",
            "-1",
            "--command-property",
            &client,
            "--print-metrics",
        ],
    );
    out.stdout_text()
}

fn set_quota(bootstrap: &str, client_id: &str, config: &str) {
    tool(
        CONFIGS,
        bootstrap,
        &[
            "--alter",
            "--add-config",
            config,
            "--entity-type",
            "clients",
            "--entity-name",
            client_id,
        ],
    );
}

#[test]
fn a_client_over_its_quota_is_throttled_and_others_are_not() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    for topic in ["slow-topic", "fast-topic"] {
        tool(
            TOPICS,
            &bootstrap,
            &["--create", "--topic", topic, "--partitions", "1"],
        );
    }
    let quota = 256_000.0;
    set_quota(&bootstrap, "slow", "producer_byte_rate=256000");
    set_quota(&bootstrap, "slowc", "consumer_byte_rate=256000");
    // 0.001% of a thread: 10 µs of handler time a second, less than any
    // one produce request takes, so the first requests put it over.
    set_quota(&bootstrap, "busy", "request_percentage=0.001");
    let records = 5_000u64;
    let (slow, fast) = std::thread::scope(|scope| {
        let slow = scope.spawn(|| produce_perf(&bootstrap, "slow-topic", "slow", records));
        let fast = scope.spawn(|| produce_perf(&bootstrap, "fast-topic", "fast", records));
        (
            slow.join().expect("the slow producer"),
            fast.join().expect("the fast producer"),
        )
    });
    // The throttled producer was told, and kept to its quota.
    let throttle_max = perf_metric(&slow, "produce-throttle-time-max");
    assert!(throttle_max > 0.0, "{slow}");
    let bytes = records as f64 * 1000.0;
    let elapsed_s = records as f64 / records_per_sec(&slow, records);
    let allowed = quota * (elapsed_s + 11.0) * 1.2;
    assert!(
        bytes <= allowed,
        "{bytes} bytes in {elapsed_s:.1} s is over the quota of {quota}/s: {slow}"
    );
    // The other producer, beside it, never was.
    assert_eq!(
        perf_metric(&fast, "produce-throttle-time-max"),
        0.0,
        "{fast}"
    );
    let text = metrics(&broker);
    assert!(
        metric_sum(&text, "sluice_kafka_throttled_requests_total").unwrap_or(0) > 0,
        "{text}"
    );

    // A consumer over its consumer_byte_rate is throttled too.
    let consumed = tool(
        CONSUMER_PERF,
        &bootstrap,
        &[
            "--topic",
            "slow-topic",
            "--num-records",
            "3000",
            "--timeout",
            "60000",
            "--command-property",
            "client.id=slowc",
            "--print-metrics",
        ],
    )
    .stdout_text();
    assert!(
        perf_metric(&consumed, "fetch-throttle-time-max") > 0.0,
        "{consumed}"
    );

    // A client over its request_percentage is throttled, at most one
    // sample's length at a time. Its quota is far below what one request
    // costs, so a few requests put it over however fast this machine runs
    // them; few records, since once throttled it sends one request a second
    // (2,000 records under a quota of 0.01% once took two minutes).
    let busy = produce_perf(&bootstrap, "fast-topic", "busy", 300);
    let busy_max = perf_metric(&busy, "produce-throttle-time-max");
    assert!(busy_max > 0.0 && busy_max <= 1000.0, "{busy}");
}

/// Opens `count` connections to `addr` one after another, each asking for
/// ApiVersions: how many were answered, and how many were closed without
/// an answer instead (a broker holds a connection over its address's
/// `connection_creation_rate` unread, then closes it).
fn connections_answered(addr: std::net::SocketAddr, count: usize) -> (usize, usize) {
    let (mut answered, mut closed) = (0, 0);
    let mut held = Vec::new();
    for _ in 0..count {
        let mut conn = Conn::connect(addr, Duration::from_secs(5)).expect("connecting");
        conn.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        match conn.api_versions_v0() {
            Ok(_) => answered += 1,
            Err(e) if e.contains("reading a response size") => closed += 1,
            Err(e) => panic!("neither answered nor closed: {e}"),
        }
        // Kept open: connections that go count against nothing, but the
        // test must not depend on that.
        held.push(conn);
    }
    (answered, closed)
}

/// IP connection quotas (KIP-612), against Kafka: with a default
/// `connection_creation_rate` of 1 a second, 30 connections opened one
/// after another from one address get the same answers from sluice as
/// from Kafka: the first ten seconds' worth served at once (the window
/// counts at least ten samples), then, each refused connection being held
/// for up to a second before it is closed, about one in two (19 answered
/// and 11 closed on both, measured).
#[test]
fn an_address_over_its_connection_creation_rate_is_closed_as_kafka_closes_it() {
    let broker = Broker::start();
    let kafka = KafkaNode::start();
    let mut outcomes = Vec::new();
    for bootstrap in [broker.bootstrap(), kafka.bootstrap()] {
        let default_rate = [
            "--alter",
            "--add-config",
            "connection_creation_rate=1",
            "--entity-type",
            "ips",
            "--entity-default",
        ];
        tool(CONFIGS, &bootstrap, &default_rate);
        let addr = bootstrap.parse().expect("a socket address");
        // Kafka applies the change through its metadata log after
        // answering: give it a moment, as a script would.
        std::thread::sleep(Duration::from_secs(2));
        outcomes.push(connections_answered(addr, 30));
    }
    let (sluice, kafka) = (outcomes[0], outcomes[1]);
    assert_eq!(sluice.0 + sluice.1, 30);
    assert!(
        sluice.0 >= 10 && sluice.1 >= 5 && kafka.1 >= 5 && sluice.0.abs_diff(kafka.0) <= 3,
        "answered, closed: sluice {sluice:?}, Kafka {kafka:?}"
    );
    assert_eq!(
        metric_sum(
            &metrics(&broker),
            "sluice_kafka_connections_throttled_total"
        ),
        Some(sluice.1 as u64)
    );
}

/// Connections each shard accepted, by shard, from `/metrics`.
fn accepted_by_shard(text: &str) -> Vec<u64> {
    (0..2)
        .map(|shard| {
            let series = format!("sluice_kafka_connections_accepted_total{{shard=\"{shard}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&series))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {series} in {text}"))
        })
        .collect()
}

/// One connection served by each of the broker's two shards: the kernel
/// spreads connections over them, so connections are opened until each
/// shard's count of accepted ones moved for one kept.
fn a_connection_on_each_shard(broker: &Broker) -> Vec<Conn> {
    let mut kept: Vec<Option<Conn>> = vec![None, None];
    for _ in 0..64 {
        if kept.iter().all(Option::is_some) {
            break;
        }
        let before = accepted_by_shard(&metrics(broker));
        let mut conn = Conn::connect(broker.addr(), Duration::from_secs(5)).expect("connecting");
        conn.api_versions_v0().expect("an ApiVersions answer");
        let after = accepted_by_shard(&metrics(broker));
        let moved: Vec<usize> = (0..2).filter(|&s| after[s] > before[s]).collect();
        if let [shard] = moved[..] {
            kept[shard].get_or_insert(conn);
        }
    }
    kept.into_iter()
        .map(|c| c.expect("a connection served by each shard within 64 tries"))
        .collect()
}

/// A quota is the broker's, not each shard's. Before the shards shared
/// what they measure, this client got its quota on each shard: about
/// twice as much in all.
#[test]
fn a_client_served_by_two_shards_is_held_to_its_quota_once() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    tool(
        TOPICS,
        &bootstrap,
        &["--create", "--topic", "spread", "--partitions", "1"],
    );
    // The hand-encoded requests' client id.
    let quota = 1_000_000.0;
    set_quota(&bootstrap, "sluice-tests", "producer_byte_rate=1000000");
    let conns = a_connection_on_each_shard(&broker);
    let value = vec![b'q'; 16 * 1024];
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64;
    let batch = wire::record_batch(now_ms, &[(None, Some(&value[..]))]);
    // Well inside the first window: over it the quota lets through about
    // ten seconds' worth (the window counts as at least ten samples long)
    // and then paces whatever asks for more.
    let run_for = Duration::from_secs(5);
    let started = Instant::now();
    let results: Vec<(u64, i32)> = std::thread::scope(|scope| {
        let producers: Vec<_> = conns
            .into_iter()
            .map(|mut conn| {
                let batch = &batch;
                scope.spawn(move || {
                    let (mut sent, mut most_throttle) = (0u64, 0i32);
                    while started.elapsed() < run_for {
                        let (answer, throttle) = conn
                            .produce_v3_throttled("spread", 0, 1, batch)
                            .expect("a produce answer");
                        assert_eq!(answer.error_code, 0, "{answer:?}");
                        sent += batch.len() as u64;
                        most_throttle = most_throttle.max(throttle);
                    }
                    (sent, most_throttle)
                })
            })
            .collect();
        producers
            .into_iter()
            .map(|p| p.join().expect("a producing connection"))
            .collect()
    });
    let total: u64 = results.iter().map(|(sent, _)| sent).sum();
    let window_worth = quota * 10.0;
    assert!(
        (total as f64) <= window_worth * 1.4,
        "{total} bytes through two shards against {window_worth} allowed: {results:?}"
    );
    assert!(
        (total as f64) >= window_worth * 0.8,
        "the quota is not a wall: {total} bytes, {results:?}"
    );
    for (shard, (_, throttle)) in results.iter().enumerate() {
        assert!(
            *throttle > 0,
            "the connection on shard {shard} was never throttled: {results:?}"
        );
    }
    assert_eq!(
        metric_sum(&metrics(&broker), "sluice_quota_usage_unshared_total"),
        Some(0)
    );
}

/// CreateTopics v6 (strict about the controller mutation quota) of one
/// topic of `partitions` partitions, one replica: the topic's error code.
fn create_topic_v6(conn: &mut Conn, name: &str, partitions: i32) -> i16 {
    assert!(name.len() < 127, "a name of one length byte");
    let mut body = wire::Encoder::default();
    body.uvarint(2) // one topic
        .compact_string(name)
        .i32(partitions)
        .i16(1)
        .uvarint(1) // no assignments
        .uvarint(1) // no configs
        .uvarint(0) // the topic's tagged fields
        .i32(30_000)
        .i8(0) // not validate-only
        .uvarint(0); // the request's tagged fields
    let correlation_id = conn.next_correlation_id();
    conn.send(&wire::flexible_request_frame(
        19,
        6,
        correlation_id,
        &body.0,
    ))
    .expect("sending CreateTopics");
    let frame = conn.read_frame().expect("a CreateTopics answer");
    // Correlation id, header tags, throttle time, topics (one), the
    // topic's name, then its error code.
    assert_eq!(&frame[..4], &correlation_id.to_be_bytes());
    let at = 4 + 1 + 4 + 1;
    assert_eq!(frame[at] as usize, name.len() + 1);
    assert_eq!(&frame[at + 1..at + 1 + name.len()], name.as_bytes());
    let code = at + 1 + name.len();
    i16::from_be_bytes([frame[code], frame[code + 1]])
}

/// A client's `controller_mutation_rate` bucket is the broker's: what its
/// connection on one shard took is gone from its bucket on the other.
/// Before the shards shared it, the other shard's bucket was still full
/// and took the second topic.
#[test]
fn a_clients_mutation_bucket_is_shared_by_the_shards_that_serve_it() {
    const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
    let broker = Broker::start();
    // The hand-encoded requests' client id: a bucket of 11 partitions (11
    // seconds at 1 a second).
    set_quota(
        &broker.bootstrap(),
        "sluice-tests",
        "controller_mutation_rate=1",
    );
    let mut conns = a_connection_on_each_shard(&broker);
    // 12 partitions: taken whole, the bucket 1 below zero for a second.
    assert_eq!(create_topic_v6(&mut conns[0], "mutation-a", 12), 0);
    assert_eq!(
        create_topic_v6(&mut conns[1], "mutation-b", 1),
        THROTTLING_QUOTA_EXCEEDED
    );
}

/// Runs MutationQuotaCheck.java against `bootstrap`: its steps, one line
/// each.
fn mutation_check(dir: &Path, bootstrap: &str, prefix: &str) -> Vec<String> {
    let classpath = format!("{}/*", dir.join("target/dependency").display());
    let out = run(
        Command::new("java")
            .arg("-cp")
            .arg(classpath)
            .arg(dir.join("MutationQuotaCheck.java"))
            .arg(bootstrap)
            .arg(prefix),
        b"",
        Duration::from_secs(150),
    );
    out.assert_success();
    out.stdout_text().lines().map(str::to_owned).collect()
}

/// A client id with `controller_mutation_rate` 1 (a burst of 11 partitions)
/// creates topics of 10 and 5 partitions (the second takes the bucket below
/// zero), is refused two more in one request, grows and deletes once the
/// bucket refilled, is refused a deletion, and deletes with the client's
/// own retry: the same answers from sluice as from Kafka, and the throttles
/// counted.
#[test]
fn the_java_admin_meets_the_controller_mutation_quota_on_sluice_as_on_kafka() {
    let dir = java_client();
    let broker = Broker::start();
    let kafka = KafkaNode::start();
    let on_kafka = mutation_check(&dir, &kafka.bootstrap(), "mq");
    let on_sluice = mutation_check(&dir, &broker.bootstrap(), "mq");
    assert_eq!(on_sluice, on_kafka);
    let refused = "THROTTLING_QUOTA_EXCEEDED, throttled > 0 ms";
    let expected = [
        "create a (10): ok".to_owned(),
        "create b (5): ok".to_owned(),
        format!("create c (1) beside d: {refused}"),
        format!("create d (1) beside c: {refused}"),
        "grow b to 6: ok".to_owned(),
        "delete a: ok".to_owned(),
        format!("delete b: {refused}"),
        "delete b, retrying: ok".to_owned(),
        "exists: []".to_owned(),
    ];
    assert_eq!(on_sluice, expected);
    let throttled = metric_sum(&metrics(&broker), "sluice_kafka_throttled_requests_total");
    assert!(throttled.unwrap_or(0) >= 2, "{throttled:?}");

    // librdkafka asks with CreateTopics v4, below the strict versions: the
    // quota only throttles. Once the bucket is below zero every creation
    // is done and throttled.
    let permissive = |bootstrap: &str| {
        set_quota(bootstrap, "perm", "controller_mutation_rate=1");
        let out = python_at(bootstrap, PERMISSIVE, &["pq"], Duration::from_secs(90));
        out.assert_success();
        out.stdout_text()
    };
    let (on_kafka, on_sluice) = (
        permissive(&kafka.bootstrap()),
        permissive(&broker.bootstrap()),
    );
    assert_eq!(on_sluice, on_kafka);
    assert_eq!(
        on_sluice,
        "a (10): ok, throttled 0\nb (5): ok, throttled > 0\nc (1): ok, throttled > 0\n"
    );
}

/// Creates topics of 10, 5 and 1 partitions with confluent-kafka's admin
/// client as client id `perm`, printing each result and whether the
/// answer throttled the client. Argument: the topics' prefix.
const PERMISSIVE: &str = r#"
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, prefix = sys.argv[1], sys.argv[2]
throttles = []
admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "perm",
                     "throttle_cb": lambda e: throttles.append(e.throttle_time)})
# The quota was just set: wait until this broker applies it (listed).
time.sleep(2)
for name, n in (("a", 10), ("b", 5), ("c", 1)):
    future = admin.create_topics([NewTopic(f"{prefix}-{name}", n, 1)])[f"{prefix}-{name}"]
    try:
        future.result(30)
        result = "ok"
    except Exception as e:
        result = e.args[0].name() if e.args and hasattr(e.args[0], "name") else repr(e)
    admin.poll(0.5)
    throttled = "> 0" if any(t > 0 for t in throttles) else "0"
    print(f"{name} ({n}): {result}, throttled {throttled}")
    throttles.clear()
"#;
