//! A simulated network between controller voters on one thread, for tests
//! and the simulator.
//!
//! Owns: [`SimNet`], a [`PeerLink`] that delivers each request to the
//! addressed voter's [`Raft`] after a seeded delay, and may lose it, lose
//! its answer, deliver it twice, or refuse it because the two voters are
//! cut apart ([`SimNet::partition`]) or the target is down
//! ([`SimNet::remove`]).
//!
//! Invariants: every choice comes from the net's seed and delays run on the
//! thread's timebase (a virtual clock under test), so the same seed gives
//! the same run; a lost message is never answered (the caller's time-to-
//! live ends the call), as on a real network.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use openraft::AsyncRuntime;
use sluice_core::rng::SplitMix64;

use crate::network::{serve, LocalResult, PeerLink, RaftRequest, RaftResponse};
use crate::runtime::LocalRuntime;
use crate::{NodeId, Peer, Raft};

/// How unreliable the simulated network is.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Largest one-way delay (ms); each message gets a seeded delay up to it.
    pub max_delay_ms: u64,
    /// Chance (percent) that a request, or its answer, is lost.
    pub drop_percent: u64,
    /// Chance (percent) that a request is delivered twice.
    pub duplicate_percent: u64,
}

impl Faults {
    /// A network that delivers everything at once.
    pub const NONE: Faults = Faults {
        max_delay_ms: 0,
        drop_percent: 0,
        duplicate_percent: 0,
    };
}

#[derive(Default)]
struct State {
    voters: BTreeMap<NodeId, Rc<Raft>>,
    /// Pairs (low, high) that cannot reach each other.
    cut: BTreeSet<(NodeId, NodeId)>,
    delivered: u64,
    lost: u64,
}

/// The simulated network (clones share it).
#[derive(Clone)]
pub struct SimNet {
    state: Rc<RefCell<State>>,
    rng: Rc<RefCell<SplitMix64>>,
    faults: Rc<RefCell<Faults>>,
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl SimNet {
    /// A network whose choices come from `seed`.
    pub fn new(seed: u64, faults: Faults) -> SimNet {
        SimNet {
            state: Rc::default(),
            rng: Rc::new(RefCell::new(SplitMix64::new(seed))),
            faults: Rc::new(RefCell::new(faults)),
        }
    }

    /// Changes how unreliable the network is from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.borrow_mut() = faults;
    }

    /// Voter `id` is up and answers through `raft`.
    pub fn add(&self, id: NodeId, raft: Rc<Raft>) {
        self.state.borrow_mut().voters.insert(id, raft);
    }

    /// Voter `id` is down: requests to it are not answered.
    pub fn remove(&self, id: NodeId) {
        self.state.borrow_mut().voters.remove(&id);
    }

    /// Cuts every link between `side` and the other voters in `all`.
    pub fn partition(&self, side: &[NodeId], all: &[NodeId]) {
        let mut state = self.state.borrow_mut();
        for a in side {
            for b in all.iter().filter(|b| !side.contains(b)) {
                state.cut.insert(pair(*a, *b));
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.state.borrow_mut().cut.clear();
    }

    /// Messages delivered and lost so far.
    pub fn counts(&self) -> (u64, u64) {
        let state = self.state.borrow();
        (state.delivered, state.lost)
    }

    /// True unless the link between `a` and `b` is cut.
    pub fn connected(&self, a: NodeId, b: NodeId) -> bool {
        !self.state.borrow().cut.contains(&pair(a, b))
    }

    fn delay(&self) -> Duration {
        let max = self.faults.borrow().max_delay_ms;
        Duration::from_millis(self.rng.borrow_mut().below(max + 1))
    }

    fn lost(&self) -> bool {
        let percent = self.faults.borrow().drop_percent;
        let lost = self.rng.borrow_mut().chance(percent);
        if lost {
            self.state.borrow_mut().lost += 1;
        }
        lost
    }

    fn duplicated(&self) -> bool {
        let percent = self.faults.borrow().duplicate_percent;
        self.rng.borrow_mut().chance(percent)
    }
}

/// Never completes: a message nobody will answer.
async fn never<T>() -> T {
    std::future::pending().await
}

impl PeerLink for SimNet {
    fn call(
        &self,
        from: NodeId,
        to: NodeId,
        _peer: &Peer,
        request: RaftRequest,
    ) -> LocalResult<Result<RaftResponse, String>> {
        let net = self.clone();
        Box::pin(async move {
            if !net.connected(from, to) || net.lost() {
                return never().await;
            }
            LocalRuntime::sleep(net.delay()).await;
            // The link may have been cut, or the target gone, meanwhile.
            let target = net.state.borrow().voters.get(&to).cloned();
            let Some(target) = target else {
                return Err(format!("voter {to} is down"));
            };
            if !net.connected(from, to) {
                return never().await;
            }
            if net.duplicated() {
                let _ = serve(&target, request.clone()).await;
            }
            let response = serve(&target, request).await;
            net.state.borrow_mut().delivered += 1;
            if !net.connected(from, to) || net.lost() {
                return never().await;
            }
            LocalRuntime::sleep(net.delay()).await;
            Ok(response)
        })
    }
}
