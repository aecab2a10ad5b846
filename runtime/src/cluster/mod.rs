//! The cluster: a **pusher** takes packages from the broker in bulk (up to
//! `queue_limit` held at once), **workers** run them in the sandbox (`workers`
//! at a time), a **monitor** saves results in batches and then acknowledges
//! them, a **lease keeper** renews the leases of held tasks so a long task
//! is never handed to a second cluster, and a **heartbeat** reports to the
//! store for `wasq info`. The [`Cluster`] handle is the sentinel: it
//! watches them (see `supervise`: a stateless part that fails is
//! restarted, a failure of one that holds tasks stops the cluster and says
//! why) and stops them gracefully.
//!
//! Delivery is at-least-once; results are saved before the acknowledgement
//! and the store keeps the first result of a task, so a task killed halfway
//! runs again and still ends with exactly one result.

mod binding;
mod cancel;
mod dispatch;
mod jobs;
mod lease;
mod monitor;
mod outage;
mod pusher;
mod refusal;
mod runs;
mod scheduler;
mod supervise;
mod tenants;

pub use supervise::{PartFailure, RESTARTS};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};
use wasq_brokers::{AckId, SharedBroker};

/// A delivery held by the cluster: the broker queue it came from and its
/// acknowledgement id (ids are only unique within a queue).
pub(crate) type Taken = (Arc<str>, AckId);

use crate::config::Config;
use crate::package::PackageCodec;
use crate::sandbox::{CancelToken, Limits, Sandbox};
use crate::store::{ClusterStatus, Store, now_ms};
use crate::workflow::RetryPolicy;

/// Everything the parts of a cluster share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) id: String,
    pub(crate) broker: SharedBroker,
    pub(crate) store: Store,
    pub(crate) sandbox: Sandbox,
    pub(crate) codec: PackageCodec,
    /// Deliveries held: taken from the broker, not yet acknowledged or
    /// handed back.
    held: Mutex<HashSet<Taken>>,
    /// Held deliveries whose acknowledgement is under way: the broker may
    /// already have let go of them, so a renewal that finds one gone is
    /// no lost lease. Locked after `held` when both are.
    acking: Mutex<HashSet<Taken>>,
    /// What the parts know of the broker's and the store's outages.
    pub(crate) outages: outage::Outages,
    /// The stop signal, and the failure of a part that raised it.
    sentinel: supervise::Sentinel,
    /// Woken when held tasks finish, so the pusher can take more.
    pub(crate) room: Notify,
    pub(crate) done: AtomicU64,
    /// Tasks that began to run (for latency figures).
    pub(crate) started: AtomicU64,
    /// When the last task began to run: nanoseconds after `epoch`.
    last_start_ns: AtomicU64,
    epoch: std::time::Instant,
    pub(crate) stop: watch::Receiver<bool>,
    /// How failed tasks without a policy of their own are retried.
    pub(crate) default_retry: RetryPolicy,
    /// Whether `default_retry` ever retries.
    pub(crate) retries_by_default: bool,
    /// Woken when deferred tasks were written that may be due now.
    pub(crate) outbox: Notify,
    /// Cancel requests seen.
    cancels: Mutex<cancel::Cancels>,
    /// Running tasks, by id: their cancel tokens and what `wasq monitor`
    /// shows of them.
    running: Mutex<HashMap<String, (CancelToken, crate::store::RunningTask)>>,
    /// Tenants: their turns, quotas, fuel used and module grants.
    pub(crate) tenants: tenants::TenantGate,
    /// Which tenant owns which module digest, as the store said lately.
    pub(crate) ownership: binding::Ownership,
    /// Told of every task that ends in failure.
    pub(crate) reporters: Vec<Arc<dyn crate::report::ErrorReporter>>,
    /// This cluster's private root of scratch directories; `None` when it
    /// could not be made (scratch tasks are then handed back).
    pub(crate) scratch: Option<Arc<crate::scratch::ScratchRoot>>,
    /// Counts each run in the store before it starts.
    pub(crate) runs: runs::RunCounter,
    /// Refusals of packages since the last one verified.
    pub(crate) refusals: refusal::RefusalLog,
}

impl Shared {
    pub(crate) fn held(&self) -> MutexGuard<'_, HashSet<Taken>> {
        // Only set inserts and removes happen under this lock.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Held deliveries being acknowledged (lock `held` first when both).
    pub(crate) fn acking(&self) -> MutexGuard<'_, HashSet<Taken>> {
        self.acking.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a task that begins to run, and when.
    pub(crate) fn mark_start(&self) {
        let ns = self.epoch.elapsed().as_nanos() as u64;
        self.last_start_ns.store(ns, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Release);
    }

    fn cancels(&self) -> MutexGuard<'_, cancel::Cancels> {
        self.cancels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, (CancelToken, crate::store::RunningTask)>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether task `id` was cancelled (as far as this cluster has seen).
    pub(crate) fn is_cancelled(&self, id: &str) -> bool {
        self.cancels().contains(id)
    }

