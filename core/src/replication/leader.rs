//! What a partition's leader knows of its followers, and the high
//! watermark and in-sync set that follow from it (Kafka's `Partition` and
//! `Replica` state on the leader).
//!
//! Invariants: the high watermark never goes down while one leader leads,
//! and never passes the log end of any in-sync replica the leader has heard
//! from in its epoch (nor its own); until every in-sync follower has
//! fetched once in this epoch, it does not move.

use crate::metadata::BrokerId;
use crate::Offset;

/// One follower, as its fetches show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    pub broker: BrokerId,
    /// Its log end (the offset of its last fetch) in this epoch; `None`
    /// until it fetched.
    pub log_end: Option<Offset>,
    /// When it last was at the leader's log end (or at the end the leader
    /// had at its fetch before).
    pub last_caught_up_ms: i64,
    last_fetch_ms: i64,
    last_fetch_leader_end: Offset,
    /// Its log start offset as its last fetch reported it (Fetch v5+);
    /// `None` until one did.
    pub log_start: Option<Offset>,
}

/// The leader's view of one partition in one leader epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    pub me: BrokerId,
    pub leader_epoch: i32,
    /// The metadata's partition epoch this view last took the in-sync set
    /// from.
    pub partition_epoch: i32,
    pub isr: Vec<BrokerId>,
    pub followers: Vec<FollowerState>,
    /// The leader's log end when it took the lead: followers join the
    /// in-sync set only past it.
    pub epoch_start_offset: Offset,
    /// The topic's `min.insync.replicas`: while the in-sync set is
    /// smaller, the high watermark does not move (KIP-966), so a replica
    /// that left the set then holds everything below it.
    pub min_isr: usize,
    /// The epoch this broker's unbroken leadership began at: a removed
    /// replica bumps the epoch with the leader staying, and what was
    /// appended since that epoch is still in this log.
    pub led_since: i32,
    high_watermark: Offset,
}

impl LeaderView {
    /// A leader elected at `leader_epoch`, its log ending at `log_end` and
    /// its high watermark at `high_watermark`. Followers count as caught up
    /// now, as in Kafka: each gets the whole lag time to fetch.
    pub fn new(
        me: BrokerId,
        replicas: &[BrokerId],
        isr: &[BrokerId],
        (leader_epoch, partition_epoch): (i32, i32),
        (log_end, high_watermark): (Offset, Offset),
        now_ms: i64,
    ) -> LeaderView {
        LeaderView {
            me,
            leader_epoch,
            partition_epoch,
            isr: isr.to_vec(),
            followers: replicas
                .iter()
                .filter(|&&b| b != me)
                .map(|&broker| FollowerState {
                    broker,
                    log_end: None,
                    last_caught_up_ms: now_ms,
                    last_fetch_ms: now_ms,
                    last_fetch_leader_end: log_end,
                    log_start: None,
                })
                .collect(),
            epoch_start_offset: log_end,
            min_isr: 1,
            led_since: leader_epoch,
            high_watermark: high_watermark.min(log_end),
        }
    }

    /// The controller changed the in-sync set (or the replicas) within
    /// this leader's epoch. A follower outside the in-sync set joins only
    /// on a fetch made since: the replica the metadata names now may not
    /// be the one that fetched before (moved away and back, its log
    /// deleted in between, while this leader looked only before and
    /// after).
    pub fn update(
        &mut self,
        replicas: &[BrokerId],
        isr: &[BrokerId],
        partition_epoch: i32,
        now_ms: i64,
    ) {
        self.isr = isr.to_vec();
        self.partition_epoch = partition_epoch;
        self.followers.retain(|f| replicas.contains(&f.broker));
        for &b in replicas {
            if b != self.me && !self.followers.iter().any(|f| f.broker == b) {
                self.followers.push(FollowerState {
                    broker: b,
                    log_end: None,
                    last_caught_up_ms: now_ms,
                    last_fetch_ms: now_ms,
                    last_fetch_leader_end: self.epoch_start_offset,
                    log_start: None,
                });
            }
        }
        for f in &mut self.followers {
            if !self.isr.contains(&f.broker) {
                f.log_end = None;
            }
        }
    }

