//! Bad input on raw TCP: frames no client should send. The broker closes
//! the offending connection (as Kafka does), answers a too-new ApiVersions
//! with a v0 UNSUPPORTED_VERSION answer listing its ranges (KIP-511),
//! rejects a batch with a bad CRC without writing it, and keeps serving
//! other connections throughout. Each test has its own broker.

mod common;

use std::time::Duration;

use common::wire::{self, Conn, Encoder};
use common::{topic, Broker};

const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(broker: &Broker) -> Conn {
    Conn::connect(broker.addr(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", broker.bootstrap()))
}

/// Sends `bytes` on a new connection and asserts the broker closes it
/// without answering; then asserts a new connection is served.
fn assert_closes_and_keeps_serving(broker: &mut Broker, bytes: &[u8]) {
    let mut conn = connect(broker);
    conn.send(bytes).expect("sending the bad frame");
    if let Err(e) = conn.expect_closed(CLOSE_TIMEOUT) {
        panic!("the broker did not close the connection: {e}");
    }
    assert_serves(broker);
}

/// A new connection gets ApiVersions and Metadata answers, and the broker
/// process is alive.
fn assert_serves(broker: &mut Broker) {
    assert!(
        broker.is_running(),
        "the broker process exited\n{}",
        broker.log_tail(40)
    );
    let mut conn = connect(broker);
    let versions = conn
        .api_versions_v0()
        .expect("ApiVersions v0 on a new connection");
    assert_eq!(versions.error_code, wire::ERROR_NONE);
    assert!(
        versions.api_keys.contains(&(wire::API_VERSIONS, 0, 4)),
        "{versions:?}"
    );
    let metadata = conn
        .metadata_v2(&[])
        .expect("Metadata v2 on the same connection");
    assert_eq!(
        metadata.brokers,
        [wire::MetadataBroker {
            node_id: 0,
            host: "127.0.0.1".into(),
            port: i32::from(broker.port())
        }]
    );
}

#[test]
fn garbage_frame_closes_the_connection_and_the_broker_keeps_serving() {
    let mut broker = Broker::start();
    // A plausible size, then bytes from a fixed pseudo-random sequence.
    let mut frame = 64i32.to_be_bytes().to_vec();
    let mut x: u32 = 0x9e37_79b9;
    frame.extend((0..64).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x >> 24) as u8
    }));
    assert_closes_and_keeps_serving(&mut broker, &frame);
}

#[test]
fn undecodable_metadata_body_closes_the_connection_and_the_broker_keeps_serving() {
    let mut broker = Broker::start();
    // Metadata v1 claiming 1000 topics and carrying none.
    let frame = wire::request_frame(wire::API_METADATA, 1, 7, &1000i32.to_be_bytes());
    assert_closes_and_keeps_serving(&mut broker, &frame);
}

#[test]
fn frame_size_over_100_mib_closes_the_connection_and_the_broker_keeps_serving() {
    let mut broker = Broker::start();
    // socket.request.max.bytes is 100 MiB; one byte more is refused from
    // the size field alone, before any of it is read or allocated.
    let size: i32 = 100 * 1024 * 1024 + 1;
    assert_closes_and_keeps_serving(&mut broker, &size.to_be_bytes());
}

#[test]
fn negative_frame_size_closes_the_connection_and_the_broker_keeps_serving() {
    let mut broker = Broker::start();
    assert_closes_and_keeps_serving(&mut broker, &(-1i32).to_be_bytes());
}

#[test]
fn frame_shorter_than_a_request_header_closes_the_connection() {
    let mut broker = Broker::start();
    let mut frame = 2i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0, 18]);
    assert_closes_and_keeps_serving(&mut broker, &frame);
}

#[test]
fn unknown_api_key_999_closes_the_connection_and_the_broker_keeps_serving() {
    let mut broker = Broker::start();
    let frame = wire::request_frame(999, 0, 7, &[]);
    assert_closes_and_keeps_serving(&mut broker, &frame);
}

#[test]
fn produce_v1_unsupported_version_closes_the_connection_and_the_broker_keeps_serving() {
    let mut broker = Broker::start();
    // A well-formed Produce v1 (acks, timeout, no topics): the broker
    // serves Produce from v3 (RecordBatch v2) only.
    let mut body = Encoder::default();
    body.i16(1).i32(1000).i32(0);
    let frame = wire::request_frame(wire::API_PRODUCE, 1, 7, &body.0);
    assert_closes_and_keeps_serving(&mut broker, &frame);
}

