//! A TCP proxy on loopback that can cut a link between two nodes.
//!
//! Owns: one listening port that forwards every connection to a target
//! address, both ways, until it is [`LinkProxy::cut`]: then every open
//! connection is shut down and new ones are closed at once, until
//! [`LinkProxy::heal`]. Tests put one in front of a node's internal
//! listener to partition it from the others.
//!
//! Invariants: every thread it starts ends by itself (a connection's pumps
//! end when either side closes; the accept loop ends when the proxy is
//! dropped); nothing outlives the proxy.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    cut: AtomicBool,
    stopped: AtomicBool,
    /// Both ends of every forwarded connection, to shut them when cut.
    open: Mutex<Vec<TcpStream>>,
}

/// A cuttable TCP link in front of `target`.
pub struct LinkProxy {
    port: u16,
    state: Arc<State>,
}

impl LinkProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub fn start(target: SocketAddr) -> LinkProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a proxy port");
        let port = listener.local_addr().expect("its address").port();
        let state = Arc::new(State::default());
        let accepting = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if accepting.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                if let Ok(mut open) = accepting.open.lock() {
                    open.extend(client.try_clone().ok());
                    open.extend(server.try_clone().ok());
                }
                pump(&client, &server);
                pump(&server, &client);
            }
        });
        LinkProxy { port, state }
    }

    /// The port to give nodes instead of the target's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        if let Ok(mut open) = self.state.open.lock() {
            for stream in open.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.cut();
        self.state.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` into `to` on a thread until either side closes.
fn pump(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
