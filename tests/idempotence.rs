//! Idempotent producers against the real broker: a retried batch is
//! answered with its original offset and not written again, sequence gaps
//! and old epochs are refused with Kafka's error codes, and all of it
//! survives a SIGKILL and a clean restart; producer ids are never handed out
//! twice, across restarts; and a real idempotent client (librdkafka through
//! confluent-kafka) whose connections are cut after the broker applied a
//! Produce request retries it without leaving a duplicate in the log.
//!
//! The first three tests speak the wire protocol by hand (tests/common/
//! wire.rs). The last puts a small TCP proxy, written here, between the
//! client and the broker. Each test has its own broker.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::wire::{self, Conn, ProducePartition, ProducerFields};
use common::{fetch_all, kcat, message, python, topic, Broker, CLIENT_TIMEOUT};

/// Timestamp of every hand-encoded record.
const TIMESTAMP_MS: i64 = 1_700_000_000_000;

fn connect(broker: &Broker) -> Conn {
    Conn::connect(broker.addr(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", broker.bootstrap()))
}

/// A new producer id from InitProducerId v0 on a new connection (so that
/// over several calls more than one shard answers); asserts epoch 0.
fn init_producer_id(broker: &Broker) -> i64 {
    let answer = connect(broker)
        .init_producer_id_v0()
        .expect("InitProducerId v0");
    assert_eq!(
        (answer.error_code, answer.producer_epoch),
        (wire::ERROR_NONE, 0),
        "InitProducerId v0 answer {answer:?}"
    );
    assert!(
        answer.producer_id >= 0,
        "InitProducerId v0 answer {answer:?}"
    );
    answer.producer_id
}

/// An uncompressed batch of `producer_id`/`epoch` starting at sequence
/// `first_sequence`, holding common::message(n) for every n in `messages`.
fn batch(producer_id: i64, epoch: i16, first_sequence: i32, messages: Range<usize>) -> Vec<u8> {
    let messages: Vec<(Vec<u8>, Vec<u8>)> = messages.map(message).collect();
    let records: Vec<wire::KeyValue<'_>> = messages
        .iter()
        .map(|(k, v)| (Some(&k[..]), Some(&v[..])))
        .collect();
    wire::producer_record_batch(
        ProducerFields {
            producer_id,
            producer_epoch: epoch,
            base_sequence: first_sequence,
        },
        TIMESTAMP_MS,
        &records,
    )
}

/// Produce v3 with acks=-1 of one batch to partition 0 of `topic`.
fn produce(conn: &mut Conn, topic: &str, batch: &[u8]) -> ProducePartition {
    conn.produce_v3(topic, 0, -1, batch)
        .unwrap_or_else(|e| panic!("Produce v3 to {topic}/0: {e}"))
}

fn accepted_at(base_offset: i64) -> ProducePartition {
    ProducePartition {
        error_code: wire::ERROR_NONE,
        base_offset,
    }
}

fn refused(error_code: i16) -> ProducePartition {
    ProducePartition {
        error_code,
        base_offset: -1,
    }
}

/// Asserts that partition 0 of `topic` holds exactly `expected` — (base
/// offset, the batch as sent), in order — and nothing else: the high
/// watermark is the end of the last batch, and each stored batch is the
/// one sent byte for byte from the magic byte on (base offset and leader
/// epoch are the broker's).
fn assert_log(broker: &Broker, topic: &str, expected: &[(i64, &[u8])]) {
    let (high_watermark, stored) = fetch_all(broker, topic, 0);
    let sent: Vec<wire::Batch> = expected
        .iter()
        .map(|(base_offset, bytes)| {
            let mut with_offset = bytes.to_vec();
            with_offset[..8].copy_from_slice(&base_offset.to_be_bytes());
            let mut decoded = wire::decode_batches(&with_offset).expect("decoding a sent batch");
            assert_eq!(decoded.len(), 1);
            decoded.remove(0)
        })
        .collect();
    let summary = |batches: &[wire::Batch]| -> Vec<(i64, i32, ProducerFields, bool)> {
        batches
            .iter()
            .map(|b| (b.base_offset, b.last_offset_delta, b.producer, b.crc_ok))
            .collect()
    };
    assert_eq!(
        summary(&stored),
        summary(&sent),
        "stored batches of {topic}/0 (base offset, last offset delta, producer, crc ok)"
    );
    let end = sent
        .last()
        .map_or(0, |b| b.base_offset + i64::from(b.last_offset_delta) + 1);
    assert_eq!(high_watermark, end, "high watermark of {topic}/0");
    for (stored, sent) in stored.iter().zip(&sent) {
        assert_eq!(
            stored.bytes[16..],
            sent.bytes[16..],
            "bytes of the batch at {}",
            sent.base_offset
        );
        assert_eq!(stored.records, sent.records);
    }
}

#[test]
fn duplicate_produce_gets_original_offset_and_is_not_written() {
    let broker = Broker::start();
    let t = topic("duplicate");
    let mut conn = connect(&broker);
    let answer = conn.init_producer_id_v0().expect("InitProducerId v0");
    assert_eq!(
        (answer.error_code, answer.producer_epoch),
        (wire::ERROR_NONE, 0),
        "{answer:?}"
    );
    assert!(answer.producer_id >= 0, "{answer:?}");
    let p = answer.producer_id;

    let first = batch(p, 0, 0, 0..5);
    assert_eq!(produce(&mut conn, &t, &first), accepted_at(0));
    // The same request again, as a producer retries one whose answer it
    // lost: the original offset, no error, nothing written.
    assert_eq!(produce(&mut conn, &t, &first), accepted_at(0));
    assert_log(&broker, &t, &[(0, &first)]);

    // Sequences 5..=9 are missing before 10.
    assert_eq!(
        produce(&mut conn, &t, &batch(p, 0, 10, 100..101)),
        refused(wire::ERROR_OUT_OF_ORDER_SEQUENCE_NUMBER)
    );
    // An epoch older than the partition's (-1 < 0). Kafka's
    // ProducerAppendInfo.checkProducerEpoch throws
    // InvalidProducerEpochException for a client append (since 2.7, in
    // place of PRODUCER_FENCED): INVALID_PRODUCER_EPOCH.
    assert_eq!(
        produce(&mut conn, &t, &batch(p, -1, 5, 100..101)),
        refused(wire::ERROR_INVALID_PRODUCER_EPOCH)
    );
    assert_log(&broker, &t, &[(0, &first)]);

    // The refusals left the producer's state alone: sequence 5 follows.
    let second = batch(p, 0, 5, 5..10);
    assert_eq!(produce(&mut conn, &t, &second), accepted_at(5));
    // A retry of an older batch, still among the last five, and of the
    // last one.
    assert_eq!(produce(&mut conn, &t, &first), accepted_at(0));
    assert_eq!(produce(&mut conn, &t, &second), accepted_at(5));
    assert_log(&broker, &t, &[(0, &first), (5, &second)]);

    // A new epoch starts at sequence 0 ...
    assert_eq!(
        produce(&mut conn, &t, &batch(p, 1, 10, 100..101)),
        refused(wire::ERROR_OUT_OF_ORDER_SEQUENCE_NUMBER)
    );
    let third = batch(p, 1, 0, 10..12);
    assert_eq!(produce(&mut conn, &t, &third), accepted_at(10));
    // ... and fences the old one, even a retry of what it wrote (Kafka
    // looks for duplicates only within the producer's current epoch).
    assert_eq!(
        produce(&mut conn, &t, &batch(p, 0, 10, 100..101)),
        refused(wire::ERROR_INVALID_PRODUCER_EPOCH)
    );
    assert_eq!(
        produce(&mut conn, &t, &second),
        refused(wire::ERROR_INVALID_PRODUCER_EPOCH)
    );

    // Another producer has its own sequences in the same partition.
    let q = init_producer_id(&broker);
    assert_ne!(q, p);
    let other = batch(q, 0, 0, 12..13);
    assert_eq!(produce(&mut conn, &t, &other), accepted_at(12));
    assert_eq!(produce(&mut conn, &t, &other), accepted_at(12));
    assert_eq!(produce(&mut conn, &t, &third), accepted_at(10));
    assert_log(
        &broker,
        &t,
        &[(0, &first), (5, &second), (10, &third), (12, &other)],
    );
}

/// The first `n` of `batches` of 5 records each, with their base offsets.
fn first_batches(batches: &[Vec<u8>], n: usize) -> Vec<(i64, &[u8])> {
    batches[..n]
        .iter()
        .enumerate()
        .map(|(i, b)| (5 * i as i64, b.as_slice()))
        .collect()
}

#[test]
fn retry_after_sigkill_and_after_clean_restart_is_still_recognised() {
    let mut broker = Broker::start();
    let t = topic("restart");
    let p = init_producer_id(&broker);
    let batches: Vec<Vec<u8>> = (0..4)
        .map(|i| batch(p, 0, 5 * i as i32, 5 * i..5 * i + 5))
        .collect();
    // The first n batches, at offsets 0, 5, 10, ...
    let log = |n: usize| first_batches(&batches, n);
    // Each phase closes its connection before the broker goes down: a
    // connection still open then keeps the broker from restarting on its
    // port (see a_producer_connected_through_a_restart_retries_on_the_same_port).

    {
        let mut conn = connect(&broker);
        assert_eq!(produce(&mut conn, &t, &batches[0]), accepted_at(0));
    }

    // SIGKILL: no snapshot at close; the state is rebuilt from the log.
    broker.kill();
    broker.restart();
    {
        let mut conn = connect(&broker);
        assert_eq!(produce(&mut conn, &t, &batches[0]), accepted_at(0));
        assert_log(&broker, &t, &log(1));
        // The rebuilt state knows the last sequence is 4, not just the id.
        assert_eq!(
            produce(&mut conn, &t, &batch(p, 0, 12, 100..101)),
            refused(wire::ERROR_OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(produce(&mut conn, &t, &batches[1]), accepted_at(5));
        assert_log(&broker, &t, &log(2));
    }

    // SIGTERM: the state comes from the snapshot taken at close.
    broker.stop();
    broker.restart();
    {
        let mut conn = connect(&broker);
        assert_eq!(produce(&mut conn, &t, &batches[1]), accepted_at(5));
        assert_eq!(produce(&mut conn, &t, &batches[0]), accepted_at(0));
        assert_log(&broker, &t, &log(2));
        assert_eq!(produce(&mut conn, &t, &batches[2]), accepted_at(10));
    }

    // SIGKILL again: the snapshot of the clean stop, plus the batch written
    // after it, replayed from the log.
    broker.kill();
    broker.restart();
    let mut conn = connect(&broker);
    assert_eq!(produce(&mut conn, &t, &batches[2]), accepted_at(10));
    assert_eq!(produce(&mut conn, &t, &batches[1]), accepted_at(5));
    assert_eq!(produce(&mut conn, &t, &batches[0]), accepted_at(0));
    assert_log(&broker, &t, &log(3));
    assert_eq!(produce(&mut conn, &t, &batches[3]), accepted_at(15));
    assert_eq!(produce(&mut conn, &t, &batches[3]), accepted_at(15));
    assert_log(&broker, &t, &log(4));
}

/// What a producer sees when the broker restarts under it: its connection
/// is open when the broker stops (SIGTERM) or dies (SIGKILL); it notices
/// the close, closes its side, and retries on a new connection once the
/// broker is back on the same port. The broker closed first, so its side
/// of that connection sits in TIME_WAIT for a minute; Kafka's listener has
/// SO_REUSEADDR, so this does not keep it from binding its port again.
#[test]
fn a_producer_connected_through_a_restart_retries_on_the_same_port() {
    let mut broker = Broker::start();
    let t = topic("connected");
    let p = init_producer_id(&broker);
    let first = batch(p, 0, 0, 0..5);
    let second = batch(p, 0, 5, 5..10);

    let mut conn = connect(&broker);
    assert_eq!(produce(&mut conn, &t, &first), accepted_at(0));
    broker.stop();
    conn.expect_closed(Duration::from_secs(10))
        .expect("the broker closes the connection when it stops");
    drop(conn);
    broker.restart();
    let mut conn = connect(&broker);
    assert_eq!(produce(&mut conn, &t, &first), accepted_at(0));
    assert_eq!(produce(&mut conn, &t, &second), accepted_at(5));

    broker.kill();
    conn.expect_closed(Duration::from_secs(10))
        .expect("the connection is closed when the broker dies");
    drop(conn);
    broker.restart();
    let mut conn = connect(&broker);
    assert_eq!(produce(&mut conn, &t, &second), accepted_at(5));
    assert_log(&broker, &t, &[(0, &first), (5, &second)]);
}

#[test]
fn producer_ids_are_never_reused_after_restart() {
    let mut broker = Broker::start();
    let mut runs: Vec<Vec<i64>> = Vec::new();
    let take = |broker: &Broker, runs: &mut Vec<Vec<i64>>, how: &str| {
        let ids: Vec<i64> = (0..4).map(|_| init_producer_id(broker)).collect();
        eprintln!("producer ids {how}: {ids:?}");
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "producer ids {how} increase: {ids:?}"
        );
        let before = runs.iter().flatten().max();
        if let Some(&before) = before {
            assert!(
                ids[0] > before,
                "producer ids {how} {ids:?} are above every earlier one (up to {before}); earlier: {runs:?}"
            );
        }
        runs.push(ids);
    };

    take(&broker, &mut runs, "at first start");
    broker.stop();
    broker.restart();
    take(&broker, &mut runs, "after a clean restart");
    broker.kill();
    broker.restart();
    take(&broker, &mut runs, "after a SIGKILL");
    // Restarts with no allocation in between change nothing.
    broker.kill();
    broker.restart();
    broker.stop();
    broker.restart();
    take(
        &broker,
        &mut runs,
        "after a SIGKILL and a clean restart in a row",
    );
    assert_eq!(runs.len(), 4);
}

// --- a TCP proxy that cuts connections

/// Proxy sockets wake up this often to check whether the proxy stops.
const PROXY_TICK: Duration = Duration::from_millis(100);
/// How long a proxy write may block.
const PROXY_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames larger than this are treated as a broken stream.
const PROXY_MAX_FRAME: usize = 64 << 20;
/// How long stopping the proxy may take.
const PROXY_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection the proxy cut.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cut {
    /// Which Produce request (1-based, over all connections) was applied and
    /// then had its response dropped.
    produce_request: usize,
    correlation_id: i32,
    /// Which connection (1-based, in accept order).
    connection: usize,
    /// The dropped response's (error code, base offset) for the first
    /// partition it answers.
    answer: Result<(i16, i64), String>,
}

/// What the proxy threads share.
struct ProxyState {
    broker: SocketAddr,
    stop: AtomicBool,
    /// Cut the connection at these Produce requests (1-based numbers).
    cut_at: Vec<usize>,
    produce_requests: AtomicUsize,
    connections: AtomicUsize,
    cuts: Mutex<Vec<Cut>>,
    /// Anything unexpected (an unreachable broker, an absurd frame).
    problems: Mutex<Vec<String>>,
    /// A clone of every socket, to shut them all down at stop.
    sockets: Mutex<Vec<TcpStream>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

impl ProxyState {
    fn problem(&self, what: String) {
        self.problems.lock().expect("not poisoned").push(what);
    }
}

/// A loopback proxy between a client and the broker. It forwards bytes
/// frame by frame; when it forwards one of the chosen Produce requests
/// (`cut_at`), it waits for the broker's response to it — so the broker has
/// applied the request — drops that response and closes both sides. The
/// client sees its connection fail with the request unanswered and must
/// retry a batch the broker already has.
struct CuttingProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    acceptor: Option<JoinHandle<()>>,
}

impl CuttingProxy {
    /// Starts forwarding connections accepted on `listener` to `broker`.
    fn start(listener: TcpListener, broker: SocketAddr, cut_at: Vec<usize>) -> CuttingProxy {
        let addr = listener.local_addr().expect("the listener has an address");
        assert!(addr.ip().is_loopback() && broker.ip().is_loopback());
        let state = Arc::new(ProxyState {
            broker,
            stop: AtomicBool::new(false),
            cut_at,
            produce_requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            cuts: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
            sockets: Mutex::new(Vec::new()),
            pumps: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                match client {
                    Ok(client) => proxy_connection(&shared, client),
                    Err(e) => {
                        shared.problem(format!("accept: {e}"));
                        return;
                    }
                }
            }
        });
        CuttingProxy {
            addr,
            state,
            acceptor: Some(acceptor),
        }
    }

    fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    fn cuts(&self) -> Vec<Cut> {
        self.state.cuts.lock().expect("not poisoned").clone()
    }

    /// Stops accepting, closes every socket and waits (with a deadline) for
    /// every thread to end.
    fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        let deadline = Instant::now() + PROXY_STOP_TIMEOUT;
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor up; it sees the flag and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
        join_by(acceptor, deadline, "the proxy's acceptor");
        for socket in self.state.sockets.lock().expect("not poisoned").drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let pumps: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.state.pumps.lock().expect("not poisoned"));
        for pump in pumps {
            join_by(pump, deadline, "a proxy pump");
        }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Best effort, without panicking again.
            self.state.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
            if let Ok(mut sockets) = self.state.sockets.lock() {
                for socket in sockets.drain(..) {
                    let _ = socket.shutdown(Shutdown::Both);
                }
            }
        } else {
            self.stop();
        }
    }
}

