//! The application API: upload modules, enqueue tasks, read and wait for
//! results — Django Q2's `async_task` and `result` for WebAssembly tasks.

use std::path::Path;
use std::time::{Duration, Instant};

use wasq_brokers::{BrokerError, SharedBroker};

use crate::config::Config;
use wasq_core::Digest;
use wasq_core::input::{InputError, task_input};
use wasq_core::package::{PackageCodec, PackageError, TaskLimits, TaskRecord};
use wasq_core::workflow::{ChainLink, HookTarget, RetryPolicy};
use wasq_store::{
    CancelState, Deferred, ModuleInfo, Schedule, ScheduleSpec, Store, StoreError, TaskResult,
    TaskState, now_ms,
};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No module by that name or digest.
    #[error(
        "unknown module `{0}`: upload it with `wasq module upload FILE.wasm --name {0}`, or pass a path to a .wasm file"
    )]
    UnknownModule(String),
    /// The bytes are not a WebAssembly module.
    #[error("{0}")]
    InvalidModule(String),
    /// Arguments are not a JSON array/object.
    #[error(transparent)]
    Arguments(#[from] InputError),
    /// A module file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The package could not be made.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// An equal task (same unique key) is queued or running: nothing was
    /// enqueued.
    #[error(
        "skipped: an equal task is queued or running (unique key `{key}`, task {holder}); nothing enqueued"
    )]
    Duplicate {
        /// The key.
        key: String,
        /// The task that holds it.
        holder: String,
    },
    /// A request that cannot be carried out as given (bad priority, bad
    /// retry policy, bad schedule, empty chain…): the message names the
    /// field.
    #[error("{0}")]
    Invalid(String),
    /// No task (or schedule) by that id or name.
    #[error("{0}")]
    NotFound(String),
    /// The tenant's backlog is at its `max_queued` quota: nothing was
    /// enqueued.
    #[error("max_queued: {}", .0.message())]
    BacklogFull(wasq_store::BacklogFull),
    /// A cached result was asked for with no result cache configured.
    #[error(
        "cached results need a result cache: set `cache = \"redis://HOST\"` in wasq.toml or WASQ_CACHE"
    )]
    NoCache,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// Module: an uploaded name, a digest (or a unique prefix), or a path
    /// to a `.wasm` file (uploaded on the fly).
    pub module: String,
    /// Task name inside the module.
    pub task: String,
    /// Positional arguments (a JSON array).
    pub args: serde_json::Value,
    /// Named arguments (a JSON object).
    pub kwargs: serde_json::Value,
    /// Queue; `None` is the configured default.
    pub queue: Option<String>,
    /// Group name.
    pub group: Option<String>,
    /// Per-task limits.
    pub limits: TaskLimits,
    /// Keep the result in the result cache for this long instead of the
    /// store (needs `cache` in the configuration).
    pub cached: Option<Duration>,
    /// Priority within the queue (-1000..=1000, higher first; 0 default).
    pub priority: i32,
    /// Not before this time (ms since the epoch): the task waits in the
    /// store until then.
    pub eta_ms: Option<i64>,
    /// How failures are retried; `None`: the module's policy, else the
    /// cluster's.
    pub retry: Option<RetryPolicy>,
    /// A task (`(module, task)`) run with this task's record when it ends.
    pub hook: Option<(String, String)>,
    /// Drop this request while a task with the same key is queued or
    /// running.
    pub unique_key: Option<String>,
    /// Hold the unique key at most this long (default: a day), or until
    /// the task ends.
    pub unique_for: Option<Duration>,
}

impl TaskRequest {
    /// A request with no arguments, on the default queue.
    pub fn new(module: impl Into<String>, task: impl Into<String>) -> Self {
        Self {
            module: module.into(),
            task: task.into(),
            args: serde_json::json!([]),
            kwargs: serde_json::json!({}),
            queue: None,
            group: None,
            limits: TaskLimits::default(),
            cached: None,
            priority: 0,
            eta_ms: None,
            retry: None,
            hook: None,
            unique_key: None,
            unique_for: None,
        }
    }

    /// Sets the positional arguments.
    pub fn args(mut self, args: serde_json::Value) -> Self {
        self.args = args;
        self
    }

