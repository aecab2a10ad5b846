//! The sentinel's watch over the cluster's parts. Every part runs in a
//! task of its own, watched by another: a part that panics, or ends while
//! the cluster is not stopping, is either restarted (the stateless loops:
//! heartbeat, cancel watcher, tenant gate, lease keeper, scheduler; at most
//! [`RESTARTS`] times a minute, as Django Q2's sentinel restarts a dead
//! worker) or, for the parts that hold tasks (pusher, dispatcher,
//! monitor), makes the whole cluster stop gracefully, the way
//! [`Cluster::stop`](crate::Cluster::stop) does. The first reason is kept
//! for [`Cluster::wait_failure`](crate::Cluster::wait_failure) and the
//! result of the stop.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};

use crate::Shared;
use crate::sentinel::PartFailure;

/// Restarts of one part allowed within a minute; one more failure stops
/// the cluster.
pub const RESTARTS: usize = 5;
/// The window [`RESTARTS`] counts over.
const WINDOW: Duration = Duration::from_secs(60);
/// The pause before a part is restarted.
const RESTART_PAUSE: Duration = Duration::from_millis(200);
/// How long a part that ended waits for the failure that made it end to
/// be told, before it is told as the reason.
const CAUSE_WAIT: Duration = Duration::from_secs(1);

/// How a part ended, as its watcher saw it.
enum Ending {
    /// It returned while the cluster was stopping, or was aborted then.
    Stopped,
    /// It panicked, or returned while the cluster ran.
    Failed(String),
}

fn ending(shared: &Shared, joined: Result<(), JoinError>) -> Ending {
    match joined {
        Ok(()) if shared.stopping() => Ending::Stopped,
        Ok(()) => Ending::Failed("it ended unexpectedly".into()),
        Err(error) => match error.try_into_panic() {
            Ok(panic) => Ending::Failed(panic_message(panic.as_ref())),
            // Aborted: only the sentinel aborts, past its grace period.
            Err(_) => Ending::Stopped,
        },
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic without a message)".into()
    }
}

/// Watches a part that holds tasks: if it fails, the cluster stops.
pub(crate) fn watch(
    shared: Arc<Shared>,
    part: &'static str,
    running: JoinHandle<()>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let joined = running.await;
        let panicked = matches!(&joined, Err(error) if error.is_panic());
        let Ending::Failed(message) = ending(&shared, joined) else {
            return;
        };
        if panicked {
            let failure = PartFailure::Panicked { part, message };
            tracing::error!("{failure}; stopping the cluster");
            fail(&shared, failure);
            return;
        }
        // A part that only ended was most likely left by one that panicked
        // (the dispatcher ends when the pusher is gone): stop at once, and
        // give the cause a moment to be told first.
        shared.sentinel.stop();
        shared.room.notify_waiters();
        let cause = tokio::time::timeout(CAUSE_WAIT, shared.sentinel.wait_failure()).await;
        if cause.is_err() {
            let failure = PartFailure::Ended { part };
            tracing::error!("{failure}; stopping the cluster");
            fail(&shared, failure);
        }
    })
}

/// Runs a stateless part, restarting it when it fails, at most
/// [`RESTARTS`] times a minute; past that the cluster stops.
pub(crate) fn restarting<F>(
    shared: Arc<Shared>,
    part: &'static str,
    start: impl Fn() -> F + Send + 'static,
) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut failures: VecDeque<tokio::time::Instant> = VecDeque::new();
        let mut stop = shared.stop.clone();
        loop {
            let Ending::Failed(message) = ending(&shared, tokio::spawn(start()).await) else {
                return;
            };
            let now = tokio::time::Instant::now();
            failures.push_back(now);
            while failures.front().is_some_and(|at| now - *at > WINDOW) {
                failures.pop_front();
            }
            if shared.stopping() {
                // Nothing to restart it for; the stop is told of the panic.
                tracing::error!(part, %message, "a part of the cluster failed while stopping");
                fail(&shared, PartFailure::Panicked { part, message });
                return;
            }
            if failures.len() > RESTARTS {
                let failure = PartFailure::KeptFailing {
                    part,
                    times: failures.len(),
                    message,
                };
                tracing::error!("{failure}; stopping the cluster");
                fail(&shared, failure);
                return;
            }
            tracing::warn!(
                "the cluster's {part} failed ({message}); restarting it ({} of {RESTARTS} restarts a minute)",
                failures.len()
            );
            tokio::select! {
                _ = tokio::time::sleep(RESTART_PAUSE) => {}
                _ = crate::stopped(&mut stop) => return,
            }
        }
    })
}

/// Records a failure and stops the cluster gracefully.
fn fail(shared: &Shared, failure: PartFailure) {
    shared.sentinel.record(failure);
    shared.sentinel.stop();
    shared.room.notify_waiters();
}
