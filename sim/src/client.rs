//! Simulated clients: what the Kafka handlers ask of the shards, as tasks.
//!
//! Owns: one async function per client operation (produce, plain or
//! idempotent, with an optional retry of the same batch; fetch with a long
//! poll; ListOffsets; topic creation, deletion and growth), each making the
//! same shard calls the Kafka handlers in `net/` make for that request and
//! recording what it was promised in the [`Model`], or reporting a broken
//! promise as the run's failure.
//!
//! A client enters the node on a shard the run picks (its connection's
//! shard) and reaches the partition's owner through [`Shard::call`], as a
//! handler does: locally or over the simulated mesh.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use sluice_core::batch::BatchBuilder;
use sluice_core::{ErrorCode, Offset};
use sluice_log::SourceBuffer;
use sluice_shard::message::{
    AwaitDurable, Fetch, ListOffsets, ListedOffset, PartitionAppend, PartitionRead, Produce,
    Propose, Watch,
};
use sluice_shard::{Proposal, Shard, Unreachable};

use crate::consumers;
use crate::groups::{self, GroupModel};
use crate::model::{Model, Tp};
use crate::shares::{self, ShareModel};
use crate::trace::Trace;
use crate::txns::{self, TxnModel};

/// What every client task of one process lifetime shares.
pub struct Clients {
    pub shards: Vec<Rc<Shard>>,
    pub model: Rc<RefCell<Model>>,
    pub trace: Rc<RefCell<Trace>>,
    /// The first broken invariant a task found.
    pub failure: RefCell<Option<String>>,
    /// Operations started and not finished.
    pub in_flight: Cell<usize>,
    /// The idempotent producer: its id once allocated, and the next
    /// sequence per partition.
    pub producer: RefCell<Option<(i64, BTreeMap<Tp, i32>)>>,
    /// Partitions with an idempotent produce in flight (one at a time per
    /// partition, as a client with one in-flight request does).
    pub idempotent_busy: RefCell<BTreeSet<Tp>>,
    pub produced: Cell<u64>,
    pub acked: Cell<u64>,
    pub fetches: Cell<u64>,
    /// The promises about groups (shared with the run, which outlives
    /// this process).
    pub groups: Rc<RefCell<GroupModel>>,
    /// The promises about transactions (likewise).
    pub txns: Rc<RefCell<TxnModel>>,
    /// The promises about share groups (likewise).
    pub shares: Rc<RefCell<ShareModel>>,
}

impl Clients {
    pub fn new(
        shards: Vec<Rc<Shard>>,
        model: Rc<RefCell<Model>>,
        groups: Rc<RefCell<GroupModel>>,
        txns: Rc<RefCell<TxnModel>>,
        shares: Rc<RefCell<ShareModel>>,
        trace: Rc<RefCell<Trace>>,
    ) -> Rc<Clients> {
        Rc::new(Clients {
            shards,
            model,
            trace,
            failure: RefCell::new(None),
            in_flight: Cell::new(0),
            producer: RefCell::new(None),
            idempotent_busy: RefCell::new(BTreeSet::new()),
            produced: Cell::new(0),
            acked: Cell::new(0),
            fetches: Cell::new(0),
            groups,
            txns,
            shares,
        })
    }

    /// Records a broken invariant (the first one wins).
    pub fn fail(&self, message: String) {
        let mut failure = self.failure.borrow_mut();
        if failure.is_none() {
            *failure = Some(message);
        }
    }

    fn event(&self, text: String) {
        self.trace.borrow_mut().event(&text);
    }
}

/// A produce of `values` to `tp` through shard `entry`.
#[derive(Debug, Clone)]
pub struct ProduceOp {
    pub entry: u32,
    pub tp: Tp,
    pub values: Vec<Bytes>,
    pub acks: i16,
    /// With an idempotent producer's id and sequence.
    pub idempotent: bool,
    /// Sends the same batch a second time, as a client that did not hear
    /// the answer (idempotent only).
    pub retry: bool,
}

