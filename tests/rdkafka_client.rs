//! The rdkafka crate (Rust bindings of librdkafka, built from its bundled
//! source) against a real broker: produce with acks=all (idempotence on and
//! off), and read back by assignment, exact content and offsets.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{topic, Broker, CLIENT_TIMEOUT};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Where a message landed: (partition, offset, key), or the error.
type Delivery = Result<(i32, i64, Vec<u8>), String>;

/// Collects every delivery report.
#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<Vec<Delivery>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let entry = match result {
            Ok(m) => Ok((
                m.partition(),
                m.offset(),
                m.key().unwrap_or_default().to_vec(),
            )),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().expect("deliveries lock").push(entry);
    }
}

fn value_of(i: usize) -> Vec<u8> {
    format!("rdkafka record {i:05} ")
        .repeat(1 + i % 7)
        .into_bytes()
}

fn produce_and_read_back(idempotence: bool) {
    let broker = Broker::start();
    let topic = topic(if idempotence {
        "rdkafka-idem"
    } else {
        "rdkafka-plain"
    });
    let context = Deliveries::default();
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set(
            "enable.idempotence",
            if idempotence { "true" } else { "false" },
        )
        .set("linger.ms", "2")
        .create_with_context(context.clone())
        .expect("producer");
    let count = 600usize;
    for i in 0..count {
        let key = format!("k{i}");
        let value = value_of(i);
        let record = BaseRecord::to(&topic)
            .key(&key)
            .payload(&value)
            .partition(0);
        let mut pending = Some(record);
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        while let Some(record) = pending.take() {
            if let Err((e, record)) = producer.send(record) {
                assert!(Instant::now() < deadline, "send kept failing: {e}");
                producer.poll(Duration::from_millis(10));
                pending = Some(record);
            }
        }
    }
    producer
        .flush(CLIENT_TIMEOUT)
        .expect("every message acknowledged in time");
    let deliveries = context.0.lock().expect("deliveries lock").clone();
    assert_eq!(deliveries.len(), count);
    for (i, d) in deliveries.iter().enumerate() {
        let (partition, offset, key) = d.clone().expect("delivered without error");
        assert_eq!(
            (partition, offset, key),
            (0, i as i64, format!("k{i}").into_bytes())
        );
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "unused-no-subscribe")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let mut next = 0usize;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    while next < count {
        assert!(
            Instant::now() < deadline,
            "read only {next} of {count} records"
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("fetch without error");
        assert_eq!(message.offset(), next as i64);
        assert_eq!(message.key(), Some(format!("k{next}").as_bytes()));
        assert_eq!(message.payload(), Some(&value_of(next)[..]));
        next += 1;
    }
    let (low, high) = consumer
        .fetch_watermarks(&topic, 0, CLIENT_TIMEOUT)
        .expect("ListOffsets answers");
    assert_eq!((low, high), (0, count as i64));
}

#[test]
fn rdkafka_crate_produces_acks_all_and_reads_back_by_assignment() {
    produce_and_read_back(false);
}

#[test]
fn rdkafka_crate_idempotent_producer_gets_dense_offsets_and_exact_content() {
    produce_and_read_back(true);
}
