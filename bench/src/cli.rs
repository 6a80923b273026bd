//! `sluice bench ...`: the subcommands and what each calls.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::run::{run, Mode};
use crate::stats::BenchResult;
use crate::workload::RunArgs;

/// The subcommands of `sluice bench`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Producers only: throughput and send -> ack latency.
    Produce(RunArgs),
    /// Consumers only, from the start of the topic (catch-up: after
    /// producing a backlog).
    Consume(RunArgs),
    /// Producers and consumers together: produce latency and end-to-end
    /// (send -> consumed) latency.
    E2e(RunArgs),
    /// Draws latency spectra and throughput over time of result files (SVG
    /// and PNG).
    Plot {
        /// Result files (--json of a run).
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Directory for latency.svg/.png and throughput.svg/.png.
        #[arg(long, default_value = "target/bench-results/plots")]
        out: PathBuf,
    },
    /// Prints B's figures as ratios of A's.
    Compare { a: PathBuf, b: PathBuf },
}

fn load(path: &PathBuf) -> anyhow::Result<BenchResult> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a result file", path.display()))
}

/// Runs a `sluice bench` subcommand; returns what to print.
pub fn main(command: BenchCommand) -> anyhow::Result<String> {
    match command {
        BenchCommand::Produce(args) => run(Mode::Produce, &args).map(|_| String::new()),
        BenchCommand::Consume(args) => run(Mode::Consume, &args).map(|_| String::new()),
        BenchCommand::E2e(args) => run(Mode::EndToEnd, &args).map(|_| String::new()),
        BenchCommand::Plot { results, out } => {
            let results = results
                .iter()
                .map(load)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let files = crate::plot::plot(&results, &out)?;
            Ok(files
                .iter()
                .map(|f| format!("wrote {}\n", f.display()))
                .collect())
        }
        BenchCommand::Compare { a, b } => Ok(crate::report::compare(&load(&a)?, &load(&b)?)),
    }
}
