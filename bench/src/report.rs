//! Tables of results, and `sluice bench compare`.
//!
//! Owns: the final table a run prints (one row per direction: throughput
//! and latency percentiles) and the comparison of two result files as
//! ratios (B / A): above 1 is more throughput or more latency for B.

use std::fmt::Write as _;

use crate::stats::{BenchResult, Percentiles, Side};

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn row(out: &mut String, label: &str, what: &str, s: &Side) {
    let lat = |f: fn(&Percentiles) -> u64| s.latency_us.as_ref().map_or("-".into(), |p| ms(f(p)));
    let _ = writeln!(
        out,
        "{label:<16} {what:<8} {:>11.0} {:>9.1} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        s.msgs_per_s,
        s.mb_per_s,
        lat(|p| p.p50),
        lat(|p| p.p90),
        lat(|p| p.p99),
        lat(|p| p.p99_9),
        lat(|p| p.p99_99),
        lat(|p| p.max),
        s.errors,
    );
}

/// The result table of one or more runs (latency in milliseconds).
pub fn table(results: &[&BenchResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<8} {:>11} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "run", "side", "msg/s", "MB/s", "p50 ms", "p90", "p99", "p99.9", "p99.99", "max", "errors"
    );
    for r in results {
        if let Some(s) = &r.produce {
            row(&mut out, &r.label, "produce", s);
        }
        if let Some(s) = &r.consume {
            let side = if r.mode == "consume" {
                "consume"
            } else {
                "e2e"
            };
            row(&mut out, &r.label, side, s);
        }
    }
    out
}

/// A latency row: its name and the percentile it reads.
type Column = (&'static str, fn(&Percentiles) -> u64);

fn ratio(b: f64, a: f64) -> String {
    if a > 0.0 {
        format!("{:.2}", b / a)
    } else {
        "-".into()
    }
}

fn compare_side(out: &mut String, what: &str, a: Option<&Side>, b: Option<&Side>) {
    let (Some(a), Some(b)) = (a, b) else { return };
    let _ = writeln!(out, "{what}:");
    let _ = writeln!(out, "  {:<10} {:>12} {:>12} {:>8}", "", "A", "B", "B/A");
    let _ = writeln!(
        out,
        "  {:<10} {:>12.0} {:>12.0} {:>8}",
        "msg/s",
        a.msgs_per_s,
        b.msgs_per_s,
        ratio(b.msgs_per_s, a.msgs_per_s)
    );
    let _ = writeln!(
        out,
        "  {:<10} {:>12.1} {:>12.1} {:>8}",
        "MB/s",
        a.mb_per_s,
        b.mb_per_s,
        ratio(b.mb_per_s, a.mb_per_s)
    );
    if let (Some(pa), Some(pb)) = (&a.latency_us, &b.latency_us) {
        let rows: [Column; 6] = [
            ("p50 ms", |p| p.p50),
            ("p90 ms", |p| p.p90),
            ("p99 ms", |p| p.p99),
            ("p99.9 ms", |p| p.p99_9),
            ("p99.99 ms", |p| p.p99_99),
            ("max ms", |p| p.max),
        ];
        for (name, f) in rows {
            let _ = writeln!(
                out,
                "  {:<10} {:>12} {:>12} {:>8}",
                name,
                ms(f(pa)),
                ms(f(pb)),
                ratio(f(pb) as f64, f(pa) as f64)
            );
        }
    }
}

/// `sluice bench compare A.json B.json`: B's figures as ratios of A's.
pub fn compare(a: &BenchResult, b: &BenchResult) -> String {
    let mut out = format!(
        "A: {} ({}, {})\nB: {} ({}, {})\n",
        a.label,
        a.mode,
        preset(a),
        b.label,
        b.mode,
        preset(b)
    );
    if a.setup.preset != b.setup.preset || a.mode != b.mode {
        out.push_str("warning: the two runs differ in workload or mode\n");
    }
    compare_side(
        &mut out,
        "produce (send -> ack)",
        a.produce.as_ref(),
        b.produce.as_ref(),
    );
    compare_side(
        &mut out,
        "end to end (send -> consumed)",
        a.consume.as_ref(),
        b.consume.as_ref(),
    );
    out
}

fn preset(r: &BenchResult) -> String {
    r.setup
        .preset
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "custom".into())
}
