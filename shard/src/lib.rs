//! sluice-shard: the per-core runtime (issue #3).
//!
//! Will own: executor start-up and pinning, the partition ownership table,
//! cross-core routing, per-shard memory budgets and the group coordinator's
//! and producer state's home. Empty until the Kafka API server lands; the
//! per-shard batch cache it will hand to each log already lives in
//! `sluice_log::cache`.
