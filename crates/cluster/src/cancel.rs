//! The cancel watcher: reads cancel requests (`wasq cancel`) from the
//! store every [`POLL`], so the pusher skips cancelled tasks it takes and
//! running ones are stopped through their [`CancelToken`]s.

use std::sync::Arc;
use std::time::Duration;

use crate::Shared;

/// How often the store is asked for new cancel requests.
const POLL: Duration = Duration::from_millis(200);
/// Reads the cancel requests made after the last one seen; answers
/// whether the store could be read.
pub(crate) async fn refresh(shared: &Shared) -> bool {
    let after = shared.cancels().last_seq();
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
        if let Some((token, _)) = running.get(&id) {
            tracing::info!(%id, "cancelling a running task");
            token.cancel();
        }
        cancels.add(seq, id);
    }
    true
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = crate::stopped(&mut stop) => return,
        }
        refresh(&shared).await;
    }
}
