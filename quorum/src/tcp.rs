//! The internal listener (`--rpc-addr`) and the links to peers, over TCP.
//!
//! Owns: [`serve`], which accepts connections and answers each frame with
//! an [`RpcHandler`], one frame at a time per connection; and [`TcpLink`],
//! which calls a peer at its address: a few connections per peer reused
//! call after call, at most [`PEER_IN_FLIGHT_MAX`] calls in flight to one
//! peer, and after a failed connect a backoff (doubling from 50 ms up to
//! 2 s) during which calls to that peer fail at once.
//!
//! Invariants: a frame that does not decode closes its connection, counts
//! in `frames_refused` and is logged, and nothing else is disturbed; a
//! connection is reused only after a whole answer was read on it (a call
//! dropped midway drops its connection); at most [`RPC_CONNECTIONS_MAX`]
//! connections are served at once.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;

use crate::network::{LocalResult, PeerLink, RaftRequest, RaftResponse};
use crate::wire::{self, Message};
use crate::{NodeId, Peer};

/// Calls in flight to one peer.
pub const PEER_IN_FLIGHT_MAX: u64 = 16;
/// Connections the listener serves at once.
pub const RPC_CONNECTIONS_MAX: u64 = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers the frames a connection brings.
pub trait RpcHandler {
    fn handle(&self, message: Message) -> LocalResult<Message>;
}

/// What the listener counts.
#[derive(Debug, Default)]
pub struct RpcCounters {
    pub connections: Cell<u64>,
    pub connections_refused: Cell<u64>,
    pub frames: Cell<u64>,
    pub frames_refused: Cell<u64>,
}

fn bump(counter: &Cell<u64>) {
    counter.set(counter.get() + 1);
}

/// Reads one frame's body; `None` at a clean end of the stream.
async fn read_frame(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = wire::frame_len(header).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Serves `listener` until it fails: every connection in a task of its own.
pub async fn serve(listener: TcpListener, handler: Rc<dyn RpcHandler>, counters: Rc<RpcCounters>) {
    let places = Rc::new(Semaphore::new(RPC_CONNECTIONS_MAX));
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "the internal listener could not accept");
                glommio::timer::sleep(BACKOFF_MIN).await;
                continue;
            }
        };
        let Ok(place) = places.clone().try_acquire_static_permit(1) else {
            bump(&counters.connections_refused);
            tracing::warn!(
                "the internal listener is at its connection limit; a connection was closed"
            );
            continue;
        };
        bump(&counters.connections);
        let handler = handler.clone();
        let counters = counters.clone();
        glommio::spawn_local(async move {
            let _place = place;
            serve_connection(stream, handler, counters).await;
        })
        .detach();
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    handler: Rc<dyn RpcHandler>,
    counters: Rc<RpcCounters>,
) {
    let _ = stream.set_nodelay(true);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    loop {
        let body = match read_frame(&mut stream).await {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    bump(&counters.frames_refused);
                    tracing::warn!(peer, error = %e, "an internal frame was refused; closing the connection");
                }
                return;
            }
        };
        let message = match wire::decode(&body) {
            Ok(message) => message,
            Err(e) => {
                bump(&counters.frames_refused);
                tracing::warn!(peer, error = %e, "an internal frame was refused; closing the connection");
                return;
            }
        };
        bump(&counters.frames);
        let answer = handler.handle(message).await;
        if stream.write_all(&wire::encode(&answer)).await.is_err() {
            return;
        }
    }
}

#[derive(Default)]
struct PeerPool {
    idle: RefCell<Vec<TcpStream>>,
    in_flight: Option<Rc<Semaphore>>,
    failures: Cell<u32>,
    retry_at: Cell<Option<Instant>>,
}

/// Calls to peers over TCP (clones share connections).
#[derive(Clone, Default)]
pub struct TcpLink {
    peers: Rc<RefCell<HashMap<String, Rc<PeerPool>>>>,
}

impl TcpLink {
    pub fn new() -> TcpLink {
        TcpLink::default()
    }

    fn pool(&self, addr: &str) -> Rc<PeerPool> {
        self.peers
            .borrow_mut()
            .entry(addr.to_owned())
            .or_insert_with(|| {
                Rc::new(PeerPool {
                    in_flight: Some(Rc::new(Semaphore::new(PEER_IN_FLIGHT_MAX))),
                    ..PeerPool::default()
                })
            })
            .clone()
    }

    async fn connection(pool: &PeerPool, addr: &str) -> Result<TcpStream, String> {
        if let Some(stream) = pool.idle.borrow_mut().pop() {
            return Ok(stream);
        }
        if pool.retry_at.get().is_some_and(|at| Instant::now() < at) {
            return Err(format!("{addr} is unreachable (backing off)"));
        }
        let connected = match addr.parse::<std::net::SocketAddr>() {
            Ok(socket) => TcpStream::connect_timeout(socket, CONNECT_TIMEOUT)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("address {addr:?}: {e}")),
        };
        match connected {
            Ok(stream) => {
                pool.failures.set(0);
                pool.retry_at.set(None);
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Err(e) => {
                let failures = pool.failures.get().saturating_add(1);
                pool.failures.set(failures);
                let wait = BACKOFF_MIN
                    .saturating_mul(1 << failures.min(10))
                    .min(BACKOFF_MAX);
                pool.retry_at.set(Some(Instant::now() + wait));
                Err(format!("connecting to {addr}: {e}"))
            }
        }
    }

    /// Sends `message` to the listener at `addr` and reads its answer.
    pub async fn call_addr(&self, addr: &str, message: Message) -> Result<Message, String> {
        let pool = self.pool(addr);
        let Some(in_flight) = pool.in_flight.clone() else {
            return Err("no pool".into());
        };
        let _slot = in_flight
            .acquire_permit(1)
            .await
            .map_err(|e| format!("calls to {addr}: {e}"))?;
        let mut stream = Self::connection(&pool, addr).await?;
        stream
            .write_all(&wire::encode(&message))
            .await
            .map_err(|e| format!("writing to {addr}: {e}"))?;
        let body = match read_frame(&mut stream).await {
            Ok(Some(body)) => body,
            Ok(None) => return Err(format!("{addr} closed the connection")),
            Err(e) => return Err(format!("reading from {addr}: {e}")),
        };
        let answer = wire::decode(&body).map_err(|e| format!("an answer from {addr}: {e}"))?;
        pool.idle.borrow_mut().push(stream);
        Ok(answer)
    }
}

impl PeerLink for TcpLink {
    fn call(
        &self,
        _from: NodeId,
        to: NodeId,
        peer: &Peer,
        request: RaftRequest,
    ) -> LocalResult<Result<RaftResponse, String>> {
        let link = self.clone();
        let addr = peer.rpc_addr.clone();
        Box::pin(async move {
            match link.call_addr(&addr, Message::Raft(request)).await? {
                Message::RaftAnswer(answer) => Ok(answer),
                Message::Refused(why) => Err(format!("voter {to} refused: {why}")),
                other => Err(format!("voter {to} answered a Raft call with {other:?}")),
            }
        })
    }
}
