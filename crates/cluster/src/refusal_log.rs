//! The log of refused packages: the first refusal after a verified package
//! is an error line, the rest only counted, so a misconfigured cluster that
//! refuses everything says so once.

use std::sync::atomic::{AtomicU64, Ordering};

/// Refusals since the last package this cluster could verify: the first
/// is warned of, the rest only counted (a misconfigured cluster refuses
/// every package).
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    since_verified: AtomicU64,
}

impl RefusalLog {
    /// A package verified: the next refusal is news again.
    pub(crate) fn verified(&self) {
        let refused = self.since_verified.swap(0, Ordering::Relaxed);
        if refused > 1 {
            tracing::warn!(refused, "verifying packages again after refusing some");
        }
    }

    pub(crate) fn refused(&self, reason: &str) {
        if self.since_verified.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::error!(
                %reason,
                "refusing a task package; it goes back to the broker for other clusters \
                 (if this cluster refuses every package, its secret differs from the enqueuers')"
            );
        }
    }
}
