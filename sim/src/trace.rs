//! The run's trace: every client-visible event, hashed.
//!
//! Owns: a running FNV-1a hash of the events and their count, and the last
//! few events for a failure's report. Two runs of one seed must end with
//! the same hash: that is the determinism check.

use std::collections::VecDeque;

/// Events kept for a failure report.
const RECENT_MAX: usize = 40;

#[derive(Debug, Clone)]
pub struct Trace {
    hash: u64,
    events: u64,
    recent: VecDeque<String>,
    step: u64,
    verbose: bool,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            events: 0,
            recent: VecDeque::new(),
            step: 0,
            verbose: false,
        }
    }
}

impl Trace {
    /// An empty trace; `verbose` prints every event as it happens.
    pub fn new(verbose: bool) -> Trace {
        Trace {
            verbose,
            ..Trace::default()
        }
    }

    /// The step events are recorded under from now on.
    pub fn at_step(&mut self, step: u64) {
        self.step = step;
    }

    pub fn event(&mut self, text: &str) {
        let line = format!("{} {text}", self.step);
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            self.hash ^= byte as u64;
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.events += 1;
        if self.verbose {
            eprintln!("{line}");
        }
        if self.recent.len() == RECENT_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(line);
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    /// The last events, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &String> {
        self.recent.iter()
    }
}
