//! The workers: run each job in the sandbox, `workers` at a time, and pass
//! what happened to the monitor. Jobs wait for a worker in per-tenant
//! lanes (see `dispatch.rs`): when a worker frees up, the next job is
//! picked by weighted round robin over the tenants with jobs waiting, each
//! tenant held to its share of the workers and its fuel budget. On stop,
//! jobs not started go back to the broker and running ones finish.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::dispatch::{Lanes, UNTENANTED};
use crate::{Shared, Taken};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument as _;
use wasq_core::OutcomeKind;
use wasq_core::package::TaskRecord;
use wasq_sandbox::{Execution, TaskCall, TaskModule};
use wasq_store::{TaskResult, now_ms};

/// A task taken from the broker, decoded and verified.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) ack: Taken,
    pub(crate) deliveries: u32,
    /// Runs of this attempt that started, this one included (counted in
    /// the store before the run; 0 until then).
    pub(crate) runs: u32,
    pub(crate) record: TaskRecord,
}

/// A job that ended (or was given up): its delivery and its result.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) ack: Taken,
    pub(crate) result: TaskResult,
    /// The task's record, kept when something may follow the result (a
    /// retry, the next link of a chain, a hook, a unique key to release);
    /// `None` for plain tasks, so their records are not copied.
    pub(crate) record: Option<Box<TaskRecord>>,
}

impl Completion {
    fn new(shared: &Shared, job: Job, execution: &Execution, started_at_ms: i64) -> Self {
        let Job {
            ack, runs, record, ..
        } = job;
        let kept = has_followups(shared, &record).then(|| Box::new(record.clone()));
        let failed_record = (!execution.outcome.is_success())
            .then(|| postcard::to_stdvec(&record).ok())
            .flatten();
        let outcome = &execution.outcome;
        let error = match outcome {
            wasq_core::Outcome::Trap { message }
            | wasq_core::Outcome::InvalidModule { message } => Some(message.clone()),
            wasq_core::Outcome::ScratchLimit { what } => Some(format!(
                "its scratch directory went over its {} quota",
                what.as_str()
            )),
            _ => None,
        };
        let result = TaskResult {
            id: record.id,
            module: record.module,
            module_name: record.module_name,
            task: record.task,
            input: record.input,
            queue: record.queue,
            group: record.group,
            outcome: outcome.kind().as_str().into(),
            success: outcome.is_success(),
            // A failure keeps what it printed too (within the output
            // limit), shown as its `stdout`, never as a return value.
            result: (outcome.is_success() || !execution.stdout.is_empty())
                .then(|| execution.stdout.clone()),
            stderr: execution.stderr_text(),
            error,
            fuel: execution.usage.fuel_consumed,
            cpu_us: execution.usage.cpu.as_micros() as u64,
            wall_us: execution.usage.wall.as_micros() as u64,
            memory_peak: execution.usage.memory_peak,
            // Runs, not deliveries: a prefetch or a hand-back is no run.
            attempts: record.attempt.saturating_sub(1) + runs.max(1),
            enqueued_at_ms: record.enqueued_at_ms as i64,
            started_at_ms,
            stopped_at_ms: now_ms(),
            cluster: shared.id.clone(),
            cached_secs: record.cached_secs,
            attempt_log: record.earlier,
            record: failed_record,
        };
        Self {
            ack,
            result,
            record: kept,
        }
    }

    /// A task cancelled before it ran (`wasq cancel`): recorded without
    /// running.
    pub(crate) fn cancelled(shared: &Shared, job: Job) -> Self {
        let mut execution = Execution::invalid_module("");
        execution.outcome = wasq_core::Outcome::Cancelled;
        let mut completion = Self::new(shared, job, &execution, now_ms());
        completion.result.error = Some("cancelled before it ran".into());
        completion
    }

