//! The broker's client quotas on one shard: the windows its Kafka listener
//! measures requests in, and what it tells the other shards.
//!
//! Owns: the shard's [`QuotaTracker`] and `controller_mutation_rate`
//! buckets ([`MutationBuckets`]), the signal that usage waits to be
//! shared, the task that shares it ([`Shard::share_quota_usage`]) and the
//! operation that records another shard's ([`Shard::quota_usage`]). So a
//! client over its quota is throttled by the broker's whole count of it,
//! whichever shards serve its connections, as Kafka counts per broker
//! (`sluice_core::quota_share` says when a share goes).
//!
//! Invariants: one share task per shard, and only on a broker of several
//! shards; it waits on the signal while no usage waits, so an idle broker
//! has no periodic wake-up for it; each share goes to every other shard
//! once and is recorded there only (never passed on); a shard that cannot
//! be reached (stopping) misses it, nothing else waits for it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use sluice_core::mutation_quota::{MutationBuckets, Taken};
use sluice_core::quota::{ClientQuota, QuotaTracker, QuotaType};
use sluice_core::quota_share::{ShareNeed, SHARE_INTERVAL_MS};

use super::Shard;
use crate::message::QuotaUsage;
use crate::notify::Notify;

/// Quota windows one shard tracks at most (users and client ids with a
/// quota that sent something in the last hour); the least recently used
/// goes when a new one needs room. Usage waiting to be shared is bounded
/// by the same number of sensors.
pub const MAX_TRACKED_CLIENTS: usize = 10_000;

/// One shard's client quota state.
pub struct ClientQuotas {
    tracker: RefCell<QuotaTracker>,
    buckets: RefCell<MutationBuckets>,
    /// Signalled when usage starts to wait, and when it must go at once.
    to_share: Notify,
}

impl ClientQuotas {
    /// The state of one of `shards` shards.
    pub fn new(shards: u32) -> ClientQuotas {
        let (tracker, buckets) = if shards > 1 {
            (
                QuotaTracker::shared(MAX_TRACKED_CLIENTS),
                MutationBuckets::shared(MAX_TRACKED_CLIENTS),
            )
        } else {
            (
                QuotaTracker::new(MAX_TRACKED_CLIENTS),
                MutationBuckets::new(MAX_TRACKED_CLIENTS),
            )
        };
        ClientQuotas {
            tracker: RefCell::new(tracker),
            buckets: RefCell::new(buckets),
            to_share: Notify::default(),
        }
    }

    /// Records `value` against the `kind` quota of `user`'s `client_id`
    /// (see [`QuotaTracker::record`]) and answers the throttle in
    /// milliseconds; the share task hears of it when a share is due.
    pub fn record(
        &self,
        quotas: &[ClientQuota],
        kind: QuotaType,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: u64,
    ) -> u64 {
        let (throttle_ms, need) = self
            .tracker
            .borrow_mut()
            .record(quotas, kind, user, client_id, value, now_ms);
        self.shares(need);
        throttle_ms
    }

    /// Takes `permits` partitions from the `controller_mutation_rate`
    /// bucket of `user`'s `client_id` (see
    /// [`MutationBuckets::take`]).
    pub fn take_mutation(
        &self,
        quotas: &[ClientQuota],
        user: &str,
        client_id: &str,
        permits: f64,
        strict: bool,
        now_ms: u64,
    ) -> Taken {
        let (taken, need) = self
            .buckets
            .borrow_mut()
            .take(quotas, user, client_id, permits, strict, now_ms);
        self.shares(need);
        taken
    }

    /// Gives back what [`Self::take_mutation`] took for a change then
    /// refused for another reason.
    pub fn give_back_mutation(
        &self,
        quotas: &[ClientQuota],
        user: &str,
        client_id: &str,
        permits: f64,
        now_ms: u64,
    ) {
        let need = self
            .buckets
            .borrow_mut()
            .give_back(quotas, user, client_id, permits, now_ms);
        self.shares(need);
    }

    fn shares(&self, need: ShareNeed) {
        if need != ShareNeed::None {
            self.to_share.notify_all();
        }
    }

    /// Whether usage waits to be shared, and whether it must go now.
    fn unshared_state(&self) -> (bool, bool) {
        let (windows, buckets) = (
            self.tracker.borrow().unshared().state(),
            self.buckets.borrow().unshared().state(),
        );
        (windows.0 || buckets.0, windows.1 || buckets.1)
    }

    /// Usage never shared for lack of room, since the start.
    pub fn unshared_dropped(&self) -> u64 {
        self.tracker.borrow().unshared().dropped() + self.buckets.borrow().unshared().dropped()
    }
}

impl Shard {
    /// Shares what this shard's connections used against client quotas
    /// with every other shard, for as long as the shard runs: at once when
    /// a share is due, else at most [`SHARE_INTERVAL_MS`] after the first
    /// usage since the last one; idle while none waits.
    pub(crate) async fn share_quota_usage(self: Rc<Self>) {
        let quotas = &self.client_quotas;
        loop {
            loop {
                let signal = quotas.to_share.changed();
                if quotas.unshared_state().0 {
                    break;
                }
                signal.await;
            }
            let deadline = self.env.monotonic_ms() + SHARE_INTERVAL_MS;
            loop {
                let signal = quotas.to_share.changed();
                let now = self.env.monotonic_ms();
                if quotas.unshared_state().1 || now >= deadline {
                    break;
                }
                let wait = self.env.sleep(Duration::from_millis(deadline - now));
                futures_lite::future::or(signal, wait).await;
            }
            let mut usage = quotas.tracker.borrow_mut().unshared_mut().take();
            usage.extend(quotas.buckets.borrow_mut().unshared_mut().take());
            if usage.is_empty() {
                continue;
            }
            for peer in (0..self.shards).filter(|&peer| peer != self.id) {
                let share = QuotaUsage {
                    usage: usage.clone(),
                };
                if self.call(peer, share).await.is_err() {
                    tracing::debug!(
                        shard = self.id,
                        peer,
                        "a quota usage share was not delivered"
                    );
                }
            }
        }
    }

    /// Records the usage another shard measured in this shard's windows
    /// and buckets.
    pub(crate) async fn quota_usage(&self, share: QuotaUsage) {
        let now_ms = self.env.monotonic_ms();
        let quotas = &self.client_quotas;
        quotas
            .tracker
            .borrow_mut()
            .record_shared(&share.usage, now_ms);
        quotas
            .buckets
            .borrow_mut()
            .record_shared(&share.usage, now_ms);
    }
}
