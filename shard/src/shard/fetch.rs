//! Fetch on the owner shard: reading a Fetch's partitions within its byte
//! budget, and parking a long poll until one of them has new data.
//!
//! A Fetch sends one [`Fetch`](crate::message::Fetch) per
//! owner shard, with the budget that is left; the owner reads its partitions
//! in the request's order and never returns more than that budget (beyond
//! the one oversized first batch Kafka allows when a Fetch has no data yet).
//!
//! A long poll is one [`Watch`](crate::message::Watch) per
//! owner shard. Invariant: a watch is in [`Shard`]'s watch table exactly
//! while it waits; it leaves at its deadline, at the first change of one of
//! its partitions, or at a `CancelWatch`, so parked polls cost memory only
//! while they are parked and never accumulate on quiet partitions.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::join_all;

use crate::message::{CancelWatch, Fetch, PartitionRead, RecordSet, Watch};
use sluice_core::batch::last_offset_in;

use super::replication;
use crate::notify::Changed;

use super::*;

impl Shard {
    /// [`Fetch`]: reads `reads` within `max_bytes` in total, answered in
    /// order as if read one after another.
    ///
    /// The reads run at once, so their disk reads overlap (a consumer
    /// catching up on 16 partitions waited for 16 reads in turn): each read
    /// is planned the budget it would get if every read before it filled
    /// its own, and the reads that get none run afterwards, in order, with
    /// what the others left. Only the first planned read may return a batch
    /// larger than its budget (Kafka's "at least one batch", for a Fetch
    /// with no data yet); a later one that returned nothing for want of it
    /// is read again, in order, if no read before it returned data. The
    /// answers are then taken in order under the budget: a read past what
    /// is left once an earlier one returned data waits for the next Fetch
    /// (where reading one after another could have returned part of it).
    pub(crate) async fn fetch_many(self: &Rc<Self>, op: Fetch) -> Vec<FetchResult> {
        let Fetch {
            reads,
            max_bytes,
            mut have_data,
        } = op;
        let mut unplanned = max_bytes;
        let planned: Vec<usize> = reads
            .iter()
            .map(|read| {
                let limit = read.max_bytes.min(unplanned);
                unplanned -= limit;
                limit
            })
            .collect();
        let first_planned = planned.iter().position(|&limit| limit > 0);
        let had_data = have_data;
        let early_at_least_one = move |i: usize| !had_data && Some(i) == first_planned;
        let mut early = join_all(
            reads
                .iter()
                .zip(&planned)
                .enumerate()
                .filter(|(_, (_, &limit))| limit > 0)
                .map(|(i, (read, &limit))| self.fetch_local(read, limit, early_at_least_one(i))),
        )
        .await
        .into_iter();
        let mut remaining = max_bytes;
        let mut out = Vec::with_capacity(reads.len());
        for (i, (read, limit)) in reads.iter().zip(planned).enumerate() {
            let mut result = if limit > 0 {
                early.next().expect("one early read per planned read")
            } else {
                self.fetch_local(read, read.max_bytes.min(remaining), !have_data)
                    .await
            };
            // Only a consumer's read withholds an oversized batch (a
            // follower's keeps it: `fetch_local`), so only it is read again.
            if limit > 0
                && read.replica_id < 0
                && !have_data
                && !early_at_least_one(i)
                && result.records.is_empty()
                && result.error == ErrorCode::None
            {
                result = self
                    .fetch_local(read, read.max_bytes.min(remaining), true)
                    .await;
            }
            let got = result.records.len();
            if got > remaining && have_data {
                // The log returns at least one batch; one that does not fit
                // what is left waits for the next Fetch (Kafka's rule).
                result.records = RecordSet::default();
            }
            let got = result.records.len();
            self.metrics.borrow_mut().bytes_out(&read.topic, got);
            remaining = remaining.saturating_sub(got);
            have_data |= got > 0;
            out.push(result);
        }
        out
    }

