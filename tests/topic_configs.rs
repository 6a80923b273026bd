//! Differential: topic configs that change what a produce is answered,
//! with confluent-kafka against sluice and against a one-node Kafka 4.x
//! (scripts/kafka-oracle), the same lines expected from both:
//!
//! - `message.timestamp.type=LogAppendTime`: the broker's time is stamped
//!   on the records (the consumer sees LOG_APPEND_TIME, within the produce
//!   call's window), whatever the producer set;
//! - `message.timestamp.after.max.ms` (Kafka's default, one hour): a record
//!   stamped two hours ahead is refused with INVALID_TIMESTAMP;
//!   `message.timestamp.before.max.ms=60000`: one stamped an hour behind is
//!   refused too; one stamped now is taken.
//!
//! And, against sluice alone (no client can see a batch's codec): a
//! topic's `compression.type` makes the broker store every batch in that
//! codec whatever the producer sent, records unchanged.

mod common;

use common::kafka::KafkaNode;
use common::{python_at, Broker, CLIENT_TIMEOUT};

const SNIPPET: &str = r#"
import time
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
topics = {
    "ts-append": {"message.timestamp.type": "LogAppendTime"},
    "ts-bounded": {"message.timestamp.before.max.ms": "60000"},
}
for name, configs in topics.items():
    admin.create_topics([NewTopic(name, 1, 1, config=configs)], request_timeout=30)[name].result(30)

def produce(topic, timestamp_ms):
    p = Producer({"bootstrap.servers": BOOTSTRAP, "retries": 0, "linger.ms": 0})
    result = []
    p.produce(topic, key=b"k", value=b"v", partition=0, timestamp=timestamp_ms,
              on_delivery=lambda err, msg: result.append(err))
    p.flush(30)
    return "ok" if result[0] is None else result[0].name()

now = int(time.time() * 1000)
before = int(time.time() * 1000)
print("append-time produce", produce("ts-append", 1000))
after = int(time.time() * 1000)
c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "ts", "enable.auto.commit": False})
c.assign([TopicPartition("ts-append", 0, 0)])
d = Deadline(30, "reading ts-append")
m = None
while m is None:
    d.check()
    m = c.poll(1)
kind, ts = m.timestamp()
print("append-time type", {1: "CREATE_TIME", 2: "LOG_APPEND_TIME"}.get(kind, kind))
print("append-time stamped by the broker", before - 1000 <= ts <= after + 1000)
c.close()
print("two hours ahead", produce("ts-bounded", now + 2 * 3600 * 1000))
print("an hour behind", produce("ts-bounded", now - 3600 * 1000))
print("now", produce("ts-bounded", now))
"#;

#[test]
fn timestamp_configs_answer_as_kafka_does() {
    let broker = Broker::start();
    let kafka = KafkaNode::start();
    let run = |bootstrap: &str| {
        let out = python_at(bootstrap, SNIPPET, &[], CLIENT_TIMEOUT);
        out.assert_success();
        out.stdout_text()
    };
    let (ours, theirs) = (run(&broker.bootstrap()), run(&kafka.bootstrap()));
    assert_eq!(ours, theirs);
    assert_eq!(
        ours.lines().collect::<Vec<_>>(),
        [
            "append-time produce ok",
            "append-time type LOG_APPEND_TIME",
            "append-time stamped by the broker True",
            "two hours ahead INVALID_TIMESTAMP",
            "an hour behind INVALID_TIMESTAMP",
            "now ok",
        ]
    );
}

/// Creates `topic` with `compression.type` and produces 200 messages with
/// the producer's `codec`; prints nothing, fails on any error.
const PRODUCE_COMPRESSED: &str = r#"
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
topic, stored, codec = ARGS[0], ARGS[1], ARGS[2]
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
admin.create_topics([NewTopic(topic, 1, 1, config={"compression.type": stored})], request_timeout=30)[topic].result(30)
confluent_produce(topic, 0, 200, partition=0, **{"compression.codec": codec})
"#;

#[test]
fn compression_type_makes_the_broker_store_batches_in_its_codec() {
    let broker = Broker::start();
    // (topic's compression.type, producer's codec, codec id stored)
    for (stored, sent, id) in [
        ("zstd", "none", 4i16),
        ("uncompressed", "lz4", 0),
        ("gzip", "snappy", 1),
    ] {
        let t = common::topic(&format!("recompress-{stored}"));
        let out = common::python(
            &broker,
            PRODUCE_COMPRESSED,
            &[&t, stored, sent],
            CLIENT_TIMEOUT,
        );
        out.assert_success();
        let (high_watermark, batches) = common::fetch_all(&broker, &t, 0);
        assert_eq!(high_watermark, 200);
        let mut offsets = 0;
        for batch in &batches {
            assert_eq!(
                batch.compression(),
                id,
                "{stored}: batch at {}",
                batch.base_offset
            );
            assert!(
                batch.crc_ok,
                "{stored}: batch at {} has a valid CRC",
                batch.base_offset
            );
            offsets += i64::from(batch.last_offset_delta) + 1;
        }
        assert_eq!(offsets, 200, "{stored}: every record stored once");
        // Read back with confluent-kafka (Debian's kcat has no zstd).
        let read = common::python(
            &broker,
            "for o, k, v in confluent_consume(ARGS[0], 0, 0, 200):\n    print(k.decode() + '=' + v.decode())",
            &[&t],
            CLIENT_TIMEOUT,
        );
        read.assert_success();
        let expected: String = (0..200)
            .map(|i| {
                let (k, v) = common::message(i);
                format!(
                    "{}={}\n",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(&v)
                )
            })
            .collect();
        assert!(
            read.stdout_text() == expected,
            "{stored}: records read back differ"
        );
    }
}