    /// A task whose `max_attempts` runs all started and none ended (each
    /// took its cluster down, or lost its lease): recorded without running
    /// again.
    pub(crate) fn abandoned(shared: &Shared, mut job: Job) -> Self {
        let started = job.runs.saturating_sub(1);
        let message = format!(
            "gave up after {started} runs that started and never ended (max_attempts = {})",
            shared.config.max_attempts
        );
        job.runs = started;
        let mut completion = Self::new(
            shared,
            job,
            &Execution::invalid_module(message.clone()),
            now_ms(),
        );
        completion.result.outcome = OutcomeKind::Abandoned.as_str().into();
        completion.result.error = Some(message);
        completion
    }
}

/// The guest's stdin: the task's input, with `"attempt": n` in front
/// from the second attempt on (guests read it with
/// `wasq_guest::attempt()`).
fn input_with_attempt(record: &TaskRecord) -> Vec<u8> {
    match record.input.strip_prefix('{') {
        Some(rest) if record.attempt > 1 => {
            format!("{{\"attempt\":{},{rest}", record.attempt).into_bytes()
        }
        _ => record.input.clone().into_bytes(),
    }
}

/// Whether anything can follow a task's end: then the monitor needs its
/// record.
fn has_followups(shared: &Shared, record: &TaskRecord) -> bool {
    !record.chain.is_empty()
        || record.hook.is_some()
        || record.unique_key.is_some()
        || record
            .retry
            .as_ref()
            .map_or(shared.retries_by_default, |r| r.max_attempts > 1)
}

/// Why a job's module could not be had.
enum ModuleError {
    /// The module is missing or invalid: the task fails for good.
    Final(String),
    /// The store could not be reached: hand the task back.
    Transient(String),
}

async fn module_for(
    shared: &Shared,
    digest: &wasq_core::Digest,
) -> Result<TaskModule, ModuleError> {
    if let Some(module) = shared.sandbox.cached(digest) {
        return Ok(module);
    }
    let bytes = shared
        .store
        .module_bytes(digest)
        .await
        .map_err(|e| ModuleError::Transient(e.to_string()))?
        .ok_or_else(|| ModuleError::Final(format!("module {digest} is not in the store")))?;
    shared.sandbox.load(&bytes).await.map_err(|e| {
        // A module at fault fails its task; a busy compile pool does not.
        if e.is_module_at_fault() {
            ModuleError::Final(e.to_string())
        } else {
            ModuleError::Transient(e.to_string())
        }
    })
}

/// A job's limits: its own, else the cluster's defaults; a tenant's job's
/// lowered to its tenant's maxima and to the cluster's own limits.
fn limits_of(shared: &Shared, record: &TaskRecord) -> wasq_sandbox::Limits {
    let mut limits = shared.limits(&record.limits);
    if let Some(tenant) = &record.tenant {
        if let Some(quotas) = shared.tenants.quotas(tenant) {
            clamp_to_quotas(&mut limits, &quotas);
        }
        shared.cap_to_cluster(&mut limits);
    }
    limits
}

