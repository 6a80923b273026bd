//! Share groups' dead-letter topics (KIP-1191) on the share partition's
//! owner shard: records a member rejected, or delivered as often as the
//! group's limit allows, are written to the group's
//! `errors.deadletterqueue.topic.name`, then archived.
//!
//! Owns: the second phase of Kafka's two: the first (the records
//! Archiving, written to `__share_group_state` before the request that
//! made them so is answered) is the share partition's ordinary state
//! write; here, with the share partition's write turn held, the records
//! are written to the dead-letter partition (source partition modulo its
//! partition count) with the context headers (and the original key and
//! value when `errors.deadletterqueue.copy.record.enable`, if the log still
//! has the record: one retention or DeleteRecords deleted has the headers
//! alone, as in Kafka), waited for on
//! every in-sync replica, then Archived and that state written. A topic
//! that fails Kafka's checks (missing, not `errors.deadletterqueue.group.enable`,
//! outside `errors.deadletterqueue.topic.name.prefix`) or a write that
//! fails is logged and counted, and the records are archived unwritten,
//! as Kafka archives them.
//!
//! A dead-letter partition led by another broker is written and searched
//! there (`dead_letter_remote.rs`), with the same steps; the write is a
//! Produce with acks=all, synced there as that broker's `log.flush` says.
//!
//! Invariant: each record is written to the dead-letter topic once, across
//! crashes. Every state that shows a record Archiving was written before
//! its dead-letter write started (the turn is held from before that
//! write until the record is Archived in memory), so a share partition
//! read back with Archiving records looks for their dead-letter records
//! only from the time its state was written on (the partition's time
//! index), and writes only those it does not find; until that check is
//! done, every state written carries that same time.

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::compression::decompress;
use sluice_core::metadata::LeaderHome;
use sluice_core::records::{Record, RecordIter};
use sluice_core::share::dead_letter::{
    check_topic, context_of, partition_for, Cause, Context, DeadLetter, TopicFacts,
    DLQ_GROUP_ENABLE,
};
use sluice_core::share::state::ShareKey;

use crate::message::{AppendDeadLetters, FindDeadLetters, ShareSettings};

use super::txn_markers::settle_coordinator_write;
use super::txn_verify::TxnProducer;
use super::*;

/// Bytes of records read per step (originals to copy; a dead-letter
/// partition searched after a restart).
const READ_BYTES: usize = 1024 * 1024;
/// Record bytes per dead-letter batch: below the default
/// `max.message.bytes` (1 MiB), with room for the headers.
const BATCH_BYTES: usize = 512 * 1024;
/// How long a dead-letter write waits for the in-sync replicas.
const WRITE_TIMEOUT_MS: u64 = 30_000;
/// The most records one source batch may hold once decompressed.
const MAX_UNCOMPRESSED: usize = 64 * 1024 * 1024;

