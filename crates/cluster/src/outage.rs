//! One outage, two log lines. An [`Outage`] is what one part of the
//! cluster knows of a service it calls (the broker or the store): the
//! first failed call is warned of, the retries that follow are debug
//! lines, and the first call that works after them warns that the service
//! answers again, with how many calls failed and for how long. A broker
//! restart then logs two lines per part that noticed it, not one per retry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// One part's view of one service: up, or down since a failed call.
#[derive(Debug)]
pub(crate) struct Outage {
    /// The part that calls, e.g. `pusher`.
    part: &'static str,
    /// The service it calls, e.g. `broker`.
    service: &'static str,
    /// What fails, e.g. `cannot take tasks from the broker`.
    failing: &'static str,
    /// Whether `down` holds an outage: lets a working call skip the lock.
    is_down: AtomicBool,
    down: Mutex<Option<Down>>,
}

/// An outage going on.
#[derive(Debug)]
struct Down {
    since: Instant,
    failures: u64,
}

impl Outage {
    /// The view `part` has of `service`; `failing` says what does not work
    /// while it is down.
    pub(crate) const fn new(
        part: &'static str,
        service: &'static str,
        failing: &'static str,
    ) -> Self {
        Self {
            part,
            service,
            failing,
            is_down: AtomicBool::new(false),
            down: Mutex::new(None),
        }
    }

    /// A call failed: warns if it is the first of an outage.
    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *down {
            Some(outage) => {
                outage.failures += 1;
                tracing::debug!(part = self.part, %error, "{}; still retrying", self.failing);
            }
            None => {
                *down = Some(Down {
                    since: Instant::now(),
                    failures: 1,
                });
                self.is_down.store(true, Ordering::Release);
                tracing::warn!(part = self.part, %error, "{}; retrying until it answers", self.failing);
            }
        }
    }

    /// A call worked: warns that the service answers again if it was down.
    pub(crate) fn answered(&self) {
        if !self.is_down.load(Ordering::Acquire) {
            return;
        }
        let ended = self
            .down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.is_down.store(false, Ordering::Release);
        if let Some(Down { since, failures }) = ended {
            tracing::warn!(
                part = self.part,
                failures,
                "the {} answers the {} again after {failures} failed tries over {:.1} s",
                self.service,
                self.part,
                since.elapsed().as_secs_f64()
            );
        }
    }

    /// Whether the last call failed.
    pub(crate) fn is_down(&self) -> bool {
        self.is_down.load(Ordering::Acquire)
    }
}

/// The outages the parts of a cluster track, one per part and service.
#[derive(Debug)]
pub(crate) struct Outages {
    /// The pusher's takes from the broker.
    pub(crate) take: Outage,
    /// The lease keeper's renewals.
    pub(crate) renew: Outage,
    /// The monitor's acknowledgements.
    pub(crate) ack: Outage,
    /// The monitor's saves of results.
    pub(crate) save: Outage,
    /// The heartbeat's writes to the store.
    pub(crate) heartbeat: Outage,
    /// The scheduler's calls to the store.
    pub(crate) schedule_store: Outage,
    /// The scheduler's hand-over of due tasks to the broker.
    pub(crate) schedule_broker: Outage,
}

impl Default for Outages {
    fn default() -> Self {
        Self {
            take: Outage::new("pusher", "broker", "cannot take tasks from the broker"),
            renew: Outage::new("lease keeper", "broker", "cannot renew leases"),
            ack: Outage::new("monitor", "broker", "cannot acknowledge finished tasks"),
            save: Outage::new("monitor", "store", "cannot save results"),
            heartbeat: Outage::new("heartbeat", "store", "cannot record the heartbeat"),
            schedule_store: Outage::new("scheduler", "store", "scheduler cannot reach the store"),
            schedule_broker: Outage::new(
                "scheduler",
                "broker",
                "cannot hand due tasks to the broker (they are tried again when their claim ends)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Outage;

    #[test]
    fn an_outage_is_down_from_its_first_failure_to_the_next_answer() {
        let outage = Outage::new("pusher", "broker", "cannot take tasks");
        outage.answered();
        assert!(!outage.is_down());
        outage.failed(&"connection refused");
        outage.failed(&"connection refused");
        assert!(outage.is_down());
        outage.answered();
        assert!(!outage.is_down());
        outage.failed(&"connection refused");
        assert!(outage.is_down());
    }
}
