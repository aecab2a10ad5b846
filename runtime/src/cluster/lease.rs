//! The lease keeper: renews the leases of every held task a few times per
//! lease period, so a task that runs longer than `retry` is never handed to
//! another cluster while it runs.

use std::sync::Arc;

use wasq_brokers::AckId;

use super::{Shared, Taken};

pub(crate) async fn run(shared: Arc<Shared>) {
    let lease = shared.config.retry;
    let mut stop = shared.stop.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lease / 3) => {}
            _ = super::stopped(&mut stop) => return,
        }
        let mut held: Vec<Taken> = shared.held().iter().cloned().collect();
        held.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for same_queue in held.chunk_by(|a, b| a.0 == b.0) {
            let queue = same_queue[0].0.clone();
            let acks: Vec<AckId> = same_queue.iter().map(|(_, ack)| ack.clone()).collect();
            for chunk in acks.chunks(500) {
                match shared.broker.renew(&queue, chunk, lease).await {
                    Ok(still) => {
                        let renewed = still.iter().filter(|r| **r).count() as u64;
                        crate::metrics::count("wasq_leases_renewed_total", &[], renewed);
                        // A task acknowledged since the snapshot is gone from
                        // the broker too: only one still held was really lost.
                        let held_now = shared.held();
                        for (ack, renewed) in chunk.iter().zip(still) {
                            if !renewed && held_now.contains(&(queue.clone(), ack.clone())) {
                                crate::metrics::count("wasq_leases_lost_total", &[], 1);
                                tracing::warn!(%ack, "lost the lease of a running task");
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot renew leases"),
                }
            }
        }
    }
}