impl Shard {
    /// Writes `key`'s Archiving records to the group's dead-letter topic
    /// and archives them (see the module doc), if any are due. With
    /// `wait` (the caller's request made records Archiving) it returns only
    /// once they are written, by this call or another's. Errors are
    /// logged: the records are archived anyway, but for a state write that
    /// failed (they are tried again at the next request).
    pub(super) async fn dead_letter(
        self: &Rc<Self>,
        key: &ShareKey,
        topic: &str,
        p: &OwnedPartition,
        settings: &ShareSettings,
        wait: bool,
    ) {
        let turn = match self.share_partitions.borrow().get(key) {
            Some(entry) if entry.dead_letters_due || wait => entry.turn.clone(),
            _ => return,
        };
        // Another call holding the turn may be writing them: it is done
        // once the turn is ours.
        let Ok(_turn) = turn.acquire_permit(1).await else {
            return;
        };
        // The Archiving state must be durable before anything is written
        // where it cannot be taken back.
        let pending = match self.share_partitions.borrow().get(key) {
            Some(entry) if !entry.dead_letters_due => return,
            Some(entry) if entry.written < entry.changes => Some(entry.changes),
            Some(_) => None,
            None => return,
        };
        if let Some(change) = pending {
            if let Err(e) = self.write_share_partition_in_turn(key, p, change).await {
                tracing::warn!(group = key.group_id, topic, partition = key.partition, error = %e, "the dead-letter records wait: their state is not written");
                return;
            }
        }
        let (archiving, since_ms) = {
            let mut table = self.share_partitions.borrow_mut();
            let Some(entry) = table.get_mut(key) else {
                return;
            };
            entry.dead_letters_due = false;
            (
                entry.partition.archiving(),
                entry.dead_letters_since_ms.take(),
            )
        };
        if archiving.is_empty() {
            return;
        }
        let outcome = self
            .write_dead_letters(key, topic, p, &archiving, since_ms, settings)
            .await;
        let offsets: Vec<Offset> = archiving.iter().map(|(o, _, _)| *o).collect();
        match outcome {
            Ok(written) => {
                ShardCounters::add(&self.counters.share_dead_letters, written as u64);
            }
            Err(why) => {
                ShardCounters::add(
                    &self.counters.share_dead_letter_failures,
                    offsets.len() as u64,
                );
                tracing::error!(group = key.group_id, topic, partition = key.partition, records = offsets.len(), %why, "records archived without their dead-letter records");
            }
        }
        let change = {
            let mut table = self.share_partitions.borrow_mut();
            let Some(entry) = table.get_mut(key) else {
                return;
            };
            entry.partition.archived(&offsets);
            entry.changes += 1;
            entry.changes
        };
        if let Err(e) = self.write_share_partition_in_turn(key, p, change).await {
            // Archived in memory: a later write carries it; after a crash
            // the records are found in the dead-letter topic.
            tracing::warn!(group = key.group_id, topic, partition = key.partition, error = %e, "writing archived dead-letter records' state failed");
        }
    }

