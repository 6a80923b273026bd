//! Durability promises, tested by killing the real broker: every message a
//! producer saw acknowledged with acks=all is there after a SIGKILL and a
//! restart, at the offset it was acknowledged with, byte for byte; and a
//! clean stop (SIGTERM) and restart keeps topics and messages and continues
//! the log where it ended.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::wire::{MetadataTopic, Record};
use common::{
    emitted_messages, fetch_all, message, python, python_interpreter, topic, Broker, Spawned,
    Stream, CLIENT_TIMEOUT, PY_HELPERS,
};

/// Acknowledged messages seen before the broker is killed.
const ACKED_BEFORE_KILL: usize = 500;

/// Produces message(0), message(1), ... to partition 0 with acks=all until
/// killed, printing `ack OFFSET N` for each acknowledged message as soon as
/// its delivery report arrives. The local queue is bounded, so a dead
/// broker stops the loop from buffering without limit.
const PRODUCE_UNTIL_KILLED: &str = r#"
topic = ARGS[0]
producer = confluent_producer(**{"linger.ms": 1, "queue.buffering.max.messages": 2000})

def report(n):
    def on_delivery(err, msg):
        if err is None:
            # One write of a whole line: the process is killed at any moment,
            # and a pipe write this small is atomic, so no line is torn.
            sys.stdout.write(f"ack {msg.offset()} {n}\n")
            sys.stdout.flush()
        else:
            log("failed", n, err)
    return on_delivery

deadline = Deadline(120, "producing until killed")
n = 0
while True:
    deadline.check()
    key, value = message(n)
    try:
        producer.produce(topic, key=key, value=value, partition=0, on_delivery=report(n))
        n += 1
    except BufferError:
        producer.poll(0.05)
        continue
    producer.poll(0)
"#;

