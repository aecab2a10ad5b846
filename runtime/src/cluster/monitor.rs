//! The monitor: saves finished tasks' results in batches, then
//! acknowledges them (or hands failed ones back for another attempt when
//! `ack_failures` is off).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Shared;
use super::jobs::{Completion, hand_back};

/// Most completions saved in one transaction.
const BATCH: usize = 512;

pub(crate) async fn run(shared: Arc<Shared>, mut done: mpsc::UnboundedReceiver<Completion>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = done.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match done.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        flush(&shared, std::mem::take(&mut batch)).await;
    }
}

async fn flush(shared: &Shared, batch: Vec<Completion>) {
    let config = &shared.config;
    let (finished, again): (Vec<_>, Vec<_>) = batch.into_iter().partition(|c| {
        c.result.success
            || config.ack_failures
            || c.deliveries >= config.max_attempts
            || c.result.outcome == "abandoned"
    });
    for completion in again {
        hand_back(shared, &completion.ack).await;
    }
    if finished.is_empty() {
        return;
    }
    let (acks, results): (Vec<_>, Vec<_>) = finished.into_iter().map(|c| (c.ack, c.result)).unzip();
    // Save before acknowledging: a crash in between redelivers the tasks,
    // and the store keeps their first result.
    let mut delay = Duration::from_millis(100);
    loop {
        match shared.store.save_results(&results, config.save_limit).await {
            Ok(_) => break,
            Err(error) if shared.stopping() && delay > Duration::from_secs(2) => {
                tracing::error!(%error, "cannot save results while stopping; their tasks will be redelivered");
                let mut held = shared.held();
                for ack in &acks {
                    held.remove(ack);
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot save results; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    // The results are safe; an acknowledgement that cannot be made is
    // retried while the leases last (a broker restarting), and after that
    // the tasks are redelivered and run again, their first results kept.
    let mut delay = Duration::from_millis(100);
    let give_up = tokio::time::Instant::now() + config.retry / 2;
    loop {
        match shared.broker.acknowledge(shared.queue(), &acks).await {
            Ok(held) => {
                for (result, still_held) in results.iter().zip(held) {
                    if !still_held {
                        tracing::warn!(id = %result.id, "lease was lost before the acknowledgement; the first result stands");
                    }
                }
                break;
            }
            Err(error)
                if tokio::time::Instant::now() + delay < give_up
                    && !(shared.stopping() && delay > Duration::from_secs(2)) =>
            {
                tracing::warn!(%error, "cannot acknowledge; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                tracing::warn!(%error, "cannot acknowledge; the tasks will be redelivered and their results kept");
                break;
            }
        }
    }
    {
        let mut held = shared.held();
        for ack in &acks {
            held.remove(ack);
        }
    }
    shared.done.fetch_add(acks.len() as u64, Ordering::Relaxed);
    shared.room.notify_one();
}