/// One client operation, its parameters chosen by the run.
#[derive(Debug, Clone)]
pub enum Op {
    Produce(ProduceOp),
    Fetch {
        entry: u32,
        tp: Tp,
        offset: Offset,
        max_wait_ms: u64,
    },
    ListOffsets {
        entry: u32,
        tp: Tp,
    },
    CreateTopic {
        entry: u32,
        name: String,
        partitions: i32,
        configs: Vec<(String, String)>,
    },
    DeleteTopic {
        entry: u32,
        name: String,
    },
    CreatePartitions {
        entry: u32,
        name: String,
        total: i32,
    },
    /// Create `__consumer_offsets` if it does not exist (FindCoordinator).
    EnsureOffsetsTopic {
        entry: u32,
    },
    SimpleCommit {
        entry: u32,
        group: String,
        tp: Tp,
        offset: Offset,
    },
    FetchOffsets {
        entry: u32,
        group: String,
    },
    Member {
        entry: u32,
        group: String,
        suffix: String,
        rounds: u32,
        leave: bool,
    },
    /// A member of a KIP-848 group ([`consumers::run_member`]).
    ConsumerMember(consumers::ConsumerMember),
    /// One transaction of `transactional_id`: `writes` produced, then
    /// committed or aborted; then, with `late`, one more write of the same
    /// producer to its first partition, not added again (which must be
    /// refused).
    Transaction {
        entry: u32,
        transactional_id: String,
        writes: Vec<(Tp, Vec<Bytes>)>,
        commit: bool,
        late: Option<Bytes>,
    },
    /// A read_committed read of a whole partition, checked.
    ReadCommitted {
        entry: u32,
        tp: Tp,
    },
    /// Create `__share_group_state` if it does not exist.
    EnsureShareStateTopic {
        entry: u32,
    },
    /// A share consumer ([`shares::ShareConsumer`]).
    ShareConsume(shares::ShareConsumer),
    /// At the end: every share partition used is consumed to its end and
    /// checked done with.
    ShareClose,
}

/// Runs `op` as a task of the current executor.
pub fn spawn(clients: &Rc<Clients>, op: Op) {
    let clients = clients.clone();
    clients.in_flight.set(clients.in_flight.get() + 1);
    glommio::spawn_local(async move {
        run(&clients, op).await;
        clients.in_flight.set(clients.in_flight.get() - 1);
    })
    .detach();
}

async fn run(c: &Rc<Clients>, op: Op) {
    match op {
        Op::Produce(op) => produce(c, op).await,
        Op::Fetch {
            entry,
            tp,
            offset,
            max_wait_ms,
        } => fetch(c, entry, tp, offset, max_wait_ms).await,
        Op::ListOffsets { entry, tp } => list_offsets(c, entry, tp).await,
        Op::CreateTopic {
            entry,
            name,
            partitions,
            configs,
        } => {
            let proposal = Proposal::CreateTopic {
                name: name.clone(),
                partitions,
                replication_factor: -1,
                assignments: Vec::new(),
                configs,
                validate_only: false,
            };
            let result = propose(c, entry, proposal).await;
            c.event(format!("create {name} {partitions}: {result:?}"));
            if result.is_ok() {
                c.model.borrow_mut().topics.insert(name, partitions);
            }
        }
        Op::DeleteTopic { entry, name } => {
            c.model.borrow_mut().deleting.insert(name.clone());
            let result = propose(c, entry, Proposal::DeleteTopic { name: name.clone() }).await;
            c.event(format!("delete {name}: {result:?}"));
            let mut model = c.model.borrow_mut();
            if result.is_ok() {
                model.deleting.remove(&name);
                model.topics.remove(&name);
                model.deleted.insert(name.clone());
                model.forget_topic(&name);
                c.shares.borrow_mut().forget_topic(&name);
            }
            // A refusal may come after the deletion was committed (the
            // node crashed, or its controller moved, before it answered):
            // the topic stays "being deleted" until a check after a
            // restart sees which it is.
        }
        Op::EnsureOffsetsTopic { entry } => groups::ensure_offsets_topic(c, entry).await,
        Op::SimpleCommit {
            entry,
            group,
            tp,
            offset,
        } => groups::simple_commit(c, entry, group, tp, offset).await,
        Op::FetchOffsets { entry, group } => groups::fetch_offsets(c, entry, group).await,
        Op::Member {
            entry,
            group,
            suffix,
            rounds,
            leave,
        } => groups::member(c, entry, group, suffix, rounds, leave).await,
        Op::ConsumerMember(member) => consumers::run_member(c, member).await,
        Op::Transaction {
            entry,
            transactional_id,
            writes,
            commit,
            late,
        } => txns::transaction(c, entry, transactional_id, writes, commit, late).await,
        Op::ReadCommitted { entry, tp } => txns::read_committed(c, entry, tp).await,
        Op::EnsureShareStateTopic { entry } => shares::ensure_state_topic(c, entry).await,
        Op::ShareConsume(consumer) => shares::consume(c, consumer).await,
        Op::ShareClose => shares::close_all(c).await,
        Op::CreatePartitions { entry, name, total } => {
            let proposal = Proposal::CreatePartitions {
                name: name.clone(),
                total,
                assignments: Vec::new(),
                validate_only: false,
            };
            let result = propose(c, entry, proposal).await;
            c.event(format!("grow {name} to {total}: {result:?}"));
            if result.is_ok() {
                let mut model = c.model.borrow_mut();
                if let Some(count) = model.topics.get_mut(&name) {
                    *count = (*count).max(total);
                }
            }
        }
    }
}

