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
use sluice_shard::message::{Metrics as MetricsOp, ShardStats, Stats};
use sluice_shard::metrics::{LatencyHistogram, RequestLatency, ShardMetrics, TopicBytes};
use sluice_shard::{Notify, Shard};

use crate::kafka::connection_limits::ConnectionLimits;
use crate::kafka::registry;
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
            "sluice_leader_partitions",
            "Partitions the shard leads",
            |s| s.leader_partitions,
        ),
        (
            "sluice_under_replicated_partitions",
            "Partitions the shard leads whose in-sync set lacks a replica",
            |s| s.under_replicated_partitions,
        ),
        (
            "sluice_offline_partitions",
            "Partitions that failed to open or went offline after a storage error",
            |s| s.offline_partitions,
        ),
        (
            "sluice_share_partitions",
            "Share partitions (a share group's state of a partition) the shard holds in memory",
            |s| s.share_partitions,
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
            "sluice_kafka_connections_throttled_total",
            "Connections over their address's connection_creation_rate, closed after their throttle",
            |s| s.connections_throttled,
        ),
        (
            "sluice_kafka_accept_failures_total",
            "Accepts that failed (out of file descriptors, say), each followed by a 100 ms pause",
            |s| s.accept_failures,
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
            "sluice_kafka_throttled_requests_total",
            "Requests whose client was over a quota and was throttled",
            |s| s.throttled_requests,
        ),
        (
            "sluice_kafka_throttle_time_ms_total",
            "Milliseconds of throttle given to clients over a quota",
            |s| s.throttle_time_ms,
        ),
        (
            "sluice_quota_usage_unshared_total",
            "Client quota measurements not shared with the other shards (more users and client ids at once than a share holds)",
            |s| s.quota_usage_unshared,
        ),
        (
            "sluice_produce_record_bytes_copied_total",
            "Record bytes a Produce copied before the log's write buffer",
            |s| s.produce_record_bytes_copied,
        ),
        (
            "sluice_fetch_record_bytes_copied_total",
            "Record bytes a Fetch copied in user space",
            |s| s.fetch_record_bytes_copied,
        ),
        (
            "sluice_txn_verifications_total",
            "Transactional first writes verified with their coordinator (KIP-890)",
            |s| s.txn_verifications,
        ),
        (
            "sluice_txn_verification_failures_total",
            "Transactional writes refused: their partition was not in the producer's transaction",
            |s| s.txn_verification_failures,
        ),
        (
            "sluice_share_dead_letters_total",
            "Records share groups wrote to their dead-letter topics (KIP-1191)",
            |s| s.share_dead_letters,
        ),
        (
            "sluice_share_dead_letter_failures_total",
            "Records share groups archived without a dead-letter record: the topic failed its checks or the write failed",
            |s| s.share_dead_letter_failures,
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
            "sluice_txn_aborted_in_memory",
            "Aborted transactions held in memory (those whose markers are in an active segment)",
            |s| s.txn_aborted_in_memory,
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
            "sluice_log_segments_recycled_total",
            "Segments rolled into the file of one retention deleted",
            |s| s.segments_recycled,
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
        (
            "sluice_read_ahead_started_total",
            "Disk reads started ahead of a consumer that is behind",
            |s| s.read_ahead_started,
        ),
        (
            "sluice_read_ahead_kept_total",
            "Read-aheads made of whole batches a disk read left over, kept for the reader's next read",
            |s| s.read_ahead_kept,
        ),
        (
            "sluice_read_ahead_used_total",
            "Read-aheads (started or kept) that a Fetch then used",
            |s| s.read_ahead_used,
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
    budgets(&mut out, &all);
    let mut node = ShardMetrics::default();
    for to in 0..shard.shards {
        if let Ok(m) = shard.call(to, MetricsOp).await {
            node.merge(&m);
        }
    }
    render_metrics(&mut out, &node);
    out
}

/// A budget's bytes in use and its limit, read from a shard's stats.
type UsedOfBudget = fn(&ShardStats) -> (u64, u64);

/// One stage's histogram of a request's latencies.
type Stage = fn(&RequestLatency) -> &LatencyHistogram;

/// Memory each budget holds against its limit, per shard.
fn budgets(out: &mut String, all: &[ShardStats]) {
    let budgets: [(&str, UsedOfBudget); 3] = [
        ("batch_cache", |s| {
            (s.batch_cache_bytes, s.batch_cache_budget_bytes)
        }),
        ("read_ahead", |s| {
            (s.read_ahead_bytes, s.read_ahead_budget_bytes)
        }),
        ("kafka_requests", |s| {
            (s.request_bytes_queued, s.request_budget_bytes)
        }),
    ];
    out.push_str("# HELP sluice_memory_used_bytes Bytes a bounded buffer holds\n# TYPE sluice_memory_used_bytes gauge\n");
    for s in all {
        for (budget, get) in &budgets {
            let used = get(s).0;
            out.push_str(&format!(
                "sluice_memory_used_bytes{{shard=\"{}\",budget=\"{budget}\"}} {used}\n",
                s.shard
            ));
        }
    }
    out.push_str("# HELP sluice_memory_budget_bytes The limit a bounded buffer is held to\n# TYPE sluice_memory_budget_bytes gauge\n");
    for s in all {
        for (budget, get) in &budgets {
            let limit = get(s).1;
            out.push_str(&format!(
                "sluice_memory_budget_bytes{{shard=\"{}\",budget=\"{budget}\"}} {limit}\n",
                s.shard
            ));
        }
    }
}

/// The node's histograms (every shard's added up), bytes per topic and
/// consumer group lag.
fn render_metrics(out: &mut String, node: &ShardMetrics) {
    let stages: [(&str, &str, Stage); 3] = [
        (
            "sluice_kafka_request_queue_seconds",
            "Time from a request's first body byte to its handler: the request byte budget and the bytes arriving",
            |r| &r.queue,
        ),
        (
            "sluice_kafka_request_local_seconds",
            "Time in the request's handler (a Produce until its append)",
            |r| &r.local,
        ),
        (
            "sluice_kafka_request_total_seconds",
            "Time from a request's first body byte to its answer being ready (a Produce's sync and replication included)",
            |r| &r.total,
        ),
    ];
    for (name, help, get) in stages {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        for (key, latency) in &node.requests {
            let api = registry::SUPPORTED_APIS
                .iter()
                .find(|a| a.key as i16 == *key)
                .map_or("unknown", |a| a.name);
            histogram(out, name, &format!("api=\"{api}\""), get(latency));
        }
    }
    let name = "sluice_log_fsync_seconds";
    out.push_str(&format!(
        "# HELP {name} Log flushes that issued an fdatasync, from start to durable\n# TYPE {name} histogram\n"
    ));
    histogram(out, name, "", &node.fsync);
    let mut topics: Vec<_> = node.topics.iter().collect();
    topics.sort_unstable_by_key(|(t, _)| t.as_str());
    for (name, help, get) in [
        (
            "sluice_topic_bytes_in_total",
            "Bytes of records appended to the topic's partitions led here",
            (|b: &TopicBytes| b.bytes_in) as fn(&TopicBytes) -> u64,
        ),
        (
            "sluice_topic_bytes_out_total",
            "Bytes of records read from the topic for consumers and followers (a fetch a quota then answers empty included)",
            |b: &TopicBytes| b.bytes_out,
        ),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        for (topic, bytes) in &topics {
            out.push_str(&format!(
                "{name}{{topic=\"{}\"}} {}\n",
                escape_label(topic),
                get(bytes)
            ));
        }
    }
    let lag = node.group_lag();
    for (name, help, pick) in [
        (
            "sluice_consumer_group_lag_sum",
            "Records behind the high watermark, over the group's partitions led on this node",
            (|l: &(u64, u64)| l.0) as fn(&(u64, u64)) -> u64,
        ),
        (
            "sluice_consumer_group_lag_max",
            "Records the group's furthest-behind partition led on this node is behind",
            |l: &(u64, u64)| l.1,
        ),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (group, l) in &lag {
            out.push_str(&format!(
                "{name}{{group=\"{}\"}} {}\n",
                escape_label(group),
                pick(l)
            ));
        }
    }
}

/// One histogram's buckets, sum and count, with `labels` (may be empty).
fn histogram(out: &mut String, name: &str, labels: &str, h: &LatencyHistogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, count) in h.cumulative() {
        let le = bound.map_or("+Inf".to_owned(), |b| b.to_string());
        out.push_str(&format!(
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {count}\n"
        ));
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    out.push_str(&format!("{name}_sum{braces} {}\n", h.sum_s));
    out.push_str(&format!("{name}_count{braces} {}\n", h.count));
}

/// A label value as the exposition format wants it: backslash, quote and
/// newline escaped (topic and group names come from clients).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
