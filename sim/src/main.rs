//! `sluice-sim`: runs seeded simulations of one node (see the crate docs).
//!
//! `sluice-sim --seeds N --steps M` runs seeds 1..=N (or from `--first-seed`),
//! each in a process of its own (a process that crashed and restarted its
//! node dozens of times leaves glommio executors behind, file descriptors
//! and all; a fresh process per seed keeps a long sweep within the
//! open-file limit). `sluice-sim --seed S --steps M` runs or replays one;
//! a failure prints its seed, the last events and the one command that
//! replays it, and exits 1.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use sluice_shard::BrokenRule;
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
    /// `acks-before-sync`, `no-txn-verification`, `no-epoch-bump`,
    /// `share-ack-unwritten`, `dead-letter-resent`,
    /// `delivery-counted-unanswered`, `members-unwritten`,
    /// `older-epoch-commits-taken`.
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
    let bug = match args
        .bug
        .as_deref()
        .map(|name| (name, BrokenRule::from_name(name)))
    {
        None => None,
        Some((_, Some(rule))) => Some(rule),
        Some((other, None)) => {
            let known: Vec<&str> = BrokenRule::ALL.iter().map(|r| r.name()).collect();
            eprintln!("unknown --bug {other}; known: {}", known.join(", "));
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
    let Some(seed) = args.seed else {
        return run_seeds_in_children(&args);
    };
    let seeds = [seed];
    let started = Instant::now();
    let (mut steps, mut checks, mut restarts) = (0u64, 0u64, 0u64);
    for seed in &seeds {
        let mut config = SimConfig::for_seed(*seed, args.steps);
        config.bug = bug;
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
                    "seed {seed}: ok, {} steps, {} shards, flush {}, {} restarts ({} power losses, {} kills), {} disk faults, {} produces ({} acked), {} fetches ({} from read-ahead), {} retention passes ({} segments recycled), {} joins, {} consumer heartbeats, {} commits acked, {} transactions committed and {} aborted, {} share records acquired ({} acknowledged, {} dead letters), {} messages, {} invariant checks, trace {:016x} ({} events)",
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
                    report.read_aheads_used,
                    report.retention_passes,
                    report.segments_recycled,
                    report.joins,
                    report.consumer_heartbeats,
                    report.commits_acked,
                    report.transactions_committed,
                    report.transactions_aborted,
                    report.share_acquired,
                    report.share_acknowledged,
                    report.share_dead_letters,
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

/// Runs every seed of `--seeds` as `sluice-sim --seed S` in a child
/// process, one after the other, printing each one's line and the totals.
fn run_seeds_in_children(args: &Args) -> ExitCode {
    let started = Instant::now();
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("cannot find this program to run the seeds: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut steps, mut restarts, mut checks) = (0u64, 0u64, 0u64);
    let seeds = args.first_seed..args.first_seed + args.seeds;
    for seed in seeds.clone() {
        let mut child = std::process::Command::new(&exe);
        child.args([
            "--seed",
            &seed.to_string(),
            "--steps",
            &args.steps.to_string(),
        ]);
        if let Some(shards) = args.shards {
            child.args(["--shards", &shards.to_string()]);
        }
        if let Some(flush) = &args.flush {
            child.args(["--flush", flush]);
        }
        if let Some(bug) = &args.bug {
            child.args(["--bug", bug]);
        }
        if args.verbose {
            child.arg("--verbose");
        }
        let output = match child.stderr(std::process::Stdio::inherit()).output() {
            Ok(output) => output,
            Err(e) => {
                eprintln!("seed {seed}: could not run: {e}");
                return ExitCode::FAILURE;
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines() {
            match totals(line) {
                Some((s, r, c)) => {
                    steps += s;
                    restarts += r;
                    checks += c;
                }
                None => println!("{line}"),
            }
        }
        if !output.status.success() {
            return ExitCode::FAILURE;
        }
    }
    println!(
        "{} seeds passed: {steps} steps, {restarts} restarts, {checks} invariant checks in {:.1} s",
        seeds.count(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// (steps, restarts, checks) from a run's closing line ("1 seeds passed:
/// S steps, R restarts, C invariant checks in T s").
fn totals(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.split_once(" seeds passed: ")?.1;
    let mut numbers = rest
        .split(", ")
        .filter_map(|part| part.split(' ').next()?.parse::<u64>().ok());
    Some((numbers.next()?, numbers.next()?, numbers.next()?))
}