/// Runs a job within `limits`; answers the fuel it burnt.
async fn execute(
    shared: Arc<Shared>,
    mut job: Job,
    limits: wasq_sandbox::Limits,
    done: mpsc::UnboundedSender<Completion>,
) -> u64 {
    let started_at = now_ms();
    shared.mark_start();
    let tenant = job.record.tenant.as_deref().unwrap_or("");
    wasq_core::metrics::count("wasq_tasks_started_total", &[("tenant", tenant)], 1);
    if job.deliveries > 1 {
        wasq_core::metrics::count("wasq_redeliveries_total", &[("tenant", tenant)], 1);
    }
    let execution = match module_for(&shared, &job.record.module).await {
        Ok(module) => {
            // A redelivery's run is counted before it starts (it may be
            // the one too many); a first delivery's once it lasts (see
            // `runs`).
            let redelivered = job.deliveries > 1;
            if redelivered {
                match shared.runs.count(&job.record.id, job.record.attempt).await {
                    Ok(runs) => job.runs = runs,
                    Err(error) => {
                        // Uncounted, a run could not be told from one that
                        // never started: the task waits for the store,
                        // holding its worker a moment so a store that
                        // refuses at once (a full disk) is not asked again
                        // and again.
                        tracing::debug!(%error, "cannot count a run in the store; handing the task back");
                        let mut stop = shared.stop.clone();
                        tokio::select! {
                            _ = tokio::time::sleep(STORE_PAUSE) => {}
                            _ = crate::stopped(&mut stop) => {}
                        }
                        hand_back(&shared, &job.ack).await;
                        return 0;
                    }
                }
                if job.runs > shared.config.max_attempts {
                    let _ = done.send(Completion::abandoned(&shared, job));
                    return 0;
                }
            }
            let mut call = TaskCall {
                module: job.record.module_name.clone(),
                task: job.record.task.clone(),
                input: input_with_attempt(&job.record),
                env: Vec::new(),
                scratch: None,
            };
            let mut scratch = None;
            if let Some(tenant) = &job.record.tenant {
                let grants = shared
                    .tenants
                    .grants(&shared.store, tenant, &job.record.module_name)
                    .await;
                call.env = grants.env.into_iter().collect();
                if grants.scratch {
                    match scratch_dir(&shared, &job.record.id) {
                        Ok(dir) => {
                            call.scratch = Some(dir.path().to_owned());
                            scratch = Some(dir);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot make a scratch directory; handing the task back");
                            hand_back(&shared, &job.ack).await;
                            return 0;
                        }
                    }
                }
            }
            let span = tracing::debug_span!(
                "task",
                task_id = %job.record.id,
                module = %job.record.module_name,
                task = %job.record.task,
                attempt = job.record.attempt,
            );
            let ticket =
                (!redelivered).then(|| shared.runs.count_soon(&job.record.id, job.record.attempt));
            let cancel = shared.start_cancellable(&job.record, limits.fuel);
            let execution = async {
                tracing::debug!(deliveries = job.deliveries, "started");
                let execution = shared
                    .sandbox
                    .run_cancellable(&module, &call, &limits, &cancel)
                    .await;
                tracing::debug!(
                    outcome = execution.outcome.kind().as_str(),
                    wall_us = execution.usage.wall.as_micros() as u64,
                    fuel = execution.usage.fuel_consumed,
                    "ended"
                );
                execution
            }
            .instrument(span)
            .await;
            shared.end_cancellable(&job.record.id);
            if let Some(ticket) = ticket {
                job.runs = shared.runs.finish(ticket).await;
            }
            // Removed on a blocking thread, however deep it is, before the
            // result goes out.
            if let Some(dir) = scratch {
                dir.remove().await;
            }
            execution
        }
        Err(ModuleError::Final(message)) => Execution::invalid_module(message),
        Err(ModuleError::Transient(error)) => {
            tracing::warn!(%error, "store unreachable; handing the task back");
            hand_back(&shared, &job.ack).await;
            return 0;
        }
    };
    wasq_core::metrics::finished(
        job.record.tenant.as_deref().unwrap_or(""),
        execution.outcome.kind().as_str(),
        execution.usage.wall.as_secs_f64(),
        execution.usage.fuel_consumed,
    );
    let _ = done.send(Completion::new(&shared, job, &execution, started_at));
    execution.usage.fuel_consumed.unwrap_or(0)
}

/// Lowers a task's limits to its tenant's maxima.
fn clamp_to_quotas(limits: &mut wasq_sandbox::Limits, quotas: &wasq_core::tenant::Quotas) {
    if let Some(most) = quotas.max_fuel {
        limits.fuel = limits.fuel.min(most);
    }
    if let Some(most) = quotas.max_memory {
        limits.memory = limits.memory.min(most);
    }
    if let Some(most) = quotas.max_timeout_ms {
        limits.timeout = limits.timeout.min(std::time::Duration::from_millis(most));
    }
    let scratch = &mut limits.scratch;
    if let Some(most) = quotas.scratch_bytes {
        scratch.bytes = scratch.bytes.min(most);
    }
    if let Some(most) = quotas.scratch_entries {
        scratch.entries = scratch.entries.min(most);
    }
    if let Some(most) = quotas.scratch_depth {
        scratch.depth = scratch.depth.min(u32::try_from(most).unwrap_or(u32::MAX));
    }
}

