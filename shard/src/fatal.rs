//! The one way out for a fault the node cannot serve through.
//!
//! Owns: stopping the whole process, with a clear message, when going on
//! would serve wrong data or hang: today, a metadata log that cannot be
//! opened or replayed (without it no shard knows which partitions exist).
//! A fault that touches one partition never comes here: that partition goes
//! offline alone and the rest keep serving.
//!
//! Why exit and not return: shards wait for each other at start-up, so one
//! shard that returns early would leave the others waiting for ever; and a
//! supervisor restarts a process that exited, after which recovery runs.

/// The exit status of a fatal stop.
pub const FATAL_EXIT_CODE: i32 = 3;

/// Logs `what` (also to stderr, in case logging is off) and exits the
/// process with [`FATAL_EXIT_CODE`].
pub fn fatal(what: &str) -> ! {
    tracing::error!(reason = what, "fatal: stopping the node");
    eprintln!("sluice: fatal: {what}");
    std::process::exit(FATAL_EXIT_CODE)
}
