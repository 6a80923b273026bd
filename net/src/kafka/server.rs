//! The Kafka listener of one shard: framing, headers, dispatch.
//!
//! Owns: accepting connections (every shard binds the Kafka port with
//! SO_REUSEPORT, so the kernel spreads connections over shards), reading
//! size-prefixed frames within `socket_request_max_bytes`, decoding the
//! request header, refusing what [`registry`](super::registry) does not list,
//! dispatching through the registry to one handler per API, acting on the
//! handler's [`Outcome`], and writing the response with the matching header
//! version. No API is a special case here.
//!
//! A connection's requests are handled in order and answered in order, as
//! Kafka does. One overlap is allowed, asked for by the Produce handler's
//! outcome: once a Produce request's records are appended, the next request
//! is read and handled while the Produce waits for its fdatasync
//! (`log.flush=always`), so a client with several requests in flight gets
//! its appends group-committed instead of one sync per request. Every other
//! request is handled whole before the next is read. A connection's reader
//! task reads and handles requests; its writer task writes the answers in
//! order. At most [`MAX_IN_FLIGHT_PER_CONNECTION`] requests are read and
//! not yet answered, and a shard-wide byte budget (`queued_max_request_bytes`)
//! bounds the bytes of all of them together: when it is spent, connections
//! wait before reading their next frame.
//!
//! Limits (every one from configuration, so memory is bounded by it):
//! connections over all shards and per client address
//! ([`ConnectionLimits`]); a connection with no request for
//! `connections.max.idle.ms` is closed; a request whose bytes stop arriving,
//! or a response the client stops reading, for `request_stall_timeout_ms`
//! closes the connection; a frame's share of the byte budget is taken as
//! its body arrives, in [`FRAME_CHUNK_BYTES`] steps, so a header that claims
//! 100 MiB and is followed by nothing holds nothing; and a connection holds
//! at most one unwritten answer to a request other than Produce (a consumer
//! that stops reading its socket holds one Fetch response, at most
//! `fetch.max.bytes`, and slows nobody else).
//!
//! Bad input: a frame over the size limit, an unknown API key, a version
//! outside the supported range (other than ApiVersions) or a body that does
//! not decode closes that connection, as Kafka does; the event is logged
//! and counted; nothing else is affected.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::AsyncReadExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::{Semaphore, StaticPermit};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::Decodable;
use sluice_core::quota::resolve_ip;
use sluice_shard::metrics::ShardMetrics;
use sluice_shard::{Env, Notify, Shard, ShardCounters};

use super::connection_limits::{ConnectionLimits, ConnectionSlot, Refused};
use super::context::Context;
use super::handlers::{self, Outcome};
use super::response_frame::{self, ResponseFrame};
use super::socket::{SocketHalf, TransferError};
use super::{quotas, registry, share_offsets_v1, share_v2};