/// Waits for `thread` to end by `deadline`; panics if it does not.
fn join_by(thread: JoinHandle<()>, deadline: Instant, what: &str) {
    while !thread.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} did not end within {PROXY_STOP_TIMEOUT:?} of stopping the proxy"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    if thread.join().is_err() {
        panic!("{what} panicked");
    }
}

/// Connects `client` to the broker and starts the two pumps.
fn proxy_connection(state: &Arc<ProxyState>, client: TcpStream) {
    let connection = state.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let broker = match TcpStream::connect_timeout(&state.broker, Duration::from_secs(5)) {
        Ok(broker) => broker,
        Err(e) => {
            state.problem(format!(
                "connection {connection}: connecting to the broker: {e}"
            ));
            return;
        }
    };
    let setup = |s: &TcpStream| -> std::io::Result<TcpStream> {
        s.set_read_timeout(Some(PROXY_TICK))?;
        s.set_write_timeout(Some(PROXY_WRITE_TIMEOUT))?;
        s.set_nodelay(true)?;
        s.try_clone()
    };
    let clones = (|| -> std::io::Result<[TcpStream; 4]> {
        Ok([
            setup(&client)?,
            setup(&broker)?,
            client.try_clone()?,
            broker.try_clone()?,
        ])
    })();
    let [client_out, broker_out, client_keep, broker_keep] = match clones {
        Ok(clones) => clones,
        Err(e) => {
            state.problem(format!("connection {connection}: socket setup: {e}"));
            return;
        }
    };
    state
        .sockets
        .lock()
        .expect("not poisoned")
        .extend([client_keep, broker_keep]);
    // The Produce request whose response is to be dropped: its number,
    // correlation id and version; set before the request is forwarded.
    let pending: Arc<Mutex<Option<(usize, i32, i16)>>> = Arc::new(Mutex::new(None));

    let requests = {
        let state = state.clone();
        let pending = pending.clone();
        let (mut from, mut to) = (client, broker_out);
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            while let Some(frame) = read_frame(&mut from, &mut buf, &state, "request") {
                if frame.len() >= 12 {
                    let api_key = i16::from_be_bytes([frame[4], frame[5]]);
                    let api_version = i16::from_be_bytes([frame[6], frame[7]]);
                    let correlation_id =
                        i32::from_be_bytes(frame[8..12].try_into().expect("4 bytes"));
                    if api_key == wire::API_PRODUCE {
                        let n = state.produce_requests.fetch_add(1, Ordering::SeqCst) + 1;
                        if state.cut_at.contains(&n) {
                            let mut pending = pending.lock().expect("not poisoned");
                            if pending.is_none() {
                                *pending = Some((n, correlation_id, api_version));
                            }
                        }
                    }
                }
                if to.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        })
    };
    let responses = {
        let state = state.clone();
        let (mut from, mut to) = (broker, client_out);
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            while let Some(frame) = read_frame(&mut from, &mut buf, &state, "response") {
                let correlation_id = i32::from_be_bytes(frame[4..8].try_into().expect("4 bytes"));
                let cut = *pending.lock().expect("not poisoned");
                if let Some((produce_request, expected, version)) = cut {
                    if correlation_id == expected {
                        state.cuts.lock().expect("not poisoned").push(Cut {
                            produce_request,
                            correlation_id,
                            connection,
                            answer: produce_answer(&frame, version),
                        });
                        break;
                    }
                }
                if to.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        })
    };
    state
        .pumps
        .lock()
        .expect("not poisoned")
        .extend([requests, responses]);
}