    /// One partition's read: whole batches from its offset, up to
    /// `max_bytes`; a first batch larger than that only when
    /// `at_least_one` or for a follower (else nothing). A consumer reads up to the high watermark; a
    /// follower (`replica_id` set) up to the log end, and its fetch offset
    /// tells the leader how far it got.
    async fn fetch_local(
        self: &Rc<Self>,
        read: &PartitionRead,
        max_bytes: usize,
        at_least_one: bool,
    ) -> FetchResult {
        let (topic, partition, offset) = (read.topic.as_str(), read.partition, read.offset);
        let Some(p) = self.partition(topic, partition) else {
            return FetchResult::failed(self.absence_error(topic, partition));
        };
        if p.log.is_offline() {
            return FetchResult::failed(ErrorCode::KafkaStorageError);
        }
        let epoch_check = replication::check_leader_epoch(
            read.current_leader_epoch,
            p.role.borrow().leader_epoch(),
        );
        if epoch_check != ErrorCode::None {
            return FetchResult::failed(epoch_check);
        }
        let replica = read.replica_id >= 0;
        if replica && offset <= p.log.log_end_offset() {
            let at = (offset, read.log_start_offset);
            let error = self.on_replica_fetch((topic, partition), &p, read.replica_id, at);
            if error != ErrorCode::None {
                return FetchResult::failed(error);
            }
        }
        let hw = p.high_watermark();
        // Consumers never see past what was appended.
        assert!(
            hw <= p.log.log_end_offset(),
            "{topic}/{partition}: high watermark {hw} past the log end {}",
            p.log.log_end_offset()
        );
        let lso = p.log.last_stable_offset(hw);
        let upto = if replica {
            p.log.log_end_offset()
        } else if read.read_committed {
            lso
        } else {
            hw
        };
        let mut result = FetchResult {
            error: ErrorCode::None,
            high_watermark: hw,
            last_stable_offset: lso,
            log_start_offset: p.log.log_start_offset(),
            records: RecordSet::default(),
            aborted: Vec::new(),
        };
        if max_bytes == 0 && !at_least_one {
            // The budget is spent: report the partition's offsets only,
            // unless the offset itself is out of range.
            if offset < p.log.log_start_offset() || offset > p.log.log_end_offset() {
                result.error = ErrorCode::OffsetOutOfRange;
            }
            return result;
        }
        match p
            .log
            .read_record_pieces(offset, max_bytes.max(1), upto, read.max_bytes)
            .await
        {
            Ok((pieces, copied)) => {
                result.records = RecordSet::new(pieces);
                if !at_least_one && !replica && result.records.len() > max_bytes {
                    // The log returns at least one batch; past the budget,
                    // only a consumer's first partition with data may have
                    // it (Kafka's `minOneMessage`). A follower keeps it (what
                    // fits the Fetch's budget, `fetch_many` checks): this
                    // broker's replica fetcher asks for its partitions in
                    // the same order every time, so a batch over the
                    // partition budget behind a busy partition would never
                    // replicate.
                    result.records = RecordSet::default();
                }
                let counter = &self.counters.fetch_record_bytes_copied;
                counter.set(counter.get() + copied as u64);
                if read.read_committed && !result.records.is_empty() {
                    // Those the returned batches overlap: up to their end,
                    // not the LSO (older segments' indexes are read up to
                    // there, not beyond).
                    let to = result
                        .records
                        .pieces()
                        .last()
                        .and_then(|piece| last_offset_in(piece))
                        .map_or(upto, |last| (last + 1).min(upto));
                    match p.log.aborted_between(offset, to).await {
                        Ok(aborted) => result.aborted = aborted,
                        Err(e) => {
                            // Records without their aborted transactions
                            // would show aborted data as committed.
                            tracing::warn!(topic, partition, error = %e, "reading aborted transactions failed");
                            result.records = RecordSet::default();
                            result.error = e.error_code();
                        }
                    }
                }
            }
            Err(e) => result.error = e.error_code(),
        }
        result
    }

    /// A new id for a [`Watch`] sent from this shard: unique
    /// across shards (the shard id is in the high bits).
    pub fn next_watch_id(&self) -> u64 {
        let n = self.next_watch_id.get();
        self.next_watch_id.set(n + 1);
        ((self.id as u64) << 48) | (n & ((1 << 48) - 1))
    }

    /// [`Watch`]: parks until one of its partitions has data past its
    /// offset, for at most its `max_wait_ms`, or until cancelled.
    pub(crate) async fn watch(&self, op: Watch) {
        let Watch {
            watch,
            partitions,
            max_wait_ms,
            replica,
            read_committed,
        } = op;
        let max_wait = Duration::from_millis(max_wait_ms);
        let owned: Vec<Rc<OwnedPartition>> = partitions
            .iter()
            .filter_map(|(topic, partition, offset)| {
                self.partition(topic, *partition).filter(|p| {
                    let end = if replica {
                        p.log.log_end_offset()
                    } else if read_committed {
                        p.log.last_stable_offset(p.high_watermark())
                    } else {
                        p.high_watermark()
                    };
                    end <= *offset
                })
            })
            .collect();
        if owned.len() < partitions.len() {
            // A partition already has data (or is gone): answer now.
            return;
        }
        let cancel = Rc::new(Notify::default());
        self.watches.borrow_mut().insert(watch, cancel.clone());
        let _leave = WatchEntry { shard: self, watch };
        let changes = AnyChanged(
            owned
                .iter()
                .map(|p| {
                    if replica {
                        p.appended.changed()
                    } else {
                        p.hw_changed.changed()
                    }
                })
                .collect(),
        );
        let woken = futures_lite::future::or(changes, cancel.changed());
        futures_lite::future::or(woken, self.env.sleep(max_wait)).await;
    }

    /// [`CancelWatch`]: ends a parked watch now (its Fetch got what it
    /// waited for elsewhere).
    pub(crate) async fn cancel_watch(&self, op: CancelWatch) {
        if let Some(cancel) = self.watches.borrow_mut().remove(&op.watch) {
            cancel.close();
        }
    }
}

/// Removes a watch from the table when it ends, however it ends.
struct WatchEntry<'a> {
    shard: &'a Shard,
    watch: u64,
}

impl Drop for WatchEntry<'_> {
    fn drop(&mut self) {
        self.shard.watches.borrow_mut().remove(&self.watch);
    }
}

/// Completes when any of its waits completes.
struct AnyChanged<'a>(Vec<Changed<'a>>);

impl Future for AnyChanged<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        for wait in self.0.iter_mut() {
            if Pin::new(wait).poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}