/// Serves the Kafka protocol on this shard until `stop` fires. Fails when
/// the listener cannot start.
pub async fn serve(
    shard: Rc<Shard>,
    stop: Rc<Notify>,
    limits: Arc<ConnectionLimits>,
) -> Result<(), String> {
    let ctx =
        Rc::new(Context::new(shard.clone()).map_err(|e| format!("listener configuration: {e}"))?);
    let listener = bind_listener(ctx.bind_addr)
        .map_err(|e| format!("cannot bind the Kafka port {}: {e}", ctx.bind_addr))?;
    let budget = Rc::new(Semaphore::new(shard.config.kafka.queued_max_request_bytes));
    *shard.request_budget.borrow_mut() = Some(budget.clone());
    let active = Rc::new(Cell::new(0usize));
    let trim_pending = Rc::new(Cell::new(false));
    let idle = Rc::new(Notify::default());
    let accept_failure_logged: Cell<Option<Instant>> = Cell::new(None);
    let throttled_held = Rc::new(Cell::new(0usize));
    loop {
        // At max.connections, stop accepting: new connections wait in the
        // backlog until one closes (on any shard, hence the polling).
        while !limits.has_room() && !stop.is_closed() {
            let _ = with_deadline(ACCEPT_RETRY, stop.changed()).await;
        }
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stop.changed().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        match accepted {
            Ok(stream) => {
                ShardCounters::bump(&ctx.shard.counters.connections_accepted);
                let peer = stream.peer_addr().ok();
                let Some(ip) = peer.map(|p| p.ip()) else {
                    continue;
                };
                let creation_quota = resolve_ip(&ctx.shard.metadata().client_quotas, ip);
                if let Some(quota) = creation_quota {
                    let now_ms = ctx.shard.env().monotonic_ms();
                    let throttle_ms = limits.record_creation(ip, quota, now_ms);
                    if throttle_ms > 0 {
                        ShardCounters::bump(&ctx.shard.counters.connections_throttled);
                        tracing::debug!(
                            peer = ?peer,
                            throttle_ms,
                            "connection over its address's connection_creation_rate, closed after its throttle"
                        );
                        close_after(stream, Duration::from_millis(throttle_ms), &throttled_held);
                        continue;
                    }
                }
                let slot = loop {
                    match limits.open(ip) {
                        Ok(slot) => break Some(slot),
                        Err(Refused::PerIp) => break None,
                        // Another shard took the last slot since the check:
                        // this connection waits for one, like the backlog.
                        Err(Refused::Total) if !stop.is_closed() => {
                            let _ = with_deadline(ACCEPT_RETRY, stop.changed()).await;
                        }
                        Err(Refused::Total) => break None,
                    }
                };
                let Some(slot) = slot else {
                    ShardCounters::bump(&ctx.shard.counters.connections_refused);
                    tracing::debug!(peer = ?peer, "connection refused by a connection limit");
                    continue;
                };
                let (ctx, budget, stop) = (ctx.clone(), budget.clone(), stop.clone());
                let ctx_clock = ctx.shard.env().clone();
                let trim_pending = trim_pending.clone();
                let (active, idle) = (active.clone(), idle.clone());
                active.set(active.get() + 1);
                glommio::spawn_local(async move {
                    if let Err(e) = connection(ctx, budget, stream, stop, slot).await {
                        tracing::debug!(peer = ?peer, error = %e, "connection closed");
                    }
                    active.set(active.get() - 1);
                    idle.notify_all();
                    after_close(ctx_clock, trim_pending);
                })
                .detach();
            }
            Err(e) => {
                // Out of descriptors (EMFILE, ENFILE) or memory, the pending
                // connection stays in the backlog and the next accept fails
                // the same way at once: without a pause this loop spun a
                // core and wrote a log line per turn.
                ShardCounters::bump(&ctx.shard.counters.accept_failures);
                if accept_failure_logged
                    .get()
                    .is_none_or(|at| at.elapsed() >= ACCEPT_FAILURE_LOG_EVERY)
                {
                    accept_failure_logged.set(Some(Instant::now()));
                    tracing::warn!(error = %e, "accept failed; retrying in {ACCEPT_FAILURE_PAUSE:?}");
                }
                let _ = with_deadline(ACCEPT_FAILURE_PAUSE, stop.changed()).await;
            }
        }
    }
    // Stop accepting; let every connection finish the request it is on,
    // for at most the grace period (a client that stops reading, or sends
    // half a request, must not hold the shutdown forever).
    let drained = glommio::timer::timeout(SHUTDOWN_GRACE, async {
        while active.get() > 0 {
            idle.changed().await;
        }
        Ok(())
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            shard = shard.id,
            connections = active.get(),
            "closing connections still busy at shutdown"
        );
    }
    Ok(())
}

/// Connections over their address's `connection_creation_rate` one shard
/// holds at once until their throttle passed; past it, one is closed at
/// once.
const THROTTLED_HELD_MAX: usize = 1_000;

/// Holds a connection refused for its address's creation rate, unread,
/// for `throttle`, then closes it (Kafka delays the close so the client
/// cannot retry at once); at once when [`THROTTLED_HELD_MAX`] are held.
fn close_after(stream: TcpStream, throttle: Duration, held: &Rc<Cell<usize>>) {
    if held.get() >= THROTTLED_HELD_MAX {
        return;
    }
    held.set(held.get() + 1);
    let held = held.clone();
    glommio::spawn_local(async move {
        glommio::timer::sleep(throttle).await;
        drop(stream);
        held.set(held.get() - 1);
    })
    .detach();
}

