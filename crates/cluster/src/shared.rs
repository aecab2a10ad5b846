//! What the parts of a cluster share: the [`Shared`] state every part
//! holds an `Arc` of, and the deliveries it holds ([`Taken`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use wasq_brokers::{AckId, SharedBroker};

/// A delivery held by the cluster: the broker queue it came from and its
/// acknowledgement id (ids are only unique within a queue).
pub(crate) type Taken = (Arc<str>, AckId);

use wasq_client::config::Config;
use wasq_core::package::PackageCodec;
use wasq_core::workflow::RetryPolicy;
use wasq_sandbox::{CancelToken, Limits, Sandbox};
use wasq_store::{ClusterStatus, Store, now_ms};

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

    /// The sequence number of the last request seen.
    pub(crate) fn last_seq(&self) -> i64 {
        self.seq
    }

    /// Records request `seq` for task `id`, forgetting the oldest ids past
    /// [`REMEMBERED`].
    pub(crate) fn add(&mut self, seq: i64, id: String) {
        self.seq = self.seq.max(seq);
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }
}

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
    pub(crate) held: Mutex<HashSet<Taken>>,
    /// Held deliveries whose acknowledgement is under way: the broker may
    /// already have let go of them, so a renewal that finds one gone is
    /// no lost lease. Locked after `held` when both are.
    pub(crate) acking: Mutex<HashSet<Taken>>,
    /// What the parts know of the broker's and the store's outages.
    pub(crate) outages: crate::outage::Outages,
    /// The stop signal, and the failure of a part that raised it.
    pub(crate) sentinel: crate::sentinel::Sentinel,
    /// Woken when held tasks finish, so the pusher can take more.
    pub(crate) room: Notify,
    pub(crate) done: AtomicU64,
    /// Tasks that began to run (for latency figures).
    pub(crate) started: AtomicU64,
    /// When the last task began to run: nanoseconds after `epoch`.
    pub(crate) last_start_ns: AtomicU64,
    pub(crate) epoch: std::time::Instant,
    pub(crate) stop: watch::Receiver<bool>,
    /// How failed tasks without a policy of their own are retried.
    pub(crate) default_retry: RetryPolicy,
    /// Whether `default_retry` ever retries.
    pub(crate) retries_by_default: bool,
    /// Woken when deferred tasks were written that may be due now.
    pub(crate) outbox: Notify,
    /// Cancel requests seen.
    pub(crate) cancels: Mutex<Cancels>,
    /// Running tasks, by id: their cancel tokens and what `wasq monitor`
    /// shows of them.
    pub(crate) running: Mutex<HashMap<String, (CancelToken, wasq_store::RunningTask)>>,
    /// Tenants: their turns, quotas, fuel used and module grants.
    pub(crate) tenants: crate::tenants::TenantGate,
    /// Which tenant owns which module digest, as the store said lately.
    pub(crate) ownership: crate::binding::Ownership,
    /// Told of every task that ends in failure.
    pub(crate) reporters: Vec<Arc<dyn crate::report::ErrorReporter>>,
    /// This cluster's private root of scratch directories; `None` when it
    /// could not be made (scratch tasks are then handed back).
    pub(crate) scratch: Option<Arc<wasq_sandbox::scratch::ScratchRoot>>,
    /// Counts each run in the store before it starts.
    pub(crate) runs: crate::runs::RunCounter,
    /// Refusals of packages since the last one verified.
    pub(crate) refusals: crate::refusal_log::RefusalLog,
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

    pub(crate) fn cancels(&self) -> MutexGuard<'_, Cancels> {
        self.cancels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn running(
        &self,
    ) -> MutexGuard<'_, HashMap<String, (CancelToken, wasq_store::RunningTask)>> {
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
        record: &wasq_core::package::TaskRecord,
        fuel_limit: u64,
    ) -> CancelToken {
        let token = CancelToken::new();
        let shown = wasq_store::RunningTask {
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
    pub(crate) fn limits(&self, task: &wasq_core::package::TaskLimits) -> Limits {
        Limits {
            timeout: task
                .timeout_ms
                .map_or(self.config.timeout, Duration::from_millis),
            fuel: task.fuel.unwrap_or(self.config.max_fuel),
            memory: task.memory.unwrap_or(self.config.memory),
            scratch: wasq_sandbox::ScratchLimits {
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

    pub(crate) fn status(&self, started_at_ms: i64, state: &str) -> ClusterStatus {
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
                tasks.truncate(wasq_store::RUNNING_REPORTED);
                tasks
            },
        }
    }
}

impl Shared {
    /// The state of a new cluster with `config`, its id made here.
    pub(crate) fn new(
        config: Config,
        broker: SharedBroker,
        store: Store,
        sandbox: Sandbox,
        reporters: Vec<Arc<dyn crate::report::ErrorReporter>>,
        sentinel: crate::sentinel::Sentinel,
        stop_rx: watch::Receiver<bool>,
    ) -> Self {
        let id = format!(
            "{}/{}/{}/{}",
            config.name,
            host_name(),
            std::process::id(),
            &wasq_core::package::new_task_id()[..6]
        );
        let codec = PackageCodec::new(&config.secret_or_random(), config.compress);
        let default_retry = config.retry_policy();
        Self {
            retries_by_default: default_retry.max_attempts > 1,
            default_retry,
            outbox: Notify::new(),
            cancels: Mutex::default(),
            running: Mutex::default(),
            tenants: crate::tenants::TenantGate::new(&config),
            ownership: crate::binding::Ownership::default(),
            reporters,
            runs: crate::runs::RunCounter::start(store.clone()),
            refusals: crate::refusal_log::RefusalLog::default(),
            scratch: wasq_sandbox::scratch::ScratchRoot::for_cluster(
                config
                    .scratch_dir
                    .clone()
                    .unwrap_or_else(std::env::temp_dir),
            ),
            config,
            id,
            broker,
            store,
            sandbox,
            codec,
            held: Mutex::default(),
            acking: Mutex::default(),
            outages: crate::outage::Outages::default(),
            sentinel,
            room: Notify::new(),
            done: AtomicU64::new(0),
            started: AtomicU64::new(0),
            last_start_ns: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            stop: stop_rx,
        }
    }
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
