//! Share groups (KIP-932, "queues for Kafka"): members of one group share
//! the records of a partition, each record handed to one member at a time
//! and acknowledged one by one.
//!
//! Owns: the state machine of one share partition ([`partition`]): the
//! records in flight, their acquisition locks, delivery counts and
//! acknowledgements; and its durable form, the records of
//! `__share_group_state` in Kafka's layout ([`state`]); and the group's
//! dead-letter topic (KIP-1191, [`dead_letter`]). Pure: no I/O,
//! times are arguments. The group membership and its assignment are
//! [`crate::group::share`].

pub mod dead_letter;
pub mod partition;
pub mod state;
