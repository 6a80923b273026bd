//! The admin HTTP endpoint: health and metrics, on shard 0.
//!
//! Owns: a minimal HTTP/1.1 responder (one request per connection, request
//! head bounded to 8 KiB) for `GET /v1/status/ready` and `GET /metrics`
//! (Prometheus text format, every shard's counters gathered by message).

use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use sluice_shard::{Notify, Shard, ShardRequest, ShardResponse, ShardStats};

use crate::kafka::server::{bind_listener, parse_addr};

/// Largest request head read.
const HEAD_MAX_BYTES: usize = 8192;

/// Binds the admin endpoint's listener.
pub fn bind(shard: &Shard) -> Result<TcpListener, String> {
    let addr = parse_addr(&shard.config.admin_addr).map_err(|e| format!("admin address: {e}"))?;
    bind_listener(addr).map_err(|e| format!("cannot bind the admin port {addr}: {e}"))
}

/// Serves the admin endpoint until `stop` fires (on shard 0 only).
pub async fn serve(shard: Rc<Shard>, listener: TcpListener, stop: Rc<Notify>) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stop.changed().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    if let Err(e) = respond(shard, stream).await {
                        tracing::debug!(error = %e, "admin request failed");
                    }
                })
                .detach();
            }
            Some(Err(e)) => tracing::warn!(error = %e, "admin accept failed"),
        }
    }
}

async fn respond(shard: Rc<Shard>, mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
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
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", metrics(&shard).await),
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
    stream.write_all(response.as_bytes()).await?;
    stream.close().await
}

/// A metric: name, help text, and how to read it from a shard's stats.
type Series = (&'static str, &'static str, fn(&ShardStats) -> u64);

/// Every shard's counters as Prometheus text.
pub async fn metrics(shard: &Rc<Shard>) -> String {
    let mut all = Vec::with_capacity(shard.shards as usize);
    for to in 0..shard.shards {
        if let ShardResponse::Stats(stats) = shard.call(to, ShardRequest::Stats).await {
            all.push(stats);
        }
    }
    let series: [Series; 10] = [
        ("sluice_partitions", "Partitions owned by the shard", |s| {
            s.partitions
        }),
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
    let mut out = String::new();
    for (name, help, get) in series {
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
