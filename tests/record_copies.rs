//! Record bytes are not copied in user space on the produce and fetch
//! paths (issue: the hot path at the hardware's limit).
//!
//! The broker counts every copy of record bytes it makes outside the log's
//! one copy into its DMA write buffer: `sluice_produce_record_bytes_copied_total`
//! (a partition's records that could not be cut out of the request frame)
//! and `sluice_fetch_record_bytes_copied_total` (disk reads made shareable,
//! record sets joined or encoded in place). librdkafka packs several
//! partitions in one Produce request, which is the case that used to copy
//! every partition's records but the last; a consumer then reads them back
//! from the batch cache. Both counters must stay at zero. After a restart
//! the same consumer reads from disk, whose buffers stay on the reading
//! shard and are copied once to be shared: the fetch counter must then
//! move, which shows it counts.

mod common;

use std::time::Duration;

use common::{metric_sum, metrics, python, Broker};

const MESSAGES: usize = 4000;
const PARTITIONS: usize = 8;

/// Creates the topic, produces MESSAGES 1 KiB values over its partitions
/// with a linger that packs several partitions per request, then reads
/// them all back; prints `produced N` and `consumed N`.
const PRODUCE_AND_CONSUME: &str = r#"
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
topic, count, partitions, produce = ARGS[0], int(ARGS[1]), int(ARGS[2]), ARGS[3] == "produce"
if produce:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    producer = confluent_producer(**{"linger.ms": 50, "batch.size": 65536})
    delivered = []
    for i in range(count):
        producer.produce(topic, value=b"v" * 1024, key=str(i).encode(),
                         on_delivery=lambda err, msg: delivered.append(err))
        producer.poll(0)
    producer.flush(60)
    assert len(delivered) == count and all(e is None for e in delivered), delivered[:3]
    print("produced", count, flush=True)
consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "copies-" + ARGS[3],
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
consumer.subscribe([topic])
seen = 0
deadline = Deadline(60, "consuming")
while seen < count:
    deadline.check(f"{seen} of {count}")
    m = consumer.poll(1.0)
    if m is None or m.error():
        continue
    seen += 1
consumer.close()
print("consumed", seen, flush=True)
"#;

/// The sum over shards of the counter `name` in the exposition.
fn counter(text: &str, name: &str) -> u64 {
    metric_sum(text, name).unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn produce_and_fetch_from_the_cache_copy_no_record_bytes() {
    let mut broker = Broker::start();
    let (messages, partitions) = (MESSAGES.to_string(), PARTITIONS.to_string());
    let run = |broker: &Broker, phase: &str| {
        let args = ["copies", &messages, &partitions, phase];
        let out = python(broker, PRODUCE_AND_CONSUME, &args, Duration::from_secs(150));
        out.assert_success();
        out.stdout_text()
    };
    let stdout = run(&broker, "produce");
    assert!(stdout.contains(&format!("produced {MESSAGES}")), "{stdout}");
    assert!(stdout.contains(&format!("consumed {MESSAGES}")), "{stdout}");

    let text = metrics(&broker);
    let bytes_in = counter(&text, "sluice_topic_bytes_in_total");
    assert!(
        bytes_in >= (MESSAGES * 1024) as u64,
        "bytes in {bytes_in}\n{text}"
    );
    assert_eq!(
        counter(&text, "sluice_produce_record_bytes_copied_total"),
        0,
        "produce copied record bytes"
    );
    assert_eq!(
        counter(&text, "sluice_fetch_record_bytes_copied_total"),
        0,
        "fetch from the batch cache copied record bytes"
    );

    // From disk: the counter moves (one copy per disk read, counted).
    broker.stop();
    broker.restart();
    let stdout = run(&broker, "reread");
    assert!(stdout.contains(&format!("consumed {MESSAGES}")), "{stdout}");
    let text = metrics(&broker);
    let copied = counter(&text, "sluice_fetch_record_bytes_copied_total");
    assert!(
        copied >= (MESSAGES * 1024) as u64,
        "reads from disk copied {copied} bytes, fewer than they read"
    );
    assert_eq!(
        counter(&text, "sluice_produce_record_bytes_copied_total"),
        0
    );
    broker.stop();
}
