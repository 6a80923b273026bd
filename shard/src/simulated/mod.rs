//! A simulated world to run shards in: virtual time, a simulated mesh and
//! seeded choices, on one thread, with the log crate's in-memory disk.
//!
//! Owns: [`Clock`] and [`SimEnv`] (the time only moves when the driver
//! moves it; timers fire then), [`SimMesh`] (per-pair first-in first-out
//! queues with seeded delays; the driver picks which pair delivers next)
//! and [`Rng`] (every choice from one seed: core's SplitMix64), and [`node::Node`], a whole
//! node built from them for tests. The simulator (`sim/`), the shard's own
//! tests of its core (`shard/tests/`) and the handlers' tests
//! (`net/tests/`) build nodes from these; production never does.
//!
//! Invariant: nothing here reads the wall clock or does I/O, so a driver
//! that feeds the same choices gets the same run.

mod clock;
mod mesh;
pub mod node;
pub mod quorum;

pub use clock::{Clock, ClockTime, SimEnv};
pub use mesh::{SimMesh, QUEUE_MAX};
/// Every choice of a simulated run comes from the project's one seeded
/// generator.
pub use sluice_core::rng::SplitMix64 as Rng;
