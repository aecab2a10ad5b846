//! The cancel watcher: reads cancel requests (`wasq cancel`) from the
//! store every [`POLL`], so the pusher skips cancelled tasks it takes and
//! running ones are stopped through their [`CancelToken`]s.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// How often the store is asked for new cancel requests.
const POLL: Duration = Duration::from_millis(200);
/// Cancelled ids remembered by a cluster; the oldest are forgotten first.
const REMEMBERED: usize = 100_000;

/// The cancel requests a cluster has seen.
#[derive(Debug, Default)]
pub(crate) struct Cancels {
    /// The last request's sequence number.
    seq: i64,
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Cancels {
    /// Whether task `id` is to be cancelled.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

/// Reads the cancel requests made after the last one seen; answers
/// whether the store could be read.
pub(crate) async fn refresh(shared: &Shared) -> bool {
    let after = shared.cancels().seq;
    let found = match shared.store.cancelled_after(after).await {
        Ok(found) => found,
        Err(error) => {
            tracing::debug!(%error, "cannot read cancel requests");
            return false;
        }
    };
    if found.is_empty() {
        return true;
    }
    let running = shared.running();
    let mut cancels = shared.cancels();
    for (seq, id) in found {
        cancels.seq = cancels.seq.max(seq);
        if let Some((token, _)) = running.get(&id) {
            tracing::info!(%id, "cancelling a running task");
            token.cancel();
        }
        if cancels.ids.insert(id.clone()) {
            cancels.order.push_back(id);
        }
    }
    while cancels.order.len() > REMEMBERED {
        if let Some(old) = cancels.order.pop_front() {
            cancels.ids.remove(&old);
        }
    }
    true
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = super::stopped(&mut stop) => return,
        }
        refresh(&shared).await;
    }
}
