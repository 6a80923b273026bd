//! The Python clients against a real broker: confluent-kafka (librdkafka)
//! for admin, produce with acks=all and every compression codec, and
//! consume by assignment from the beginning, the end and an offset;
//! kafka-python for the same basics with its own protocol code. Each
//! snippet prints what it consumed (clients.py's `emit`) and the test
//! compares the lines with what it expects. Each test has its own broker.

mod common;

use common::wire::OffsetKeyValue;
use common::{emitted_messages, fetch_all, message, python, topic, Broker, CLIENT_TIMEOUT};

/// Runs `snippet` with `args` and returns its stdout lines; panics unless
/// it exits 0.
fn run_python(broker: &Broker, snippet: &str, args: &[&str]) -> Vec<String> {
    let out = python(broker, snippet, args, CLIENT_TIMEOUT);
    out.assert_success();
    out.stdout_text().lines().map(str::to_owned).collect()
}

fn lines(first: Vec<&str>, rest: Vec<String>) -> Vec<String> {
    first.into_iter().map(str::to_owned).chain(rest).collect()
}

#[test]
fn confluent_admin_creates_lists_and_deletes_a_topic() {
    let broker = Broker::start();
    let t = topic("admin");
    let out = run_python(
        &broker,
        r#"
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
topic = ARGS[0]
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)], request_timeout=30)[topic].result(30)
md = admin.list_topics(topic, timeout=30)
print("created", topic in md.topics, sorted(md.topics[topic].partitions), md.topics[topic].error)
try:
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)], request_timeout=30)[topic].result(30)
    print("second create succeeded")
except KafkaException as e:
    print("second create", e.args[0].name())
# The last partition takes writes.
print("offsets in partition 2", confluent_produce(topic, 0, 2, partition=2))
admin.delete_topics([topic], request_timeout=30)[topic].result(30)
# All topics: asking for the deleted one by name could auto-create it.
print("listed after delete", topic in admin.list_topics(timeout=30).topics)
"#,
        &[&t],
    );
    assert_eq!(
        out,
        [
            "created True [0, 1, 2] None",
            "second create TOPIC_ALREADY_EXISTS",
            "offsets in partition 2 [0, 1]",
            "listed after delete False",
        ]
    );
}

#[test]
fn confluent_admin_create_partitions_grows_a_topic_from_2_to_5() {
    let broker = Broker::start();
    let t = topic("partitions");
    let out = run_python(
        &broker,
        r#"
from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions
topic = ARGS[0]
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], request_timeout=30)[topic].result(30)
print("before", sorted(admin.list_topics(topic, timeout=30).topics[topic].partitions))
admin.create_partitions([NewPartitions(topic, 5)], request_timeout=30)[topic].result(30)
print("after", sorted(admin.list_topics(topic, timeout=30).topics[topic].partitions))
print("offsets in partition 4", confluent_produce(topic, 0, 3, partition=4))
for o, k, v in confluent_consume(topic, 4, 0, 3):
    emit(o, k, v)
"#,
        &[&t],
    );
    assert_eq!(
        out,
        lines(
            vec![
                "before [0, 1]",
                "after [0, 1, 2, 3, 4]",
                "offsets in partition 4 [0, 1, 2]"
            ],
            emitted_messages(0, 3, 0)
        )
    );
}

