//! Command-line tools that talk to a broker over the Kafka protocol (any
//! Kafka-compatible broker, not only sluice): `sluice group ...`.

pub mod group;
