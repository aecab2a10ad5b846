//! A small seeded random number generator (SplitMix64): every random moment and choice of a
//! run comes from it, so the seed printed with the table repeats the run's faults.

use std::time::Duration;

/// SplitMix64: fast, small, good enough to pick moments and victims.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The generator of one scenario: the run's seed mixed with the scenario's name, so that
    /// `--only NAME --seed N` repeats what the whole run did for that scenario.
    pub(crate) fn for_scenario(seed: u64, name: &str) -> Self {
        // FNV-1a of the name.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(seed ^ hash)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub(crate) fn range(&mut self, (low, high): (u64, u64)) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low + 1)
    }

    /// A duration of `low..=high` milliseconds.
    pub(crate) fn millis(&mut self, bounds: (u64, u64)) -> Duration {
        Duration::from_millis(self.range(bounds))
    }

    /// An index below `n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_repeats_and_ranges_hold() {
        let mut a = Rng::for_scenario(7, "kill");
        let mut b = Rng::for_scenario(7, "kill");
        let mut c = Rng::for_scenario(7, "other");
        let first: Vec<u64> = (0..5).map(|_| a.range((10, 20))).collect();
        let again: Vec<u64> = (0..5).map(|_| b.range((10, 20))).collect();
        let other: Vec<u64> = (0..5).map(|_| c.range((10, 1_000_000))).collect();
        assert_eq!(first, again);
        assert!(first.iter().all(|n| (10..=20).contains(n)), "{first:?}");
        assert_ne!(other, again);
        assert_eq!(a.range((5, 5)), 5);
        assert!(a.below(3) < 3);
    }
}