/// A proposal to the controller (shard 0), as the admin handlers send it.
async fn propose(c: &Clients, entry: u32, proposal: Proposal) -> Result<i64, ErrorCode> {
    let shard = &c.shards[entry as usize];
    match shard.call(0, Propose(proposal)).await {
        Ok(proposed) => proposed.map_err(|(code, _)| code),
        Err(Unreachable) => Err(ErrorCode::UnknownServerError),
    }
}

/// The owner of `tp` as the entry shard's metadata says, if it knows it.
fn owner(c: &Clients, entry: u32, tp: &Tp) -> Option<u32> {
    let shard = &c.shards[entry as usize];
    let broker = shard.config.node_id;
    shard.metadata().leader_shard(broker, &tp.0, tp.1).ok()
}

async fn produce(c: &Rc<Clients>, op: ProduceOp) {
    let ProduceOp {
        entry,
        tp,
        values,
        acks,
        idempotent,
        retry,
    } = op;
    let Some(to) = owner(c, entry, &tp) else {
        c.event(format!("produce {tp:?}: unknown here"));
        return;
    };
    let shard = c.shards[entry as usize].clone();
    let now = shard.env().now_ms();
    let mut builder = BatchBuilder::new(now);
    let mut producer = None;
    if idempotent {
        if !c.idempotent_busy.borrow_mut().insert(tp.clone()) {
            return;
        }
        producer = idempotent_producer(c, entry, &tp).await;
        let Some((id, sequence)) = producer else {
            c.idempotent_busy.borrow_mut().remove(&tp);
            return;
        };
        builder = builder.producer(id, 0, sequence);
        let mut model = c.model.borrow_mut();
        for value in &values {
            model.idempotent_values.insert(value.clone());
        }
    }
    for value in &values {
        builder = builder.record(None, Some(value));
    }
    let batch = builder.build();
    c.produced.set(c.produced.get() + 1);
    let first = send_produce(&shard, to, &tp, batch.clone(), acks, None, false).await;
    c.event(format!("produce {tp:?} x{}: {first:?}", values.len()));
    let mut acked_at = None;
    if let Ok(base_offset) = first {
        acked_at = Some(base_offset);
        record_ack(c, &tp, base_offset, &values);
    }
    if idempotent && retry {
        // The same batch again, as a client does when it did not hear the
        // answer: it must not be written twice.
        let second = send_produce(&shard, to, &tp, batch, acks, None, false).await;
        c.event(format!("retry {tp:?}: {second:?}"));
        match (first, second) {
            (Ok(a), Ok(b)) if a != b => c.fail(format!(
                "{tp:?}: an idempotent retry was acknowledged at {b}, the original at {a}"
            )),
            (Err(_), Ok(b)) => {
                acked_at = Some(b);
                record_ack(c, &tp, b, &values);
            }
            _ => {}
        }
    }
    if let Some((id, sequence)) = producer {
        let mut state = c.producer.borrow_mut();
        match (&mut *state, acked_at) {
            (Some((current, sequences)), Some(_)) if *current == id => {
                sequences.insert(tp.clone(), sequence + values.len() as i32);
            }
            // Not written, or not known whether: start over with a new
            // producer id, as a client does after such errors.
            (_, None) => *state = None,
            _ => {}
        }
        c.idempotent_busy.borrow_mut().remove(&tp);
    }
}

