//! This node's member of the controller quorum: started from its
//! directory, the quorum formed at the first start, and brought up to date
//! before the node serves.
//!
//! Owns: [`open_member`] (the log, vote and snapshot opened; a new quorum
//! initialized with the configured voters, identically on every voter, as
//! openraft allows), [`Member::ready`] (a quorum of one elects its voter,
//! which arms no timers and would never time out into an election; a voter
//! of several waits for a leader and applies what it learned was
//! committed), and [`start_alone`], the single-node case.
//!
//! Invariant: once `ready` returns, the state machine holds every command
//! this member knows to be committed, and a leader is known.

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
use crate::{metrics_of, MetadataMachine, Network, NodeId, Peer, QuorumConfig, Raft, RaftLogStore};

/// How long start-up waits for a leader and the committed commands.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A quorum of one has no peers to call.
pub struct NoPeers;

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

/// What a member is started from.
pub struct MemberParts {
    pub disk: Disk,
    pub dir: PathBuf,
    pub me: NodeId,
    /// Every voter of the quorum, this one included.
    pub voters: BTreeMap<NodeId, Peer>,
    pub snapshot_commands: u64,
    pub applier: Rc<dyn Applier>,
    pub wall: WallClock,
    pub link: Rc<dyn PeerLink>,
}

/// A started member.
pub struct Member {
    pub raft: Rc<Raft>,
    pub machine: MetadataMachine,
    pub me: NodeId,
    /// The quorum is this voter alone.
    pub alone: bool,
    /// The quorum was new: nothing was on disk before.
    pub fresh: bool,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Opens the member and, on a first start, forms the quorum.
pub async fn open_member(parts: MemberParts) -> io::Result<Member> {
    let MemberParts {
        disk,
        dir,
        me,
        voters,
        snapshot_commands,
        applier,
        wall,
        link,
    } = parts;
    if !voters.contains_key(&me) {
        return Err(other(format!(
            "node {me} is not one of the controller voters {:?}",
            voters.keys().collect::<Vec<_>>()
        )));
    }
    let alone = voters.len() == 1;
    let log = RaftLogStore::open(disk.clone(), dir.clone(), wall).await?;
    let machine = MetadataMachine::open(disk, dir, applier).await?;
    let quorum = QuorumConfig {
        snapshot_commands,
        alone,
        ..QuorumConfig::default()
    };
    let config = Arc::new(quorum.raft_config().map_err(other)?);
    let raft = Raft::new(me, config, Network::new(me, link), log, machine.clone())
        .await
        .map_err(other)?;
    let fresh = !raft.is_initialized().await.map_err(other)?;
    if fresh {
        raft.initialize(voters).await.map_err(other)?;
    }
    Ok(Member {
        raft: Rc::new(raft),
        machine,
        me,
        alone,
        fresh,
    })
}

impl Member {
    /// Waits until a leader is known and this member applied everything it
    /// knows to be committed (a quorum of one: elects itself first).
    pub async fn ready(&self) -> io::Result<()> {
        let raft = &self.raft;
        if self.alone {
            if raft.current_leader().await != Some(self.me) {
                raft.trigger().elect(false).await.map_err(other)?;
            }
            raft.wait(Some(START_TIMEOUT))
                .current_leader(self.me, "a quorum of one elects its voter")
                .await
                .map_err(other)?;
            raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex)
                .await
                .map_err(other)?;
            return Ok(());
        }
        raft.wait(Some(START_TIMEOUT))
            .metrics(
                |m| {
                    m.current_leader.is_some()
                        && m.local_committed.is_some()
                        && m.last_applied >= m.local_committed
                },
                "a leader is known and what it committed is applied",
            )
            .await
            .map_err(other)?;
        Ok(())
    }

    /// The leader this member knows of, with its address.
    pub fn leader(&self) -> Option<(NodeId, Peer)> {
        let metrics = metrics_of(&self.raft);
        let leader = metrics.current_leader?;
        let peer = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()?;
        Some((leader, peer))
    }
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
) -> io::Result<Member> {
    let member = open_member(MemberParts {
        disk,
        dir,
        me,
        voters: BTreeMap::from([(me, Peer::default())]),
        snapshot_commands,
        applier,
        wall,
        link: Rc::new(NoPeers),
    })
    .await?;
    member.ready().await?;
    Ok(member)
}
