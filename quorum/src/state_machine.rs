//! The metadata state machine of a controller voter, and its snapshots.
//!
//! Owns: the [`MetadataState`] every committed command is applied to, the
//! last applied log id and membership, and the current snapshot (one
//! checkpoint file: the snapshot's position and membership, then the state
//! as JSON). An [`Applier`] hears of every applied command and every
//! installed snapshot, in order: the broker opens and closes partitions
//! from it.
//!
//! Invariants: applying is deterministic (a refused command is refused on
//! every voter and changes nothing); a snapshot is durable before openraft
//! is told of it (so the log before it may be purged); after a restart the
//! state is the snapshot's, and openraft re-applies the committed entries
//! after it.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use sluice_core::metadata::{MetadataCommand, MetadataState};
use sluice_log::checkpoint::Checkpoint;
use sluice_log::{Disk, LogError};

use crate::{Applied, Controller, LogId, Snapshot, SnapshotMeta, StoredMembership};

/// A boxed future on the current thread.
pub type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Told of every change to the state, in order.
pub trait Applier {
    /// `command`, the entry at Raft index `index`, was applied; `state` is
    /// the state after it.
    fn applied(&self, index: u64, command: &MetadataCommand, state: &MetadataState) -> LocalFuture;
    /// The state was replaced by a snapshot's.
    fn installed(&self, state: &MetadataState) -> LocalFuture;
}

/// A snapshot in its checkpoint file.
#[derive(Debug, Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct StoredSnapshot {
    /// [`SnapshotMeta`] as JSON.
    pub meta_json: String,
    /// [`MetadataState`] as JSON.
    pub data: Vec<u8>,
}

impl Checkpoint for StoredSnapshot {
    const KIND: u16 = 18;
}

const SNAPSHOT_FILE: &str = "snapshot.checkpoint";

struct Inner {
    disk: Disk,
    dir: PathBuf,
    state: RefCell<MetadataState>,
    last_applied: RefCell<Option<LogId>>,
    membership: RefCell<StoredMembership>,
    snapshot: RefCell<Option<(SnapshotMeta, Vec<u8>)>>,
    applier: Rc<dyn Applier>,
}

/// A voter's metadata state machine. Clones share it.
#[derive(Clone)]
pub struct MetadataMachine {
    inner: Rc<Inner>,
}

fn to_io(e: LogError) -> io::Error {
    io::Error::other(e.to_string())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl MetadataMachine {
    /// Opens the machine in `dir`: the state of its last snapshot, or an
    /// empty one.
    pub async fn open(
        disk: Disk,
        dir: PathBuf,
        applier: Rc<dyn Applier>,
    ) -> io::Result<MetadataMachine> {
        let stored = disk
            .read_checkpoint::<StoredSnapshot>(&dir.join(SNAPSHOT_FILE))
            .await
            .map_err(to_io)?;
        let mut machine = Inner {
            disk,
            dir,
            state: RefCell::new(MetadataState::default()),
            last_applied: RefCell::new(None),
            membership: RefCell::new(StoredMembership::default()),
            snapshot: RefCell::new(None),
            applier,
        };
        if let Some(stored) = stored {
            let meta: SnapshotMeta = serde_json::from_str(&stored.meta_json)
                .map_err(|e| invalid(format!("the snapshot's position: {e}")))?;
            let state: MetadataState = serde_json::from_slice(&stored.data)
                .map_err(|e| invalid(format!("the snapshot's state: {e}")))?;
            machine.state = RefCell::new(state);
            machine.last_applied = RefCell::new(meta.last_log_id);
            machine.membership = RefCell::new(meta.last_membership.clone());
            machine.snapshot = RefCell::new(Some((meta, stored.data)));
        }
        Ok(MetadataMachine {
            inner: Rc::new(machine),
        })
    }

    /// The state after every command applied so far.
    pub fn state(&self) -> std::cell::Ref<'_, MetadataState> {
        self.inner.state.borrow()
    }

    /// The last applied entry's log id.
    pub fn last_applied(&self) -> Option<LogId> {
        *self.inner.last_applied.borrow()
    }

    async fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let meta_json = serde_json::to_string(meta).map_err(|e| invalid(e.to_string()))?;
        let stored = StoredSnapshot {
            meta_json,
            data: data.to_vec(),
        };
        self.inner
            .disk
            .write_checkpoint(&self.inner.dir.join(SNAPSHOT_FILE), &stored)
            .await
            .map_err(to_io)?;
        *self.inner.snapshot.borrow_mut() = Some((meta.clone(), data.to_vec()));
        Ok(())
    }
}

impl RaftSnapshotBuilder<Controller> for MetadataMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (meta, data) = {
            let data = serde_json::to_vec(&*self.inner.state.borrow())
                .map_err(|e| invalid(e.to_string()))?;
            let meta = SnapshotMeta {
                last_log_id: *self.inner.last_applied.borrow(),
                last_membership: self.inner.membership.borrow().clone(),
            };
            (meta, data)
        };
        self.save_snapshot(&meta, &data).await?;
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<Controller> for MetadataMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = MetadataMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((
            *self.inner.last_applied.borrow(),
            self.inner.membership.borrow().clone(),
        ))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<Controller>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            *self.inner.last_applied.borrow_mut() = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => Ok(()),
                EntryPayload::Normal(command) => {
                    let applied = self.inner.state.borrow_mut().apply(&command);
                    if applied.is_ok() {
                        let told = {
                            let state = self.inner.state.borrow();
                            self.inner
                                .applier
                                .applied(entry.log_id.index(), &command, &state)
                        };
                        told.await;
                    }
                    applied
                }
                EntryPayload::Membership(membership) => {
                    *self.inner.membership.borrow_mut() =
                        StoredMembership::new(Some(entry.log_id), membership);
                    Ok(())
                }
            };
            if let Some(responder) = responder {
                responder.send(Applied(outcome));
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        data: Vec<u8>,
    ) -> Result<(), io::Error> {
        let state: MetadataState = serde_json::from_slice(&data)
            .map_err(|e| invalid(format!("a snapshot from the leader: {e}")))?;
        self.save_snapshot(meta, &data).await?;
        *self.inner.state.borrow_mut() = state;
        *self.inner.last_applied.borrow_mut() = meta.last_log_id;
        *self.inner.membership.borrow_mut() = meta.last_membership.clone();
        let told = {
            let state = self.inner.state.borrow();
            self.inner.applier.installed(&state)
        };
        told.await;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self
            .inner
            .snapshot
            .borrow()
            .as_ref()
            .map(|(meta, data)| Snapshot {
                meta: meta.clone(),
                snapshot: data.clone(),
            }))
    }
}