/// The producer id and next sequence for `tp`, allocating an id first.
async fn idempotent_producer(c: &Clients, entry: u32, tp: &Tp) -> Option<(i64, i32)> {
    let known = c
        .producer
        .borrow()
        .as_ref()
        .map(|(id, s)| (*id, s.get(tp).copied().unwrap_or(0)));
    if let Some(known) = known {
        return Some(known);
    }
    let id = propose(c, entry, Proposal::AllocateProducerId).await.ok()?;
    c.event(format!("producer id {id}"));
    let mut state = c.producer.borrow_mut();
    if state.is_none() {
        *state = Some((id, BTreeMap::new()));
    }
    state
        .as_ref()
        .map(|(id, s)| (*id, s.get(tp).copied().unwrap_or(0)))
}

fn record_ack(c: &Clients, tp: &Tp, base_offset: Offset, values: &[Bytes]) {
    let mut model = c.model.borrow_mut();
    if !model.topics.contains_key(&tp.0) || model.deleting.contains(&tp.0) {
        return;
    }
    c.acked.set(c.acked.get() + 1);
    if let Err(e) = model.ack(tp, base_offset, values) {
        drop(model);
        c.fail(e);
    }
}

/// A batch of `transactional_id`'s producer (acks=all) to `tp` through
/// `shard`, recorded in the model when acknowledged; its base offset.
pub(crate) async fn send_transactional(
    c: &Rc<Clients>,
    shard: &Rc<Shard>,
    tp: &Tp,
    batch: Bytes,
    transactional_id: &str,
    adds_partitions: bool,
) -> Result<Offset, ErrorCode> {
    let broker = shard.config.node_id;
    let to = shard
        .metadata()
        .leader_shard(broker, &tp.0, tp.1)
        .map_err(|_| ErrorCode::UnknownTopicOrPartition)?;
    c.produced.set(c.produced.get() + 1);
    let values: Vec<Bytes> = sluice_core::batch::BatchIter::new(batch.clone())
        .filter_map(Result::ok)
        .flat_map(|b| {
            sluice_core::records::RecordIter::new(&b)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|r| r.value.unwrap_or_default())
                .collect::<Vec<_>>()
        })
        .collect();
    let id = Some(transactional_id.to_owned());
    let result = send_produce(shard, to, tp, batch, -1, id, adds_partitions).await;
    c.event(format!(
        "transactional produce {tp:?} x{}: {result:?}",
        values.len()
    ));
    if let Ok(base) = result {
        record_ack(c, tp, base, &values);
    }
    result
}

/// Produce as the Kafka handler does it: append on the owner, then, when
/// the answer says so, wait until durable. The base offset, or the error.
async fn send_produce(
    shard: &Rc<Shard>,
    to: u32,
    tp: &Tp,
    batch: Bytes,
    acks: i16,
    transactional_id: Option<String>,
    adds_partitions: bool,
) -> Result<Offset, ErrorCode> {
    // Cut from a larger "frame", as the Kafka handler's records are: the
    // owner's cache and write buffer charge the frame (the cache's budget
    // assertion checks the charge).
    const FRAME_HEAD: usize = 64;
    let mut frame = bytes::BytesMut::zeroed(FRAME_HEAD + batch.len());
    frame[FRAME_HEAD..].copy_from_slice(&batch);
    let source = SourceBuffer {
        id: frame.as_ptr() as usize,
        len: frame.len(),
    };
    let request = Produce {
        acks,
        transactional_id,
        adds_partitions,
        appends: vec![PartitionAppend {
            topic: tp.0.clone(),
            partition: tp.1,
            records: frame.split_off(FRAME_HEAD),
            source: Some(source),
        }],
    };
    let unreachable = |_| ErrorCode::UnknownServerError;
    let results = shard.call(to, request).await.map_err(unreachable)?;
    let [result] = results[..] else {
        return Err(ErrorCode::UnknownServerError);
    };
    if result.error != ErrorCode::None {
        return Err(result.error);
    }
    if let Some(offset) = result.durable_at {
        let wait = AwaitDurable {
            partitions: vec![(tp.0.clone(), tp.1, offset, result.leader_epoch)],
            acks,
            timeout_ms: 30_000,
        };
        let errors = shard.call(to, wait).await.map_err(unreachable)?;
        match errors[..] {
            [ErrorCode::None] => {}
            [error] => return Err(error),
            _ => return Err(ErrorCode::UnknownServerError),
        }
    }
    Ok(result.base_offset)
}

