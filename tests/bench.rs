//! `sluice bench` against the real broker: a run writes a result file with
//! the documented keys and sane contents; a consumer reads every produced
//! message exactly once; compare and plot read result files. Speed is not
//! asserted (benchmarks report it), only what must hold at any speed.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{fetch_all, run, topic, Broker, CmdOutput};

fn sluice(args: &[&str]) -> CmdOutput {
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_sluice")).args(args),
        b"",
        Duration::from_secs(120),
    );
    out.assert_success();
    out
}

fn load(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read(path).expect("the run wrote its result file");
    serde_json::from_slice(&text).expect("the result file is JSON")
}

#[test]
fn an_e2e_run_writes_a_complete_result_file() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("e2e.json");
    let bootstrap = broker.bootstrap();
    sluice(&[
        "bench",
        "e2e",
        "--bootstrap",
        &bootstrap,
        "--workload",
        "lat-1k",
        "--rate",
        "2000",
        "--partitions",
        "4",
        "--keys",
        "100",
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--label",
        "sluice",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]);
    let r = load(&json);
    assert_eq!(r["format"], 1);
    assert_eq!(r["mode"], "e2e");
    assert_eq!(r["label"], "sluice");
    assert_eq!(r["setup"]["preset"], "lat-1k");
    assert_eq!(r["setup"]["rate"], 2000);
    assert_eq!(r["setup"]["partitions"], 4);
    assert_eq!(r["setup"]["topic_created_by_run"], true);
    for side in ["produce", "consume"] {
        let s = &r[side];
        assert_eq!(s["errors"], 0, "{side}: {s}");
        assert!(s["messages"].as_u64().unwrap_or(0) > 0, "{side}: {s}");
        assert_eq!(
            s["bytes"].as_u64(),
            s["messages"].as_u64().map(|m| m * 1024),
            "{side}: every value is 1 KiB"
        );
        let lat = &s["latency_us"];
        for key in ["p50", "p90", "p99", "p99_9", "p99_99", "max"] {
            assert!(lat[key].as_u64().unwrap_or(0) > 0, "{side} {key}: {lat}");
        }
        assert!(lat["p50"].as_u64() <= lat["p99"].as_u64());
        assert!(lat["p99"].as_u64() <= lat["max"].as_u64());
        assert_eq!(s["per_second"].as_array().map(Vec::len), Some(3));
        assert!(s["spectrum"].as_array().is_some_and(|a| !a.is_empty()));
    }
    // The run deleted the topic it created.
    let md = common::kcat(&broker, &["-L", "-J"], b"");
    let topic_name = r["setup"]["topic"].as_str().expect("topic name");
    assert!(
        !md.stdout_text().contains(topic_name),
        "{}",
        md.stdout_text()
    );

    let compared = sluice(&[
        "bench",
        "compare",
        json.to_str().unwrap_or(""),
        json.to_str().unwrap_or(""),
    ]);
    assert!(
        compared.stdout_text().contains("msg/s"),
        "{}",
        compared.stdout_text()
    );
    assert!(
        compared.stdout_text().contains("1.00"),
        "{}",
        compared.stdout_text()
    );
    let plots = dir.path().join("plots");
    sluice(&[
        "bench",
        "plot",
        json.to_str().unwrap_or(""),
        "--out",
        plots.to_str().unwrap_or(""),
    ]);
    for (file, series) in [
        ("latency.svg", "sluice e2e"),
        ("throughput.svg", "sluice consume"),
    ] {
        let svg = std::fs::read_to_string(plots.join(file)).expect("plot written");
        assert!(svg.contains("<svg"), "{file}");
        assert!(svg.contains(series), "{file} names its series {series}");
        assert!(
            svg.contains("<polyline") || svg.contains("<path"),
            "{file} has lines"
        );
    }
}

#[test]
fn a_consumer_reads_every_produced_message_once() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let t = topic("bench");
    let dir = tempfile::tempdir().expect("temp dir");
    let produced = dir.path().join("produce.json");
    let consumed = dir.path().join("consume.json");
    sluice(&[
        "bench",
        "produce",
        "--bootstrap",
        &bootstrap,
        "--topic",
        &t,
        "--keep-topic",
        "--partitions",
        "3",
        "--value-size",
        "100",
        "--value-size-max",
        "300",
        "--compression",
        "lz4",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--json",
        produced.to_str().unwrap_or(""),
    ]);
    let p = load(&produced);
    assert_eq!(p["produce"]["errors"], 0);
    assert!(p["consume"].is_null());
    let stored: i64 = (0..3)
        .map(|partition| fetch_all(&broker, &t, partition).0)
        .sum();
    assert!(stored > 0);
    sluice(&[
        "bench",
        "consume",
        "--bootstrap",
        &bootstrap,
        "--topic",
        &t,
        "--duration",
        "10",
        "--warmup",
        "0",
        "--json",
        consumed.to_str().unwrap_or(""),
    ]);
    let c = load(&consumed);
    assert!(c["produce"].is_null());
    assert_eq!(c["consume"]["errors"], 0);
    assert_eq!(
        c["consume"]["messages"].as_i64(),
        Some(stored),
        "{}",
        c["consume"]
    );
    // Sizes were drawn between 100 and 300 bytes.
    let bytes = c["consume"]["bytes"].as_i64().unwrap_or(0);
    assert!(
        bytes >= stored * 100 && bytes <= stored * 300,
        "{bytes} for {stored}"
    );
}
