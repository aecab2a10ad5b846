//! The sentinel's state: the stop signal every part waits on, and the
//! [`PartFailure`] that stopped the cluster, if one did.

use tokio::sync::watch;

/// Why a cluster stopped by itself: one of its parts failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartFailure {
    /// A part that holds tasks panicked.
    #[error("the cluster's {part} panicked: {message}")]
    Panicked {
        /// The part: `pusher`, `dispatcher`, `monitor`, ….
        part: &'static str,
        /// The panic's message.
        message: String,
    },
    /// A part that is restarted failed more than [`RESTARTS`](crate::RESTARTS) times within
    /// a minute.
    #[error("the cluster's {part} failed {times} times within a minute, last: {message}")]
    KeptFailing {
        /// The part: `heartbeat`, `lease keeper`, ….
        part: &'static str,
        /// Failures within the minute.
        times: usize,
        /// The last failure: its panic message, or that it ended.
        message: String,
    },
    /// A part ended while the cluster was not stopping.
    #[error("the cluster's {part} ended unexpectedly")]
    Ended {
        /// The part.
        part: &'static str,
    },
}

impl PartFailure {
    /// The part that failed.
    pub fn part(&self) -> &'static str {
        match self {
            Self::Panicked { part, .. } | Self::KeptFailing { part, .. } | Self::Ended { part } => {
                part
            }
        }
    }

    /// Whether this is a cause rather than a consequence: a panic, not a
    /// part that ended (a dispatcher ends when the pusher is gone).
    fn is_cause(&self) -> bool {
        !matches!(self, Self::Ended { .. })
    }
}

/// The stop signal and the failure that raised it, if one did.
#[derive(Debug)]
pub(crate) struct Sentinel {
    stop: watch::Sender<bool>,
    failure: watch::Sender<Option<PartFailure>>,
}

impl Sentinel {
    /// A sentinel, and the receiver of its stop signal for the parts.
    pub(crate) fn new() -> (Self, watch::Receiver<bool>) {
        let (stop, stopping) = watch::channel(false);
        let (failure, _) = watch::channel(None);
        (Self { stop, failure }, stopping)
    }

    /// Tells every part to stop.
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// The failure that stopped the cluster, if one did.
    pub(crate) fn failure(&self) -> Option<PartFailure> {
        self.failure.borrow().clone()
    }

    /// Resolves with the first failure of a part.
    pub(crate) async fn wait_failure(&self) -> PartFailure {
        let mut failures = self.failure.subscribe();
        loop {
            if let Some(failure) = failures.borrow_and_update().clone() {
                return failure;
            }
            if failures.changed().await.is_err() {
                // The sender lives as long as the sentinel.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Records why the cluster stops: the first cause wins over parts that
    /// only ended.
    pub(crate) fn record(&self, failure: PartFailure) {
        self.failure.send_if_modified(|kept| {
            let replace = match kept {
                None => true,
                Some(old) => !old.is_cause() && failure.is_cause(),
            };
            if replace {
                *kept = Some(failure);
            }
            replace
        });
    }
}
