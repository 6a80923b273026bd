//! Transactions (KIP-98): what a partition keeps of them and how they end.
//!
//! Owns: the markers that end a transaction in a partition ([`marker`]),
//! a partition's open, unstable and aborted transactions with its last
//! stable offset ([`partition`]), the coordinator's state machine
//! ([`coordinator`]), and the leader's check that a transactional write
//! belongs to an ongoing transaction ([`verification`]). Pure: no I/O,
//! offsets and times are arguments.

pub mod coordinator;
pub mod marker;
pub mod partition;
pub mod records;
pub mod verification;