/// How long a stopping shard waits for busy connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How often a listener at `max.connections` looks for a free slot.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// The pause after a failed accept (out of descriptors, say) before the
/// next one, and how often such failures are logged at most.
const ACCEPT_FAILURE_PAUSE: Duration = Duration::from_millis(100);
const ACCEPT_FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// A frame body is read, and charged to the byte budget, this much at a
/// time.
pub const FRAME_CHUNK_BYTES: usize = 64 * 1024;

/// `fut`'s output, or `None` when `limit` passes first.
pub async fn with_deadline<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("response did not encode: {0}")]
    Encode(String),
    #[error("{0}")]
    Timeout(&'static str),
}

impl From<TransferError> for ConnectionError {
    fn from(e: TransferError) -> ConnectionError {
        match e {
            TransferError::Io(e) => ConnectionError::Io(e),
            TransferError::Stalled(why) => ConnectionError::Timeout(why),
        }
    }
}

/// Requests of one connection read and not yet answered (only Produce
/// requests waiting for their sync overlap with later ones).
pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 8;

/// The answer to one request, in the connection's order, and the share of
/// the byte budget its request holds until the answer is written.
struct Answer {
    reply: Reply,
    _budget: Vec<StaticPermit>,
}

enum Reply {
    /// The response frame, or none (acks=0).
    Now(Option<ResponseFrame>),
    /// A Produce waiting for its sync: its frame comes on the channel.
    Later(LocalReceiver<Result<Option<ResponseFrame>, ConnectionError>>),
}

/// After a connection ends: hands the memory its answers held back to the
/// system ([`sluice_core::alloc::trim_freed_memory`]) at once, or, when
/// that ran less than a second ago, once a second later (one such wait per
/// shard), so the last close of a burst is always followed by a trim.
fn after_close(env: Rc<dyn Env>, pending: Rc<Cell<bool>>) {
    if sluice_core::alloc::trim_freed_memory(env.monotonic_ms()) || pending.replace(true) {
        return;
    }
    glommio::spawn_local(async move {
        env.sleep(Duration::from_millis(1000)).await;
        pending.set(false);
        sluice_core::alloc::trim_freed_memory(env.monotonic_ms());
    })
    .detach();
}

/// How far a connection's writer has got: answers written, and a signal at
/// each one (closed when the writer ends).
#[derive(Default)]
struct Written {
    answers: Cell<u64>,
    changed: Notify,
}

async fn connection(
    ctx: Rc<Context>,
    budget: Rc<Semaphore>,
    stream: TcpStream,
    stop: Rc<Notify>,
    _slot: ConnectionSlot,
) -> Result<(), ConnectionError> {
    stream.set_nodelay(true).map_err(std::io::Error::from)?;
    let peer = stream.peer_addr().ok();
    let stream = Rc::new(RefCell::new(stream));
    let (answers, to_write) = local_channel::new_bounded(MAX_IN_FLIGHT_PER_CONNECTION);
    let written = Rc::new(Written::default());
    let stall = Duration::from_millis(ctx.shard.config.kafka.request_stall_timeout_ms.max(1));
    let writer = glommio::spawn_local(write_answers(
        SocketHalf(stream.clone()),
        to_write,
        written.clone(),
        stall,
    ));
    let read = read_requests(
        &ctx,
        &budget,
        SocketHalf(stream),
        &stop,
        peer,
        &answers,
        &written,
    )
    .await;
    // The writer answers what was read before the reader stopped (a bad
    // request, a stop, the peer's close), then ends.
    drop(answers);
    let wrote = writer.await;
    if let Some(peer) = peer {
        super::handlers::shares::release_connection(&ctx, peer).await;
    }
    if let Err(ConnectionError::Timeout(why)) = &read {
        ShardCounters::bump(&ctx.shard.counters.connections_timed_out);
        tracing::debug!(peer = ?peer, why, "connection timed out");
    }
    read.and(wrote)
}

