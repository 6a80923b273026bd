//! A replica's role at one leader epoch, and how it follows the metadata:
//! the one decision both the shard runtime and the simulator make when a
//! metadata change arrives.
//!
//! Invariant: the role changes only as the metadata says; a new leader
//! starts a [`LeaderView`] at its log end and current high watermark, a
//! new follower starts untruncated (it fetches only after it cut its log
//! against the new leader).

use super::LeaderView;
use crate::metadata::{BrokerId, PartitionMeta, NO_LEADER};
use crate::Offset;

/// A replica's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// This broker leads.
    Leader(LeaderView),
    /// Another broker leads (or nobody, [`NO_LEADER`]).
    Follower(FollowerRole),
}

/// A follower's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerRole {
    pub leader: BrokerId,
    pub leader_epoch: i32,
    /// False until it cut its log where the leader's history parts from
    /// its own (it fetches only after).
    pub truncated: bool,
    /// The leader's high watermark at the last fetch.
    pub high_watermark: Offset,
}

/// What [`Role::follow`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// Nothing.
    None,
    /// The same leader at the same epoch took a new in-sync set.
    InSyncSet,
    /// This broker became the leader at `epoch` (record the epoch's start).
    Leader { epoch: i32 },
    /// This broker still leads, at a new `epoch` (a replica was removed):
    /// record the epoch's start; what it served stays loaded, and what
    /// waits on its high watermark keeps waiting.
    LeaderAgain { epoch: i32 },
    /// This broker follows a new leader or epoch (truncate, then fetch).
    Follower,
}

impl Role {
    /// A replica no metadata was applied to yet.
    pub fn unassigned(high_watermark: Offset) -> Role {
        Role::Follower(FollowerRole {
            leader: NO_LEADER,
            leader_epoch: -1,
            truncated: false,
            high_watermark,
        })
    }

    pub fn leader_epoch(&self) -> i32 {
        match self {
            Role::Leader(v) => v.leader_epoch,
            Role::Follower(f) => f.leader_epoch,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Leader(_))
    }

    /// True when this replica has led without a break since `epoch` (and
    /// still leads): what it appended then is still in its log.
    pub fn leads_since(&self, epoch: i32) -> bool {
        match self {
            Role::Leader(v) => v.led_since <= epoch && epoch <= v.leader_epoch,
            Role::Follower(_) => false,
        }
    }

    /// The in-sync set size a leader works with (0 on a follower).
    pub fn isr_len(&self) -> usize {
        match self {
            Role::Leader(v) => v.isr.len(),
            Role::Follower(_) => 0,
        }
    }

    /// True when a leader's in-sync set is smaller than `min_isr` capped at
    /// its replica count (Kafka's effective `min.insync.replicas`: a
    /// setting above the replication factor asks for every replica); always
    /// true on a follower.
    pub fn under_min_isr(&self, min_isr: usize) -> bool {
        match self {
            Role::Leader(v) => v.isr.len() < min_isr.min(v.followers.len() + 1),
            Role::Follower(_) => true,
        }
    }

    /// The high watermark with this replica's log ending at `log_end`, of
    /// which `local_end` counts for a leader (its durable end under
    /// `log.flush=always`).
    pub fn high_watermark(&mut self, local_end: Offset, log_end: Offset) -> Offset {
        match self {
            Role::Leader(v) => v.high_watermark(local_end),
            Role::Follower(f) => f.high_watermark.min(log_end),
        }
    }

