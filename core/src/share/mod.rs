//! Share groups (KIP-932, "queues for Kafka"): members of one group share
//! the records of a partition, each record handed to one member at a time
//! and acknowledged one by one.
//!
//! Owns: the state machine of one share partition ([`partition`]): the
//! records in flight, their acquisition locks, delivery counts and
//! acknowledgements. Pure: no I/O, times are arguments. The group
//! membership, its assignment and the durable share-group state come on
//! top of it.

pub mod partition;
