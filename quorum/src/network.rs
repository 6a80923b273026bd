//! Messages between controller voters, and the seam to what carries them.
//!
//! Owns: [`RaftRequest`] and [`RaftResponse`] (the three Raft calls:
//! append entries, vote, whole snapshot), [`PeerLink`] (a carrier: the
//! internal TCP listener in production, [`crate::simulated::SimNet`] in
//! tests and the simulator), openraft's network factory over a link
//! ([`Network`]), and [`serve`], which answers a request from a peer.
//!
//! Invariants: every call ends: with the peer's answer, or with an
//! unreachable error once openraft's time-to-live for it passes (a lost
//! message never holds a replication stream); a request is answered only
//! by the voter it was addressed to.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AsyncRuntime, OptionalSend, RaftNetworkFactory, RaftNetworkV2};
use serde::{Deserialize, Serialize};

use crate::runtime::LocalRuntime;
use crate::{Controller, NodeId, Peer, Raft, Snapshot, SnapshotMeta, Vote};

/// A call from one voter to another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<Controller>),
    Vote(VoteRequest<Controller>),
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
}

impl RaftRequest {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RaftRequest::AppendEntries(_) => "append_entries",
            RaftRequest::Vote(_) => "vote",
            RaftRequest::Snapshot { .. } => "snapshot",
        }
    }
}

/// The answer to a [`RaftRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RaftResponse {
    AppendEntries(AppendEntriesResponse<Controller>),
    Vote(VoteResponse<Controller>),
    Snapshot(SnapshotResponse<Controller>),
    /// The voter could not handle it (it is shutting down).
    Refused(String),
}

/// A future on the current thread.
pub type LocalResult<T> = Pin<Box<dyn Future<Output = T>>>;

/// Carries a request to a peer voter and brings back its answer.
pub trait PeerLink {
    /// Sends `request` from voter `from` to voter `to` (listening at
    /// `peer`); an error when it cannot be delivered or answered.
    fn call(
        &self,
        from: NodeId,
        to: NodeId,
        peer: &Peer,
        request: RaftRequest,
    ) -> LocalResult<Result<RaftResponse, String>>;
}

/// Answers `request` with voter `raft`.
pub async fn serve(raft: &Raft, request: RaftRequest) -> RaftResponse {
    let refused = |e: &dyn std::fmt::Display| RaftResponse::Refused(e.to_string());
    match request {
        RaftRequest::AppendEntries(rpc) => match raft.append_entries(rpc).await {
            Ok(r) => RaftResponse::AppendEntries(r),
            Err(e) => refused(&e),
        },
        RaftRequest::Vote(rpc) => match raft.vote(rpc).await {
            Ok(r) => RaftResponse::Vote(r),
            Err(e) => refused(&e),
        },
        RaftRequest::Snapshot { vote, meta, data } => {
            let snapshot = Snapshot {
                meta,
                snapshot: data,
            };
            match raft.install_full_snapshot(vote, snapshot).await {
                Ok(r) => RaftResponse::Snapshot(r),
                Err(e) => refused(&e),
            }
        }
    }
}

/// openraft's network factory: one client per peer over one link.
#[derive(Clone)]
pub struct Network {
    me: NodeId,
    link: Rc<dyn PeerLink>,
}

impl Network {
    /// The network of voter `me` over `link`.
    pub fn new(me: NodeId, link: Rc<dyn PeerLink>) -> Network {
        Network { me, link }
    }
}

impl RaftNetworkFactory<Controller> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Peer) -> PeerClient {
        PeerClient {
            me: self.me,
            target,
            peer: node.clone(),
            link: self.link.clone(),
        }
    }
}

/// Calls to one peer.
pub struct PeerClient {
    me: NodeId,
    target: NodeId,
    peer: Peer,
    link: Rc<dyn PeerLink>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct LinkError(String);

fn unreachable(message: String) -> Unreachable<Controller> {
    Unreachable::new(&LinkError(message))
}

impl PeerClient {
    async fn call(&self, request: RaftRequest, option: &RPCOption) -> Result<RaftResponse, String> {
        let kind = request.kind();
        let call = self.link.call(self.me, self.target, &self.peer, request);
        match LocalRuntime::timeout(option.hard_ttl(), call).await {
            Ok(Ok(RaftResponse::Refused(e))) => Err(format!("{kind} refused: {e}")),
            Ok(result) => result,
            Err(_) => Err(format!("{kind} to voter {} timed out", self.target)),
        }
    }
}

impl RaftNetworkV2<Controller> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Controller>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<Controller>, RPCError<Controller>> {
        match self.call(RaftRequest::AppendEntries(rpc), &option).await {
            Ok(RaftResponse::AppendEntries(r)) => Ok(r),
            Ok(other) => Err(unreachable(format!("append_entries answered with {other:?}")).into()),
            Err(e) => Err(unreachable(e).into()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Controller>,
        option: RPCOption,
    ) -> Result<VoteResponse<Controller>, RPCError<Controller>> {
        match self.call(RaftRequest::Vote(rpc), &option).await {
            Ok(RaftResponse::Vote(r)) => Ok(r),
            Ok(other) => Err(unreachable(format!("vote answered with {other:?}")).into()),
            Err(e) => Err(unreachable(e).into()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<Controller>, StreamingError<Controller>> {
        let request = RaftRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        let call = self.call(request, &option);
        match LocalRuntime::select2(Box::pin(call), Box::pin(cancel)).await {
            openraft::async_runtime::Select2::First(Ok(RaftResponse::Snapshot(r))) => Ok(r),
            openraft::async_runtime::Select2::First(Ok(other)) => {
                Err(unreachable(format!("snapshot answered with {other:?}")).into())
            }
            openraft::async_runtime::Select2::First(Err(e)) => Err(unreachable(e).into()),
            openraft::async_runtime::Select2::Second(closed) => Err(closed.into()),
        }
    }
}