#[test]
fn acked_messages_survive_sigkill() {
    let mut broker = Broker::start();
    let t = topic("sigkill");
    let script = format!("{PY_HELPERS}\n{PRODUCE_UNTIL_KILLED}");
    let mut producer = Spawned::start(
        Command::new(python_interpreter())
            .arg("-c")
            .arg(script)
            .arg(broker.bootstrap())
            .arg(&t)
            .env("PYTHONUNBUFFERED", "1"),
    );
    producer.wait_for_lines(Stream::Stdout, ACKED_BEFORE_KILL, CLIENT_TIMEOUT, |l| {
        l.starts_with("ack ")
    });
    // Mid-produce: the producer keeps sending while the broker dies.
    broker.kill();
    producer.kill();

    let mut acked: BTreeMap<i64, usize> = BTreeMap::new();
    for line in producer.lines(Stream::Stdout) {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "producer line {line:?}");
        let offset: i64 = fields[1].parse().expect("numeric offset");
        let n: usize = fields[2].parse().expect("numeric message number");
        assert_eq!(
            acked.insert(offset, n),
            None,
            "offset {offset} acknowledged twice"
        );
    }
    assert!(
        acked.len() >= ACKED_BEFORE_KILL,
        "{} acknowledged",
        acked.len()
    );
    let last_acked = *acked.keys().next_back().expect("at least one ack");

    broker.restart();
    let (high_watermark, batches) = fetch_all(&broker, &t, 0);
    eprintln!(
        "{} messages acknowledged (last at offset {last_acked}); high watermark after restart {high_watermark}",
        acked.len()
    );
    assert!(
        high_watermark > last_acked,
        "high watermark {high_watermark} after restart, last acknowledged offset {last_acked}"
    );
    let stored: BTreeMap<i64, &Record> = batches
        .iter()
        .inspect(|b| assert!(b.crc_ok, "batch at {} has a valid CRC", b.base_offset))
        .flat_map(|b| &b.records)
        .map(|r| (r.offset, r))
        .collect();
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (0..high_watermark).collect::<Vec<_>>(),
        "every offset below the high watermark holds a record"
    );
    for (offset, n) in &acked {
        let (key, value) = message(*n);
        assert_eq!(
            (&stored[offset].key, &stored[offset].value),
            (&Some(key), &Some(value)),
            "acknowledged message {n} at offset {offset}"
        );
    }
    // Unacknowledged messages may or may not have made it, but whatever is
    // there is a whole message as sent.
    for (offset, record) in &stored {
        let key = record.key.as_deref().expect("every message has a key");
        let n: usize = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.strip_prefix("key-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("offset {offset} holds key {key:?}"));
        assert_eq!(
            record.value.as_deref(),
            Some(&message(n).1[..]),
            "message {n} at offset {offset}"
        );
    }

    // The log continues after the recovered end.
    let out = python(
        &broker,
        "print(confluent_produce(ARGS[0], 0, 3))",
        &[&t],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let hw = high_watermark;
    assert_eq!(
        out.stdout_text(),
        format!("[{hw}, {}, {}]\n", hw + 1, hw + 2)
    );
}

/// A client may send many produce requests before reading any answer; the
/// broker overlaps one request's sync with the next requests' appends
/// (group commit). The answers must still come in request order, each
/// partition's offsets must follow the order the requests were sent, and
/// every acknowledged batch must survive a SIGKILL.
#[test]
fn pipelined_produce_requests_are_answered_in_order_and_survive_sigkill() {
    use common::wire::{record_batch, Conn, Decoder, Encoder, API_PRODUCE};
    const REQUESTS: usize = 60;
    const PARTITIONS: usize = 3;
    const PER_BATCH: usize = 4;
    let mut broker = Broker::start();
    let t = topic("pipelined");
    python(
        &broker,
        "from confluent_kafka.admin import AdminClient, NewTopic\n\
         a = AdminClient({'bootstrap.servers': BOOTSTRAP})\n\
         a.create_topics([NewTopic(ARGS[0], num_partitions=3, replication_factor=1)])[ARGS[0]].result(30)",
        &[&t],
        CLIENT_TIMEOUT,
    )
    .assert_success();
    // Request i goes to partition (i / 2) % 3: pairs of requests to one
    // partition, so both same-partition and cross-partition neighbours occur.
    let partition_of = |i: usize| ((i / 2) % PARTITIONS) as i32;
    let value = |i: usize, r: usize| format!("request-{i}-record-{r}").into_bytes();
    let mut conn = Conn::connect(broker.addr(), CLIENT_TIMEOUT).expect("connect");
    let mut sent = Vec::new();
    for i in 0..REQUESTS {
        let values: Vec<Vec<u8>> = (0..PER_BATCH).map(|r| value(i, r)).collect();
        let records: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
        let mut e = Encoder::default();
        e.nullable_string(None).i16(-1).i32(30_000);
        e.i32(1).string(&t).i32(1).i32(partition_of(i));
        e.bytes(&record_batch(0, &records));
        let correlation_id = conn.next_correlation_id();
        conn.send(&common::wire::request_frame(
            API_PRODUCE,
            3,
            correlation_id,
            &e.0,
        ))
        .expect("send");
        sent.push(correlation_id);
    }
    let mut next_offset = [0i64; PARTITIONS];
    let mut acked = Vec::new();
    for (i, expected_id) in sent.iter().enumerate() {
        let frame = conn.read_frame().expect("an answer");
        let mut d = Decoder::new(&frame);
        assert_eq!(
            d.i32().expect("correlation id"),
            *expected_id,
            "answer {i} out of order"
        );
        assert_eq!(d.array_len().expect("topics"), 1);
        assert_eq!(d.string().expect("topic"), t);
        assert_eq!(d.array_len().expect("partitions"), 1);
        let partition = d.i32().expect("partition");
        let error = d.i16().expect("error");
        let base_offset = d.i64().expect("base offset");
        assert_eq!((partition, error), (partition_of(i), 0), "answer {i}");
        let p = partition as usize;
        assert_eq!(
            base_offset, next_offset[p],
            "request {i}: offsets follow the sending order"
        );
        next_offset[p] += PER_BATCH as i64;
        acked.push((partition, base_offset, i));
    }
    broker.kill();
    broker.restart();
    for p in 0..PARTITIONS as i32 {
        let (high_watermark, batches) = fetch_all(&broker, &t, p);
        assert_eq!(
            high_watermark, next_offset[p as usize],
            "partition {p} after SIGKILL"
        );
        let stored: BTreeMap<i64, &Record> = batches
            .iter()
            .flat_map(|b| &b.records)
            .map(|r| (r.offset, r))
            .collect();
        for (partition, base_offset, i) in acked.iter().filter(|a| a.0 == p) {
            for r in 0..PER_BATCH {
                let offset = base_offset + r as i64;
                assert_eq!(
                    stored.get(&offset).and_then(|rec| rec.value.clone()),
                    Some(value(*i, r)),
                    "partition {partition} offset {offset}"
                );
            }
        }
    }
}

#[test]
fn clean_restart_keeps_everything() {
    let mut broker = Broker::start();
    let plain = topic("restart-plain");
    let gzip = topic("restart-gzip");
    let out = python(
        &broker,
        r#"
plain, gzip = ARGS
print("plain", confluent_produce(plain, 0, 600) == list(range(600)))
print("gzip", confluent_produce(gzip, 0, 400, **{"compression.type": "gzip"}) == list(range(400)))
"#,
        &[&plain, &gzip],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    assert_eq!(out.stdout_text(), "plain True\ngzip True\n");

    broker.stop();
    assert!(
        broker.log().contains("sluice stopped"),
        "the broker reports a clean stop\n{}",
        broker.log_tail(20)
    );
    broker.restart();

    let mut conn = common::wire::Conn::connect(broker.addr(), std::time::Duration::from_secs(5))
        .expect("connect");
    let metadata = conn.metadata_v2(&[&plain, &gzip]).expect("Metadata v2");
    let topic = |name: &str| MetadataTopic {
        error_code: 0,
        name: name.to_owned(),
        partitions: vec![(0, 0, 0)],
        replicas: vec![vec![0]],
    };
    assert_eq!(metadata.topics, [topic(&plain), topic(&gzip)]);
    assert_eq!(fetch_all(&broker, &plain, 0).0, 600);
    assert_eq!(fetch_all(&broker, &gzip, 0).0, 400);

    let out = python(
        &broker,
        r#"
plain, gzip = ARGS
for o, k, v in confluent_consume(plain, 0, 0, 600):
    emit(o, k, v)
for o, k, v in confluent_consume(gzip, 0, 0, 400):
    emit(o, k, v)
print("appended at", confluent_produce(plain, 600, 5))
"#,
        &[&plain, &gzip],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let expected: Vec<String> = emitted_messages(0, 600, 0)
        .into_iter()
        .chain(emitted_messages(0, 400, 0))
        .chain(["appended at [600, 601, 602, 603, 604]".to_owned()])
        .collect();
    assert_eq!(out.stdout_text().lines().collect::<Vec<_>>(), expected);
}
