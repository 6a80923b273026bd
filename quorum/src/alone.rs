//! A quorum of one: the node's own voter, as `sluice serve` runs it on a
//! single node.
//!
//! Owns: starting that voter from its directory (log, vote, snapshot),
//! initializing a new quorum with it as the only voter, electing it (a
//! quorum of one arms no timers, so nothing else would), and waiting until
//! it has applied every command committed before.
//!
//! Invariant: when [`start_alone`] returns, the state machine holds every
//! command the voter ever acknowledged, and the voter leads.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use sluice_log::Disk;

use crate::log_store::WallClock;
use crate::network::{LocalResult, PeerLink, RaftRequest, RaftResponse};
use crate::state_machine::Applier;
use crate::{MetadataMachine, Network, NodeId, Peer, QuorumConfig, Raft, RaftLogStore};

/// How long start-up waits for the voter to lead and apply.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A quorum of one has no peers to call.
struct NoPeers;

impl PeerLink for NoPeers {
    fn call(
        &self,
        _from: NodeId,
        to: NodeId,
        _peer: &Peer,
        _request: RaftRequest,
    ) -> LocalResult<Result<RaftResponse, String>> {
        Box::pin(async move { Err(format!("voter {to} is not in a quorum of one")) })
    }
}

/// A started voter.
pub struct Alone {
    pub raft: Raft,
    pub machine: MetadataMachine,
    /// The quorum was new: nothing was on disk before.
    pub fresh: bool,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Starts voter `me` of a quorum of one from `dir` on `disk` and waits
/// until it leads and has applied everything committed before.
pub async fn start_alone(
    disk: Disk,
    dir: PathBuf,
    me: NodeId,
    snapshot_commands: u64,
    applier: Rc<dyn Applier>,
    wall: WallClock,
) -> io::Result<Alone> {
    let log = RaftLogStore::open(disk.clone(), dir.clone(), wall).await?;
    let machine = MetadataMachine::open(disk, dir, applier).await?;
    let quorum = QuorumConfig {
        snapshot_commands,
        alone: true,
        ..QuorumConfig::default()
    };
    let config = Arc::new(quorum.raft_config().map_err(other)?);
    let network = Network::new(me, Rc::new(NoPeers));
    let raft = Raft::new(me, config, network, log, machine.clone())
        .await
        .map_err(other)?;
    let fresh = !raft.is_initialized().await.map_err(other)?;
    if fresh {
        raft.initialize(BTreeMap::from([(me, Peer::default())]))
            .await
            .map_err(other)?;
    }
    if raft.current_leader().await != Some(me) {
        raft.trigger().elect(false).await.map_err(other)?;
    }
    raft.wait(Some(START_TIMEOUT))
        .current_leader(me, "a quorum of one elects its voter")
        .await
        .map_err(other)?;
    raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex)
        .await
        .map_err(other)?;
    Ok(Alone {
        raft,
        machine,
        fresh,
    })
}
