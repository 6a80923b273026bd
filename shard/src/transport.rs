//! How a shard's messages reach the other shards.
//!
//! Owns: [`Transport`]: the channel mesh between executors in production,
//! or a [`Link`] the simulator provides (it queues each message and
//! delivers it, delayed and interleaved by its seed, in the order glommio's
//! channels allow: first in, first out per ordered pair of shards).

use std::rc::Rc;

use sluice_core::metadata::ShardId;

use crate::mesh::Senders;
use crate::message::ShardMsg;

/// A simulated mesh: takes a message for later delivery to `to`.
pub trait Link {
    /// Queues `msg` from `from` to `to`; an error when `to` is unreachable
    /// (its process is down).
    fn send(&self, from: ShardId, to: ShardId, msg: ShardMsg) -> Result<(), String>;
}

/// A shard's way to its peers.
pub enum Transport {
    /// glommio channels between pinned executors.
    Mesh(Senders),
    /// The simulator's mesh.
    Link(Rc<dyn Link>),
}

impl Transport {
    /// Sends `msg` to shard `to`, waiting while its channel is full.
    pub async fn send_to(&self, from: ShardId, to: ShardId, msg: ShardMsg) -> Result<(), String> {
        match self {
            Transport::Mesh(senders) => senders.send_to(to as usize, msg).await,
            Transport::Link(link) => link.send(from, to, msg),
        }
    }
}
