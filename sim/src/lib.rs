//! sluice-sim: a deterministic simulator of one sluice node.
//!
//! Owns: seeded runs ([`run::run`]) of the node's real shard code
//! (`sluice_shard::Shard`: produce, group commit, fetch and long polls,
//! ListOffsets, retention (by size, and by the default 7 days as the
//! virtual clock passes them; with recycled segment files), the
//! controller and metadata application with its snapshots, calls between
//! shards, the group coordinator, the transaction coordinator and its
//! markers, share partitions and their state) over the log crate's
//! in-memory disk, a virtual clock and a simulated mesh
//! (`sluice_shard::simulated`), driven by simulated
//! clients ([`client`], [`groups`], [`consumers`], [`txns`], [`shares`]) and faults
//! (power loss with torn writes, SIGKILL, failing writes and syncs), with
//! the invariants of [`model`], [`groups::GroupModel`] (with
//! [`consumers::ConsumerModel`]),
//! [`txns::TxnModel`] and [`shares::ShareModel`] checked after every step
//! and after every restart.
//!
//! One seed is one run: every choice comes from the seed, time moves only
//! when the run moves it, and the shards of a process run on one glommio
//! executor whose scheduling is first-in first-out. Two runs of one seed
//! give one trace ([`trace::Trace`]), which a test checks.
//!
//! What it does not simulate (yet): the Kafka listener and the handlers in
//! `net/` (the clients make the shard calls the handlers make), share
//! group membership (share consumers read their partitions directly, and
//! die with their process), static members, slow disks, and several
//! processes (a cluster). Scheduling within a process is
//! glommio's own first-in first-out order, not a seeded one.

pub mod client;
pub mod consumers;
pub mod deliveries;
pub mod groups;
pub mod model;
pub mod node;
pub mod run;
pub mod shares;
pub mod trace;
pub mod txns;

pub use run::{run, Failure, Report, SimConfig};
