//! Share sessions (KIP-932): which partitions a share group member fetches
//! from this broker, so its ShareFetch requests name only what changed.
//!
//! Owns: one session per (group, member) among the connections this shard
//! serves: its epoch and its partitions. Epoch 0 opens a session (with the
//! request's partitions, replacing any older one), a positive epoch must be
//! the session's next one (INVALID_SHARE_SESSION_EPOCH otherwise,
//! SHARE_SESSION_NOT_FOUND without a session) and adds and forgets
//! partitions, -1 closes it. Pure: no I/O; times are arguments.
//!
//! Invariants: at most `max_sessions` sessions (a new one past that takes
//! the place of one idle longer than `idle_ms`, or is refused with
//! SHARE_SESSION_LIMIT_REACHED); a session's partitions are distinct.

use std::collections::HashMap;
use std::net::SocketAddr;

use sluice_core::ErrorCode;

/// A partition of a session: (topic id, partition).
pub type SessionPartition = ([u8; 16], i32);

#[derive(Debug)]
struct Session {
    /// The epoch its next request must carry.
    next_epoch: i32,
    partitions: Vec<SessionPartition>,
    last_used_ms: i64,
    /// The connection that opened it: the session ends with it.
    connection: Option<SocketAddr>,
}

/// The share sessions of one shard's connections.
#[derive(Debug)]
pub struct ShareSessions {
    sessions: HashMap<(String, String), Session>,
    max_sessions: usize,
    idle_ms: i64,
}

/// What a request's session epoch does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStep {
    /// The partitions to fetch from (the session's, after the request's
    /// changes).
    Fetch(Vec<SessionPartition>),
    /// The session ended (epoch -1): acknowledge, release what the member
    /// holds, fetch nothing.
    Closed,
}

