//! How `sluice iotune` turns measured points into settings: the smallest
//! I/O size that reaches [`GOOD_ENOUGH`] of the best bandwidth measured at
//! the same depth. A larger size buys little bandwidth and costs memory on
//! every partition (a write buffer or a read ahead each), so the smallest
//! that gets close is the one to take; "close" is tight because the
//! bandwidth a size loses is lost by durable produce too (a write buffer
//! chosen at 90% of the best measured 0.90x tput-1k at flush=always).
//! [`best_of`] merges repeated sweeps, so one slow pass (another tenant of
//! the disk, say) does not pick the size. Pure: points in, a size out.

use crate::properties::Point;

/// The share of the best bandwidth a size must reach to be taken.
pub const GOOD_ENOUGH: f64 = 0.95;

/// The smallest `bytes` among `points` whose bandwidth is at least
/// [`GOOD_ENOUGH`] of the best one's; `None` when there are no points or
/// none moved a byte.
pub fn smallest_good_enough(points: &[Point]) -> Option<u64> {
    let best = points.iter().map(|p| p.bandwidth).max()?;
    if best == 0 {
        return None;
    }
    points
        .iter()
        .filter(|p| p.bandwidth as f64 >= GOOD_ENOUGH * best as f64)
        .map(|p| p.bytes)
        .min()
}

/// Per size (and depth), the point with the best bandwidth among
/// `passes`, in the order sizes first appear.
pub fn best_of(passes: &[Vec<Point>]) -> Vec<Point> {
    let mut best: Vec<Point> = Vec::new();
    for point in passes.iter().flatten() {
        match best
            .iter_mut()
            .find(|b| b.bytes == point.bytes && b.depth == point.depth)
        {
            Some(b) if b.bandwidth < point.bandwidth => *b = *point,
            Some(_) => {}
            None => best.push(*point),
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(bw: &[(u64, u64)]) -> Vec<Point> {
        bw.iter()
            .map(|&(bytes, bandwidth)| Point {
                bytes,
                depth: 1,
                bandwidth,
                iops: 0,
            })
            .collect()
    }

    #[test]
    fn the_smallest_size_within_five_percent_of_the_best_wins() {
        let p = points(&[(64, 500), (128, 850), (256, 940), (512, 1000), (1024, 990)]);
        assert_eq!(smallest_good_enough(&p), Some(512));
        let p = points(&[(64, 500), (128, 850), (256, 950), (512, 1000), (1024, 990)]);
        assert_eq!(smallest_good_enough(&p), Some(256));
    }

    #[test]
    fn repeated_sweeps_keep_each_size_at_its_best() {
        let first = points(&[(64, 500), (128, 900)]);
        let second = points(&[(64, 600), (128, 700)]);
        assert_eq!(best_of(&[first, second]), points(&[(64, 600), (128, 900)]));
        assert_eq!(best_of(&[]), Vec::new());
    }

    #[test]
    fn order_does_not_matter_and_ties_take_the_smaller() {
        let p = points(&[(1024, 1000), (256, 1000), (64, 100)]);
        assert_eq!(smallest_good_enough(&p), Some(256));
    }

    #[test]
    fn nothing_measured_chooses_nothing() {
        assert_eq!(smallest_good_enough(&[]), None);
        assert_eq!(smallest_good_enough(&points(&[(64, 0), (128, 0)])), None);
    }
}
