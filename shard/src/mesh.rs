//! The channels between shards: one bounded channel for each ordered pair.
//!
//! Owns: making every channel on the starting thread and handing each
//! executor its ends ([`MeshEnds`]), connecting them on the executor, and
//! sending to a peer by shard id.
//!
//! Why not glommio's `MeshBuilder`: its builder shares one
//! `Rc<RwLock<Vec<Peer>>>` between executor threads (with an `unsafe impl
//! Send`), and every executor clones and drops it while joining. Rc counts
//! are not atomic, so concurrent joins corrupt the count and the heap: a
//! use-after-free that AddressSanitizer reports in `MeshBuilder::join_with`,
//! and that showed up as a rare "malloc(): unaligned tcache chunk detected"
//! at start-up. Here each end is moved to exactly one thread and never
//! shared, so no reference count is touched from two threads.
//!
//! Invariants: shard `i` holds the sending end of channel (i, j) and shard
//! `j` its receiving end, for every i != j; a full channel makes the sender
//! wait (backpressure across cores).

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

use crate::message::ShardMsg;

/// One shard's unconnected channel ends.
pub struct MeshEnds {
    id: usize,
    senders: Vec<Option<SharedSender<ShardMsg>>>,
    receivers: Vec<Option<SharedReceiver<ShardMsg>>>,
}

/// The ends of every shard, index = shard id.
pub fn build(shards: usize, capacity: usize) -> Vec<MeshEnds> {
    let mut ends: Vec<MeshEnds> = (0..shards)
        .map(|id| MeshEnds {
            id,
            senders: (0..shards).map(|_| None).collect(),
            receivers: (0..shards).map(|_| None).collect(),
        })
        .collect();
    for from in 0..shards {
        for to in 0..shards {
            if from != to {
                let (tx, rx) = shared_channel::new_bounded(capacity);
                ends[from].senders[to] = Some(tx);
                ends[to].receivers[from] = Some(rx);
            }
        }
    }
    ends
}

/// A shard's connected sending ends.
pub struct Senders {
    id: usize,
    senders: Vec<Option<ConnectedSender<ShardMsg>>>,
}

impl Senders {
    /// This shard's id.
    pub fn peer_id(&self) -> usize {
        self.id
    }

    /// Sends `msg` to shard `to` (waiting while its channel is full); an
    /// error when there is no channel to `to` or it closed.
    pub async fn send_to(&self, to: usize, msg: ShardMsg) -> Result<(), String> {
        match self.senders.get(to).and_then(Option::as_ref) {
            Some(sender) => sender.send(msg).await.map_err(|e| e.to_string()),
            None => Err(format!("no channel to shard {to}")),
        }
    }
}

impl MeshEnds {
    /// Connects every end on the calling executor. The connections are
    /// made by concurrent tasks: each completes only when its peer connects
    /// the other end, in whatever order the peers get to it.
    pub async fn connect(self) -> (Senders, Vec<(usize, ConnectedReceiver<ShardMsg>)>) {
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|end| end.map(|e| glommio::spawn_local(e.connect()).detach()))
            .collect();
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .enumerate()
            .filter_map(|(from, end)| {
                end.map(|e| (from, glommio::spawn_local(e.connect()).detach()))
            })
            .collect();
        let mut connected = Vec::with_capacity(senders.len());
        for sender in senders {
            connected.push(match sender {
                Some(task) => task.await,
                None => None,
            });
        }
        let mut streams = Vec::with_capacity(receivers.len());
        for (from, task) in receivers {
            if let Some(receiver) = task.await {
                streams.push((from, receiver));
            }
        }
        (
            Senders {
                id: self.id,
                senders: connected,
            },
            streams,
        )
    }
}