    /// Sets the named arguments.
    pub fn kwargs(mut self, kwargs: serde_json::Value) -> Self {
        self.kwargs = kwargs;
        self
    }

    /// Runs the task no sooner than `delay` from now (countdown).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.eta_ms = Some(now_ms() + delay.as_millis() as i64);
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Runs `task` of `module` with this task's record when it ends.
    pub fn hook(mut self, module: impl Into<String>, task: impl Into<String>) -> Self {
        self.hook = Some((module.into(), task.into()));
        self
    }

    /// Sets a unique key.
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }
}

/// A schedule to add: a task and when it runs.
#[derive(Debug, Clone)]
pub struct ScheduleRequest {
    /// Unique name.
    pub name: String,
    /// The task (its module, task, arguments, queue, group and priority).
    pub task: TaskRequest,
    /// `once`, `minutes`, `hourly`, `daily`, `weekly`, `biweekly`,
    /// `monthly`, `bimonthly`, `quarterly`, `yearly` or `cron`.
    pub kind: String,
    /// Every this many minutes (kind `minutes`).
    pub minutes: Option<u32>,
    /// A cron expression of 5 or 6 fields (kind `cron`).
    pub cron: Option<String>,
    /// IANA time zone the schedule keeps its wall-clock times in.
    pub tz: String,
    /// The first run (ms since the epoch); `None`: now, or the next cron
    /// match.
    pub next_run_ms: Option<i64>,
    /// Runs: -1 forever, or a count.
    pub repeats: i64,
    /// After an outage, run once per missed time (`true`) or once.
    pub catch_up: bool,
    /// Only clusters of this name run it.
    pub cluster: Option<String>,
}

impl ScheduleRequest {
    /// A schedule of `kind` for `task`, forever, in UTC, catching up.
    pub fn new(name: impl Into<String>, task: TaskRequest, kind: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            task,
            kind: kind.into(),
            minutes: None,
            cron: None,
            tz: "UTC".into(),
            next_run_ms: None,
            repeats: -1,
            catch_up: true,
            cluster: None,
        }
    }
}

/// How long a unique key is held when the request does not say.
const UNIQUE_FOR_DEFAULT: Duration = Duration::from_secs(24 * 3600);

