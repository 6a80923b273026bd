//! `/metrics` as Prometheus reads it: after a producer, a consumer group
//! that commits and falls behind, the exposition is parsed by a real
//! Prometheus text parser (the Python `prometheus_client` parser), and:
//!
//! - the request latency histograms per API and stage, the fsync
//!   histogram, bytes in and out per topic, consumer group lag,
//!   partitions, connections and memory budgets are there, with values
//!   that follow from what the clients did;
//! - every metric the Grafana dashboard in `dashboards/` graphs exists.

mod common;

use std::time::Duration;

use common::{kcat, metrics, python, Broker};

/// Parses the exposition in argv[2] (a file) and prints one line per
/// sample: `family type name labels value`, labels as sorted k=v joined by
/// commas; then checks the dashboard in argv[3] against the families and
/// prints `missing <name>` for each metric it graphs that is not there.
const PARSE: &str = r#"
import json, re, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[2]).read()
families = {}
for f in text_string_to_metric_families(text):
    families[f.name] = f.type
    for s in f.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print("sample", f.name, f.type, s.name, labels or "-", s.value)
dashboard = json.load(open(sys.argv[3]))
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        for name in re.findall(r"sluice_[a-z0-9_]+", target["expr"]):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in families and base not in families and name.removesuffix("_total") not in families:
                print("missing", name)
print("parsed", len(families))
"#;

/// One parsed sample.
struct Sample {
    family: String,
    kind: String,
    name: String,
    labels: String,
    value: f64,
}

fn parse(broker: &Broker, text: &str) -> (Vec<Sample>, Vec<String>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, text).expect("writing the exposition");
    let dashboard =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/sluice-grafana.json");
    let out = python(
        broker,
        PARSE,
        &[
            file.to_str().expect("a UTF-8 path"),
            dashboard.to_str().expect("a UTF-8 path"),
        ],
        Duration::from_secs(60),
    );
    out.assert_success();
    let stdout = out.stdout_text();
    assert!(stdout.contains("parsed "), "{stdout}");
    let mut samples = Vec::new();
    let mut missing = Vec::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["sample", family, kind, name, labels, value] => samples.push(Sample {
                family: family.to_string(),
                kind: kind.to_string(),
                name: name.to_string(),
                labels: labels.to_string(),
                value: value.parse().expect("a number"),
            }),
            ["missing", name] => missing.push(name.to_string()),
            _ => {}
        }
    }
    (samples, missing)
}

/// The value of the sample `name` whose labels contain every one of
/// `labels` (k=v), summed over the others (shards).
fn value(samples: &[Sample], name: &str, labels: &[&str]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|l| s.labels.split(',').any(|x| x == *l)))
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

#[test]
fn the_exposition_parses_and_holds_what_the_dashboard_graphs() {
    let broker = Broker::start();
    let records: String = (0..200).map(|i| format!("k{i}:value {i}\n")).collect();
    kcat(&broker, &["-P", "-t", "graphed", "-K:"], records.as_bytes()).assert_success();
    // A group reads everything and commits, then more arrives: lag.
    kcat(
        &broker,
        &[
            "-G",
            "watchers",
            "-o",
            "beginning",
            "-c",
            "200",
            "-X",
            "enable.auto.commit=true",
            "-X",
            "auto.commit.interval.ms=100",
            "graphed",
        ],
        b"",
    )
    .assert_success();
    kcat(&broker, &["-P", "-t", "graphed", "-K:"], records.as_bytes()).assert_success();

    let text = metrics(&broker);
    let (samples, missing) = parse(&broker, &text);
    assert!(
        missing.is_empty(),
        "the dashboard graphs metrics /metrics lacks: {missing:?}"
    );

    // Request latency: histograms per API and stage.
    for stage in ["queue", "local", "total"] {
        let family = format!("sluice_kafka_request_{stage}_seconds");
        let kinds: Vec<&str> = samples
            .iter()
            .filter(|s| s.family == family)
            .map(|s| s.kind.as_str())
            .collect();
        assert!(
            kinds.iter().all(|k| *k == "histogram") && !kinds.is_empty(),
            "{family}"
        );
        let produced = value(&samples, &format!("{family}_count"), &["api=Produce"]);
        assert!(produced.unwrap_or(0.0) >= 2.0, "{family}: {produced:?}");
        let inf = value(
            &samples,
            &format!("{family}_bucket"),
            &["api=Fetch", "le=+Inf"],
        );
        let count = value(&samples, &format!("{family}_count"), &["api=Fetch"]);
        assert_eq!(inf, count, "{family}: +Inf bucket is the count");
    }
    // Every produce was synced (log.flush=always).
    assert!(value(&samples, "sluice_log_fsync_seconds_count", &[]).unwrap_or(0.0) >= 1.0);
    // Bytes per topic: both batches in, at least the first read out.
    let bytes_in = value(&samples, "sluice_topic_bytes_in_total", &["topic=graphed"]);
    let bytes_out = value(&samples, "sluice_topic_bytes_out_total", &["topic=graphed"]);
    assert!(bytes_in.unwrap_or(0.0) > 2.0 * 200.0 * 10.0, "{bytes_in:?}");
    assert!(bytes_out.unwrap_or(0.0) > 200.0 * 10.0, "{bytes_out:?}");
    // The group committed 200 and 200 more arrived.
    assert_eq!(
        value(
            &samples,
            "sluice_consumer_group_lag_sum",
            &["group=watchers"]
        ),
        Some(200.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "sluice_consumer_group_lag_max",
            &["group=watchers"]
        ),
        Some(200.0)
    );
    // Partitions and memory budgets.
    assert!(value(&samples, "sluice_leader_partitions", &[]).unwrap_or(0.0) >= 1.0);
    assert_eq!(
        value(&samples, "sluice_under_replicated_partitions", &[]),
        Some(0.0)
    );
    for budget in ["batch_cache", "kafka_requests"] {
        let used = value(
            &samples,
            "sluice_memory_used_bytes",
            &[&format!("budget={budget}")],
        );
        let limit = value(
            &samples,
            "sluice_memory_budget_bytes",
            &[&format!("budget={budget}")],
        );
        assert!(
            limit.unwrap_or(0.0) > 0.0 && used.unwrap_or(-1.0) >= 0.0 && used <= limit,
            "{budget}: {used:?} of {limit:?}"
        );
    }
}
