//! What a produce costs when its partition lives on another core.
//!
//! Starts two shards (pinned executors) with `log.flush = never`, creates a
//! topic whose partition 0 lives on shard 0 and partition 1 on shard 1, and
//! from shard 0 appends the same small batch alternately to each, through
//! the same `Shard::call` path the Kafka handlers use: local runs inline,
//! remote crosses the channel mesh and back. Prints per-produce latency
//! percentiles of both and their difference.
//!
//! ```text
//! cargo bench -p sluice-shard --bench cross_core -- [--ops 20000] [--rounds 5] [--spin-us N]
//! ```
//!
//! `--spin-us` sets `shard.spin_before_park_us` (default: its default), so
//! the cost of a sleeping peer can be measured against a polling one.

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use hdrhistogram::Histogram;
use sluice_core::batch::BatchBuilder;
use sluice_core::config::{FlushPolicy, NodeConfig};
use sluice_shard::message::{PartitionAppend, Produce, Propose};
use sluice_shard::{Proposal, ShutdownFlag};

/// Latency histograms (ns) of local and cross-core produces.
type LocalAndRemote = (Histogram<u64>, Histogram<u64>);

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --all-targets` runs this without --bench: a smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let ops = if smoke { 200 } else { arg("--ops", 20_000) };
    let rounds = if smoke { 1 } else { arg("--rounds", 5) };
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let mut config = NodeConfig {
        data_dir: dir.path().to_owned(),
        ..NodeConfig::default()
    };
    config.log.flush = FlushPolicy::Never;
    config.shard.spin_before_park_us =
        arg("--spin-us", config.shard.spin_before_park_us as usize) as u64;
    let shutdown = ShutdownFlag::default();
    let results: Arc<Mutex<Option<LocalAndRemote>>> = Arc::new(Mutex::new(None));
    let serve: sluice_shard::ServeFn = {
        let (shutdown, results) = (shutdown.clone(), results.clone());
        Arc::new(move |shard, stop| {
            let (shutdown, results) = (shutdown.clone(), results.clone());
            Box::pin(async move {
                if shard.id == 0 {
                    let hists = measure(&shard, ops, rounds).await;
                    *results.lock().expect("results lock") = Some(hists);
                    shutdown.request();
                }
                stop.changed().await;
                Ok(())
            })
        })
    };
    sluice_shard::run(config, 2, serve, shutdown).expect("shards run");
    let (local, remote) = results
        .lock()
        .expect("results lock")
        .take()
        .expect("shard 0 measured");
    let row = |name: &str, h: &Histogram<u64>| {
        println!(
            "{name:<7} p50 {:>6.2} us  p90 {:>6.2} us  p99 {:>6.2} us  p99.9 {:>7.2} us  ({} produces)",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.9) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.value_at_quantile(0.999) as f64 / 1000.0,
            h.len()
        )
    };
    println!("2 shards pinned to 2 cores, log.flush=never, acks=1, one 1 KiB record per produce");
    row("local", &local);
    row("remote", &remote);
    println!(
        "remote - local: p50 {:.2} us, p99 {:.2} us",
        (remote.value_at_quantile(0.5) as f64 - local.value_at_quantile(0.5) as f64) / 1000.0,
        (remote.value_at_quantile(0.99) as f64 - local.value_at_quantile(0.99) as f64) / 1000.0
    );
}

async fn measure(
    shard: &Rc<sluice_shard::Shard>,
    ops: usize,
    rounds: usize,
) -> (Histogram<u64>, Histogram<u64>) {
    let created = shard
        .call(
            0,
            Propose(Proposal::CreateTopic {
                name: "cross-core".into(),
                partitions: 2,
                replication_factor: -1,
                assignments: Vec::new(),
                configs: Vec::new(),
                validate_only: false,
            }),
        )
        .await;
    assert!(matches!(created, Ok(Ok(_))), "{created:?}");
    let owners: Vec<u32> = (0..2)
        .map(|p| {
            shard
                .metadata()
                .leader_shard(0, "cross-core", p)
                .expect("placed")
        })
        .collect();
    assert_eq!(
        owners,
        vec![0, 1],
        "placement puts one partition on each shard"
    );
    let batch: Bytes = BatchBuilder::new(0)
        .record(None, Some(&[7u8; 1024]))
        .build();
    let mut local = Histogram::<u64>::new(3).expect("histogram");
    let mut remote = Histogram::<u64>::new(3).expect("histogram");
    for round in 0..=rounds {
        for i in 0..ops {
            // Alternate so both see the same conditions; round 0 warms up.
            let partition = (i % 2) as i32;
            let request = Produce {
                acks: 1,
                transactional_id: None,
                adds_partitions: false,
                appends: vec![PartitionAppend {
                    topic: "cross-core".into(),
                    partition,
                    records: bytes::BytesMut::from(&batch[..]),
                    source: None,
                }],
            };
            let start = Instant::now();
            let response = shard.call(owners[partition as usize], request).await;
            let nanos = start.elapsed().as_nanos() as u64;
            assert!(
                matches!(&response, Ok(r) if r[0].error == sluice_core::ErrorCode::None),
                "{response:?}"
            );
            if round > 0 {
                let h = if partition == 0 {
                    &mut local
                } else {
                    &mut remote
                };
                h.record(nanos).expect("record");
            }
        }
    }
    (local, remote)
}