    /// Writes the dead-letter records of `archiving` (but those found
    /// written since `since_ms`, after a restart); how many were written,
    /// or why none could be.
    async fn write_dead_letters(
        self: &Rc<Self>,
        key: &ShareKey,
        topic: &str,
        p: &OwnedPartition,
        archiving: &[(Offset, u16, Cause)],
        since_ms: Option<i64>,
        settings: &ShareSettings,
    ) -> Result<usize, String> {
        let Some(DeadLetter {
            topic: dlq,
            copy_record,
        }) = &settings.dead_letter
        else {
            return Err("the group has no dead-letter topic".into());
        };
        let (dlq_partition, dlq_home) = {
            let metadata = self.metadata();
            let meta = metadata.topics.get(dlq);
            let facts = TopicFacts {
                exists: meta.is_some(),
                enabled: meta
                    .and_then(|t| t.configs.get(DLQ_GROUP_ENABLE))
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            };
            let prefix = &self.config.group.errors_deadletterqueue_topic_name_prefix;
            check_topic(&key.group_id, dlq, prefix, facts)?;
            let count = meta.map_or(0, |t| t.partitions.len());
            let dlq_partition = partition_for(key.partition, count);
            let home = metadata
                .leader_home(self.config.node_id, dlq, dlq_partition)
                .ok_or_else(|| format!("{dlq} [{dlq_partition}] has no leader"))?;
            (dlq_partition, home)
        };
        let resend = self.env.broken_rule() == Some(crate::env::BrokenRule::DeadLetterResent);
        let found: BTreeSet<Offset> = match since_ms {
            Some(since_ms) if !resend => {
                let find = FindDeadLetters {
                    topic: dlq.clone(),
                    partition: dlq_partition,
                    since_ms,
                    group_id: key.group_id.clone(),
                    source_topic: topic.to_owned(),
                    source_partition: key.partition,
                };
                let found = match dlq_home {
                    LeaderHome::Here(shard) => self
                        .call(shard, find)
                        .await
                        .map_err(|_| "the dead-letter partition's shard is unreachable".to_owned())?
                        .map_err(|e| format!("searching {dlq} [{dlq_partition}]: {e}"))?,
                    LeaderHome::Broker(leader) => self
                        .find_dead_letters_remote(leader, &find)
                        .await
                        .map_err(|e| format!("searching {dlq} [{dlq_partition}]: {e}"))?,
                };
                found.into_iter().collect()
            }
            _ => BTreeSet::new(),
        };
        let due: Vec<&(Offset, u16, Cause)> = archiving
            .iter()
            .filter(|(o, _, _)| !found.contains(o))
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        let originals = if *copy_record {
            let wanted: Vec<Offset> = due.iter().map(|(o, _, _)| *o).collect();
            read_originals(p, &wanted).await?
        } else {
            Vec::new()
        };
        let now = self.env.now_ms();
        // Each batch with its record count.
        let mut batches: Vec<(Bytes, usize)> = Vec::new();
        let mut builder = BatchBuilder::new(now);
        let mut size = 0;
        for (offset, delivery_count, cause) in due {
            let context = Context {
                topic: topic.to_owned(),
                partition: key.partition,
                offset: *offset,
                group: key.group_id.clone(),
                delivery_count: *delivery_count,
                cause: *cause,
            };
            let headers = context.headers();
            let refs: Vec<(&[u8], Option<&[u8]>)> = headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), Some(v.as_bytes())))
                .collect();
            let original = originals
                .binary_search_by_key(offset, |r| r.offset)
                .ok()
                .map(|i| &originals[i]);
            let k = original.and_then(|r| r.key.as_deref());
            let v = original.and_then(|r| r.value.as_deref());
            let bytes = k.map_or(0, <[u8]>::len) + v.map_or(0, <[u8]>::len) + 256;
            if size + bytes > BATCH_BYTES && !builder.is_empty() {
                let count = builder.len() as usize;
                batches.push((builder.build(), count));
                builder = BatchBuilder::new(now);
                size = 0;
            }
            builder = builder.record_at(now, k, v, &refs);
            size += bytes;
        }
        if !builder.is_empty() {
            let count = builder.len() as usize;
            batches.push((builder.build(), count));
        }
        let mut written = 0;
        for (batch, count) in batches {
            let appended = match dlq_home {
                LeaderHome::Here(shard) => self
                    .append_dead_letters(dlq, dlq_partition, shard, batch)
                    .await
                    .map_err(|e| e.to_string()),
                LeaderHome::Broker(leader) => {
                    self.append_dead_letters_remote(leader, dlq, dlq_partition, batch)
                        .await
                }
            };
            appended.map_err(|e| {
                format!("writing to {dlq} [{dlq_partition}] after {written} records: {e}")
            })?;
            written += count;
        }
        Ok(written)
    }

    /// Appends one batch to the dead-letter partition, on its leader's
    /// shard.
    async fn append_dead_letters(
        self: &Rc<Self>,
        topic: &str,
        partition: PartitionId,
        shard: ShardId,
        batch: Bytes,
    ) -> Result<(), ErrorCode> {
        let records = batch
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let append = AppendDeadLetters {
            topic: topic.to_owned(),
            partition,
            records,
        };
        self.call(shard, append)
            .await
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?
    }

    /// [`AppendDeadLetters`], on the dead-letter partition's leader: an
    /// append as a producer's (the topic's checks and settings apply),
    /// then synced and held by every in-sync replica, whatever
    /// `log.flush` says, before the answer: the records are archived
    /// once it comes.
    pub(crate) async fn append_dead_letters_here(
        self: &Rc<Self>,
        op: AppendDeadLetters,
    ) -> Result<(), ErrorCode> {
        let no_txn = TxnProducer {
            transactional_id: None,
            adds_partitions: false,
        };
        let result = self
            .produce_local(&op.topic, op.partition, op.records, None, -1, no_txn)
            .await;
        if result.error != ErrorCode::None {
            return Err(result.error);
        }
        let p = self
            .partition(&op.topic, op.partition)
            .ok_or_else(|| self.absence_error(&op.topic, op.partition))?;
        settle_coordinator_write(&p, &*self.env, WRITE_TIMEOUT_MS).await
    }

    /// [`FindDeadLetters`], on the dead-letter partition's leader: the
    /// source offsets of the group's records from the source partition
    /// written there since `since_ms` (found through the time index).
    pub(crate) async fn find_dead_letters(
        self: &Rc<Self>,
        op: FindDeadLetters,
    ) -> Result<Vec<Offset>, ErrorCode> {
        let p = self
            .partition(&op.topic, op.partition)
            .ok_or_else(|| self.absence_error(&op.topic, op.partition))?;
        let end = p.high_watermark();
        let mut offset = match p.log.offset_for_timestamp(op.since_ms).await {
            Ok(Some((offset, _))) => offset,
            Ok(None) => return Ok(Vec::new()),
            Err(e) => return Err(e.error_code()),
        };
        let mut found = Vec::new();
        while offset < end {
            let chunks = p
                .log
                .read(offset, READ_BYTES, end)
                .await
                .map_err(|e| e.error_code())?;
            let next = for_each_record(&chunks, |record| {
                if let Some((group, topic, partition, source)) = context_of(record) {
                    if group == op.group_id
                        && topic == op.source_topic
                        && partition == op.source_partition
                    {
                        found.push(source);
                    }
                }
            })?;
            if next <= offset {
                break;
            }
            offset = next;
        }
        Ok(found)
    }
}