/// Produces 500 messages with acks=all and `codec` in one linger window,
/// reads them back with a consumer assigned at offset 0, and checks with a
/// hand-made Fetch that the stored batches still carry `codec` (the broker
/// passes compressed batches through untouched).
fn acks_all_round_trip(codec: &str, codec_id: i16) {
    let broker = Broker::start();
    let t = topic(&format!("codec-{codec}"));
    let out = run_python(
        &broker,
        r#"
topic, codec = ARGS
# A long linger puts the messages in few, large batches, so each is worth
# compressing (librdkafka sends a batch uncompressed when that is smaller).
offsets = confluent_produce(topic, 0, 500, **{"compression.type": codec, "linger.ms": 500})
print("offsets", offsets == list(range(500)))
for o, k, v in confluent_consume(topic, 0, 0, 500):
    emit(o, k, v)
"#,
        &[&t, codec],
    );
    assert_eq!(
        out,
        lines(vec!["offsets True"], emitted_messages(0, 500, 0))
    );

    let (high_watermark, batches) = fetch_all(&broker, &t, 0);
    assert_eq!(high_watermark, 500);
    let mut next = 0;
    let mut with_codec = 0;
    for batch in &batches {
        assert_eq!(batch.base_offset, next, "batches are contiguous");
        // librdkafka sends a batch uncompressed when compressing would not
        // make it smaller, as a batch of one or two short records can be
        // (a linger that ends while the loop still produces leaves one);
        // such a batch is stored as it came.
        let count = i64::from(batch.last_offset_delta) + 1;
        if batch.compression() == codec_id {
            with_codec += 1;
        } else {
            assert!(
                batch.compression() == 0 && count <= 2,
                "batch at {} ({count} records) is stored with codec {}, not {codec_id}",
                batch.base_offset,
                batch.compression()
            );
        }
        assert!(
            batch.crc_ok,
            "batch at {} keeps a valid CRC",
            batch.base_offset
        );
        next = batch.base_offset + i64::from(batch.last_offset_delta) + 1;
    }
    assert_eq!(next, 500);
    assert!(with_codec > 0, "no batch is stored with codec {codec_id}");
    if codec_id == 0 {
        let stored: Vec<OffsetKeyValue> = batches
            .iter()
            .flat_map(|b| &b.records)
            .map(|r| r.offset_key_value())
            .collect();
        let expected: Vec<OffsetKeyValue> = (0..500)
            .map(|i| {
                let (key, value) = message(i);
                (i as i64, Some(key), Some(value))
            })
            .collect();
        assert!(
            stored == expected,
            "uncompressed records are stored as produced"
        );
    }
}

#[test]
fn confluent_acks_all_uncompressed_round_trips_exactly() {
    acks_all_round_trip("none", 0);
}

#[test]
fn confluent_acks_all_gzip_round_trips_exactly_and_is_stored_gzip() {
    acks_all_round_trip("gzip", 1);
}

#[test]
fn confluent_acks_all_snappy_round_trips_exactly_and_is_stored_snappy() {
    acks_all_round_trip("snappy", 2);
}

/// librdkafka compresses with lz4 only when the broker's ApiVersions lists
/// FindCoordinator (its marker for "0.8.2 or later", rdkafka_feature.c);
/// otherwise it sends the batch uncompressed without telling anyone.
#[test]
fn confluent_acks_all_lz4_round_trips_exactly_and_is_stored_lz4() {
    acks_all_round_trip("lz4", 3);
}

#[test]
fn confluent_acks_all_zstd_round_trips_exactly_and_is_stored_zstd() {
    acks_all_round_trip("zstd", 4);
}

#[test]
fn confluent_consumer_from_beginning_reads_every_message() {
    let broker = Broker::start();
    let t = topic("from-beginning");
    let out = run_python(
        &broker,
        r#"
from confluent_kafka import OFFSET_BEGINNING
topic = ARGS[0]
confluent_produce(topic, 0, 120)
for o, k, v in confluent_consume(topic, 0, OFFSET_BEGINNING, 120):
    emit(o, k, v)
"#,
        &[&t],
    );
    assert_eq!(out, emitted_messages(0, 120, 0));
}

#[test]
fn confluent_consumer_from_end_sees_only_new_messages() {
    let broker = Broker::start();
    let t = topic("from-end");
    let out = run_python(
        &broker,
        r#"
from confluent_kafka import OFFSET_END, TopicPartition
topic = ARGS[0]
confluent_produce(topic, 0, 50)
consumer = confluent_consumer()
consumer.assign([TopicPartition(topic, 0, OFFSET_END)])
# The end-of-partition event says where the consumer stands; only then are
# new messages produced, so the test does not race the consumer's start.
print("waiting at", confluent_wait_eof(consumer))
print("new offsets", confluent_produce(topic, 50, 10))
for o, k, v in confluent_take(consumer, 10):
    emit(o, k, v)
consumer.close()
"#,
        &[&t],
    );
    assert_eq!(
        out,
        lines(
            vec![
                "waiting at 50",
                "new offsets [50, 51, 52, 53, 54, 55, 56, 57, 58, 59]"
            ],
            emitted_messages(50, 10, 50)
        )
    );
}