/// Talks to a broker and a store.
#[derive(Clone)]
pub struct Client {
    config: Config,
    broker: SharedBroker,
    store: Store,
    codec: PackageCodec,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.broker.info())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the configured broker and store.
    pub async fn connect(config: &Config) -> Result<Self, ClientError> {
        let mut config = config.clone();
        config.secret = config
            .signing_secret()
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let broker = wasq_brokers::connect(&config.broker).await?;
        let mut store = Store::connect(&config.store).await?;
        if let Some(cache) = &config.cache {
            store = store.with_cache(cache).await?;
        }
        Ok(Self::new(config, broker, store))
    }

    /// A client over an existing broker and store.
    pub fn new(config: Config, broker: SharedBroker, store: Store) -> Self {
        let codec = PackageCodec::new(&config.secret_or_random(), config.compress);
        Self {
            config,
            broker,
            store,
            codec,
        }
    }

    /// The broker.
    pub fn broker(&self) -> &SharedBroker {
        &self.broker
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Uploads a module after checking it is WebAssembly.
    pub async fn upload(
        &self,
        bytes: &[u8],
        name: Option<&str>,
    ) -> Result<ModuleInfo, ClientError> {
        validate_module(bytes)?;
        Ok(self.store.put_module(bytes, name).await?)
    }

    /// Resolves a module reference to its digest and name.
    pub async fn resolve(&self, reference: &str) -> Result<(Digest, String), ClientError> {
        if let Some(found) = self.store.resolve_module(reference).await? {
            return Ok(found);
        }
        let path = Path::new(reference);
        if reference.ends_with(".wasm") || reference.ends_with(".wat") || path.is_file() {
            let bytes = std::fs::read(path).map_err(|source| ClientError::Read {
                path: reference.to_owned(),
                source,
            })?;
            let name = path
                .file_stem()
                .map_or_else(|| "module".to_owned(), |s| s.to_string_lossy().into_owned());
            let info = self.upload(&bytes, None).await?;
            return Ok((info.digest, name));
        }
        Err(ClientError::UnknownModule(reference.to_owned()))
    }

    /// Makes the signed package of a request (resolving its module).
    pub async fn package(
        &self,
        request: &TaskRequest,
    ) -> Result<(String, String, Vec<u8>), ClientError> {
        let record = self.record(request).await?;
        let bytes = self.codec.encode(&record)?;
        Ok((record.id, record.queue, bytes))
    }

    /// The record of a request: its module, hook and retry policy
    /// resolved, its fields checked.
    pub async fn record(&self, request: &TaskRequest) -> Result<TaskRecord, ClientError> {
        let (digest, module_name) = self.resolve(&request.module).await?;
        let mut record = self.record_resolved(request, digest, module_name)?;
        self.resolve_workflow(request, &mut record).await?;
        Ok(record)
    }

    /// Fills in what needs the store: the hook's module and the module's
    /// retry policy.
    async fn resolve_workflow(
        &self,
        request: &TaskRequest,
        record: &mut TaskRecord,
    ) -> Result<(), ClientError> {
        if let Some((module, task)) = &request.hook {
            let (digest, module_name) = self.resolve(module).await?;
            record.hook = Some(HookTarget {
                module: digest,
                module_name,
                task: task.clone(),
            });
        }
        if record.retry.is_none() {
            record.retry = self.store.module_retry(&record.module_name).await?;
        }
        Ok(())
    }

    /// The record of a request whose module is resolved.
    fn record_resolved(
        &self,
        request: &TaskRequest,
        digest: Digest,
        module_name: String,
    ) -> Result<TaskRecord, ClientError> {
        if request.cached.is_some() && self.config.cache.is_none() {
            return Err(ClientError::NoCache);
        }
        if !(wasq_brokers::MIN_PRIORITY..=wasq_brokers::MAX_PRIORITY).contains(&request.priority) {
            return Err(ClientError::Invalid(format!(
                "priority: {} is out of range {}..={}",
                request.priority,
                wasq_brokers::MIN_PRIORITY,
                wasq_brokers::MAX_PRIORITY
            )));
        }
        if let Some(policy) = &request.retry {
            policy.validate().map_err(ClientError::Invalid)?;
        }
        let input = task_input(&request.args, &request.kwargs)?;
        let queue = request
            .queue
            .clone()
            .unwrap_or_else(|| self.config.queue.clone());
        Ok(TaskRecord {
            group: request.group.clone(),
            limits: request.limits.clone(),
            cached_secs: request
                .cached
                .map(|d| d.as_secs().clamp(1, u64::from(u32::MAX)) as u32),
            priority: request.priority,
            eta_ms: request
                .eta_ms
                .filter(|&eta| eta > now_ms())
                .map(|eta| eta as u64),
            retry: request.retry.clone(),
            unique_key: request.unique_key.clone(),
            ..TaskRecord::new(digest, &module_name, &request.task, input, &queue)
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Enqueues a task of a module already resolved (to `digest`, run as
    /// `module_name`) for `tenant`: its record carries the tenant, it goes
    /// to the tenant's queue and its group is kept apart from other
    /// tenants'. Its hook's module is one of the tenant's modules, by name
    /// or digest ([`ClientError::NotFound`] otherwise); its unique key is
    /// the tenant's own (another tenant's equal key does not hold it).
    /// Returns the record sent. Chains are not taken here.
    pub async fn enqueue_for_tenant(
        &self,
        tenant: &str,
        request: &TaskRequest,
        digest: Digest,
        module_name: String,
    ) -> Result<TaskRecord, ClientError> {
        let mut record = self.tenant_record(tenant, request, digest, module_name)?;
        record.hook = self.tenant_hook(tenant, request).await?;
        let ids = [record.id.clone()];
        self.take_backlog(tenant, &[(record.id.clone(), record.queue.clone())])
            .await?;
        if let Err(error) = self.submit(record.clone(), request.unique_for).await {
            self.release_backlog(&ids).await;
            return Err(error);
        }
        Ok(record)
    }

    /// Takes places in `tenant`'s backlog for `tasks` (`(id, queue)`),
    /// all or none ([`ClientError::BacklogFull`] at its `max_queued`).
    async fn take_backlog(
        &self,
        tenant: &str,
        tasks: &[(String, String)],
    ) -> Result<(), ClientError> {
        self.store
            .take_backlog(tenant, tasks)
            .await?
            .map_err(ClientError::BacklogFull)
    }

    /// Gives back the backlog places of tasks that were not queued after
    /// all (a failure here leaves them taken until the tenant's tasks
    /// are purged: logged).
    async fn release_backlog(&self, ids: &[String]) {
        if let Err(error) = self.store.release_backlog(ids).await {
            tracing::warn!(%error, "cannot give back the backlog places of tasks not queued");
        }
    }

    /// The record of a request of `tenant` whose module is resolved: it
    /// carries the tenant, goes to the tenant's queue, and its group is
    /// kept apart from other tenants'.
    fn tenant_record(
        &self,
        tenant: &str,
        request: &TaskRequest,
        digest: Digest,
        module_name: String,
    ) -> Result<TaskRecord, ClientError> {
        let mut record = self.record_resolved(request, digest, module_name)?;
        record.tenant = Some(tenant.to_owned());
        record.queue = wasq_core::tenant::tenant_queue(&record.queue, tenant);
        record.group = record.group.map(|g| tenant_group(tenant, &g));
        record.unique_key = record.unique_key.map(|k| tenant_group(tenant, &k));
        Ok(record)
    }

    /// The hook of a tenant's request: its module resolved among the
    /// tenant's modules.
    async fn tenant_hook(
        &self,
        tenant: &str,
        request: &TaskRequest,
    ) -> Result<Option<HookTarget>, ClientError> {
        let Some((module, task)) = &request.hook else {
            return Ok(None);
        };
        let found = self
            .store
            .tenant_module(tenant, module)
            .await?
            .ok_or_else(|| {
                ClientError::NotFound(format!("hook: no module `{}`", module.escape_debug()))
            })?;
        Ok(Some(HookTarget {
            module: found.digest,
            module_name: found.name,
            task: task.clone(),
        }))
    }

    /// [`enqueue_for_tenant`](Self::enqueue_for_tenant) for many tasks:
    /// one broker transaction per queue and priority (tasks with an ETA
    /// or a unique key go one by one: a held key stops the batch part way,
    /// so callers that promise all-or-none refuse unique keys in batches).
    /// Returns the ids in order.
    pub async fn enqueue_many_for_tenant(
        &self,
        tenant: &str,
        tasks: &[(TaskRequest, Digest, String)],
    ) -> Result<Vec<String>, ClientError> {
        let mut records = Vec::with_capacity(tasks.len());
        for (request, digest, module_name) in tasks {
            let mut record = self.tenant_record(tenant, request, *digest, module_name.clone())?;
            record.hook = self.tenant_hook(tenant, request).await?;
            records.push((record, request.unique_for));
        }
        let ids: Vec<String> = records.iter().map(|(r, _)| r.id.clone()).collect();
        let places: Vec<(String, String)> = records
            .iter()
            .map(|(r, _)| (r.id.clone(), r.queue.clone()))
            .collect();
        self.take_backlog(tenant, &places).await?;
        if let Err(error) = self.send_tenant_records(records).await {
            // Some may have gone: their places come back early, never late.
            self.release_backlog(&ids).await;
            return Err(error);
        }
        Ok(ids)
    }

    /// Sends a tenant's records (each with how long it holds its unique
    /// key): in one broker call per queue and priority, those with an ETA
    /// or a unique key one by one.
    async fn send_tenant_records(
        &self,
        records: Vec<(TaskRecord, Option<Duration>)>,
    ) -> Result<(), ClientError> {
        let mut batches: std::collections::BTreeMap<(String, i32), Vec<Vec<u8>>> =
            Default::default();
        for (record, unique_for) in records {
            if record.eta_ms.is_some() || record.unique_key.is_some() {
                self.submit(record, unique_for).await?;
                continue;
            }
            let bytes = self.codec.encode(&record)?;
            batches
                .entry((record.queue, record.priority))
                .or_default()
                .push(bytes);
        }
        self.send_batches(batches).await
    }

    /// Hands packages to the broker, one call per queue and priority.
    async fn send_batches(
        &self,
        batches: std::collections::BTreeMap<(String, i32), Vec<Vec<u8>>>,
    ) -> Result<(), ClientError> {
        for ((queue, priority), payloads) in batches {
            let tenant = wasq_core::tenant::queue_tenant(&queue)
                .unwrap_or("")
                .to_owned();
            let count = payloads.len() as u64;
            self.broker
                .enqueue_priority(&queue, priority, payloads)
                .await?;
            wasq_core::metrics::enqueued(&tenant, count);
        }
        Ok(())
    }

    /// Enqueues a task; returns its id. A task with an ETA waits in the
    /// store until due; a task with a unique key that is held is refused
    /// with [`ClientError::Duplicate`].
    pub async fn enqueue(&self, request: &TaskRequest) -> Result<String, ClientError> {
        let record = self.record(request).await?;
        self.submit(record, request.unique_for).await
    }

    /// Sends a finished record: takes its unique key, then hands it to
    /// the broker, or to the store when it has an ETA.
    async fn submit(
        &self,
        record: TaskRecord,
        unique_for: Option<Duration>,
    ) -> Result<String, ClientError> {
        let bytes = self.codec.encode(&record)?;
        let holder = record
            .chain
            .last()
            .map_or(record.id.clone(), |link| link.id.clone());
        if let Some(key) = &record.unique_key {
            let hold = unique_for.unwrap_or(UNIQUE_FOR_DEFAULT).as_millis();
            let until = now_ms().saturating_add(i64::try_from(hold).unwrap_or(i64::MAX));
            if let Some(holder) = self.store.acquire_unique(key, &holder, until).await? {
                return Err(ClientError::Duplicate {
                    key: key.clone(),
                    holder,
                });
            }
        }
        let sent = match record.eta_ms {
            Some(eta) => self
                .store
                .defer(&[Deferred {
                    id: record.id.clone(),
                    task_id: record.id.clone(),
                    queue: record.queue.clone(),
                    priority: record.priority,
                    due_at_ms: eta as i64,
                    package: bytes,
                }])
                .await
                .map_err(ClientError::from),
            None => self
                .broker
                .enqueue_priority(&record.queue, record.priority, vec![bytes])
                .await
                .map_err(ClientError::from),
        };
        if sent.is_ok() {
            wasq_core::metrics::enqueued(record.tenant.as_deref().unwrap_or(""), 1);
            tracing::debug_span!("enqueue", task_id = %record.id, module = %record.module_name, task = %record.task)
                .in_scope(|| {
                    tracing::debug!(task_id = %record.id, queue = %record.queue, deferred = record.eta_ms.is_some(), "enqueued");
                });
        }
        if let Err(error) = sent {
            if let Some(key) = &record.unique_key {
                let _ = self.store.release_unique(key, &holder).await;
            }
            return Err(error);
        }
        Ok(record.id)
    }

    /// Enqueues many tasks in one broker transaction per queue and
    /// priority; returns their ids in order. Modules are resolved once
    /// each. Requests with an ETA, a hook or a unique key go one by one.
    pub async fn enqueue_many(&self, requests: &[TaskRequest]) -> Result<Vec<String>, ClientError> {
        let mut ids = Vec::with_capacity(requests.len());
        let mut batches: std::collections::BTreeMap<(String, i32), Vec<Vec<u8>>> =
            Default::default();
        let mut resolved: std::collections::HashMap<String, (Digest, String, Option<RetryPolicy>)> =
            Default::default();
        for request in requests {
            if request.eta_ms.is_some() || request.hook.is_some() || request.unique_key.is_some() {
                ids.push(self.enqueue(request).await?);
                continue;
            }
            let (digest, name, policy) = match resolved.get(&request.module) {
                Some(found) => found.clone(),
                None => {
                    let (digest, name) = self.resolve(&request.module).await?;
                    let policy = self.store.module_retry(&name).await?;
                    let found = (digest, name, policy);
                    resolved.insert(request.module.clone(), found.clone());
                    found
                }
            };
            let mut record = self.record_resolved(request, digest, name)?;
            if record.retry.is_none() {
                record.retry = policy;
            }
            let bytes = self.codec.encode(&record)?;
            ids.push(record.id);
            batches
                .entry((record.queue, record.priority))
                .or_default()
                .push(bytes);
        }
        self.send_batches(batches).await?;
        Ok(ids)
    }

    /// Enqueues a chain: the tasks run one after another, each once the
    /// one before succeeded (a failure stops the chain; its later tasks
    /// end `cancelled`). With `pass_result`, each result is prepended to
    /// the next task's positional arguments. The first request's group,
    /// priority, ETA, retry policy and unique key apply to the chain.
    /// Returns the ids of all its tasks, in order.
    pub async fn enqueue_chain(
        &self,
        requests: &[TaskRequest],
        pass_result: bool,
    ) -> Result<Vec<String>, ClientError> {
        let (first, rest) = requests
            .split_first()
            .ok_or_else(|| ClientError::Invalid("chain: it has no tasks".into()))?;
        let mut head = self.record(first).await?;
        for request in rest {
            let link = self.record(request).await?;
            head.chain.push(ChainLink {
                id: link.id,
                module: link.module,
                module_name: link.module_name,
                task: link.task,
                input: link.input,
                queue: link.queue,
                limits: link.limits,
            });
        }
        head.pass_result = pass_result;
        let ids: Vec<String> = std::iter::once(head.id.clone())
            .chain(head.chain.iter().map(|link| link.id.clone()))
            .collect();
        self.submit(head, first.unique_for).await?;
        Ok(ids)
    }

    /// Cancels a task: a queued or deferred one never runs, a running one
    /// is stopped within a moment; either way its result is `cancelled`.
    /// A task that already has a result is left alone.
    pub async fn cancel(&self, id: &str) -> Result<CancelState, ClientError> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClientError::Invalid(format!(
                "task id: `{id}` is not a task id (32 hex digits)"
            )));
        }
        let state = self.store.request_cancel(id).await?;
        if let CancelState::Requested { deferred } = &state {
            // Deferred runs never reach a cluster: record their end here.
            let mut results = Vec::new();
            for package in deferred {
                let Ok(record) = self.codec.decode(package) else {
                    continue;
                };
                if let Some(key) = &record.unique_key {
                    let holder = record.chain.last().map_or(&record.id, |link| &link.id);
                    self.store.release_unique(key, holder).await?;
                }
                results.push(cancelled_result(record));
            }
            self.store.save_results(&results, 0).await?;
        }
        Ok(state)
    }

    /// Adds a schedule, after checking its type, cron string, time zone
    /// and repeats ([`ClientError::Invalid`] names the field).
    pub async fn add_schedule(&self, request: &ScheduleRequest) -> Result<Schedule, ClientError> {
        let record = self.record(&request.task).await?;
        let spec = schedule_spec(request, record, None)?;
        Ok(self.store.add_schedule(&spec).await?)
    }

    /// [`add_schedule`](Self::add_schedule) for `tenant`, its module
    /// resolved (to `digest`, run as `module_name`, one of the tenant's):
    /// stored as `tenant/NAME`, its tasks run for the tenant.
    pub async fn add_tenant_schedule(
        &self,
        tenant: &str,
        request: &ScheduleRequest,
        digest: Digest,
        module_name: String,
    ) -> Result<Schedule, ClientError> {
        let spec = self.tenant_schedule_spec(tenant, request, digest, module_name)?;
        Ok(self.store.add_schedule(&spec).await?)
    }

    /// The stored form of a tenant's schedule: named `tenant/NAME`, its
    /// group kept apart from other tenants'.
    fn tenant_schedule_spec(
        &self,
        tenant: &str,
        request: &ScheduleRequest,
        digest: Digest,
        module_name: String,
    ) -> Result<ScheduleSpec, ClientError> {
        let record = self.record_resolved(&request.task, digest, module_name)?;
        let mut spec = schedule_spec(request, record, Some(tenant))?;
        spec.name = format!("{tenant}/{}", request.name);
        spec.group = spec.group.map(|g| tenant_group(tenant, &g));
        Ok(spec)
    }

    /// Changes what schedule `request.name` runs and when (its runs so far,
    /// last run and pause stay); [`ClientError::NotFound`] if there is none.
    /// For a tenant's schedule, `tenant` names it and `module` is the
    /// tenant's module, resolved (as in
    /// [`add_tenant_schedule`](Self::add_tenant_schedule)).
    pub async fn replace_schedule(
        &self,
        request: &ScheduleRequest,
        tenant: Option<(&str, Digest, String)>,
    ) -> Result<Schedule, ClientError> {
        let spec = match tenant {
            None => schedule_spec(request, self.record(&request.task).await?, None)?,
            Some((tenant, digest, module_name)) => {
                self.tenant_schedule_spec(tenant, request, digest, module_name)?
            }
        };
        self.store
            .replace_schedule(&spec)
            .await?
            .ok_or_else(|| ClientError::NotFound(format!("no schedule `{}`", request.name)))
    }

    /// Enqueues a failed task again as a new task (a fresh id and
    /// attempts) and removes the failure; returns the new id.
    pub async fn resubmit(&self, id: &str) -> Result<String, ClientError> {
        let failure = self
            .store
            .result(id)
            .await?
            .filter(|r| !r.success)
            .ok_or_else(|| {
                ClientError::NotFound(format!(
                    "no failed task with id `{id}`; see `wasq failed list`"
                ))
            })?;
        let mut record = match failure
            .record
            .as_deref()
            .map(postcard::from_bytes::<TaskRecord>)
        {
            Some(Ok(record)) => record,
            _ => TaskRecord {
                group: failure.group.clone(),
                ..TaskRecord::new(
                    failure.module,
                    &failure.module_name,
                    &failure.task,
                    failure.input.clone(),
                    &failure.queue,
                )
            },
        };
        record.id = wasq_core::package::new_task_id();
        record.attempt = 1;
        record.earlier.clear();
        record.eta_ms = None;
        record.enqueued_at_ms = now_ms() as u64;
        record.unique_key = None;
        // A tenant's task stays the tenant's (its queue says whose when
        // its record was not kept) and takes a place in its backlog.
        if record.tenant.is_none() {
            record.tenant = wasq_core::tenant::queue_tenant(&record.queue).map(str::to_owned);
        }
        let tenant = record.tenant.clone();
        let place = [(record.id.clone(), record.queue.clone())];
        if let Some(tenant) = &tenant {
            self.take_backlog(tenant, &place).await?;
        }
        let new_id = match self.submit(record, None).await {
            Ok(id) => id,
            Err(error) => {
                if tenant.is_some() {
                    self.release_backlog(&[place[0].0.clone()]).await;
                }
                return Err(error);
            }
        };
        self.store.hand_on_task(id, &new_id).await?;
        self.store.remove_result(id).await?;
        Ok(new_id)
    }

    /// Re-signs a package no cluster would run (`wasq failed list`, under
    /// "packages") with this client's secret, queues it again where it
    /// came from with its task id kept, and removes it from the failed
    /// packages; answers its task id. Its contents are not verified: only
    /// resubmit packages whose source you trust (most often, tasks
    /// enqueued while a cluster had the wrong secret).
    pub async fn resubmit_package(&self, digest: &str) -> Result<String, ClientError> {
        let (dead, bytes) = self.store.dead_letter(digest).await?.ok_or_else(|| {
            ClientError::NotFound(format!(
                "no failed package with digest `{digest}`; see `wasq failed list`"
            ))
        })?;
        let record = wasq_core::package::read_unverified(&bytes)?;
        let package = self.codec.encode(&record)?;
        self.broker
            .enqueue_priority(&dead.queue, record.priority, vec![package])
            .await?;
        self.store.remove_dead_letter(&dead.digest).await?;
        Ok(record.id)
    }

    /// The result of a task, if it has one.
    pub async fn result(&self, id: &str) -> Result<Option<TaskResult>, ClientError> {
        Ok(self.store.result(id).await?)
    }

    /// Waits up to `timeout` for a task's result.
    pub async fn wait(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<TaskResult>, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(result) = self.result(id).await? {
                return Ok(Some(result));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Where a task stands: finished, pruned by `save_limit`, running,
    /// queued (with its due time when deferred) or unknown.
    pub async fn state(&self, id: &str) -> Result<TaskState, ClientError> {
        Ok(self.store.task_state(id).await?)
    }

    /// Waits up to `timeout` for a task to end (its result, or the
    /// tombstone of a result pruned by `save_limit`); then where it stands.
    pub async fn wait_state(&self, id: &str, timeout: Duration) -> Result<TaskState, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(ended) = self.store.ended(id).await? {
                return Ok(ended);
            }
            let now = Instant::now();
            if now >= deadline {
                return self.state(id).await;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

/// The stored schedule of a request whose task is made into `record`,
/// after checking its type, cron string, time zone and repeats.
fn schedule_spec(
    request: &ScheduleRequest,
    record: TaskRecord,
    tenant: Option<&str>,
) -> Result<ScheduleSpec, ClientError> {
    use wasq_store::schedule::{Frequency, Recurrence, Timestamp, parse_repeats};
    let invalid = |e: wasq_store::schedule::ScheduleError| ClientError::Invalid(e.to_string());
    if request.name.trim().is_empty() {
        return Err(ClientError::Invalid("name: a schedule needs a name".into()));
    }
    let frequency = Frequency::parse(&request.kind, request.minutes, request.cron.as_deref())
        .map_err(invalid)?;
    let repeats = parse_repeats(request.repeats).map_err(invalid)?;
    let first = match request.next_run_ms {
        Some(ms) => Timestamp::from_millisecond(ms)
            .map_err(|e| ClientError::Invalid(format!("next_run: {e}")))?,
        None => {
            Recurrence::first_due(&frequency, &request.tz, Timestamp::now()).map_err(invalid)?
        }
    };
    // Checks the time zone and that the schedule can be computed.
    Recurrence::new(frequency.clone(), &request.tz, first).map_err(invalid)?;
    Ok(ScheduleSpec {
        name: request.name.clone(),
        module: record.module_name,
        digest: record.module,
        task: record.task,
        input: record.input,
        queue: request.task.queue.clone(),
        group: request.task.group.clone(),
        priority: request.task.priority,
        kind: frequency.kind().to_owned(),
        minutes: frequency.minutes(),
        cron: frequency.cron().map(str::to_owned),
        tz: request.tz.clone(),
        next_run_ms: first.as_millisecond(),
        repeats,
        catch_up: request.catch_up,
        cluster: request.cluster.clone(),
        tenant: tenant.map(str::to_owned),
    })
}

/// The stored name of `tenant`'s group `group`.
pub fn tenant_group(tenant: &str, group: &str) -> String {
    format!("{tenant}/{group}")
}

/// The result of a task cancelled before it ran.
fn cancelled_result(record: TaskRecord) -> TaskResult {
    let now = now_ms();
    TaskResult {
        id: record.id,
        module: record.module,
        module_name: record.module_name,
        task: record.task,
        input: record.input,
        queue: record.queue,
        group: record.group,
        outcome: wasq_core::OutcomeKind::Cancelled.as_str().into(),
        success: false,
        result: None,
        stderr: String::new(),
        error: Some("cancelled before it ran".into()),
        fuel: None,
        cpu_us: 0,
        wall_us: 0,
        memory_peak: 0,
        attempts: record.attempt.saturating_sub(1),
        enqueued_at_ms: record.enqueued_at_ms as i64,
        started_at_ms: now,
        stopped_at_ms: now,
        cluster: String::new(),
        cached_secs: None,
        attempt_log: record.earlier,
        record: None,
    }
}

/// Checks that bytes are a WebAssembly module (binary or text) before they
/// are stored; compiling happens on the workers.
pub fn validate_module(bytes: &[u8]) -> Result<(), ClientError> {
    let binary;
    let bytes = if bytes.starts_with(b"\0asm") {
        bytes
    } else {
        binary = wat::parse_bytes(bytes).map_err(|e| {
            ClientError::InvalidModule(format!(
                "not a WebAssembly module: {}",
                e.to_string().lines().next().unwrap_or("")
            ))
        })?;
        &binary[..]
    };
    wasmparser::validate(bytes)
        .map(drop)
        .map_err(|e| ClientError::InvalidModule(format!("invalid WebAssembly: {e}")))
}