/// The (error code, base offset) of the first partition of a Produce
/// response frame (size prefix included) of `version` (3 to 12).
fn produce_answer(frame: &[u8], version: i16) -> Result<(i16, i64), String> {
    fn uvarint(d: &mut wire::Decoder<'_>) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let b = d.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("unsigned varint longer than 5 bytes".into())
    }
    if !(3..=12).contains(&version) {
        return Err(format!("Produce v{version} is not decoded here"));
    }
    // Flexible from v9: compact arrays and strings, tagged fields.
    let flexible = version >= 9;
    let mut d = wire::Decoder::new(&frame[4..]);
    let _correlation_id = d.i32()?;
    let count = |d: &mut wire::Decoder<'_>| -> Result<u64, String> {
        if flexible {
            Ok(uvarint(d)?.saturating_sub(1))
        } else {
            Ok(d.array_len()? as u64)
        }
    };
    if flexible {
        for _ in 0..uvarint(&mut d)? {
            let _tag = uvarint(&mut d)?;
            let size = uvarint(&mut d)?;
            d.take(size as usize)?;
        }
    }
    if count(&mut d)? == 0 {
        return Err("no topic in the response".into());
    }
    if flexible {
        let length = uvarint(&mut d)?.saturating_sub(1);
        d.take(length as usize)?;
    } else {
        d.string()?;
    }
    if count(&mut d)? == 0 {
        return Err("no partition in the response".into());
    }
    let _index = d.i32()?;
    Ok((d.i16()?, d.i64()?))
}

