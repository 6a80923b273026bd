//! The replication throttle (Kafka's `follower.replication.throttled.rate`
//! and `leader.replication.throttled.rate`): a byte budget that refills at
//! the configured rate, which throttled replicas' fetches spend.
//!
//! Owns: the budget's arithmetic. Pure: the time is an argument.
//!
//! Invariants: the budget never holds more than one second of the rate
//! (a throttled replica idle for a while does not then burst past it); it
//! may go into debt by one fetch's bytes, and no throttled fetch is sent
//! until the debt is repaid, so over any long run the throttled bytes per
//! second stay within the rate plus one fetch's bytes per run.

/// A byte budget refilled at `rate` bytes per second.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    rate: u64,
    /// Bytes that may be fetched now (negative: owed).
    budget: f64,
    last_ms: i64,
}

impl Throttle {
    /// A throttle of `rate` bytes per second (`u64::MAX`: none), full.
    pub fn new(rate: u64, now_ms: i64) -> Throttle {
        Throttle {
            rate,
            budget: rate as f64,
            last_ms: now_ms,
        }
    }

    /// The rate, bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Changes the rate, keeping what is owed or saved (within the new
    /// rate's second).
    pub fn set_rate(&mut self, rate: u64, now_ms: i64) {
        self.refill(now_ms);
        self.rate = rate;
        self.budget = self.budget.min(rate as f64);
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.last_ms = self.last_ms.max(now_ms);
        self.budget = (self.budget + elapsed * self.rate as f64).min(self.rate as f64);
    }

    /// True when throttled replicas may fetch now.
    pub fn allows(&mut self, now_ms: i64) -> bool {
        self.refill(now_ms);
        self.budget > 0.0
    }

    /// Milliseconds until throttled replicas may fetch again (0: now).
    pub fn wait_ms(&mut self, now_ms: i64) -> u64 {
        self.refill(now_ms);
        if self.budget > 0.0 || self.rate == 0 {
            // A zero rate never refills: the caller waits its own backoff.
            return if self.rate == 0 { 1000 } else { 0 };
        }
        ((-self.budget / self.rate as f64) * 1000.0).ceil() as u64 + 1
    }

    /// `bytes` of throttled replicas' records were fetched.
    pub fn spend(&mut self, bytes: u64, now_ms: i64) {
        self.refill(now_ms);
        self.budget -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_holds_the_rate_over_a_long_run() {
        let rate = 1_000_000u64;
        let mut t = Throttle::new(rate, 0);
        let mut fetched = 0u64;
        let mut now = 0i64;
        // A follower fetching 300 kB whenever allowed, for 10 seconds.
        while now < 10_000 {
            if t.allows(now) {
                t.spend(300_000, now);
                fetched += 300_000;
            } else {
                now += t.wait_ms(now) as i64;
            }
        }
        let allowed = rate * 10 + rate + 300_000;
        assert!(fetched <= allowed, "{fetched} > {allowed}");
        assert!(fetched >= rate * 9, "{fetched} far below the rate");
    }

    #[test]
    fn an_idle_throttle_saves_at_most_one_second() {
        let mut t = Throttle::new(1000, 0);
        t.spend(1000, 0);
        assert!(!t.allows(0));
        assert_eq!(t.wait_ms(0), 1);
        assert!(t.allows(60_000));
        t.spend(1001, 60_000);
        assert!(!t.allows(60_000), "idle for a minute, still one second");
        t.set_rate(10, 60_000);
        assert!(t.wait_ms(60_000) >= 100);
    }
}