/// The records at `wanted` (ascending offsets) in `p`'s log, those it
/// still has (a control batch, a compacted offset, or one retention has
/// deleted since it was delivered has none: its dead letter carries the
/// context headers alone).
async fn read_originals(p: &OwnedPartition, wanted: &[Offset]) -> Result<Vec<Record>, String> {
    let mut out: Vec<Record> = Vec::new();
    let end = p.log.log_end_offset();
    let mut next = 0;
    loop {
        // Offsets below the log start are gone (retention, DeleteRecords).
        let start = p.log.log_start_offset();
        while wanted.get(next).is_some_and(|&o| o < start) {
            next += 1;
        }
        let Some(&from) = wanted.get(next) else {
            break;
        };
        let chunks = match p.log.read(from, READ_BYTES, end).await {
            Ok(chunks) => chunks,
            // The log start passed `from` while the read waited: skip the
            // offsets it passed.
            Err(LogError::OffsetOutOfRange { .. }) if p.log.log_start_offset() > from => {
                continue;
            }
            Err(e) => return Err(format!("reading the records to copy: {e}")),
        };
        let reached = for_each_record(&chunks, |record| {
            if wanted[next..].binary_search(&record.offset).is_ok() {
                out.push(record.clone());
            }
        })
        .map_err(|e| format!("reading the records to copy: {e}"))?;
        // Offsets the read passed without a record have none.
        let before = next;
        while wanted.get(next).is_some_and(|&o| o < reached) {
            next += 1;
        }
        if next == before {
            break;
        }
    }
    out.sort_by_key(|r| r.offset);
    out.dedup_by_key(|r| r.offset);
    Ok(out)
}

/// Calls `each` with every record of the data batches in `chunks`
/// (decompressed where needed; control batches skipped). The offset after
/// the last batch (control batches included); 0 when there is none.
pub(super) fn for_each_record(
    chunks: &[Bytes],
    mut each: impl FnMut(&Record),
) -> Result<Offset, ErrorCode> {
    let mut next = 0;
    for chunk in chunks {
        for batch in BatchIter::new(chunk.clone()) {
            let batch = batch.map_err(|_| ErrorCode::CorruptMessage)?;
            next = next.max(batch.next_offset());
            if batch.is_control() {
                continue;
            }
            let records = match batch.compression() {
                sluice_core::batch::Compression::None => RecordIter::new(&batch),
                codec => {
                    let data = decompress(codec, &batch.records_bytes(), MAX_UNCOMPRESSED)
                        .map_err(|_| ErrorCode::CorruptMessage)?;
                    Ok(RecordIter::over(&batch, data))
                }
            };
            let Ok(records) = records else {
                return Err(ErrorCode::CorruptMessage);
            };
            for record in records {
                let record = record.map_err(|_| ErrorCode::CorruptMessage)?;
                each(&record);
            }
        }
    }
    Ok(next)
}