/// Reads until `buf` holds a whole size-prefixed frame and returns it (size
/// included); `None` when the stream ends or fails, or the proxy stops.
fn read_frame(
    from: &mut TcpStream,
    buf: &mut Vec<u8>,
    state: &ProxyState,
    what: &str,
) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if buf.len() >= 4 {
            let size = i32::from_be_bytes(buf[..4].try_into().expect("4 bytes"));
            if size < 4 || size as usize > PROXY_MAX_FRAME {
                state.problem(format!("a {what} frame of {size} bytes"));
                return None;
            }
            let total = 4 + size as usize;
            if buf.len() >= total {
                let rest = buf.split_off(total);
                return Some(std::mem::replace(buf, rest));
            }
        }
        if state.stop.load(Ordering::SeqCst) {
            return None;
        }
        match from.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return None,
        }
    }
}

/// Produces common::message(0..COUNT) to partition 0 with an idempotent
/// producer through the proxy (ARGS[2]) and reports how the deliveries
/// went. Small batches make many Produce requests for the proxy to cut.
const PRODUCE_IDEMPOTENT: &str = r#"
topic, count, proxy = ARGS[0], int(ARGS[1]), ARGS[2]
producer = confluent_producer(**{
    "bootstrap.servers": proxy,
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 1,
    "batch.num.messages": 20,
    "compression.type": "none",
    "retry.backoff.ms": 20,
    "reconnect.backoff.ms": 20,
    "reconnect.backoff.max.ms": 500,
    "message.timeout.ms": 60000,
})
reports = {}

