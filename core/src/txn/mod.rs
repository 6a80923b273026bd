//! Transactions (KIP-98): what a partition keeps of them and how they end.
//!
//! Owns: the markers that end a transaction in a partition ([`marker`]),
//! and a partition's open, unstable and aborted transactions with its last
//! stable offset ([`partition`]). Pure: no I/O, offsets and times are
//! arguments.

pub mod coordinator;
pub mod marker;
pub mod partition;
pub mod records;
