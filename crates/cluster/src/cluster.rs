//! The [`Cluster`] handle: starts the parts (pusher, dispatcher and
//! workers, monitor, lease keeper, heartbeat, cancel watcher, scheduler,
//! tenant gate) under their watchers, and stops them gracefully.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use wasq_brokers::SharedBroker;
use wasq_client::config::Config;
use wasq_sandbox::Sandbox;
use wasq_store::{Store, now_ms};

use crate::sentinel::PartFailure;
use crate::shared::{Shared, Taken};
use crate::stop::stopped;
use crate::{cancel, jobs, lease, monitor, pusher, scheduler, supervise, tenants};

/// A running cluster.
pub struct Cluster {
    id: String,
    /// The watchers of the parts.
    tasks: Vec<JoinHandle<()>>,
    /// The dispatcher's watcher, and the dispatcher (aborted past the
    /// grace period of a stop).
    jobs: JoinHandle<()>,
    jobs_abort: AbortHandle,
    shared: Arc<Shared>,
}

/// How a cluster ended: what [`Cluster::stop`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stopped {
    /// Tasks finished since start, those finished during the stop
    /// included (as [`Cluster::done`] counts them).
    pub done: u64,
    /// Why the cluster stopped by itself, if one of its parts failed
    /// (also when one failed during the stop).
    pub failure: Option<PartFailure>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts the pusher, workers, monitor, lease keeper and heartbeat.
    pub fn start(config: Config, broker: SharedBroker, store: Store, sandbox: Sandbox) -> Self {
        Self::start_reporting(config, broker, store, sandbox, Vec::new())
    }

    /// [`start`](Self::start), telling `reporters` of every failed task
    /// (see [`crate::report::from_config`]).
    pub fn start_reporting(
        config: Config,
        broker: SharedBroker,
        store: Store,
        sandbox: Sandbox,
        reporters: Vec<Arc<dyn crate::report::ErrorReporter>>,
    ) -> Self {
        let (sentinel, stop_rx) = crate::sentinel::Sentinel::new();
        let shared = Arc::new(Shared::new(
            config, broker, store, sandbox, reporters, sentinel, stop_rx,
        ));
        let (job_tx, job_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let started_at = now_ms();
        let watch = |part, running| supervise::watch(shared.clone(), part, running);
        let tasks = vec![
            // The parts that hold tasks: a failure stops the cluster.
            watch(
                "pusher",
                tokio::spawn(pusher::run(shared.clone(), job_tx, done_tx.clone())),
            ),
            watch(
                "monitor",
                tokio::spawn(monitor::run(shared.clone(), done_rx)),
            ),
            // Stateless loops: restarted.
            supervise::restarting(shared.clone(), "lease keeper", {
                let shared = shared.clone();
                move || lease::run(shared.clone())
            }),
            supervise::restarting(shared.clone(), "heartbeat", {
                let shared = shared.clone();
                move || heartbeat(shared.clone(), started_at)
            }),
            supervise::restarting(shared.clone(), "cancel watcher", {
                let shared = shared.clone();
                move || cancel::run(shared.clone())
            }),
            supervise::restarting(shared.clone(), "scheduler", {
                let shared = shared.clone();
                move || scheduler::run(shared.clone())
            }),
            supervise::restarting(shared.clone(), "tenant gate", {
                let shared = shared.clone();
                move || {
                    let shared = shared.clone();
                    async move {
                        tenants::run(&shared.tenants, &shared.store, shared.stop.clone()).await
                    }
                }
            }),
        ];
        let dispatcher = tokio::spawn(jobs::run(shared.clone(), job_rx, done_tx));
        let jobs_abort = dispatcher.abort_handle();
        let jobs = watch("dispatcher", dispatcher);
        Self {
            id: shared.id.clone(),
            tasks,
            jobs,
            jobs_abort,
            shared,
        }
    }

    /// This process's cluster id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Tasks finished since start.
    pub fn done(&self) -> u64 {
        self.shared.done.load(Ordering::Relaxed)
    }

    /// Tasks that began to run since start (finished or not).
    pub fn started(&self) -> u64 {
        self.shared.started.load(Ordering::Relaxed)
    }

    /// When the last task began to run (`None` before the first).
    pub fn last_start(&self) -> Option<std::time::Instant> {
        if self.shared.started.load(Ordering::Acquire) == 0 {
            return None;
        }
        let ns = self.shared.last_start_ns.load(Ordering::Relaxed);
        Some(self.shared.epoch + Duration::from_nanos(ns))
    }

    /// Tasks held right now.
    pub fn in_flight(&self) -> usize {
        self.shared.held().len()
    }

    /// Resolves when one of the cluster's parts failed beyond repair (a
    /// pusher, dispatcher or monitor that panicked or ended, or a stateless
    /// part that failed more than [`RESTARTS`](crate::RESTARTS) times a minute). The cluster
    /// is then already stopping by itself; call [`stop`](Self::stop) to
    /// wait for the end and hear the final reason (the first panic wins
    /// over parts that only ended because of it).
    pub async fn wait_failure(&self) -> PartFailure {
        self.shared.sentinel.wait_failure().await
    }

    /// Why the cluster is stopping by itself, if it is.
    pub fn failure(&self) -> Option<PartFailure> {
        self.shared.sentinel.failure()
    }

    /// Graceful stop: stop taking tasks, hand back the ones not started,
    /// let running ones finish within `grace` (then hand them back too),
    /// save and acknowledge what finished, and leave. Answers the tasks
    /// finished, those of the stop included, and the failure that stopped
    /// the cluster if one did.
    pub async fn stop(self, grace: Duration) -> Stopped {
        self.shared.sentinel.stop();
        self.shared.room.notify_waiters();
        let mut jobs = self.jobs;
        if tokio::time::timeout(grace, &mut jobs).await.is_err() {
            tracing::warn!("tasks still running after the grace period; handing them back");
            self.jobs_abort.abort();
            let _ = jobs.await;
            let shared = &self.shared;
            let left: Vec<Taken> = shared.held().drain().collect();
            for (queue, ack) in left {
                if let Err(error) = shared.broker.release(&queue, &ack).await {
                    tracing::warn!(%error, "cannot hand a task back; its lease will expire");
                }
            }
        }
        for task in self.tasks {
            let _ = task.await;
        }
        // What a failed part left held (a monitor that panicked with a
        // batch, workers of a dispatcher that panicked) goes back at once.
        let left: Vec<Taken> = self.shared.held().drain().collect();
        for (queue, ack) in left {
            if let Err(error) = self.shared.broker.release(&queue, &ack).await {
                tracing::warn!(%error, "cannot hand a task back; its lease will expire");
            }
        }
        for reporter in &self.shared.reporters {
            reporter.flush();
        }
        let _ = self.shared.store.remove_cluster(&self.id).await;
        Stopped {
            done: self.shared.done.load(Ordering::Acquire),
            failure: self.shared.sentinel.failure(),
        }
    }
}

async fn heartbeat(shared: Arc<Shared>, started_at: i64) {
    let mut stop = shared.stop.clone();
    loop {
        match shared
            .store
            .heartbeat(&shared.status(started_at, "running"))
            .await
        {
            Ok(()) => shared.outages.heartbeat.answered(),
            Err(error) => shared.outages.heartbeat.failed(&error),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped(&mut stop) => return,
        }
    }
}