def report(n):
    def on_delivery(err, msg):
        reports[n] = (err, msg.offset())
    return on_delivery

deadline = Deadline(75, f"producing {count} messages to {topic}")
for n in range(count):
    key, value = message(n)
    while True:
        try:
            producer.produce(topic, key=key, value=value, partition=0, on_delivery=report(n))
            break
        except BufferError:
            deadline.check("(local queue full)")
            producer.poll(0.1)
    producer.poll(0)
left = producer.flush(deadline.left())
failed = {n: str(err) for n, (err, _) in sorted(reports.items()) if err is not None}
misplaced = [(n, offset) for n, (err, offset) in sorted(reports.items()) if err is None and offset != n]
if failed:
    log("failed deliveries (first 10):", list(failed.items())[:10])
if misplaced:
    log("(message, offset) not at offset == message (first 10):", misplaced[:10])
print("not delivered", left)
print("reported", len(reports))
print("failed", len(failed))
print("misplaced", len(misplaced))
"#;

#[test]
fn idempotent_client_retries_through_cut_connections_without_duplicates() {
    const COUNT: usize = 2000;
    // Well below the ~100 Produce requests 2000 messages in batches of at
    // most 20 take.
    let cut_at = vec![3, 20, 45];

    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy's port");
    let proxy_port = listener.local_addr().expect("bound").port();
    let broker = Broker::start_advertising(proxy_port);
    let mut proxy = CuttingProxy::start(listener, broker.addr(), cut_at.clone());
    let t = topic("cut");

    let out = python(
        &broker,
        PRODUCE_IDEMPOTENT,
        &[&t, &COUNT.to_string(), &proxy.bootstrap()],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let cuts = proxy.cuts();
    let produce_requests = proxy.state.produce_requests.load(Ordering::SeqCst);
    let connections = proxy.state.connections.load(Ordering::SeqCst);
    eprintln!(
        "proxy: {produce_requests} Produce requests on {connections} connections; cuts {cuts:?}\n--- producer stderr\n{}",
        out.stderr_text()
    );
    assert_eq!(
        out.stdout_text(),
        format!("not delivered 0\nreported {COUNT}\nfailed 0\nmisplaced 0\n"),
        "the producer's deliveries (its stderr:\n{})",
        out.stderr_text()
    );
    assert_eq!(
        cuts.iter().map(|c| c.produce_request).collect::<Vec<_>>(),
        cut_at,
        "the proxy cut a connection after each chosen Produce request was applied: {cuts:?}"
    );
    for cut in &cuts {
        assert!(
            matches!(cut.answer, Ok((wire::ERROR_NONE, offset)) if offset >= 0),
            "the broker accepted each request whose answer the proxy dropped: {cut:?}"
        );
    }
    assert!(
        connections > cut_at.len(),
        "the client reconnected after every cut: {connections} connections"
    );
    assert_eq!(
        *proxy.state.problems.lock().expect("not poisoned"),
        Vec::<String>::new()
    );

    // Straight from the broker's port with hand-encoded Fetch requests:
    // every message once, in order, each batch's sequence equal to its
    // offset (the producer never had to start its sequences over).
    let (high_watermark, batches) = fetch_all(&broker, &t, 0);
    assert_eq!(high_watermark, COUNT as i64);
    let producer_id = batches
        .first()
        .map(|b| b.producer.producer_id)
        .expect("at least one batch");
    assert!(producer_id >= 0, "the batches carry a producer id");
    for b in &batches {
        assert!(b.crc_ok, "batch at {} has a valid CRC", b.base_offset);
        assert_eq!(
            b.producer,
            ProducerFields {
                producer_id,
                producer_epoch: 0,
                base_sequence: b.base_offset as i32
            },
            "producer fields of the batch at {}",
            b.base_offset
        );
    }
    let stored: Vec<wire::OffsetKeyValue> = batches
        .iter()
        .flat_map(|b| b.records.iter().map(wire::Record::offset_key_value))
        .collect();
    let expected: Vec<wire::OffsetKeyValue> = (0..COUNT)
        .map(|n| {
            let (key, value) = message(n);
            (n as i64, Some(key), Some(value))
        })
        .collect();
    assert!(
        stored == expected,
        "partition 0 holds {} records; first difference: {:?}",
        stored.len(),
        stored
            .iter()
            .zip(&expected)
            .position(|(s, e)| s != e)
            .map(|i| (&stored[i], &expected[i]))
    );

    // And as a real consumer sees it (kcat; the broker sends it on to the
    // proxy, which no longer cuts anything).
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
            "-f",
            "%o %k %s\\n",
        ],
        b"",
    );
    out.assert_success();
    let lines: Vec<String> = out.stdout_text().lines().map(str::to_owned).collect();
    let expected: Vec<String> = (0..COUNT)
        .map(|n| {
            let (key, value) = message(n);
            format!(
                "{n} {} {}",
                String::from_utf8(key).expect("ASCII"),
                String::from_utf8(value).expect("ASCII")
            )
        })
        .collect();
    assert!(
        lines == expected,
        "kcat read {} lines; first difference: {:?}",
        lines.len(),
        lines
            .iter()
            .zip(&expected)
            .position(|(l, e)| l != e)
            .map(|i| (&lines[i], &expected[i]))
    );
    proxy.stop();
}