#[test]
fn confluent_consumer_from_offset_7_starts_there() {
    let broker = Broker::start();
    let t = topic("from-offset");
    let out = run_python(
        &broker,
        r#"
topic = ARGS[0]
confluent_produce(topic, 0, 20)
for o, k, v in confluent_consume(topic, 0, 7, 13):
    emit(o, k, v)
"#,
        &[&t],
    );
    assert_eq!(out, emitted_messages(7, 13, 7));
}

#[test]
fn kafka_python_acks_all_produce_then_assign_and_seek_read_exactly() {
    let broker = Broker::start();
    let t = topic("kafka-python");
    let out = run_python(
        &broker,
        r#"
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
topic = ARGS[0]
# Defaults otherwise: api_version negotiated with ApiVersions, idempotence on.
producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
# RecordBatch v2 (Produce v3, the broker's lowest) needs 0.11 or later.
print("negotiated at least 0.11", producer.config["api_version"] >= (0, 11))
futures = [producer.send(topic, key=k, value=v, partition=0) for k, v in map(message, range(100))]
producer.flush(timeout=60)
print("offsets", [f.get(timeout=60).offset for f in futures] == list(range(100)))
producer.close(timeout=30)
consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
tp = TopicPartition(topic, 0)
consumer.assign([tp])
consumer.seek(tp, 0)
for o, k, v in kp_take(consumer, 100):
    emit(o, k, v)
consumer.seek(tp, 60)
for o, k, v in kp_take(consumer, 40):
    emit(o, k, v)
consumer.close()
"#,
        &[&t],
    );
    let expected = lines(
        vec!["negotiated at least 0.11 True", "offsets True"],
        emitted_messages(0, 100, 0),
    )
    .into_iter()
    .chain(emitted_messages(60, 40, 60))
    .collect::<Vec<_>>();
    assert_eq!(out, expected);
}

#[test]
fn kafka_python_gzip_round_trips_exactly() {
    let broker = Broker::start();
    let t = topic("kafka-python-gzip");
    let out = run_python(
        &broker,
        r#"
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
topic = ARGS[0]
producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", compression_type="gzip", linger_ms=200)
futures = [producer.send(topic, key=k, value=v, partition=0) for k, v in map(message, range(200))]
producer.flush(timeout=60)
print("offsets", [f.get(timeout=60).offset for f in futures] == list(range(200)))
producer.close(timeout=30)
consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
tp = TopicPartition(topic, 0)
consumer.assign([tp])
consumer.seek(tp, 0)
for o, k, v in kp_take(consumer, 200):
    emit(o, k, v)
consumer.close()
"#,
        &[&t],
    );
    assert_eq!(
        out,
        lines(vec!["offsets True"], emitted_messages(0, 200, 0))
    );
    let (high_watermark, batches) = fetch_all(&broker, &t, 0);
    assert_eq!(high_watermark, 200);
    assert!(
        batches.iter().all(|b| b.compression() == 1),
        "every batch is stored gzip"
    );
}

#[test]
fn kafka_python_seek_to_end_reads_only_new_messages_and_seek_to_beginning_all() {
    let broker = Broker::start();
    let t = topic("kafka-python-ends");
    let out = run_python(
        &broker,
        r#"
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
topic = ARGS[0]
producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
for k, v in map(message, range(30)):
    producer.send(topic, key=k, value=v, partition=0)
producer.flush(timeout=60)
consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
tp = TopicPartition(topic, 0)
consumer.assign([tp])
consumer.seek_to_end(tp)
# position() resolves the end (ListOffsets) before anything new is sent.
print("position at end", consumer.position(tp))
futures = [producer.send(topic, key=k, value=v, partition=0) for k, v in map(message, range(30, 35))]
producer.flush(timeout=60)
print("new offsets", [f.get(timeout=60).offset for f in futures])
for o, k, v in kp_take(consumer, 5):
    emit(o, k, v)
consumer.seek_to_beginning(tp)
print("position at beginning", consumer.position(tp))
for o, k, v in kp_take(consumer, 35):
    emit(o, k, v)
producer.close(timeout=30)
consumer.close()
"#,
        &[&t],
    );
    let expected: Vec<String> = lines(
        vec!["position at end 30", "new offsets [30, 31, 32, 33, 34]"],
        emitted_messages(30, 5, 30),
    )
    .into_iter()
    .chain(["position at beginning 0".to_owned()])
    .chain(emitted_messages(0, 35, 0))
    .collect();
    assert_eq!(out, expected);
}