/// The epoch after `epoch` (1 after the largest, 0 being the opening one).
fn next(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl ShareSessions {
    pub fn new(max_sessions: usize, idle_ms: i64) -> ShareSessions {
        ShareSessions {
            sessions: HashMap::new(),
            max_sessions,
            idle_ms,
        }
    }

    /// A ShareFetch's session part: `epoch`, the partitions it names
    /// (`named`, added to the session) and those it forgets; `connection`
    /// is the one the request came on.
    #[allow(clippy::too_many_arguments)]
    pub fn fetch(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        named: &[SessionPartition],
        forgotten: &[SessionPartition],
        now_ms: i64,
        connection: Option<SocketAddr>,
    ) -> Result<SessionStep, ErrorCode> {
        let key = (group.to_owned(), member.to_owned());
        match epoch {
            0 => {
                if !self.sessions.contains_key(&key) && self.sessions.len() >= self.max_sessions {
                    self.evict_idle(now_ms)?;
                }
                let mut partitions = Vec::new();
                add(&mut partitions, named);
                self.sessions.insert(
                    key,
                    Session {
                        next_epoch: 1,
                        partitions: partitions.clone(),
                        last_used_ms: now_ms,
                        connection,
                    },
                );
                Ok(SessionStep::Fetch(partitions))
            }
            -1 => {
                self.sessions
                    .remove(&key)
                    .ok_or(ErrorCode::ShareSessionNotFound)?;
                Ok(SessionStep::Closed)
            }
            e if e > 0 => {
                let session = self
                    .sessions
                    .get_mut(&key)
                    .ok_or(ErrorCode::ShareSessionNotFound)?;
                if session.next_epoch != e {
                    return Err(ErrorCode::InvalidShareSessionEpoch);
                }
                session.next_epoch = next(e);
                session.last_used_ms = now_ms;
                // Forgotten wins over named, as in Kafka: a client names a
                // partition it only acknowledges and forgets it at once.
                add(&mut session.partitions, named);
                session.partitions.retain(|p| !forgotten.contains(p));
                Ok(SessionStep::Fetch(session.partitions.clone()))
            }
            _ => Err(ErrorCode::InvalidShareSessionEpoch),
        }
    }

    /// A ShareAcknowledge's session part: a positive epoch must be the
    /// session's next one; -1 closes it; 0 is refused (an acknowledgement
    /// cannot open a session).
    pub fn acknowledge(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        now_ms: i64,
    ) -> Result<SessionStep, ErrorCode> {
        if epoch == 0 {
            return Err(ErrorCode::InvalidShareSessionEpoch);
        }
        self.fetch(group, member, epoch, &[], &[], now_ms, None)
    }

    /// `connection` closed: its sessions end. (group, member, partitions)
    /// of each, so what the members hold there goes back.
    pub fn close_connection(
        &mut self,
        connection: SocketAddr,
    ) -> Vec<(String, String, Vec<SessionPartition>)> {
        let ended: Vec<(String, String)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.connection == Some(connection))
            .map(|(k, _)| k.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|key| {
                let session = self.sessions.remove(&key)?;
                Some((key.0, key.1, session.partitions))
            })
            .collect()
    }

    /// Makes room for a new session: the one idle longest goes if it was
    /// idle `idle_ms`, else SHARE_SESSION_LIMIT_REACHED.
    fn evict_idle(&mut self, now_ms: i64) -> Result<(), ErrorCode> {
        let oldest = self
            .sessions
            .iter()
            .min_by_key(|(_, s)| s.last_used_ms)
            .filter(|(_, s)| now_ms - s.last_used_ms >= self.idle_ms)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => {
                self.sessions.remove(&key);
                Ok(())
            }
            None => Err(ErrorCode::ShareSessionLimitReached),
        }
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// Adds `named` to `partitions`, each once.
fn add(partitions: &mut Vec<SessionPartition>, named: &[SessionPartition]) {
    for p in named {
        if !partitions.contains(p) {
            partitions.push(*p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: [u8; 16] = [9; 16];

    #[test]
    fn epochs_open_continue_and_close_a_session() {
        let mut s = ShareSessions::new(2, 1_000);
        assert_eq!(
            s.fetch("g", "m", 1, &[], &[], 0, None),
            Err(ErrorCode::ShareSessionNotFound)
        );
        assert_eq!(
            s.fetch("g", "m", 0, &[(T, 0), (T, 1)], &[], 0, None),
            Ok(SessionStep::Fetch(vec![(T, 0), (T, 1)]))
        );
        assert_eq!(
            s.fetch("g", "m", 1, &[(T, 2)], &[(T, 0)], 0, None),
            Ok(SessionStep::Fetch(vec![(T, 1), (T, 2)]))
        );
        assert_eq!(
            s.fetch("g", "m", 1, &[], &[], 0, None),
            Err(ErrorCode::InvalidShareSessionEpoch)
        );
        // Named to acknowledge and forgotten in the same request: gone.
        let mut t = ShareSessions::new(1, 1_000);
        t.fetch("g", "m", 0, &[(T, 0)], &[], 0, None).expect("room");
        assert_eq!(
            t.fetch("g", "m", 1, &[(T, 1)], &[(T, 1)], 0, None),
            Ok(SessionStep::Fetch(vec![(T, 0)]))
        );
        assert_eq!(
            s.acknowledge("g", "m", 2, 0),
            Ok(SessionStep::Fetch(vec![(T, 1), (T, 2)]))
        );
        assert_eq!(
            s.acknowledge("g", "m", 0, 0),
            Err(ErrorCode::InvalidShareSessionEpoch)
        );
        assert_eq!(
            s.fetch("g", "m", -1, &[], &[], 0, None),
            Ok(SessionStep::Closed)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn a_closed_connection_ends_its_sessions_only() {
        let mut s = ShareSessions::new(4, 1_000);
        let a: SocketAddr = "127.0.0.1:1000".parse().expect("address");
        let b: SocketAddr = "127.0.0.1:1001".parse().expect("address");
        s.fetch("g", "m1", 0, &[(T, 0)], &[], 0, Some(a))
            .expect("room");
        s.fetch("g", "m2", 0, &[(T, 1)], &[], 0, Some(b))
            .expect("room");
        assert_eq!(
            s.close_connection(a),
            vec![("g".to_owned(), "m1".to_owned(), vec![(T, 0)])]
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_full_table_gives_way_only_to_idle_sessions() {
        let mut s = ShareSessions::new(2, 1_000);
        s.fetch("g", "a", 0, &[(T, 0)], &[], 0, None).expect("room");
        s.fetch("g", "b", 0, &[(T, 0)], &[], 500, None)
            .expect("room");
        assert_eq!(
            s.fetch("g", "c", 0, &[(T, 0)], &[], 900, None),
            Err(ErrorCode::ShareSessionLimitReached)
        );
        assert!(
            s.fetch("g", "c", 0, &[(T, 0)], &[], 1_000, None).is_ok(),
            "a idled out"
        );
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.fetch("g", "a", 1, &[], &[], 1_000, None),
            Err(ErrorCode::ShareSessionNotFound)
        );
    }
}
