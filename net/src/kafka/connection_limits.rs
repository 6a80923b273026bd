//! How many client connections the node holds: in total and per client
//! address, over every shard; and how fast each address opens them.
//!
//! Owns: the counts behind Kafka's `max.connections` and
//! `max.connections.per.ip`, and the ceiling the open-file limit puts on
//! them; the creation rate of each address with a
//! `connection_creation_rate` quota (KIP-612), at most
//! [`MAX_RATED_ADDRESSES`] of them (the least recently used forgotten
//! first, an idle one after an hour). Connections are spread over shards by the kernel (SO_REUSEPORT),
//! but the limits are the node's, so the counts are shared by all shards.
//! They are touched only when a connection opens or closes, never per
//! request, which is why an atomic and a mutex are acceptable here.
//!
//! Invariants: every [`ConnectionSlot`] handed out is counted once in the
//! total and once for its address, and uncounted exactly once, when it is
//! dropped; an address whose count falls to zero is forgotten, so the table
//! holds only addresses with open connections.
//!
//! What a client sees, as with Kafka: while the node is at
//! `max.connections`, listeners stop accepting, so new connections wait in
//! the kernel's backlog until one closes; a connection over
//! `max.connections.per.ip` is accepted and closed at once; one over its
//! address's `connection_creation_rate` is accepted, not counted, never
//! read from, and closed once its throttle passed (at most a second), so
//! the client cannot retry at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sluice_core::quota::{RateWindow, Sensors, MAX_CONNECTION_THROTTLE_MS};

/// Addresses whose connection creation rate the node tracks at most.
pub const MAX_RATED_ADDRESSES: usize = 10_000;

/// The node's connection counts and limits; shared by every shard.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: u64,
    max_per_ip: u64,
    total: AtomicU64,
    per_ip: Mutex<HashMap<IpAddr, u64>>,
    refused_per_ip: AtomicU64,
    /// Connections opened per second, by address with a quota.
    creation_rates: Mutex<Sensors<IpAddr, RateWindow>>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The node holds `max.connections` already (another shard took the
    /// last slot between the check and the accept): the listener holds the
    /// accepted connection until a slot frees, as if it were still in the
    /// backlog.
    Total,
    /// The client's address holds `max.connections.per.ip` already.
    PerIp,
}

impl ConnectionLimits {
    /// Limits of `max_total` connections in all and `max_per_ip` per client
    /// address.
    pub fn new(max_total: u64, max_per_ip: u64) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
            total: AtomicU64::new(0),
            per_ip: Mutex::new(HashMap::new()),
            refused_per_ip: AtomicU64::new(0),
            creation_rates: Mutex::new(Sensors::new(MAX_RATED_ADDRESSES)),
        })
    }

    /// Records a new connection from `ip`, whose `connection_creation_rate`
    /// is `quota` per second, at `now_ms` (any shard's monotonic clock):
    /// 0 within the quota, else how long to hold the connection before
    /// closing it (Kafka's throttle, at most [`MAX_CONNECTION_THROTTLE_MS`]);
    /// a connection refused so is not counted in the rate, as in Kafka.
    pub fn record_creation(&self, ip: IpAddr, quota: f64, now_ms: u64) -> u64 {
        let mut rates = self
            .creation_rates
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let window = rates.entry(ip.to_canonical(), now_ms, || RateWindow::new(now_ms));
        window.record(1.0, now_ms);
        let throttle_ms = window
            .throttle_ms(quota, now_ms)
            .min(MAX_CONNECTION_THROTTLE_MS);
        if throttle_ms > 0 {
            window.record(-1.0, now_ms);
        }
        throttle_ms
    }

    /// The highest `max.connections` the open-file limit allows: the
    /// limit less a reserve for segment, index and checkpoint files (a
    /// quarter of it, at least 256).
    pub fn ceiling_for_open_files(open_files_limit: u64) -> u64 {
        let reserve = (open_files_limit / 4).max(256);
        open_files_limit.saturating_sub(reserve).max(1)
    }

    /// False while the node holds `max.connections`: listeners then stop
    /// accepting.
    pub fn has_room(&self) -> bool {
        self.total.load(Ordering::Relaxed) < self.max_total
    }

    /// Counts a new connection from `ip`, or says why it must be closed.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refused> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            self.refused_per_ip.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::PerIp);
        }
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.max_total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::Total);
        }
        per_ip.insert(ip, from_ip + 1);
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Connections open now, over every shard.
    pub fn open_connections(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Client addresses with at least one open connection.
    pub fn addresses(&self) -> usize {
        self.per_ip.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Connections closed at once for `max.connections.per.ip`.
    pub fn refused_per_ip(&self) -> u64 {
        self.refused_per_ip.load(Ordering::Relaxed)
    }

    /// The limits in force: (`max.connections`, `max.connections.per.ip`).
    pub fn limits(&self) -> (u64, u64) {
        (self.max_total, self.max_per_ip)
    }
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        match per_ip.get_mut(&self.ip) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                per_ip.remove(&self.ip);
            }
            None => debug_assert!(false, "a slot's address is counted"),
        }
        self.limits.total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn per_ip_limit_refuses_the_extra_connection_and_frees_on_close() {
        let limits = ConnectionLimits::new(100, 2);
        let a = limits.open(ip(1)).expect("first");
        let _b = limits.open(ip(1)).expect("second");
        assert_eq!(limits.open(ip(1)).unwrap_err(), Refused::PerIp);
        let _c = limits.open(ip(2)).expect("another address");
        assert_eq!(limits.open_connections(), 3);
        drop(a);
        let _d = limits.open(ip(1)).expect("room again");
        assert_eq!(limits.refused_per_ip(), 1);
    }

    #[test]
    fn total_limit_is_shared_and_addresses_are_forgotten_when_closed() {
        let limits = ConnectionLimits::new(2, 100);
        let a = limits.open(ip(1)).expect("one");
        let b = limits.open(ip(2)).expect("two");
        assert!(!limits.has_room());
        assert_eq!(limits.open(ip(3)).unwrap_err(), Refused::Total);
        drop((a, b));
        assert!(limits.has_room());
        assert_eq!((limits.open_connections(), limits.addresses()), (0, 0));
    }

    #[test]
    fn an_address_over_its_creation_rate_is_throttled_at_most_a_second() {
        let limits = ConnectionLimits::new(100, 100);
        // 2 a second, counted over at least ten seconds: 20 pass at once.
        let throttles: Vec<u64> = (0..25)
            .map(|_| limits.record_creation(ip(1), 2.0, 1_000))
            .collect();
        assert!(throttles[..20].iter().all(|&t| t == 0), "{throttles:?}");
        assert!(
            throttles[20..].iter().all(|&t| t > 0 && t <= 1_000),
            "{throttles:?}"
        );
        // The throttled ones were not counted: another address has its
        // own rate, and an IPv4-mapped address is the same address.
        assert_eq!(limits.record_creation(ip(2), 2.0, 1_000), 0);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("an address");
        assert!(limits.record_creation(mapped, 2.0, 1_000) > 0);
        // Eleven seconds on, the first sample is gone.
        assert_eq!(limits.record_creation(ip(1), 2.0, 12_001), 0);
    }

    #[test]
    fn the_open_file_ceiling_keeps_a_reserve() {
        assert_eq!(ConnectionLimits::ceiling_for_open_files(1024), 768);
        assert_eq!(ConnectionLimits::ceiling_for_open_files(1_048_576), 786_432);
        assert_eq!(ConnectionLimits::ceiling_for_open_files(100), 1);
    }
}
