//! sluice-bench: the Kafka load generator (issue #5).
//!
//! Will own: the lean Kafka client the generator drives, latency histograms,
//! result files and plots. Empty until `sluice bench` lands; the log's own
//! benchmarks live in `log/benches`.