#[test]
fn api_versions_v99_gets_v0_unsupported_version_answer_with_the_ranges() {
    let mut broker = Broker::start();
    let mut conn = connect(&broker);
    let table = conn.api_versions_v0().expect("ApiVersions v0");
    assert_eq!(table.error_code, wire::ERROR_NONE);

    // As a client newer than the broker sends it: header v2, v3-style body.
    let mut body = Encoder::default();
    body.compact_string("sluice-tests")
        .compact_string("99.0")
        .uvarint(0);
    let correlation_id = 4242;
    conn.send(&wire::flexible_request_frame(
        wire::API_VERSIONS,
        99,
        correlation_id,
        &body.0,
    ))
    .expect("sending");
    let frame = conn.read_frame().expect("an answer to ApiVersions v99");
    let (header, response) = frame.split_at(4);
    assert_eq!(
        i32::from_be_bytes(header.try_into().expect("4 bytes")),
        correlation_id
    );
    let answer = wire::decode_api_versions_v0(response).expect("a v0 ApiVersions body");
    assert_eq!(answer.error_code, wire::ERROR_UNSUPPORTED_VERSION);
    assert!(!answer.api_keys.is_empty());
    assert!(
        answer.api_keys.contains(&(wire::API_VERSIONS, 0, 4)),
        "{answer:?}"
    );
    assert_eq!(
        answer.api_keys, table.api_keys,
        "the same ranges as a v0 request gets"
    );

    // The client then retries on the same connection with a version both
    // sides speak.
    let retry = conn
        .api_versions_v0()
        .expect("ApiVersions v0 after the v99 answer");
    assert_eq!(retry, table);
    assert_serves(&mut broker);
}

#[test]
fn crc32c_of_the_standard_check_input_is_e3069283() {
    // The test encoder's own check, so a failure below is the broker's.
    assert_eq!(wire::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn produce_with_a_flipped_crc_byte_is_rejected_corrupt_message_and_writes_nothing() {
    let mut broker = Broker::start();
    let t = topic("bad-crc");
    let good = wire::record_batch(
        1_700_000_000_000,
        &[(Some(b"key-0"), Some(b"value-0")), (None, Some(b"value-1"))],
    );
    let mut bad = good.clone();
    bad[wire::BATCH_CRC_OFFSET] ^= 0x01;

    let mut conn = connect(&broker);
    let answer = conn
        .produce_v3(&t, 0, -1, &bad)
        .expect("Produce v3 with a bad CRC");
    assert_eq!(
        answer,
        wire::ProducePartition {
            error_code: wire::ERROR_CORRUPT_MESSAGE,
            base_offset: -1
        }
    );
    let fetched = conn
        .fetch_v4(&t, 0, 0, 1 << 20)
        .expect("Fetch v4 after the rejected batch");
    assert_eq!(
        fetched,
        wire::FetchPartition {
            error_code: wire::ERROR_NONE,
            high_watermark: 0,
            records: Vec::new()
        }
    );

    // The same batch with its CRC intact is taken, at offset 0: the bad one
    // left nothing behind. It is stored byte for byte as sent, from the
    // magic byte on (base offset and leader epoch are the broker's).
    let answer = conn
        .produce_v3(&t, 0, -1, &good)
        .expect("Produce v3 with a good CRC");
    assert_eq!(
        answer,
        wire::ProducePartition {
            error_code: wire::ERROR_NONE,
            base_offset: 0
        }
    );
    let fetched = conn
        .fetch_v4(&t, 0, 0, 1 << 20)
        .expect("Fetch v4 after the good batch");
    assert_eq!(
        (fetched.error_code, fetched.high_watermark),
        (wire::ERROR_NONE, 2)
    );
    let batches = wire::decode_batches(&fetched.records).expect("decoding the stored batch");
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].base_offset, 0);
    assert!(batches[0].crc_ok);
    assert_eq!(batches[0].bytes[16..], good[16..]);
    let record = |offset: i64, key: Option<&[u8]>, value: &[u8]| wire::Record {
        offset,
        timestamp_ms: 1_700_000_000_000,
        key: key.map(<[u8]>::to_vec),
        value: Some(value.to_vec()),
    };
    assert_eq!(
        batches[0].records,
        [
            record(0, Some(b"key-0"), b"value-0"),
            record(1, None, b"value-1")
        ]
    );
    assert_serves(&mut broker);
}

#[test]
fn produce_with_two_batches_for_one_partition_is_refused_invalid_record_as_kafka_does() {
    let mut broker = Broker::start();
    let t = topic("two-batches");
    let one = wire::record_batch(1_700_000_000_000, &[(None, Some(b"value-0"))]);
    let two = [one.clone(), one.clone()].concat();
    let mut conn = connect(&broker);
    let answer = conn
        .produce_v3(&t, 0, -1, &two)
        .expect("Produce v3 with two batches");
    assert_eq!(
        answer,
        wire::ProducePartition {
            error_code: wire::ERROR_INVALID_RECORD,
            base_offset: -1
        }
    );
    // One batch alone is taken, at offset 0: the refused pair wrote nothing.
    let answer = conn.produce_v3(&t, 0, -1, &one).expect("Produce v3");
    assert_eq!(
        answer,
        wire::ProducePartition {
            error_code: wire::ERROR_NONE,
            base_offset: 0
        }
    );
    assert_serves(&mut broker);
}
