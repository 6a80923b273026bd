//! A share group spread over a cluster (KIP-932): its share partitions are
//! held in memory by the brokers leading their partitions, and their state
//! is stored by the brokers leading its `__share_group_state` partitions.
//! A request about the whole group (DescribeShareGroupOffsets, and
//! DeleteGroups of a share group) is answered by its coordinator from its
//! own shards and from every other broker that leads a partition, each
//! asked with the same request marked [`TAG_THIS_BROKER`]: that broker
//! then answers with, or acts on, its own part only, and asks no one.
//!
//! Owns: the marker and which brokers are asked. Invariant: a request
//! with the marker never makes another broker call (no request loops).

use std::collections::BTreeSet;

use sluice_core::metadata::NO_LEADER;

use crate::kafka::context::Context;

/// A tagged field of a DescribeShareGroupOffsets request's group or of a
/// DeleteGroups request, between sluice brokers: this broker's part only.
/// Other brokers skip a tag they do not know.
pub const TAG_THIS_BROKER: i32 = 10_000;

/// Every other broker that leads a partition (the only ones that hold
/// share partitions or store their state).
pub fn other_brokers(ctx: &Context) -> BTreeSet<i32> {
    ctx.shard
        .metadata()
        .topics
        .values()
        .flat_map(|t| t.partitions.iter().map(|p| p.leader))
        .filter(|&leader| leader != NO_LEADER && leader != ctx.node_id)
        .collect()
}
