//! The `sluice` binary: a thin CLI that parses arguments and calls a crate.
//!
//! Subcommands arrive with the work that builds them (`serve` with the Kafka
//! API server, `bench` with the load generator); until then the binary only
//! reports its version and the configuration it would run with.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A Kafka-API-compatible, thread-per-core streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the effective configuration (defaults < --config file <
    /// SLUICE_* environment) as TOML.
    Config {
        /// A TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Config { config } => {
            let config = sluice_core::config::load::<()>(config.as_deref(), None)
                .context("loading configuration")?;
            print!(
                "{}",
                toml::to_string(&config).context("printing configuration")?
            );
        }
    }
    Ok(())
}
