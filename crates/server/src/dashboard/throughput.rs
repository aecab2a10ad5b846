//! Tasks per second across every cluster, from the `done` counters their
//! heartbeats carry: each overview page adds a sample (time, total done),
//! and the rate is the change over the last minute of samples. Stored
//! results cannot tell this once `save_limit` prunes successes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How far back samples are kept.
const WINDOW: Duration = Duration::from_secs(60);

/// Samples of the clusters' total of finished tasks.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    samples: Arc<Mutex<VecDeque<(Instant, u64)>>>,
}

impl Throughput {
    /// Adds a sample of `done` (the clusters' total) taken `at`, and
    /// answers tasks per second since the oldest sample in the window, or
    /// `None` until there are two samples a second apart. A total that
    /// went down (a cluster stopped or restarted) starts over.
    pub(crate) fn sample(&self, at: Instant, done: u64) -> Option<f64> {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.back().is_some_and(|&(_, last)| done < last) {
            samples.clear();
        }
        while samples
            .front()
            .is_some_and(|&(t, _)| at.saturating_duration_since(t) > WINDOW)
        {
            samples.pop_front();
        }
        samples.push_back((at, done));
        let &(first_at, first) = samples.front()?;
        let elapsed = at.saturating_duration_since(first_at).as_secs_f64();
        (elapsed >= 1.0).then(|| (done - first) as f64 / elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_change_over_the_window() {
        let throughput = Throughput::default();
        let start = Instant::now();
        assert_eq!(throughput.sample(start, 100), None);
        assert_eq!(
            throughput.sample(start + Duration::from_millis(500), 110),
            None
        );
        assert_eq!(
            throughput.sample(start + Duration::from_secs(2), 140),
            Some(20.0)
        );
        // Samples older than the window drop out.
        assert_eq!(
            throughput.sample(start + Duration::from_secs(62), 1340),
            Some(20.0)
        );
        // A restarted cluster starts over.
        assert_eq!(throughput.sample(start + Duration::from_secs(63), 5), None);
    }
}
