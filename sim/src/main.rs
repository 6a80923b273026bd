//! `sluice-sim`: runs seeded simulations of one node (see the crate docs).
//!
//! `sluice-sim --seeds N --steps M` runs seeds 1..=N (or from `--first-seed`),
//! `sluice-sim --seed S --steps M` replays one; a failure prints its seed,
//! the last events and the one command that replays it, and exits 1.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use sluice_sim::{run, SimConfig};

#[derive(Parser, Debug)]
#[command(
    name = "sluice-sim",
    about = "Deterministic simulation of a sluice node"
)]
struct Args {
    /// Runs this many seeds, from --first-seed on.
    #[arg(long, default_value_t = 16)]
    seeds: u64,
    /// The first seed of --seeds.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Runs this one seed only (a replay).
    #[arg(long)]
    seed: Option<u64>,
    /// Steps per seed.
    #[arg(long, default_value_t = 2000)]
    steps: u64,
    /// Turns on a deliberately broken rule, to see the simulator catch it:
    /// `acks-before-sync`.
    #[arg(long)]
    bug: Option<String>,
    /// Overrides the seed's number of shards (1-4).
    #[arg(long)]
    shards: Option<u32>,
    /// Overrides the seed's flush policy: `always` or `never`.
    #[arg(long)]
    flush: Option<String>,
    /// Prints every client event of the run as it happens.
    #[arg(long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let acks_before_sync = match args.bug.as_deref() {
        None => false,
        Some("acks-before-sync") => true,
        Some(other) => {
            eprintln!("unknown --bug {other}; known: acks-before-sync");
            return ExitCode::from(2);
        }
    };
    let flush_always = match args.flush.as_deref() {
        None => None,
        Some("always") => Some(true),
        Some("never") => Some(false),
        Some(other) => {
            eprintln!("unknown --flush {other}; known: always, never");
            return ExitCode::from(2);
        }
    };
    if args.shards.is_some_and(|n| !(1..=64).contains(&n)) {
        eprintln!("--shards must be 1 to 64");
        return ExitCode::from(2);
    }
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.first_seed..args.first_seed + args.seeds).collect(),
    };
    let started = Instant::now();
    let (mut steps, mut checks, mut restarts) = (0u64, 0u64, 0u64);
    for seed in &seeds {
        let mut config = SimConfig::for_seed(*seed, args.steps);
        config.acks_before_sync = acks_before_sync;
        if let Some(shards) = args.shards {
            config.shards = shards;
        }
        if let Some(always) = flush_always {
            config.flush_always = always;
        }
        config.verbose = args.verbose;
        match run(&config) {
            Ok(report) => {
                println!(
                    "seed {seed}: ok, {} steps, {} shards, flush {}, {} restarts ({} power losses, {} kills), {} disk faults, {} produces ({} acked), {} fetches, {} joins, {} commits acked, {} messages, {} invariant checks, trace {:016x} ({} events)",
                    report.steps,
                    config.shards,
                    if config.flush_always { "always" } else { "never" },
                    report.restarts,
                    report.power_losses,
                    report.kills,
                    report.disk_faults,
                    report.produces,
                    report.produces_acked,
                    report.fetches,
                    report.joins,
                    report.commits_acked,
                    report.messages,
                    report.checks.total(),
                    report.trace_hash,
                    report.trace_events,
                );
                steps += report.steps;
                checks += report.checks.total();
                restarts += report.restarts;
            }
            Err(failure) => {
                eprintln!("{failure}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "{} seeds passed: {steps} steps, {restarts} restarts, {checks} invariant checks in {:.1} s",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