/// Makes a task's scratch directory in the cluster's private root.
fn scratch_dir(shared: &Shared, task_id: &str) -> std::io::Result<wasq_sandbox::scratch::TaskDir> {
    match &shared.scratch {
        Some(root) => root.task_dir(task_id),
        None => Err(std::io::Error::other("this cluster has no scratch root")),
    }
}

/// Returns a held task to the broker for someone else (or later).
pub(crate) async fn hand_back(shared: &Shared, taken: &Taken) {
    let (queue, ack) = taken;
    if let Err(error) = shared.broker.release(queue, ack).await {
        tracing::warn!(%error, "cannot hand a task back; its lease will expire");
    }
    shared.held().remove(taken);
    shared.room.notify_one();
}

/// How often jobs that wait for their tenant's fuel budget are looked at
/// again (budgets change as the gate refreshes and as windows turn).
const BUDGET_RECHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// How long a worker waits before handing back a task whose run the
/// store could not count.
const STORE_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// A job waiting for a worker, with the limits it will run with.
type Waiting = (Job, wasq_sandbox::Limits);

/// The dispatcher: takes jobs from the pusher into per-tenant lanes and
/// starts the next one whenever a worker is free.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    done: mpsc::UnboundedSender<Completion>,
) {
    let workers = shared.config.workers;
    let mut lanes: Lanes<Waiting> = Lanes::default();
    let mut running = JoinSet::new();
    // Jobs whose module is being compiled (or read from the store) hold no
    // worker and no share of their tenant's: tasks of compiled modules never
    // wait behind a compile. Once loaded they wait in their lane again.
    let mut compiling = Compiling::default();
    let mut stop = shared.stop.clone();
    loop {
        // Start what may start.
        while running.len() < workers
            && let Some((key, (job, limits))) = lanes.next(|tenant, (_, limits)| {
                tenant == UNTENANTED || shared.tenants.try_reserve(tenant, limits.fuel)
            })
        {
            let started = Started { key, job, limits };
            if let Some(started) = start(&shared, &mut running, &mut compiling, started, &done) {
                // Not started after all: its turn and its reservation back.
                lanes.ended(&started.key);
                if started.key != UNTENANTED {
                    shared
                        .tenants
                        .finished(&started.key, started.limits.fuel, 0);
                }
                compiling.wait(&shared, started);
            }
        }
        let blocked = !lanes.is_empty() && running.len() < workers;
        tokio::select! {
            biased;
            _ = crate::stopped(&mut stop) => break,
            Some(ended) = running.join_next(), if !running.is_empty() => {
                if let Ok(key) = ended {
                    lanes.ended(&key);
                }
            }
            Some(loaded) = compiling.tasks.join_next(), if !compiling.tasks.is_empty() => {
                if let Some(Started { key, job, limits }) =
                    loaded.ok().and_then(|slot| compiling.waiting.remove(&slot))
                {
                    compiling.loaded.insert(job.record.id.clone());
                    let share = if key == UNTENANTED {
                        crate::tenants::Share { running: usize::MAX, weight: 1 }
                    } else {
                        shared.tenants.share(&key)
                    };
                    lanes.push(&key, share, (job, limits));
                }
            }
            job = jobs.recv() => {
                let Some(job) = job else { break };
                let limits = limits_of(&shared, &job.record);
                match &job.record.tenant {
                    // Without tenants, no lanes: straight to a free worker.
                    None if lanes.is_empty() && running.len() < workers => {
                        let started = Started { key: String::new(), job, limits };
                        if let Some(started) = start(&shared, &mut running, &mut compiling, started, &done) {
                            compiling.wait(&shared, started);
                        }
                    }
                    None => lanes.push(
                        UNTENANTED,
                        crate::tenants::Share { running: usize::MAX, weight: 1 },
                        (job, limits),
                    ),
                    Some(tenant) => {
                        let share = shared.tenants.share(tenant);
                        let tenant = tenant.clone();
                        lanes.push(&tenant, share, (job, limits));
                    }
                }
            }
            _ = tokio::time::sleep(BUDGET_RECHECK), if blocked => {}
        }
    }
    // Stopping: jobs not started go back at once (with the fuel their
    // tenants reserved for them); running ones finish (the sentinel aborts
    // them after its grace period).
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        hand_back(&shared, &job.ack).await;
    }
    for (job, _) in lanes.drain() {
        hand_back(&shared, &job.ack).await;
    }
    compiling.tasks.abort_all();
    for started in compiling.waiting.into_values() {
        hand_back(&shared, &started.job.ack).await;
    }
    while running.join_next().await.is_some() {}
}

