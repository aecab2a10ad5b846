//! The pusher: takes packages from the broker in bulk while the cluster
//! holds fewer than `queue_limit`, verifies and decodes them, and queues
//! them for the workers. A package that fails to verify, or that claims
//! what its tenant does not own (see `binding`), is never run and never
//! silently dropped: see `refusal`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use wasq_brokers::Delivery;

use crate::Shared;
use crate::binding::Unbound;
use crate::jobs::{Completion, Job};
use crate::refusal::{Refused, refuse};

/// The longest pause between attempts to reach a broker that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first pause after a turn over tenants' queues found nothing.
const IDLE_FIRST: Duration = Duration::from_millis(2);
/// The first pause after a turn that refused every package it took.
const REFUSING_FIRST: Duration = Duration::from_millis(250);
/// The longest such pause.
const REFUSING_MOST: Duration = Duration::from_secs(30);

pub(crate) async fn run(
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedSender<Job>,
    done: mpsc::UnboundedSender<Completion>,
) {
    let config = &shared.config;
    let mut stop = shared.stop.clone();
    let mut backoff = Duration::from_millis(100);
    let mut lost_broker = false;
    let mut idle = IDLE_FIRST;
    // A turn whose every package was refused pauses the taking, growing
    // while it lasts, so a cluster with the wrong secret leaves the tasks
    // to clusters that can run them instead of spinning on them.
    let mut refusing = Duration::ZERO;
    // Cancel requests made while no cluster ran apply to the first tasks
    // taken.
    crate::cancel::refresh(&shared).await;
    loop {
        if shared.stopping() {
            return;
        }
        let room = config.queue_limit().saturating_sub(shared.held().len());
        if room == 0 {
            tokio::select! {
                _ = shared.room.notified() => {}
                _ = crate::stopped(&mut stop) => return,
            }
            continue;
        }
        let taken = match take(&shared, room, &mut idle).await {
            Ok(taken) => {
                if lost_broker {
                    shared.outages.take.answered();
                    lost_broker = false;
                }
                backoff = Duration::from_millis(100);
                taken
            }
            Err(error) => {
                // Warned of once per outage (see `outage`).
                shared.outages.take.failed(&error);
                lost_broker = true;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = crate::stopped(&mut stop) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let (mut verified, mut refused) = (0usize, 0usize);
        for (queue, delivery) in taken {
            let taken = (queue, delivery.ack_id.clone());
            shared.held().insert(taken.clone());
            let decoded = shared.codec.decode(&delivery.payload);
            let bound = match &decoded {
                Ok(record) => {
                    crate::binding::verify(&shared.ownership, &shared.store, &taken.0, record).await
                }
                Err(_) => Ok(()),
            };
            match (decoded, bound) {
                (Err(error), _) => {
                    refused += 1;
                    let refused = Refused {
                        reason: error.to_string(),
                        verified: false,
                        task_id: None,
                    };
                    refuse(&shared, &taken.0, delivery, refused).await;
                }
                (Ok(record), Err(Unbound::Refused(reason))) => {
                    let refused = Refused {
                        reason,
                        verified: true,
                        task_id: Some(record.id),
                    };
                    refuse(&shared, &taken.0, delivery, refused).await;
                }
                (Ok(_), Err(Unbound::Unknown(error))) => {
                    // The store's outage is warned of once by the tenant gate.
                    tracing::debug!(%error, "cannot check a package's tenant; handing it back");
                    crate::jobs::hand_back(&shared, &taken).await;
                }
                (Ok(record), Ok(())) => {
                    verified += 1;
                    let job = Job {
                        ack: taken,
                        deliveries: delivery.deliveries,
                        runs: 0,
                        record,
                    };
                    // Runs, not deliveries, decide when a task is given up:
                    // the workers count each run before it starts.
                    if shared.is_cancelled(&job.record.id) {
                        let _ = done.send(Completion::cancelled(&shared, job));
                    } else if let Err(unsent) = jobs.send(job) {
                        crate::jobs::hand_back(&shared, &unsent.0.ack).await;
                    }
                }
            }
        }
        if verified > 0 {
            shared.refusals.verified();
            refusing = Duration::ZERO;
        }
        if refused > 0 {
            // A refused package is back in the queue at once: the next turn
            // waits a little, so it is not taken again and again.
            let pause = if verified > 0 {
                REFUSING_FIRST / 5
            } else {
                refusing = (refusing * 2).clamp(REFUSING_FIRST, REFUSING_MOST);
                refusing
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = crate::stopped(&mut stop) => return,
            }
        }
    }
}

/// Takes up to `room` deliveries. Without tenants: from the cluster's
/// queue, where the broker waits up to `poll` for a task to arrive
/// (brokers that are told of new tasks — Redis, PostgreSQL, memory — hand
/// it over at once, SQS long-polls, SQLite polls or watches its file); not
/// cancelled on stop (that could strand leased tasks), so a stop waits for
/// at most one `poll`. With tenants: one turn of the round robin over the
/// untenanted queue and each tenant's, pausing briefly (`idle`, growing up
/// to `poll`) when the whole turn found nothing.
async fn take(
    shared: &Shared,
    room: usize,
    idle: &mut Duration,
) -> Result<Vec<(Arc<str>, Delivery)>, wasq_brokers::BrokerError> {
    let config = &shared.config;
    let held_per_queue = || {
        let mut counts: HashMap<Arc<str>, usize> = HashMap::new();
        for (queue, _) in shared.held().iter() {
            *counts.entry(queue.clone()).or_default() += 1;
        }
        counts
    };
    let Some(sources) = shared.tenants.sources(held_per_queue, config.bulk) else {
        let queue = shared.tenants.base().clone();
        let deliveries = shared
            .broker
            .dequeue_wait(&queue, room.min(config.bulk), config.retry, config.poll)
            .await?;
        return Ok(deliveries.into_iter().map(|d| (queue.clone(), d)).collect());
    };
    let mut taken = Vec::new();
    let mut left = room;
    for source in sources {
        if left == 0 {
            break;
        }
        let deliveries = shared
            .broker
            .dequeue(&source.queue, source.most.min(left), config.retry)
            .await?;
        left -= deliveries.len().min(left);
        taken.extend(deliveries.into_iter().map(|d| (source.queue.clone(), d)));
    }
    if taken.is_empty() {
        let mut stop = shared.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(*idle) => {}
            _ = shared.room.notified() => {}
            _ = crate::stopped(&mut stop) => {}
        }
        *idle = (*idle * 2).min(config.poll.max(IDLE_FIRST));
    } else {
        *idle = IDLE_FIRST;
    }
    Ok(taken)
}
