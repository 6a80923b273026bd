//! The admin HTTP endpoint: health and metrics, on shard 0.
//!
//! Owns: a minimal HTTP/1.1 responder (one request per connection, request
//! head bounded to 8 KiB) for `GET /v1/status/ready` and `GET /metrics`
//! (Prometheus text format, every shard's counters gathered by message).
//!
//! Bounded like the Kafka listener: at most [`ADMIN_MAX_CONNECTIONS`] at
//! once (one more is closed at once), and a request head that stops
//! arriving, or a response the client stops reading, for
//! `kafka.request_stall_timeout_ms` closes the connection.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use sluice_shard::message::Stats;
use sluice_shard::{Notify, Shard, ShardStats};

use crate::kafka::connection_limits::ConnectionLimits;
use crate::kafka::server::{bind_listener, parse_addr, with_deadline};

/// Largest request head read.
const HEAD_MAX_BYTES: usize = 8192;

/// Admin connections served at once; more are closed on accept.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Binds the admin endpoint's listener.
pub fn bind(shard: &Shard) -> Result<TcpListener, String> {
    let addr = parse_addr(&shard.config.admin_addr).map_err(|e| format!("admin address: {e}"))?;
    bind_listener(addr).map_err(|e| format!("cannot bind the admin port {addr}: {e}"))
}

/// Serves the admin endpoint until `stop` fires (on shard 0 only).
pub async fn serve(
    shard: Rc<Shard>,
    listener: TcpListener,
    stop: Rc<Notify>,
    limits: Arc<ConnectionLimits>,
) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stop.changed().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                if open.get() >= ADMIN_MAX_CONNECTIONS {
                    tracing::debug!("admin connection refused: {ADMIN_MAX_CONNECTIONS} open");
                    continue;
                }
                open.set(open.get() + 1);
                let (shard, open, limits) = (shard.clone(), open.clone(), limits.clone());
                glommio::spawn_local(async move {
                    let stall =
                        Duration::from_millis(shard.config.kafka.request_stall_timeout_ms.max(1));
                    match respond(shard, stream, stall, &limits).await {
                        Ok(()) => {}
                        Err(e) => tracing::debug!(error = %e, "admin request failed"),
                    }
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Some(Err(e)) => tracing::warn!(error = %e, "admin accept failed"),
        }
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_owned())
}

async fn respond(
    shard: Rc<Shard>,
    mut stream: TcpStream,
    stall: Duration,
    limits: &ConnectionLimits,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = with_deadline(stall, stream.read(&mut buf))
            .await
            .ok_or_else(|| timed_out("request head stopped arriving"))??;
        if n == 0 || head.len() + n > HEAD_MAX_BYTES {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path) {
        ("GET", "/v1/status/ready") => (
            "200 OK",
            "application/json",
            "{\"ready\":true}\n".to_string(),
        ),
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            metrics(&shard, limits).await,
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    with_deadline(stall, stream.write_all(response.as_bytes()))
        .await
        .ok_or_else(|| timed_out("the client stopped reading"))??;
    stream.close().await
}

/// A metric: name, help text, and how to read it from a shard's stats.
type Series = (&'static str, &'static str, fn(&ShardStats) -> u64);

/// Every shard's counters as Prometheus text.
pub async fn metrics(shard: &Rc<Shard>, limits: &ConnectionLimits) -> String {
    let mut all = Vec::with_capacity(shard.shards as usize);
    for to in 0..shard.shards {
        if let Ok(stats) = shard.call(to, Stats).await {
            all.push(stats);
        }
    }
    let series: &[Series] = &[
        ("sluice_partitions", "Partitions owned by the shard", |s| {
            s.partitions
        }),
        (
            "sluice_offline_partitions",
            "Partitions that failed to open or went offline after a storage error",
            |s| s.offline_partitions,
        ),
        (
            "sluice_parked_fetch_watches",
            "Long polls (Fetch watches) parked on the shard's partitions",
            |s| s.parked_watches,
        ),
        (
            "sluice_mesh_calls_in_flight",
            "Calls this shard made to other shards and still waits for",
            |s| s.calls_in_flight,
        ),
        (
            "sluice_kafka_connections_refused_total",
            "Connections closed at once by max.connections.per.ip",
            |s| s.connections_refused,
        ),
        (
            "sluice_kafka_connections_timed_out_total",
            "Connections closed for idleness or a stalled request or response",
            |s| s.connections_timed_out,
        ),
        (
            "sluice_kafka_connections_accepted_total",
            "Kafka connections accepted",
            |s| s.connections_accepted,
        ),
        (
            "sluice_kafka_requests_total",
            "Kafka requests received",
            |s| s.requests,
        ),
        (
            "sluice_kafka_bad_requests_total",
            "Connections closed for bad input",
            |s| s.bad_requests,
        ),
        (
            "sluice_log_cleaner_passes_total",
            "Compaction passes the log cleaner completed",
            |s| s.cleaner_passes,
        ),
        (
            "sluice_log_cleaner_bytes_removed_total",
            "Bytes compaction removed from logs",
            |s| s.cleaner_bytes_removed,
        ),
        (
            "sluice_log_storage_full_partitions",
            "Partitions refusing produce because the disk is full",
            |s| s.storage_full_partitions,
        ),
        ("sluice_log_appends_total", "Successful appends", |s| {
            s.appends
        }),
        ("sluice_log_flushes_total", "Flush calls", |s| s.flushes),
        (
            "sluice_log_flush_syncs_total",
            "fdatasyncs issued by flushes (group commit)",
            |s| s.flush_syncs,
        ),
        (
            "sluice_batch_cache_bytes",
            "Bytes held by the batch cache",
            |s| s.batch_cache_bytes,
        ),
        (
            "sluice_batch_cache_hits_total",
            "Reads served by the batch cache",
            |s| s.batch_cache_hits,
        ),
        (
            "sluice_batch_cache_misses_total",
            "Reads the batch cache could not serve",
            |s| s.batch_cache_misses,
        ),
    ];
    let (max_total, max_per_ip) = limits.limits();
    let mut out = format!(
        "# HELP sluice_kafka_connections Open Kafka connections on the node\n# TYPE sluice_kafka_connections gauge\nsluice_kafka_connections {}\n\
         # HELP sluice_kafka_max_connections The node's max.connections in force\n# TYPE sluice_kafka_max_connections gauge\nsluice_kafka_max_connections {max_total}\n\
         # HELP sluice_kafka_max_connections_per_ip The node's max.connections.per.ip in force\n# TYPE sluice_kafka_max_connections_per_ip gauge\nsluice_kafka_max_connections_per_ip {max_per_ip}\n",
        limits.open_connections()
    );
    for &(name, help, get) in series {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for s in &all {
            out.push_str(&format!("{name}{{shard=\"{}\"}} {}\n", s.shard, get(s)));
        }
    }
    out
}