    /// Brings the role of broker `me`'s replica in step with `meta`, its
    /// log ending at `log_end` (`local_end` of it counting for a leader),
    /// at `now_ms`.
    pub fn follow(
        &mut self,
        me: BrokerId,
        meta: &PartitionMeta,
        (log_end, local_end): (Offset, Offset),
        now_ms: i64,
    ) -> RoleChange {
        let hw = self.high_watermark(local_end, log_end);
        match self {
            Role::Leader(v) if meta.leader == me && v.leader_epoch == meta.leader_epoch => {
                if v.partition_epoch == meta.partition_epoch {
                    return RoleChange::None;
                }
                v.update(
                    &meta.replica_brokers(),
                    &meta.isr,
                    meta.partition_epoch,
                    now_ms,
                );
                RoleChange::InSyncSet
            }
            Role::Follower(f)
                if meta.leader != me
                    && f.leader == meta.leader
                    && f.leader_epoch == meta.leader_epoch =>
            {
                RoleChange::None
            }
            _ if meta.leader == me => {
                // Leading at a later epoch than before, without a break.
                let led_since = match self {
                    Role::Leader(v) if v.leader_epoch < meta.leader_epoch => Some(v.led_since),
                    _ => None,
                };
                let mut next = LeaderView::new(
                    me,
                    &meta.replica_brokers(),
                    &meta.isr,
                    (meta.leader_epoch, meta.partition_epoch),
                    (log_end, hw),
                    now_ms,
                );
                let epoch = meta.leader_epoch;
                let change = match led_since {
                    Some(since) => {
                        next.led_since = since;
                        RoleChange::LeaderAgain { epoch }
                    }
                    None => RoleChange::Leader { epoch },
                };
                *self = Role::Leader(next);
                change
            }
            _ => {
                *self = Role::Follower(FollowerRole {
                    leader: meta.leader,
                    leader_epoch: meta.leader_epoch,
                    truncated: false,
                    high_watermark: hw,
                });
                RoleChange::Follower
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Replica;

    fn meta(
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[BrokerId],
    ) -> PartitionMeta {
        PartitionMeta {
            replicas: [1, 2, 3]
                .iter()
                .map(|&broker| Replica { broker, shard: 0 })
                .collect(),
            isr: isr.to_vec(),
            leader,
            leader_epoch,
            partition_epoch,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        }
    }

    #[test]
    fn a_replica_leads_follows_and_takes_new_in_sync_sets_as_the_metadata_says() {
        let mut role = Role::unassigned(0);
        assert_eq!(
            role.follow(2, &meta(1, 0, 0, &[1, 2, 3]), (10, 10), 0),
            RoleChange::Follower
        );
        assert_eq!(
            role.follow(2, &meta(1, 0, 1, &[1, 2]), (10, 10), 0),
            RoleChange::None
        );
        assert_eq!(
            role.follow(2, &meta(2, 1, 2, &[2]), (10, 10), 0),
            RoleChange::Leader { epoch: 1 }
        );
        assert!(role.is_leader() && role.isr_len() == 1);
        assert_eq!(
            role.follow(2, &meta(2, 1, 3, &[2, 3]), (10, 10), 0),
            RoleChange::InSyncSet
        );
        assert_eq!(role.isr_len(), 2);
        assert_eq!(
            role.follow(2, &meta(3, 2, 4, &[3]), (10, 10), 0),
            RoleChange::Follower
        );
        assert_eq!(role.leader_epoch(), 2);
        let Role::Follower(f) = &role else {
            panic!("a follower");
        };
        assert!(!f.truncated, "a new follower truncates first");
    }

    #[test]
    fn a_leader_at_a_new_epoch_leads_on_without_a_break() {
        let mut role = Role::unassigned(0);
        role.follow(1, &meta(1, 3, 5, &[1, 2, 3]), (10, 10), 0);
        assert!(role.leads_since(3) && !role.leads_since(2) && !role.leads_since(4));
        // A replica removed: the epoch moves, the leader stays.
        assert_eq!(
            role.follow(1, &meta(1, 4, 6, &[1, 2]), (12, 10), 0),
            RoleChange::LeaderAgain { epoch: 4 }
        );
        assert_eq!(role.leader_epoch(), 4);
        assert!(role.leads_since(3) && role.leads_since(4));
        let Role::Leader(v) = &role else {
            panic!("a leader");
        };
        assert_eq!(
            v.epoch_start_offset, 12,
            "followers join past the new epoch's start"
        );
        // Following someone else, then leading again: a new leadership.
        role.follow(1, &meta(2, 5, 7, &[2]), (12, 10), 0);
        assert!(!role.leads_since(4));
        assert_eq!(
            role.follow(1, &meta(1, 6, 8, &[1]), (12, 10), 0),
            RoleChange::Leader { epoch: 6 }
        );
        assert!(role.leads_since(6) && !role.leads_since(4));
    }
}