    /// The cancel token of a task that starts to run (already cancelled
    /// if a request for it was seen).
    pub(crate) fn start_cancellable(
        &self,
        record: &crate::package::TaskRecord,
        fuel_limit: u64,
    ) -> CancelToken {
        let token = CancelToken::new();
        let shown = crate::store::RunningTask {
            id: record.id.clone(),
            module: record.module_name.clone(),
            task: record.task.clone(),
            tenant: record.tenant.clone(),
            started_at_ms: now_ms(),
            fuel_limit,
        };
        self.running()
            .insert(record.id.clone(), (token.clone(), shown));
        if self.is_cancelled(&record.id) {
            token.cancel();
        }
        token
    }

    /// Forgets the cancel token of a task that ended.
    pub(crate) fn end_cancellable(&self, id: &str) {
        self.running().remove(id);
    }

    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    pub(crate) fn queue(&self) -> &str {
        &self.config.queue
    }

    /// The limits of a task: its own, else the cluster's defaults.
    pub(crate) fn limits(&self, task: &crate::package::TaskLimits) -> Limits {
        Limits {
            timeout: task
                .timeout_ms
                .map_or(self.config.timeout, Duration::from_millis),
            fuel: task.fuel.unwrap_or(self.config.max_fuel),
            memory: task.memory.unwrap_or(self.config.memory),
            scratch: crate::ScratchLimits {
                bytes: self.config.scratch_bytes,
                entries: self.config.scratch_entries,
                depth: self.config.scratch_depth,
            },
            ..Limits::default()
        }
    }

    /// Lowers a tenant's task's limits to the cluster's own `timeout`,
    /// `max_fuel` and `memory`: for a tenant they are ceilings, not only
    /// defaults (an untenanted task, queued by someone trusted with the
    /// broker's secret, may ask for more).
    pub(crate) fn cap_to_cluster(&self, limits: &mut Limits) {
        limits.timeout = limits.timeout.min(self.config.timeout);
        limits.fuel = limits.fuel.min(self.config.max_fuel);
        limits.memory = limits.memory.min(self.config.memory);
    }

    fn status(&self, started_at_ms: i64, state: &str) -> ClusterStatus {
        ClusterStatus {
            id: self.id.clone(),
            name: self.config.name.clone(),
            label: self.config.label.clone().unwrap_or_else(host_name),
            host: host_name(),
            pid: std::process::id(),
            workers: self.config.workers,
            started_at_ms,
            heartbeat_at_ms: now_ms(),
            in_flight: self.held().len() as u64,
            done: self.done.load(Ordering::Relaxed),
            status: state.into(),
            running: {
                let running = self.running();
                let mut tasks: Vec<_> = running.values().map(|(_, t)| t.clone()).collect();
                tasks.sort_by_key(|t| t.started_at_ms);
                tasks.truncate(crate::store::RUNNING_REPORTED);
                tasks
            },
        }
    }
}

/// Resolves once the cluster is told to stop (without holding the watch's
/// lock across an await).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// The machine's host name, or `localhost`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

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
        let (sentinel, stop_rx) = supervise::Sentinel::new();
        let id = format!(
            "{}/{}/{}/{}",
            config.name,
            host_name(),
            std::process::id(),
            &crate::package::new_task_id()[..6]
        );
        let codec = PackageCodec::new(&config.secret_or_random(), config.compress);
        let default_retry = config.retry_policy();
        let shared = Arc::new(Shared {
            retries_by_default: default_retry.max_attempts > 1,
            default_retry,
            outbox: Notify::new(),
            cancels: Mutex::default(),
            running: Mutex::default(),
            tenants: tenants::TenantGate::new(&config),
            ownership: binding::Ownership::default(),
            reporters,
            runs: runs::RunCounter::start(store.clone()),
            refusals: refusal::RefusalLog::default(),
            scratch: crate::scratch::ScratchRoot::for_cluster(
                config
                    .scratch_dir
                    .clone()
                    .unwrap_or_else(std::env::temp_dir),
            ),
            config,
            id: id.clone(),
            broker,
            store,
            sandbox,
            codec,
            held: Mutex::default(),
            acking: Mutex::default(),
            outages: outage::Outages::default(),
            sentinel,
            room: Notify::new(),
            done: AtomicU64::new(0),
            started: AtomicU64::new(0),
            last_start_ns: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            stop: stop_rx,
        });
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
                move || tenants::run(shared.clone())
            }),
        ];
        let dispatcher = tokio::spawn(jobs::run(shared.clone(), job_rx, done_tx));
        let jobs_abort = dispatcher.abort_handle();
        let jobs = watch("dispatcher", dispatcher);
        Self {
            id,
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
    /// part that failed more than [`RESTARTS`] times a minute). The cluster
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