/// A job given its turn: its lane's key (its tenant), and its limits.
struct Started {
    key: String,
    job: Job,
    limits: wasq_sandbox::Limits,
}

/// Jobs whose modules load off the workers: the loads, and the jobs by
/// the slot their load answers.
#[derive(Default)]
struct Compiling {
    tasks: JoinSet<u64>,
    waiting: HashMap<u64, Started>,
    next: u64,
    /// Jobs back from a load: they go to a worker next, whatever the load
    /// did (a store that cannot be reached is the worker's to handle).
    loaded: HashSet<String>,
}

/// Starts a job on a worker if its module is compiled; else hands it
/// back to be loaded first ([`Compiling::wait`]).
fn start(
    shared: &Arc<Shared>,
    running: &mut JoinSet<String>,
    compiling: &mut Compiling,
    started: Started,
    done: &mpsc::UnboundedSender<Completion>,
) -> Option<Started> {
    let digest = &started.job.record.module;
    let loaded = compiling.loaded.remove(&started.job.record.id);
    let cached = shared.sandbox.cached(digest).is_some();
    // Each task counts once: as a hit, or as a miss when it first comes.
    if !loaded {
        let counter = if cached {
            "wasq_compile_cache_hits_total"
        } else {
            "wasq_compile_cache_misses_total"
        };
        wasq_core::metrics::count(counter, &[], 1);
    }
    // A module refused before fails its task at once, on a worker; a job
    // whose module was just loaded (or failed to load) goes on to one too.
    if cached || loaded || shared.sandbox.refusal(digest).is_some() {
        spawn(shared, running, started, done);
        return None;
    }
    Some(started)
}

impl Compiling {
    /// Loads a job's module off the workers; the job comes back from
    /// `tasks` by its slot.
    fn wait(&mut self, shared: &Arc<Shared>, started: Started) {
        let slot = self.next;
        self.next += 1;
        let loader = shared.clone();
        let digest = started.job.record.module;
        self.waiting.insert(slot, started);
        self.tasks.spawn(async move {
            // The job then finds the module in the cache, or its refusal
            // remembered (or, if the store was unreachable, fails over to
            // the worker's own handling): at once.
            let _ = module_for(&loader, &digest).await;
            slot
        });
    }
}

/// Runs a job on a worker; the worker answers its lane's key when done,
/// after giving back the fuel its tenant reserved and did not burn.
fn spawn(
    shared: &Arc<Shared>,
    running: &mut JoinSet<String>,
    started: Started,
    done: &mpsc::UnboundedSender<Completion>,
) {
    let Started { key, job, limits } = started;
    let shared = shared.clone();
    let done = done.clone();
    running.spawn(async move {
        let reserved = limits.fuel;
        let burnt = execute(shared.clone(), job, limits, done).await;
        if key != UNTENANTED {
            shared.tenants.finished(&key, reserved, burnt);
        }
        key
    });
}
