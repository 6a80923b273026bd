//! The Kafka listener of one shard: framing, headers, dispatch.
//!
//! Owns: accepting connections (every shard binds the Kafka port with
//! SO_REUSEPORT, so the kernel spreads connections over shards), reading
//! size-prefixed frames within `socket_request_max_bytes`, decoding the
//! request header, refusing what [`registry`](super::registry) does not list,
//! dispatching to one handler per API, and writing the response with the
//! matching header version.
//!
//! A connection's requests are handled one at a time, in order, as Kafka
//! does; so responses keep the connection's order and each connection holds
//! at most one request in memory. A shard-wide byte budget
//! (`queued_max_request_bytes`) bounds all of them together: when it is
//! spent, connections wait before reading their next frame.
//!
//! Bad input: a frame over the size limit, an unknown API key, a version
//! outside the supported range (other than ApiVersions) or a body that does
//! not decode closes that connection, as Kafka does; the event is logged
//! and counted; nothing else is affected.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use sluice_shard::{Notify, Shard, ShardCounters};

use super::context::Context;
use super::handlers;
use super::registry;

/// Serves the Kafka protocol on this shard until `stop` fires. Fails when
/// the listener cannot start.
pub async fn serve(shard: Rc<Shard>, stop: Rc<Notify>) -> Result<(), String> {
    let ctx =
        Rc::new(Context::new(shard.clone()).map_err(|e| format!("listener configuration: {e}"))?);
    let listener = bind_listener(ctx.bind_addr)
        .map_err(|e| format!("cannot bind the Kafka port {}: {e}", ctx.bind_addr))?;
    let budget = Rc::new(Semaphore::new(shard.config.kafka.queued_max_request_bytes));
    let active = Rc::new(Cell::new(0usize));
    let idle = Rc::new(Notify::default());
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stop.changed().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        match accepted {
            Ok(stream) => {
                ShardCounters::bump(&ctx.shard.counters.connections_accepted);
                let (ctx, budget, stop) = (ctx.clone(), budget.clone(), stop.clone());
                let (active, idle) = (active.clone(), idle.clone());
                active.set(active.get() + 1);
                glommio::spawn_local(async move {
                    let peer = stream.peer_addr().ok();
                    if let Err(e) = connection(ctx, budget, stream, stop).await {
                        tracing::debug!(peer = ?peer, error = %e, "connection closed");
                    }
                    active.set(active.get() - 1);
                    idle.notify_all();
                })
                .detach();
            }
            Err(e) => tracing::warn!(error = %e, "accept failed"),
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

/// How long a stopping shard waits for busy connections.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("response did not encode: {0}")]
    Encode(String),
}

async fn connection(
    ctx: Rc<Context>,
    budget: Rc<Semaphore>,
    mut stream: TcpStream,
    stop: Rc<Notify>,
) -> Result<(), ConnectionError> {
    stream.set_nodelay(true).map_err(std::io::Error::from)?;
    let peer = stream.peer_addr().ok();
    let max = ctx.shard.config.kafka.socket_request_max_bytes;
    loop {
        let mut size = [0u8; 4];
        // Between requests a stop ends the connection; mid-request it does not.
        let got =
            futures_lite::future::or(async { Some(stream.read_exact(&mut size).await) }, async {
                stop.changed().await;
                None
            })
            .await;
        match got {
            None => return Ok(()),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Some(r) => r?,
        }
        let size = i32::from_be_bytes(size);
        if size < 8 || size as u32 > max {
            return bad(&ctx, format!("frame of {size} bytes (limit {max})"));
        }
        let units = (size as u64).min(budget_capacity(&ctx));
        let _permit = budget
            .acquire_permit(units)
            .await
            .map_err(|_| ConnectionError::BadRequest("request budget closed".into()))?;
        let mut frame = BytesMut::zeroed(size as usize);
        stream.read_exact(&mut frame).await?;
        let response = handle_frame(&ctx, frame.freeze(), peer).await?;
        if let Some(response) = response {
            stream.write_all(&response).await?;
        }
    }
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
    let request = RequestKind::decode(api_key, &mut frame, api_version)
        .map_err(|e| format!("{api_key:?} v{api_version} body: {e}"))?;
    Ok(DecodedRequest::Request(header, Box::new(request)))
}

/// Handles one request frame; returns the response frame (size prefix
/// included), or `None` when the request gets no response (acks=0).
async fn handle_frame(
    ctx: &Rc<Context>,
    frame: Bytes,
    peer: Option<std::net::SocketAddr>,
) -> Result<Option<Bytes>, ConnectionError> {
    ShardCounters::bump(&ctx.shard.counters.requests);
    let (header, request) = match decode_request(frame) {
        Ok(DecodedRequest::Request(header, request)) => (header, *request),
        Ok(DecodedRequest::NewerApiVersions(correlation_id)) => {
            // KIP-511: a newer client learns our ranges from a v0 answer.
            let body = handlers::api_versions::unsupported_version();
            let response = encode_response(correlation_id, 0, 0, &ResponseKind::ApiVersions(body));
            return response.map(Some).map_err(ConnectionError::Encode);
        }
        Err(reason) => return bad(ctx, reason),
    };
    let api_key = ApiKey::try_from(header.request_api_key).expect("decode_request checked the key");
    let api_version = header.request_api_version;
    let response = match handlers::dispatch(ctx, &header, request, peer).await {
        Some(r) => r,
        None => return Ok(None),
    };
    let response_header_version = api_key.response_header_version(api_version);
    let encoded = encode_response(
        header.correlation_id,
        response_header_version,
        api_version,
        &response,
    );
    encoded.map(Some).map_err(|e| {
        tracing::error!(shard = ctx.shard.id, api = ?api_key, error = %e, "response did not encode");
        ConnectionError::Encode(e)
    })
}

fn peek_correlation_id(frame: &Bytes) -> i32 {
    if frame.len() >= 8 {
        (&frame[4..8]).get_i32()
    } else {
        0
    }
}

/// The response frame (size prefix included). A body the codec refuses
/// is a bug of ours (a field out of range for the version); the caller then
/// closes the connection rather than send a malformed frame.
fn encode_response(
    correlation_id: i32,
    header_version: i16,
    version: i16,
    body: &ResponseKind,
) -> Result<Bytes, String> {
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0); // size, patched below
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut out, header_version)
        .map_err(|e| format!("response header: {e}"))?;
    body.encode(&mut out, version)
        .map_err(|e| format!("v{version} response: {e}"))?;
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out.freeze())
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
