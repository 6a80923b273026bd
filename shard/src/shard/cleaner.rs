//! The shard's log cleaner: compacts the `cleanup.policy=compact` logs this
//! shard owns, one pass at a time, dirtiest first.
//!
//! Owns: choosing the next log (the highest dirty ratio among those due,
//! as Kafka's cleaner manager does), running its pass below the partition's
//! high watermark, and keeping the cleaner to its share of the machine: it
//! runs in its own low-share task queue and yields between batches, so
//! produce and fetch on this core go first; and its reads and writes are
//! held to this shard's share of `log.cleaner.io.max.bytes.per.second`.
//!
//! Invariant: at most one pass runs per shard, and its key map holds at
//! most this shard's share of `log.cleaner.dedupe.buffer.size`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use sluice_core::replication::throttle::Throttle;
use sluice_log::CleanPacer;

use super::*;

/// The task queue's shares against the default queue's 1000: the cleaner
/// gets about a tenth of the core while requests are waiting.
const CLEANER_SHARES: usize = 100;

/// Bytes a pass handles between two yields of the core: a few hundred
/// microseconds of work, so a request waiting on this core waits no longer.
const YIELD_EVERY_BYTES: u64 = 256 * 1024;

/// Holds a pass to a byte rate and yields the core to requests.
struct ShardPacer {
    throttle: RefCell<Throttle>,
    env: Rc<dyn Env>,
    since_yield: std::cell::Cell<u64>,
}

impl CleanPacer for ShardPacer {
    async fn pace(&self, bytes: u64) {
        let now = self.env.now_ms();
        let wait = {
            let mut t = self.throttle.borrow_mut();
            t.spend(bytes, now);
            t.wait_ms(now)
        };
        if wait > 0 {
            self.since_yield.set(0);
            glommio::timer::sleep(Duration::from_millis(wait)).await;
            return;
        }
        // glommio preempts a queue only at its own time slice; the cleaner
        // gives the core back sooner, unconditionally.
        let since = self.since_yield.get() + bytes;
        if since >= YIELD_EVERY_BYTES {
            self.since_yield.set(0);
            glommio::executor().yield_task_queue_now().await;
        } else {
            self.since_yield.set(since);
        }
    }
}

impl Shard {
    /// Starts the cleaner in its own task queue (when `log.cleaner.enable`).
    pub fn start_cleaner(self: &Rc<Self>) {
        if !self.config.log.cleaner_enable {
            return;
        }
        let queue = glommio::executor().create_task_queue(
            glommio::Shares::Static(CLEANER_SHARES),
            glommio::Latency::NotImportant,
            "log-cleaner",
        );
        let shard = self.clone();
        let started = glommio::spawn_local_into(
            async move {
                let backoff = Duration::from_millis(shard.config.log.cleaner_backoff_ms.max(1));
                loop {
                    if !shard.clean_dirtiest().await {
                        glommio::timer::sleep(backoff).await;
                    }
                }
            },
            queue,
        );
        match started {
            Ok(task) => {
                task.detach();
            }
            Err(e) => {
                tracing::error!(shard = self.id, error = %e, "the log cleaner could not start")
            }
        }
    }

    /// Runs one pass on the dirtiest log that is due; `false` when none is.
    pub async fn clean_dirtiest(&self) -> bool {
        let owned: Vec<_> = self
            .partitions
            .borrow()
            .iter()
            .filter(|(_, p)| p.log.config().cleanup_policy.compacts())
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        let now = self.env.now_ms();
        let mut best = None;
        for (key, p) in owned {
            // Up to the last stable offset, as Kafka's cleaner: a record
            // of an open transaction may yet be aborted, so it must not
            // make an older value of its key removable.
            let upto = p.log.last_stable_offset(p.high_watermark());
            let plan = match p.log.clean_plan(upto, now).await {
                Ok(Some(plan)) if plan.is_due(&p.log.config()) => plan,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(topic = key.0, partition = key.1, error = %e, "cleaner could not plan");
                    continue;
                }
            };
            let ratio = if plan.tombstones_due || plan.overdue {
                f64::INFINITY
            } else {
                plan.dirty_ratio()
            };
            if best.as_ref().is_none_or(|(r, _, _, _)| ratio > *r) {
                best = Some((ratio, key, p, plan));
            }
        }
        let Some((_, (topic, partition), p, plan)) = best else {
            return false;
        };
        let config = &self.config.log;
        let share = self.shards.max(1) as f64;
        let pacer = ShardPacer {
            throttle: RefCell::new(Throttle::new(
                (config.cleaner_io_max_bytes_per_second / share).clamp(1.0, u64::MAX as f64) as u64,
                now,
            )),
            env: self.env.clone(),
            since_yield: std::cell::Cell::new(0),
        };
        let budget = (config.cleaner_dedupe_buffer_size / u64::from(self.shards.max(1))) as usize;
        match p.log.clean(&plan, budget, now, &pacer).await {
            Ok(outcome) => {
                self.counters
                    .cleaner_passes
                    .set(self.counters.cleaner_passes.get() + 1);
                self.counters.cleaner_bytes_removed.set(
                    self.counters.cleaner_bytes_removed.get()
                        + outcome.bytes_before.saturating_sub(outcome.bytes_after),
                );
                tracing::debug!(topic, partition, ?outcome, "cleaner pass done");
                true
            }
            Err(e) => {
                tracing::warn!(topic, partition, error = %e, "cleaner pass failed");
                false
            }
        }
    }
}