/// Reads requests and handles them, in order, until the peer closes, a
/// stop arrives between requests, a request is bad, or a deadline passes.
async fn read_requests(
    ctx: &Rc<Context>,
    budget: &Rc<Semaphore>,
    mut input: SocketHalf,
    stop: &Notify,
    peer: Option<SocketAddr>,
    answers: &LocalSender<Answer>,
    written: &Written,
) -> Result<(), ConnectionError> {
    let config = &ctx.shard.config.kafka;
    let max = config.socket_request_max_bytes;
    let idle = Duration::from_millis(config.connections_max_idle_ms.max(1));
    let stall = Duration::from_millis(config.request_stall_timeout_ms.max(1));
    let mut sent = 0u64;
    let mut wait_for_writer = false;
    loop {
        if wait_for_writer {
            // One unwritten answer to a request other than Produce at a
            // time: the next request is read once it is written.
            while written.answers.get() < sent && !written.changed.is_closed() {
                written.changed.changed().await;
            }
            if written.answers.get() < sent {
                return Ok(()); // the writer ended: the peer went away
            }
        }
        let mut size = [0u8; 4];
        // Between requests a stop ends the connection; mid-request it does not.
        let got = futures_lite::future::or(
            async { Some(with_deadline(idle, input.read_exact(&mut size)).await) },
            async {
                stop.changed().await;
                None
            },
        )
        .await;
        match got {
            None => return Ok(()),
            Some(None) => {
                return Err(ConnectionError::Timeout(
                    "idle past connections.max.idle.ms",
                ))
            }
            Some(Some(Err(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Some(Some(r)) => r?,
        }
        let size = i32::from_be_bytes(size);
        if size < 8 || size as u32 > max {
            return bad(ctx, format!("frame of {size} bytes (limit {max})"));
        }
        let frame_started = Instant::now();
        let (frame, permits) = read_frame(ctx, budget, &mut input, size as usize, stall).await?;
        let (reply, pipelined, throttle_ms) = handle_frame(ctx, frame, peer, frame_started).await?;
        wait_for_writer = !pipelined;
        let answer = Answer {
            reply,
            _budget: permits,
        };
        if answers.send(answer).await.is_err() {
            // The writer stopped (the peer went away).
            return Ok(());
        }
        sent += 1;
        if throttle_ms > 0 {
            // Over a quota: nothing more is read from this client until
            // its throttle has passed (KIP-219's muted channel). A stop
            // ends the wait.
            let throttle = Duration::from_millis(throttle_ms);
            if with_deadline(throttle, stop.changed()).await.is_some() {
                return Ok(());
            }
        }
    }
}

/// Reads a frame body of `size` bytes, taking its share of the byte budget
/// as it arrives. A stall of the peer, or a budget that stays spent, for
/// `stall` ends the connection (so partial frames cannot hold the budget
/// against each other for ever).
async fn read_frame(
    ctx: &Context,
    budget: &Rc<Semaphore>,
    input: &mut SocketHalf,
    size: usize,
    stall: Duration,
) -> Result<(Bytes, Vec<StaticPermit>), ConnectionError> {
    // Capacity only: pages become resident as the bytes arrive.
    let mut frame = BytesMut::with_capacity(size);
    let mut permits = Vec::with_capacity(size.div_ceil(FRAME_CHUNK_BYTES));
    // A frame larger than the whole budget charges the whole budget.
    let mut chargeable = budget_capacity(ctx);
    while frame.len() < size {
        let n = FRAME_CHUNK_BYTES.min(size - frame.len());
        let units = (n as u64).min(chargeable);
        if units > 0 {
            let permit = with_deadline(stall, budget.acquire_static_permit(units))
                .await
                .ok_or(ConnectionError::Timeout("request byte budget spent"))?
                .map_err(|_| ConnectionError::BadRequest("request budget closed".into()))?;
            permits.push(permit);
            chargeable -= units;
        }
        // Straight into the frame's capacity: nothing is zeroed first.
        input.read_into(&mut frame, n, stall).await?;
    }
    Ok((frame.freeze(), permits))
}

/// Writes the answers in the order their requests came.
async fn write_answers(
    mut output: SocketHalf,
    answers: LocalReceiver<Answer>,
    written: Rc<Written>,
    stall: Duration,
) -> Result<(), ConnectionError> {
    let result = async {
        while let Some(answer) = answers.recv().await {
            let frame = match answer.reply {
                Reply::Now(frame) => frame,
                Reply::Later(done) => match done.recv().await {
                    Some(frame) => frame?,
                    None => return Err(ConnectionError::Encode("a produce was abandoned".into())),
                },
            };
            if let Some(frame) = frame {
                output.write_frame(&frame, stall).await?;
            }
            written.answers.set(written.answers.get() + 1);
            written.changed.notify_all();
        }
        Ok(())
    }
    .await;
    written.changed.close();
    result
}

fn budget_capacity(ctx: &Context) -> u64 {
    ctx.shard.config.kafka.queued_max_request_bytes.max(1)
}

fn bad<T>(ctx: &Context, reason: String) -> Result<T, ConnectionError> {
    ShardCounters::bump(&ctx.shard.counters.bad_requests);
    tracing::warn!(
        shard = ctx.shard.id,
        reason,
        "closing connection after a bad request"
    );
    Err(ConnectionError::BadRequest(reason))
}

/// A request frame, decoded.
pub enum DecodedRequest {
    /// A supported API and version: header and body.
    Request(RequestHeader, Box<RequestKind>),
    /// An ApiVersions request newer than the broker knows (KIP-511); carries
    /// the correlation id to answer with.
    NewerApiVersions(i32),
}

/// Decodes one request frame (without its size prefix). `Err` carries why
/// the connection must be closed.
pub fn decode_request(mut frame: Bytes) -> Result<DecodedRequest, String> {
    if frame.len() < 8 {
        return Err(format!(
            "frame of {} bytes is shorter than a request header",
            frame.len()
        ));
    }
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
        return Err(format!("unknown API key {api_key_raw}"));
    };
    if !registry::is_supported(api_key, api_version) {
        if api_key == ApiKey::ApiVersions {
            return Ok(DecodedRequest::NewerApiVersions(peek_correlation_id(
                &frame,
            )));
        }
        return Err(format!("{api_key:?} v{api_version} is not supported"));
    }
    let header_version = api_key.request_header_version(api_version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| format!("request header: {e}"))?;
    // ShareFetch and ShareAcknowledge v2: read as v1 (the handlers read
    // the fields v2 adds from the frame).
    let (mut frame, body_version) = if share_v2::translated(api_key, api_version) {
        let (v1, _) = share_v2::v1_body(api_key, &frame)
            .map_err(|e| format!("{api_key:?} v{api_version} body: {e}"))?;
        (v1, 1)
    } else if share_offsets_v1::translated(api_key, api_version) {
        // DescribeShareGroupOffsets v1: its request is v0's.
        (frame, 0)
    } else {
        (frame, api_version)
    };
    let request = RequestKind::decode(api_key, &mut frame, body_version)
        .map_err(|e| format!("{api_key:?} v{api_version} body: {e}"))?;
    Ok(DecodedRequest::Request(header, Box::new(request)))
}

/// Handles one request frame through the registry's dispatch: the response
/// frame (size prefix included), none when the request gets no response
/// (acks=0), or, for a Produce whose records are appended and must still
/// become durable, the channel its frame will come on; and whether the next
/// request may be read before this answer is written, as the handler's
/// [`Outcome`] says (only Produce's allow it).
async fn handle_frame(
    ctx: &Rc<Context>,
    frame: Bytes,
    peer: Option<std::net::SocketAddr>,
    frame_started: Instant,
) -> Result<(Reply, bool, u64), ConnectionError> {
    ShardCounters::bump(&ctx.shard.counters.requests);
    let frame_bytes = frame.len();
    // The handler gets the frame too: Produce cuts its records out of it.
    let whole = frame.clone();
    let (header, request) = match decode_request(frame) {
        Ok(DecodedRequest::Request(header, request)) => (header, *request),
        Ok(DecodedRequest::NewerApiVersions(correlation_id)) => {
            // KIP-511: a newer client learns our ranges from a v0 answer.
            let body = handlers::api_versions::unsupported_version();
            let response =
                response_frame::encode(correlation_id, 0, 0, &ResponseKind::ApiVersions(body));
            return response
                .map(|frame| (Reply::Now(Some(frame)), false, 0))
                .map_err(ConnectionError::Encode);
        }
        Err(reason) => return bad(ctx, reason),
    };
    let api_key = ApiKey::try_from(header.request_api_key).expect("decode_request checked the key");
    let answer = AnswerTo {
        correlation_id: header.correlation_id,
        api_key,
        api_version: header.request_api_version,
        shard: ctx.shard.id,
    };
    // Replicas' fetches are not a client's: no quota applies to them.
    let from_replica = matches!(&request, RequestKind::Fetch(f)
        if f.replica_id.0 >= 0 || f.replica_state.replica_id.0 >= 0);
    let metered = if from_replica {
        None
    } else {
        quotas::meter(ctx, api_key, header.client_id.as_deref(), frame_bytes)
    };
    let key = header.request_api_key;
    let dispatch_started = Instant::now();
    // The header goes to the handler whole, so Produce can drop it (its
    // client id is a slice of the frame) before its records go on.
    // Pinned on the stack: no allocation per request.
    let mut dispatched = std::pin::pin!(registry::dispatch(ctx, header, request, whole, peer));
    let (outcome, handler_time) = if metered.is_some() {
        quotas::TimedPolls::new(dispatched.as_mut()).await
    } else {
        (dispatched.as_mut().await, Duration::ZERO)
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        // decode_request refused it already, against the same table.
        Err(unlisted) => return bad(ctx, unlisted.to_string()),
    };
    let metrics = ctx.shard.metrics.clone();
    metrics.borrow_mut().observe_request(
        key,
        dispatch_started - frame_started,
        dispatch_started.elapsed(),
    );
    let total = move |metrics: &RefCell<ShardMetrics>| {
        metrics
            .borrow_mut()
            .observe_request_total(key, frame_started.elapsed());
    };
    match outcome {
        Outcome::Answer(mut response) => {
            let throttle = metered.map_or(0, |m| m.finish(ctx, handler_time, Some(&mut response)));
            let encoded = answer.encode(Some(response));
            total(&metrics);
            encoded.map(|frame| (Reply::Now(frame), false, throttle))
        }
        Outcome::Pipelined(mut response) => {
            let throttle = metered.map_or(0, |m| m.finish(ctx, handler_time, response.as_mut()));
            let encoded = answer.encode(response);
            total(&metrics);
            encoded.map(|frame| (Reply::Now(frame), true, throttle))
        }
        Outcome::Pending(response) => {
            // A Produce's cost is known once its records are appended; the
            // throttle goes into the answer that comes after its sync.
            let throttle = metered.map_or(0, |m| m.finish(ctx, handler_time, None));
            let (done, frame) = local_channel::new_bounded(1);
            // Detached, so the sync and its answer complete even if the
            // connection goes away meanwhile.
            glommio::spawn_local(async move {
                let mut response = response.await;
                if let (Some(ResponseKind::Produce(r)), true) = (&mut response, throttle > 0) {
                    r.throttle_time_ms = i32::try_from(throttle).unwrap_or(i32::MAX);
                }
                let encoded = answer.encode(response);
                total(&metrics);
                let _ = done.send(encoded).await;
            })
            .detach();
            Ok((Reply::Later(frame), true, throttle))
        }
    }
}

/// What a response frame needs from its request's header.
#[derive(Clone, Copy)]
struct AnswerTo {
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    shard: u32,
}

impl AnswerTo {
    /// The response frame, or none when there is no response.
    fn encode(
        self,
        response: Option<ResponseKind>,
    ) -> Result<Option<ResponseFrame>, ConnectionError> {
        let Some(response) = response else {
            return Ok(None);
        };
        let header_version = self.api_key.response_header_version(self.api_version);
        response_frame::encode(self.correlation_id, header_version, self.api_version, &response)
            .map(Some)
            .map_err(|e| {
                tracing::error!(shard = self.shard, api = ?self.api_key, error = %e, "response did not encode");
                ConnectionError::Encode(e)
            })
    }
}

fn peek_correlation_id(frame: &Bytes) -> i32 {
    if frame.len() >= 8 {
        (&frame[4..8]).get_i32()
    } else {
        0
    }
}

/// Binds a listening socket for this shard: SO_REUSEPORT so every shard
/// binds the same port and the kernel spreads connections over them, and
/// SO_REUSEADDR so a restart can bind again while connections of the
/// previous process linger in TIME_WAIT (as Kafka's listener does).
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let domain = if addr.is_ipv6() {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    // SAFETY: the descriptor is a bound, listening TCP socket we own and
    // hand over whole.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// The socket address a shard binds.
pub fn parse_addr(addr: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))
}
