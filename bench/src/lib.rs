//! sluice-bench: `sluice bench`, a Kafka load generator that measures any
//! Kafka-compatible broker.
//!
//! Owns: the workloads and their presets ([`workload`]); record batches
//! built without per-message allocation ([`batch`]); producers with
//! pipelined requests and consumers, each on its own threads ([`produce`],
//! [`consume`]); a run's orchestration ([`run`]); histograms and the
//! result file ([`stats`]); tables and comparisons ([`report`]); plots
//! ([`plot`]); the subcommands ([`cli`]). It speaks only the Kafka protocol
//! (through `sluice-client`), so the same command measures sluice, Apache
//! Kafka or any other broker.

pub mod batch;
pub mod cli;
pub mod consume;
pub mod plot;
pub mod produce;
pub mod report;
pub mod run;
pub mod stats;
pub mod workload;