/// Fetch as the Kafka handler does it: read; if nothing is there, park a
/// watch on the owner until data arrives or `max_wait_ms` passes; read
/// again. Checks what it got against the model.
async fn fetch(c: &Rc<Clients>, entry: u32, tp: Tp, offset: Offset, max_wait_ms: u64) {
    let Some(to) = owner(c, entry, &tp) else {
        return;
    };
    let shard = c.shards[entry as usize].clone();
    c.fetches.set(c.fetches.get() + 1);
    let mut parked = false;
    loop {
        let request = Fetch {
            reads: vec![PartitionRead {
                topic: tp.0.clone(),
                partition: tp.1,
                offset,
                max_bytes: 16 * 1024,
                replica_id: -1,
                log_start_offset: -1,
                current_leader_epoch: -1,
                read_committed: false,
            }],
            max_bytes: 64 * 1024,
            have_data: false,
        };
        let result = match shard.call(to, request).await {
            Ok(mut results) if results.len() == 1 => results.remove(0),
            other => {
                c.fail(format!("{tp:?}: a fetch got {other:?}"));
                return;
            }
        };
        c.event(format!(
            "fetch {tp:?}@{offset}: {:?} hw {} {}B",
            result.error,
            result.high_watermark,
            result.records.len()
        ));
        if result.error != ErrorCode::None {
            return;
        }
        if result.high_watermark < result.log_start_offset {
            c.fail(format!(
                "{tp:?}: high watermark {} below the log start {}",
                result.high_watermark, result.log_start_offset
            ));
        }
        if !result.records.is_empty() || parked || max_wait_ms == 0 {
            let checked = c.model.borrow_mut().check_fetched(
                &tp,
                offset,
                result.high_watermark,
                &result.records.to_bytes(),
            );
            if let Err(e) = checked {
                c.fail(e);
            }
            return;
        }
        let watch = Watch {
            watch: shard.next_watch_id(),
            partitions: vec![(tp.0.clone(), tp.1, offset)],
            max_wait_ms,
            replica: false,
            read_committed: false,
        };
        let _ = shard.call(to, watch).await;
        parked = true;
    }
}

async fn list_offsets(c: &Rc<Clients>, entry: u32, tp: Tp) {
    let Some(to) = owner(c, entry, &tp) else {
        return;
    };
    let acked_end = c.model.borrow().acked_end(&tp);
    let shard = c.shards[entry as usize].clone();
    let request = ListOffsets {
        partitions: vec![(tp.0.clone(), tp.1, -1)],
        read_committed: false,
    };
    let listed = shard
        .call(to, request)
        .await
        .map(|mut l| (l.len() == 1).then(|| l.remove(0)));
    match listed {
        Ok(Some(ListedOffset {
            error: ErrorCode::None,
            offset,
            ..
        })) => {
            c.event(format!("latest {tp:?}: {offset}"));
            let mut model = c.model.borrow_mut();
            model.checks.list_offsets += 1;
            // Only if the partition's promises still stand (no crash or
            // deletion since the question was asked).
            if offset < acked_end && model.acked_end(&tp) >= acked_end {
                drop(model);
                c.fail(format!(
                    "{tp:?}: ListOffsets(latest) = {offset}, but records up to {acked_end} were acknowledged before it was asked"
                ));
            }
        }
        Ok(Some(ListedOffset { error, .. })) => c.event(format!("latest {tp:?}: {error:?}")),
        other => c.fail(format!("{tp:?}: ListOffsets got {other:?}")),
    }
}

/// A record value unique in the whole run.
pub fn value(seed: u64, n: u64, len: usize) -> Bytes {
    let mut v = BytesMut::from(format!("s{seed}-v{n}-").as_bytes());
    v.resize(v.len().max(len), b'.');
    v.freeze()
}
