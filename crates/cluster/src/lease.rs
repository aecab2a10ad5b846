//! The lease keeper: renews the leases of every held task a few times per
//! lease period, so a task that runs longer than `retry` is never handed to
//! another cluster while it runs. Tasks whose results wait for their
//! acknowledgement are still held, so their leases are renewed too while
//! the broker answers (see `monitor`, which retries an acknowledgement
//! until the lease really ends).

use std::sync::Arc;
use std::time::Duration;

use wasq_brokers::AckId;

use crate::{Shared, Taken};

/// The longest pause between renewals while the broker does not answer:
/// leases are renewed soon after it is back.
const OUTAGE_PAUSE: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: Arc<Shared>) {
    let lease = shared.config.retry;
    let mut stop = shared.stop.clone();
    loop {
        let pause = if shared.outages.renew.is_down() {
            (lease / 3).min(OUTAGE_PAUSE)
        } else {
            lease / 3
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = crate::stopped(&mut stop) => return,
        }
        let mut held: Vec<Taken> = shared.held().iter().cloned().collect();
        held.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for same_queue in held.chunk_by(|a, b| a.0 == b.0) {
            let queue = same_queue[0].0.clone();
            let acks: Vec<AckId> = same_queue.iter().map(|(_, ack)| ack.clone()).collect();
            for chunk in acks.chunks(500) {
                match shared.broker.renew(&queue, chunk, lease).await {
                    Ok(still) => {
                        shared.outages.renew.answered();
                        let renewed = still.iter().filter(|r| **r).count() as u64;
                        wasq_core::metrics::count("wasq_leases_renewed_total", &[], renewed);
                        let lost = chunk
                            .iter()
                            .zip(still)
                            .filter(|(_, renewed)| !renewed)
                            .filter(|(ack, _)| really_lost(&shared, &queue, ack));
                        for (ack, _) in lost {
                            wasq_core::metrics::count("wasq_leases_lost_total", &[], 1);
                            tracing::warn!(%ack, "lost the lease of a running task");
                        }
                    }
                    Err(error) => shared.outages.renew.failed(&error),
                }
            }
        }
    }
}

/// Whether a delivery the broker no longer holds for us was lost: not if
/// it left since the snapshot (acknowledged, handed back), nor while its
/// acknowledgement is under way (the broker may have taken it before the
/// monitor lets go of it; a lease lost then is the monitor's to count).
fn really_lost(shared: &Shared, queue: &Arc<str>, ack: &AckId) -> bool {
    let taken = (queue.clone(), ack.clone());
    // Both locks at once, `held` first: the monitor marks a delivery as
    // being acknowledged before it asks the broker and forgets it from
    // `held` before it unmarks it, so one of the two always says so.
    let held = shared.held();
    let acking = shared.acking();
    held.contains(&taken) && !acking.contains(&taken)
}
