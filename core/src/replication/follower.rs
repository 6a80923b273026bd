//! Where a follower cuts its log before it fetches from a new leader
//! (KIP-101 and KIP-279): everything past the point where its history and
//! the leader's part ways goes, and nothing the leader also has.
//!
//! The follower asks the leader, with OffsetForLeaderEpoch, where its own
//! latest epoch ends in the leader's log; [`truncation`] turns the answer
//! into the offset to cut at, and says whether to ask again (the leader
//! answered with an older epoch that the follower's log does not end with).

use super::epochs::{EpochCache, UNDEFINED_EPOCH, UNDEFINED_OFFSET};
use crate::{LeaderEpoch, Offset};

/// What a follower does with the leader's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// Cut the log here (at or above: nothing to cut when it is the log end).
    pub to: Offset,
    /// The histories may part earlier still: ask again with the latest
    /// epoch left after the cut.
    pub ask_again: bool,
}

/// The cut for the leader's answer `(leader_epoch, leader_end)` to the
/// follower's request, given the follower's epochs, log end and high
/// watermark. With no usable answer (the leader has no epoch that old),
/// the follower keeps only what it knows was committed: up to its high
/// watermark.
pub fn truncation(
    local: &EpochCache,
    log_end: Offset,
    high_watermark: Offset,
    answer: (LeaderEpoch, Offset),
) -> Truncation {
    let (leader_epoch, leader_end) = answer;
    if leader_epoch == UNDEFINED_EPOCH || leader_end == UNDEFINED_OFFSET {
        return Truncation {
            to: high_watermark.min(log_end),
            ask_again: false,
        };
    }
    let (local_epoch, local_end) = local.end_offset_for(leader_epoch, log_end);
    if local_epoch == leader_epoch {
        Truncation {
            to: leader_end.min(local_end).min(log_end),
            ask_again: false,
        }
    } else {
        // The follower does not have the leader's epoch: cut where its own
        // older epoch ends, and ask again about that one.
        let to = if local_epoch == UNDEFINED_EPOCH {
            leader_end.min(log_end)
        } else {
            leader_end.min(local_end).min(log_end)
        };
        Truncation {
            to,
            ask_again: to < log_end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_with_an_unacknowledged_tail_of_its_own_epoch_cuts_it() {
        // Old leader wrote epoch 1 up to 15; the new leader (epoch 2) had
        // only up to 12.
        let local = EpochCache::from_entries(&[(0, 0), (1, 5)]);
        let cut = truncation(&local, 15, 10, (1, 12));
        assert_eq!(
            cut,
            Truncation {
                to: 12,
                ask_again: false
            }
        );
    }

    #[test]
    fn a_follower_behind_the_leader_keeps_everything() {
        let local = EpochCache::from_entries(&[(0, 0), (1, 5)]);
        assert_eq!(truncation(&local, 8, 8, (1, 20)).to, 8);
    }

    #[test]
    fn an_epoch_the_leader_never_saw_is_cut_back_to_where_the_older_one_ends() {
        // Follower wrote epoch 3 (never committed); the leader jumped from
        // 2 to 4 and answers about 3 with (2, 20).
        let local = EpochCache::from_entries(&[(0, 0), (2, 10), (3, 18)]);
        let cut = truncation(&local, 25, 10, (2, 20));
        assert_eq!(
            cut,
            Truncation {
                to: 18,
                ask_again: false
            }
        );
        // Leader answers with an epoch the follower lacks: cut and ask again.
        let local = EpochCache::from_entries(&[(0, 0), (3, 18)]);
        let cut = truncation(&local, 25, 10, (2, 20));
        assert_eq!(
            cut,
            Truncation {
                to: 18,
                ask_again: true
            }
        );
    }

    #[test]
    fn no_usable_answer_keeps_the_high_watermark() {
        let local = EpochCache::from_entries(&[(0, 0)]);
        assert_eq!(truncation(&local, 30, 12, (-1, -1)).to, 12);
    }
}
