//! Compacted topics through a real client: confluent-kafka writes rounds of
//! values (and tombstones) for a fixed set of keys to a
//! `cleanup.policy=compact` topic while the broker's cleaner runs, the
//! broker is SIGKILLed between rounds (mid-pass, when the timing falls so),
//! and a consumer reading from the beginning then sees exactly the last
//! value of every key, each record at the offset it was written at.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{metrics, python, topic, Broker, CLIENT_TIMEOUT};

const KEYS: usize = 40;
const ROUNDS: usize = 12;

/// Produces one round: every key gets a value, every seventh a tombstone;
/// prints what was acknowledged as `offset key value|-`.
const PRODUCE_ROUND: &str = r#"
from confluent_kafka import Producer
topic, rnd, keys = ARGS[0], int(ARGS[1]), int(ARGS[2])
p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "linger.ms": 5, "batch.size": 4000})
acked = []
def done(err, msg):
    if err is not None:
        raise SystemExit(f"produce failed: {err}")
    acked.append((msg.offset(), msg.key().decode(), None if msg.value() is None else msg.value().decode()))
for k in range(keys):
    tomb = (k + rnd) % 7 == 0
    value = None if tomb else f"r{rnd}-k{k}-" + "x" * 300
    p.produce(topic, key=f"k{k}", value=value, partition=0, on_delivery=done)
    p.poll(0)
left = p.flush(60)
assert left == 0, f"{left} messages not delivered"
for o, k, v in sorted(acked):
    print(o, k, "-" if v is None else v)
"#;

/// Reads partition 0 from the beginning to the end; prints `offset key value|-`.
const READ_ALL: &str = r#"
from confluent_kafka import Consumer, TopicPartition
topic = ARGS[0]
c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "compaction-check", "enable.auto.commit": False})
low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
c.assign([TopicPartition(topic, 0, low)])
d = Deadline(60, "reading the compacted topic")
last = low - 1
while last < high - 1:
    d.check(f"at {last} of {high}")
    m = c.poll(1)
    if m is None:
        continue
    if m.error():
        raise SystemExit(f"consume failed: {m.error()}")
    last = m.offset()
    print(m.offset(), m.key().decode(), "-" if m.value() is None else m.value().decode())
c.close()
"#;

type Records = BTreeMap<i64, (String, Option<String>)>;

fn parse(lines: &str) -> Records {
    lines
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let offset = parts
                .next()
                .and_then(|o| o.parse().ok())
                .expect("an offset");
            let key = parts.next().expect("a key").to_owned();
            let value = parts.next().expect("a value");
            (offset, (key, (value != "-").then(|| value.to_owned())))
        })
        .collect()
}

fn create_compacted(broker: &Broker, t: &str) {
    let out = python(
        broker,
        r#"
from confluent_kafka.admin import AdminClient, NewTopic
topic = ARGS[0]
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
configs = {"cleanup.policy": "compact", "segment.bytes": "8192",
           "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "500"}
admin.create_topics([NewTopic(topic, 1, 1, config=configs)], request_timeout=30)[topic].result(30)
"#,
        &[t],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
}

fn cleaner_passes(broker: &Broker) -> u64 {
    metrics(broker)
        .lines()
        .filter(|l| l.starts_with("sluice_log_cleaner_passes_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_compacted_topic_keeps_the_last_value_of_each_key_through_sigkill() {
    let mut broker = Broker::start_with_env(&[("SLUICE_LOG__CLEANER_BACKOFF_MS", "50")]);
    let t = topic("compacted");
    create_compacted(&broker, &t);
    let mut written = Records::new();
    for round in 0..ROUNDS {
        let out = python(
            &broker,
            PRODUCE_ROUND,
            &[&t, &round.to_string(), &KEYS.to_string()],
            CLIENT_TIMEOUT,
        );
        out.assert_success();
        written.extend(parse(&out.stdout_text()));
        if round % 4 == 3 && round + 1 < ROUNDS {
            // The cleaner runs every 50 ms: some kills land mid-pass.
            std::thread::sleep(Duration::from_millis(20 * round as u64));
            broker.kill();
            broker.restart();
        }
    }
    assert_eq!(
        written.len(),
        KEYS * ROUNDS,
        "every record acknowledged once"
    );
    let mut latest: BTreeMap<&str, (i64, &Option<String>)> = BTreeMap::new();
    for (offset, (key, value)) in &written {
        latest.insert(key, (*offset, value));
    }
    let live = latest.values().filter(|(_, v)| v.is_some()).count();

    // Wait until the cleaner has compacted all it can: everything but the
    // active segment (8 KiB of ~340-byte records) holds one record per key.
    let deadline = Instant::now() + Duration::from_secs(60);
    let read = loop {
        let out = python(&broker, READ_ALL, &[&t], CLIENT_TIMEOUT);
        out.assert_success();
        let read = parse(&out.stdout_text());
        if read.len() <= live + 30 || Instant::now() > deadline {
            break read;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(cleaner_passes(&broker) > 0, "the cleaner never ran");
    assert!(
        read.len() <= live + 30,
        "compaction left {} of {} records ({live} live keys)",
        read.len(),
        written.len()
    );
    for (offset, record) in &read {
        assert_eq!(
            written.get(offset),
            Some(record),
            "the record at {offset} is not the one written there"
        );
    }
    for (key, (offset, value)) in &latest {
        if value.is_some() {
            assert!(
                read.contains_key(offset),
                "the last value of {key} (offset {offset}) is gone"
            );
        }
    }
    broker.stop();
}

#[test]
fn a_record_without_a_key_is_refused_by_a_compacted_topic() {
    let broker = Broker::start();
    let t = topic("compacted-nokey");
    create_compacted(&broker, &t);
    let out = python(
        &broker,
        r#"
from confluent_kafka import Producer
topic = ARGS[0]
p = Producer({"bootstrap.servers": BOOTSTRAP, "retries": 0})
errors = []
p.produce(topic, value=b"no key", partition=0, on_delivery=lambda e, m: errors.append(e))
p.flush(30)
p.produce(topic, key=b"k", value=b"keyed", partition=0, on_delivery=lambda e, m: errors.append(e))
p.flush(30)
print(" ".join("ok" if e is None else e.name() for e in errors))
"#,
        &[&t],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    assert_eq!(out.stdout_text().trim(), "INVALID_RECORD ok");
}