    /// A fetch from `broker` at `fetch_offset` when the leader's log ends
    /// at `leader_end`. `false` when the broker is not a replica.
    pub fn on_fetch(
        &mut self,
        broker: BrokerId,
        fetch_offset: Offset,
        leader_end: Offset,
        now_ms: i64,
    ) -> bool {
        let Some(f) = self.followers.iter_mut().find(|f| f.broker == broker) else {
            return false;
        };
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = now_ms;
        } else if fetch_offset >= f.last_fetch_leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end = Some(fetch_offset);
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_end = leader_end;
        true
    }

    /// The log start offset `broker` reported in a fetch (a negative one,
    /// from a fetch too old to carry it, is ignored); `true` when it moved.
    pub fn on_log_start(&mut self, broker: BrokerId, log_start: Offset) -> bool {
        let Some(f) = self.followers.iter_mut().find(|f| f.broker == broker) else {
            return false;
        };
        if log_start < 0 || f.log_start == Some(log_start) {
            return false;
        }
        f.log_start = Some(log_start);
        true
    }

    /// Kafka's low watermark: the least log start offset over the leader's
    /// (`local_start`) and every follower on a live broker (`alive`), -1
    /// while one of those has not reported its start. DeleteRecords is done
    /// once it reaches the offset asked.
    pub fn low_watermark(&self, local_start: Offset, alive: &dyn Fn(BrokerId) -> bool) -> Offset {
        self.followers
            .iter()
            .filter(|f| alive(f.broker))
            .map(|f| f.log_start.unwrap_or(-1))
            .fold(local_start, Offset::min)
    }

    /// The high watermark with the leader's own log at `local_end` (its
    /// durable end under `log.flush=always`): the least log end over the
    /// in-sync set, never lower than before, and still while the in-sync
    /// set is smaller than `min_isr`.
    pub fn high_watermark(&mut self, local_end: Offset) -> Offset {
        // Kafka's effective minimum: never more than the replicas.
        if self.isr.len() < self.min_isr.min(self.followers.len() + 1) {
            return self.high_watermark;
        }
        let mut candidate = local_end;
        for b in &self.isr {
            if *b == self.me {
                continue;
            }
            match self
                .followers
                .iter()
                .find(|f| f.broker == *b)
                .and_then(|f| f.log_end)
            {
                Some(end) => candidate = candidate.min(end),
                None => return self.high_watermark,
            }
        }
        self.high_watermark = self.high_watermark.max(candidate);
        self.high_watermark
    }

    /// The high watermark as last computed.
    pub fn last_high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The in-sync set this leader should ask the controller for, if it
    /// differs from the current one: followers that have not caught up for
    /// `lag_max_ms` leave; followers at or past the high watermark (and the
    /// start of this epoch) join. The leader always stays.
    pub fn wanted_isr(&self, now_ms: i64, lag_max_ms: i64) -> Option<Vec<BrokerId>> {
        let mut wanted: Vec<BrokerId> = Vec::with_capacity(self.followers.len() + 1);
        wanted.push(self.me);
        for f in &self.followers {
            let in_sync = self.isr.contains(&f.broker);
            let keep = if in_sync {
                now_ms - f.last_caught_up_ms <= lag_max_ms
            } else {
                f.log_end
                    .is_some_and(|end| end >= self.high_watermark && end >= self.epoch_start_offset)
                    && now_ms - f.last_caught_up_ms <= lag_max_ms
            };
            if keep {
                wanted.push(f.broker);
            }
        }
        let mut current = self.isr.clone();
        current.sort_unstable();
        let mut sorted = wanted.clone();
        sorted.sort_unstable();
        (sorted != current).then_some(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> LeaderView {
        LeaderView::new(1, &[1, 2, 3], &[1, 2, 3], (4, 7), (100, 90), 0)
    }

    #[test]
    fn the_low_watermark_is_the_least_start_over_live_replicas() {
        let mut v = view();
        let all = |_: BrokerId| true;
        assert_eq!(v.low_watermark(50, &all), -1, "no follower reported yet");
        assert!(v.on_log_start(2, 50));
        assert!(!v.on_log_start(2, 50), "unchanged");
        assert!(!v.on_log_start(3, -1), "a fetch without the field");
        assert_eq!(v.low_watermark(50, &all), -1, "3 has not reported");
        assert!(v.on_log_start(3, 40));
        assert_eq!(v.low_watermark(50, &all), 40);
        assert_eq!(v.low_watermark(50, &|b| b != 3), 50, "3's broker is down");
        assert!(!v.on_log_start(9, 60), "not a replica");
        v.update(&[1, 2], &[1, 2], 8, 0);
        assert_eq!(v.low_watermark(50, &all), 50, "3 is no longer a replica");
    }

    #[test]
    fn the_high_watermark_stands_still_below_min_insync_capped_at_the_replicas() {
        let mut v = view();
        v.min_isr = 2;
        v.on_fetch(2, 100, 100, 10);
        v.on_fetch(3, 100, 100, 10);
        assert_eq!(v.high_watermark(100), 100);
        v.update(&[1, 2, 3], &[1], 8, 20);
        assert_eq!(v.high_watermark(120), 100, "one in sync of at least two");
        // One replica with min.insync.replicas 2: the minimum is 1.
        let mut alone = LeaderView::new(1, &[1], &[1], (0, 0), (0, 0), 0);
        alone.min_isr = 2;
        assert_eq!(alone.high_watermark(5), 5);
    }

    #[test]
    fn the_high_watermark_waits_for_every_in_sync_follower_and_never_falls() {
        let mut v = view();
        assert_eq!(v.high_watermark(100), 90);
        v.on_fetch(2, 100, 100, 10);
        assert_eq!(v.high_watermark(100), 90, "3 has not fetched in this epoch");
        v.on_fetch(3, 95, 100, 10);
        assert_eq!(v.high_watermark(100), 95);
        v.on_fetch(3, 100, 110, 20);
        assert_eq!(v.high_watermark(110), 100);
        // A follower that fetched from further back does not pull it down.
        v.on_fetch(3, 98, 110, 30);
        assert_eq!(v.high_watermark(110), 100);
        // Nor past the leader's own (durable) end.
        v.on_fetch(2, 120, 120, 40);
        v.on_fetch(3, 120, 120, 40);
        assert_eq!(v.high_watermark(115), 115);
    }

    #[test]
    fn a_lagging_follower_leaves_and_a_caught_up_one_joins() {
        let mut v = view();
        v.on_fetch(2, 100, 100, 1000);
        v.on_fetch(3, 50, 100, 1000);
        assert_eq!(v.wanted_isr(20_000, 30_000), None);
        v.on_fetch(2, 100, 100, 40_000);
        assert_eq!(v.wanted_isr(40_000, 30_000), Some(vec![1, 2]));
        v.update(&[1, 2, 3], &[1, 2], 8, 40_000);
        assert_eq!(v.high_watermark(100), 100);
        v.on_fetch(3, 100, 100, 41_000);
        assert_eq!(v.wanted_isr(41_000, 30_000), Some(vec![1, 2, 3]));
    }

    #[test]
    fn a_follower_moved_away_and_back_joins_only_on_a_fetch_made_since() {
        let mut v = LeaderView::new(1, &[1, 2], &[1], (4, 7), (100, 100), 0);
        v.on_fetch(2, 100, 100, 10);
        // Moved away and back in metadata this leader took at once: its
        // replica was deleted and made anew, so what it fetched before
        // says nothing of what it holds.
        v.update(&[1, 2], &[1], 9, 20);
        assert_eq!(v.wanted_isr(20, 30_000), None);
        v.on_fetch(2, 0, 100, 30);
        assert_eq!(v.wanted_isr(30, 30_000), None, "behind: stays out");
        v.on_fetch(2, 100, 100, 40);
        assert_eq!(v.wanted_isr(40, 30_000), Some(vec![1, 2]));
    }

    #[test]
    fn a_follower_behind_the_epoch_start_does_not_join() {
        let mut v = LeaderView::new(1, &[1, 2], &[1], (4, 7), (100, 100), 0);
        v.on_fetch(2, 99, 100, 10);
        assert_eq!(v.wanted_isr(10, 30_000), None);
        v.on_fetch(2, 100, 100, 20);
        assert_eq!(v.wanted_isr(20, 30_000), Some(vec![1, 2]));
    }
}
