//! `/v1/tasks` and `/v1/groups`: enqueue a task of one of the caller's
//! modules with every option `wasq enqueue` has — ETA, priority, retry
//! policy, hook, unique key (held per tenant), cache time; what the server
//! cannot honour is refused naming the field, and so are unknown fields.
//! Its limits are checked against the tenant's quotas, and a place in the
//! tenant's backlog is taken atomically against `max_queued`, which counts
//! every task of the tenant waiting for its result, in any queue, deferred
//! or not (see `wasq-store`'s `backlog.rs`). Read or wait for a result, cancel a
//! task, read a group's results. Another tenant's task ids are answered
//! 404, the same as ids that never existed.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use wasq_client::{ClientError, TaskRequest, tenant_group};
use wasq_core::OutcomeKind;
use wasq_core::package::{TaskLimits, TaskRecord};
use wasq_core::tenant::{Quotas, Tenant, check_name};
use wasq_core::workflow::{RetryPolicy, hook_id};
use wasq_store::{CancelState, TaskResult, TaskState, TenantModule};

/// The longest a request may wait for a result.
const MAX_WAIT_SECS: u64 = 60;

/// A task to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// One of the caller's modules: its name or digest.
    pub module: String,
    /// The task inside the module.
    pub task: String,
    /// Positional arguments.
    #[serde(default = "empty_array")]
    #[schema(value_type = Vec<Object>)]
    pub args: serde_json::Value,
    /// Named arguments.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub kwargs: serde_json::Value,
    /// Queue (default: the server's).
    pub queue: Option<String>,
    /// Group name.
    pub group: Option<String>,
    /// Priority in the queue, -1000 to 1000 (higher first).
    #[serde(default)]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: i32,
    /// Fuel budget (at most the tenant's `max_fuel`).
    pub fuel: Option<u64>,
    /// Linear memory limit, bytes (at most `max_memory`).
    pub memory: Option<u64>,
    /// Wall-clock limit, ms (at most `max_timeout_ms`). Clusters also
    /// lower fuel, memory and timeout to their own `max_fuel`, `memory`
    /// and `timeout` when the task runs (the API cannot know which
    /// cluster runs it, so it does not refuse them).
    pub timeout_ms: Option<u64>,
    /// Run no sooner than this many seconds from now (not with `eta_ms`).
    #[schema(maximum = 31536000)]
    pub delay_secs: Option<u64>,
    /// Run no sooner than this time, ms since the epoch (a past time runs
    /// at once), as `wasq enqueue --at/--in`. Not with `delay_secs`.
    pub eta_ms: Option<i64>,
    /// How failures are tried again [default: the cluster's policy].
    pub retry: Option<RetryRequest>,
    /// A task of one of the caller's modules, run with this task's result
    /// record as its one argument when this task ends.
    pub hook: Option<HookRequest>,
    /// Refuse this task (409) while a task of the caller's with the same
    /// key is queued or running. Not in a batch.
    #[schema(min_length = 1, max_length = 200)]
    pub unique_key: Option<String>,
    /// Hold `unique_key` at most this long, ms [default: a day, or until
    /// the task ends]. Only with `unique_key`.
    pub unique_for_ms: Option<u64>,
    /// Keep the result this many seconds in the server's result cache
    /// instead of the store; refused (400) when the server has no cache.
    #[schema(minimum = 1)]
    pub cached_secs: Option<u32>,
}

/// How a failed task is tried again: exponential backoff with jitter.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Attempts in all, the first included: 1 never retries.
    #[schema(minimum = 1)]
    pub max_attempts: u32,
    /// Delay before the second attempt, ms [default: 1000].
    pub backoff_ms: Option<u64>,
    /// Growth of the delay per attempt, at least 1 [default: 2].
    pub factor: Option<f64>,
    /// Longest delay, ms, at least `backoff_ms` [default: 300000].
    pub backoff_max_ms: Option<u64>,
    /// Share of each delay taken off at random, 0 to 1 [default: 0.25].
    pub jitter: Option<f64>,
    /// Outcomes that are retried [default: `guest_error`, `trap`,
    /// `timeout`].
    pub retry_on: Option<Vec<String>>,
}

impl RetryRequest {
    /// The policy asked for, the defaults filled in; a bad outcome name is
    /// a 400 naming it (the numbers are checked when the task is made).
    fn policy(&self) -> Result<RetryPolicy, ApiError> {
        let defaults = RetryPolicy::default();
        let retry_on = match &self.retry_on {
            None => defaults.retry_on,
            Some(names) => names
                .iter()
                .map(|name| {
                    OutcomeKind::ALL
                        .into_iter()
                        .find(|k| k.as_str() == name)
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "retry.retry_on: unknown outcome `{}`; use guest_error, trap, timeout, fuel_exhausted, memory_limit or output_limit",
                                name.escape_debug()
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(RetryPolicy {
            max_attempts: self.max_attempts,
            backoff_ms: self.backoff_ms.unwrap_or(defaults.backoff_ms),
            factor: self.factor.unwrap_or(defaults.factor),
            backoff_max_ms: self.backoff_max_ms.unwrap_or(defaults.backoff_max_ms),
            jitter: self.jitter.unwrap_or(defaults.jitter),
            retry_on,
        })
    }
}

/// A task run with another's result record when that one ends.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookRequest {
    /// One of the caller's modules: its name or digest.
    pub module: String,
    /// The task inside the module.
    pub task: String,
}

/// The longest unique key.
const MAX_UNIQUE_KEY: usize = 200;

/// No positional arguments.
pub(super) fn empty_array() -> serde_json::Value {
    serde_json::json!([])
}

/// No named arguments.
pub(super) fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// A task was queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enqueued {
    /// Its id: keep it to read the result.
    pub id: String,
    /// The queue it went to (as the caller named it).
    pub queue: String,
}

/// A task and, once it ended, its result.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    /// Task id.
    pub id: String,
    /// `pending` (queued or running) or `finished` (its result kept or
    /// pruned).
    pub status: String,
    /// `queued`, `running`, `finished`, or `pruned`: finished, and its
    /// result since removed by the server's `save_limit` (which keeps the
    /// newest successes per queue).
    pub state: String,
    /// When a queued task is due, ms since the epoch: set for a deferred
    /// task (a delay, a retry waiting for its backoff).
    pub due_at_ms: Option<i64>,
    /// When a running task started, ms since the epoch.
    pub started_at_ms: Option<i64>,
    /// What is left of a pruned result.
    pub pruned: Option<PrunedView>,
    /// The result, once finished (none once pruned).
    pub result: Option<ResultView>,
}

/// What is left of a result pruned by `save_limit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrunedView {
    /// How it ended.
    pub outcome: String,
    /// When it finished, ms since the epoch.
    pub stopped_at_ms: i64,
    /// When its result was removed, ms since the epoch.
    pub pruned_at_ms: i64,
}

/// How a task ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultView {
    /// `success`, `guest_error`, `trap`, `timeout`, `fuel_exhausted`,
    /// `memory_limit`, `output_limit`, `invalid_module`, `cancelled`,
    /// `abandoned`.
    pub outcome: String,
    /// Whether it succeeded.
    pub success: bool,
    /// What it returned (a success's stdout), as JSON when it is JSON,
    /// else as text.
    #[schema(value_type = Object)]
    pub value: Option<serde_json::Value>,
    /// What a failed task printed to stdout (within its output limit).
    pub stdout: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its log (stderr).
    pub log: String,
    /// Module name.
    pub module: String,
    /// Task name.
    pub task: String,
    /// Group, if any.
    pub group: Option<String>,
    /// Fuel burnt.
    pub fuel: Option<u64>,
    /// CPU time, µs.
    pub cpu_us: u64,
    /// Wall time, µs.
    pub wall_us: u64,
    /// Peak linear memory, bytes.
    pub memory_peak: u64,
    /// Attempts it took.
    pub attempts: u32,
    /// Enqueued, ms since the epoch.
    pub enqueued_at_ms: i64,
    /// Started, ms since the epoch.
    pub started_at_ms: i64,
    /// Finished, ms since the epoch.
    pub stopped_at_ms: i64,
}

impl ResultView {
    fn new(result: TaskResult, tenant: &str) -> Self {
        let value = result.success.then(|| result.result_json());
        let stdout = result.failure_stdout();
        let prefix = format!("{tenant}/");
        Self {
            outcome: result.outcome,
            success: result.success,
            value,
            stdout,
            error: result.error,
            log: result.stderr,
            module: result.module_name,
            task: result.task,
            group: result
                .group
                .map(|g| g.strip_prefix(&prefix).map(str::to_owned).unwrap_or(g)),
            fuel: result.fuel,
            cpu_us: result.cpu_us,
            wall_us: result.wall_us,
            memory_peak: result.memory_peak,
            attempts: result.attempts,
            enqueued_at_ms: result.enqueued_at_ms,
            started_at_ms: result.started_at_ms,
            stopped_at_ms: result.stopped_at_ms,
        }
    }
}

/// Refuses limits over the tenant's maxima (403, naming the quota).
fn check_limits(request: &EnqueueRequest, quotas: &Quotas) -> Result<(), ApiError> {
    let checks = [
        ("max_fuel", request.fuel, quotas.max_fuel),
        ("max_memory", request.memory, quotas.max_memory),
        ("max_timeout_ms", request.timeout_ms, quotas.max_timeout_ms),
    ];
    for (quota, asked, most) in checks {
        if let (Some(asked), Some(most)) = (asked, most)
            && asked > most
        {
            return Err(ApiError::quota(
                StatusCode::FORBIDDEN,
                quota,
                format!("asked for {asked}, the tenant's quota {quota} is {most}"),
            ));
        }
    }
    Ok(())
}

/// Checks a request against names and quotas and resolves its module
/// (through `modules`, the ones resolved so far); the queue name (as the
/// caller uses it) and what to enqueue.
async fn prepare(
    state: &AppState,
    tenant: &Tenant,
    request: &EnqueueRequest,
    modules: &mut HashMap<String, TenantModule>,
) -> Result<(String, (TaskRequest, wasq_core::Digest, String)), ApiError> {
    check_name("task", &request.task).map_err(ApiError::bad_request)?;
    for (what, name) in [("queue", &request.queue), ("group", &request.group)] {
        if let Some(name) = name {
            check_name(what, name).map_err(ApiError::bad_request)?;
        }
    }
    check_limits(request, &tenant.quotas)?;
    if request.fuel == Some(0) || request.timeout_ms == Some(0) {
        return Err(ApiError::bad_request(
            "fuel and timeout_ms must be at least 1",
        ));
    }
    let module = match modules.get(&request.module) {
        Some(module) => module.clone(),
        None => {
            let module = state
                .client
                .store()
                .tenant_module(&tenant.name, &request.module)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!("no module `{}`", request.module.escape_debug()))
                })?;
            modules.insert(request.module.clone(), module.clone());
            module
        }
    };
    let queue = request
        .queue
        .clone()
        .unwrap_or_else(|| state.client.config().queue.clone());
    let workflow = Workflow::of(request)?;
    let mut task = TaskRequest::new(module.digest.to_string(), request.task.clone())
        .args(request.args.clone())
        .kwargs(request.kwargs.clone())
        .priority(request.priority);
    task.queue = Some(queue.clone());
    task.group = request.group.clone();
    task.limits = TaskLimits {
        timeout_ms: request.timeout_ms,
        fuel: request.fuel,
        memory: request.memory,
    };
    if let Some(secs) = request.delay_secs.filter(|s| *s > 0) {
        task = task.delay(Duration::from_secs(secs.min(365 * 24 * 3600)));
    }
    workflow.apply(&mut task);
    Ok((queue, (task, module.digest, module.name)))
}

/// What a request asks for beyond its run: when, how it is retried, its
/// hook, unique key and cache time, checked.
struct Workflow {
    eta_ms: Option<i64>,
    retry: Option<RetryPolicy>,
    hook: Option<(String, String)>,
    unique_key: Option<String>,
    unique_for: Option<Duration>,
    cached: Option<Duration>,
}

impl Workflow {
    /// Checks the fields a request cannot have together or out of range;
    /// a 400 naming the field.
    fn of(request: &EnqueueRequest) -> Result<Self, ApiError> {
        if request.eta_ms.is_some() && request.delay_secs.is_some() {
            return Err(ApiError::bad_request(
                "eta_ms and delay_secs: give one of them, not both",
            ));
        }
        if let Some(hook) = &request.hook {
            check_name("hook.task", &hook.task).map_err(ApiError::bad_request)?;
            if hook.module.is_empty() {
                return Err(ApiError::bad_request(
                    "hook.module: name one of your modules (its name or digest)",
                ));
            }
        }
        if let Some(key) = &request.unique_key
            && (key.is_empty() || key.len() > MAX_UNIQUE_KEY || key.chars().any(char::is_control))
        {
            return Err(ApiError::bad_request(format!(
                "unique_key: use 1 to {MAX_UNIQUE_KEY} bytes with no control characters"
            )));
        }
        if request.unique_for_ms.is_some() && request.unique_key.is_none() {
            return Err(ApiError::bad_request(
                "unique_for_ms: only with unique_key; add one or leave it out",
            ));
        }
        if request.cached_secs == Some(0) {
            return Err(ApiError::bad_request("cached_secs: must be at least 1"));
        }
        Ok(Self {
            eta_ms: request.eta_ms,
            retry: request
                .retry
                .as_ref()
                .map(RetryRequest::policy)
                .transpose()?,
            hook: request
                .hook
                .as_ref()
                .map(|h| (h.module.clone(), h.task.clone())),
            unique_key: request.unique_key.clone(),
            unique_for: request.unique_for_ms.map(Duration::from_millis),
            cached: request
                .cached_secs
                .map(|secs| Duration::from_secs(u64::from(secs))),
        })
    }

    /// Puts what was asked for into the task.
    fn apply(self, task: &mut TaskRequest) {
        if self.eta_ms.is_some() {
            task.eta_ms = self.eta_ms;
        }
        task.retry = self.retry;
        task.hook = self.hook;
        task.unique_key = self.unique_key;
        task.unique_for = self.unique_for;
        task.cached = self.cached;
    }
}

/// The ids a tenant's new task makes its own: the task's, and its hook's
/// (derived from it) so the caller can read what the hook did.
fn owned_ids(record: &TaskRecord) -> Vec<String> {
    let mut ids = vec![record.id.clone()];
    if record.hook.is_some() {
        ids.push(hook_id(&record.id));
    }
    ids
}

/// A refusal for a held unique key, in the caller's own terms (the key as
/// it gave it, not as the store keeps it per tenant).
fn own_terms(error: ClientError, tenant: &str) -> ApiError {
    match error {
        ClientError::Duplicate { key, holder } => ClientError::Duplicate {
            key: key
                .strip_prefix(&format!("{tenant}/"))
                .map_or(key.clone(), str::to_owned),
            holder,
        }
        .into(),
        other => other.into(),
    }
}

/// Queue a task.
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks",
    request_body = EnqueueRequest,
    responses(
        (status = 201, description = "Queued", body = Enqueued),
        (status = 400, description = "Bad arguments, names or limits", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A limit over the tenant's quota, or an admin key", body = ErrorBody),
        (status = 404, description = "No such module (or hook module) for this tenant", body = ErrorBody),
        (status = 409, description = "A task with the same unique_key is queued or running: nothing was queued", body = ErrorBody),
        (status = 413, description = "Body over its limit", body = ErrorBody),
        (status = 429, description = "The tenant's queue is full (max_queued)", body = ErrorBody),
        (status = 503, description = "Broker or store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn enqueue(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<EnqueueRequest>,
) -> Result<(StatusCode, axum::Json<Enqueued>), ApiError> {
    let tenant = caller.tenant()?;
    let (queue, (task, digest, module_name)) =
        prepare(&state, tenant, &request, &mut HashMap::new()).await?;
    let record = state
        .client
        .enqueue_for_tenant(&tenant.name, &task, digest, module_name)
        .await
        .map_err(|e| own_terms(e, &tenant.name))?;
    state
        .client
        .store()
        .own_tasks(&tenant.name, &owned_ids(&record))
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Enqueued {
            id: record.id,
            queue,
        }),
    ))
}

/// Most tasks in one batch.
const MAX_BATCH: usize = 1000;

/// Many tasks at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The tasks (1 to 1000).
    #[schema(min_items = 1, max_items = 1000)]
    pub tasks: Vec<EnqueueRequest>,
}

/// Tasks were queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchEnqueued {
    /// Their ids, in the order given.
    pub ids: Vec<String>,
}

/// Queue up to 1000 tasks in one request: all are queued, or none.
#[utoipa::path(post, path = "/v1/tasks/batch", tag = "tasks",
    request_body = BatchRequest,
    responses(
        (status = 201, description = "Queued", body = BatchEnqueued),
        (status = 400, description = "Bad arguments, names or limits, or a bad batch size", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A limit over the tenant's quota, or an admin key", body = ErrorBody),
        (status = 404, description = "No such module for this tenant", body = ErrorBody),
        (status = 413, description = "Body over its limit", body = ErrorBody),
        (status = 429, description = "The tenant's queue would be over max_queued", body = ErrorBody),
        (status = 503, description = "Broker or store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn enqueue_batch(
    State(state): State<AppState>,
    caller: Caller,
    Json(batch): Json<BatchRequest>,
) -> Result<(StatusCode, axum::Json<BatchEnqueued>), ApiError> {
    let tenant = caller.tenant()?;
    if batch.tasks.is_empty() || batch.tasks.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH} tasks, not {}",
            batch.tasks.len()
        )));
    }
    let mut prepared = Vec::with_capacity(batch.tasks.len());
    let mut modules = HashMap::new();
    for (i, request) in batch.tasks.iter().enumerate() {
        if request.unique_key.is_some() {
            // A held key would stop the batch part way: not all-or-none.
            return Err(ApiError::bad_request(format!(
                "tasks[{i}].unique_key: not taken in a batch; POST /v1/tasks each task with a unique key"
            )));
        }
        let (_, task) = prepare(&state, tenant, request, &mut modules).await?;
        prepared.push(task);
    }
    let ids = state
        .client
        .enqueue_many_for_tenant(&tenant.name, &prepared)
        .await?;
    let mut owned = ids.clone();
    owned.extend(
        prepared
            .iter()
            .zip(&ids)
            .filter(|((task, _, _), _)| task.hook.is_some())
            .map(|(_, id)| hook_id(id)),
    );
    state.client.store().own_tasks(&tenant.name, &owned).await?;
    Ok((StatusCode::CREATED, axum::Json(BatchEnqueued { ids })))
}

/// Whether waiting was asked for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Wait up to this many seconds (at most 60) for the result.
    #[param(maximum = 60)]
    pub wait: Option<u64>,
}

/// Checks the caller owns task `id`; 404 otherwise.
async fn owned(state: &AppState, tenant: &str, id: &str) -> Result<(), ApiError> {
    let not_found = || ApiError::not_found(format!("no task `{}`", id.escape_debug()));
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    match state.client.store().task_owner(id).await? {
        Some(owner) if owner == tenant => Ok(()),
        _ => Err(not_found()),
    }
}

/// A task's state (`queued` with its due time when deferred, `running`,
/// `finished` with its result, `pruned`) and result; with `wait`, waits
/// for it to end.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "Task id"), WaitQuery),
    responses(
        (status = 200, description = "The task", body = TaskView),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 404, description = "No such task for this tenant", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<axum::Json<TaskView>, ApiError> {
    let tenant = caller.tenant()?;
    owned(&state, &tenant.name, &id).await?;
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let task_state = if wait.is_zero() {
        state.client.state(&id).await?
    } else {
        state.client.wait_state(&id, wait).await?
    };
    let mut view = TaskView {
        status: if task_state.has_ended() {
            "finished"
        } else {
            "pending"
        }
        .into(),
        state: task_state.name().into(),
        due_at_ms: None,
        started_at_ms: None,
        pruned: None,
        result: None,
        id,
    };
    match task_state {
        TaskState::Finished(result) => view.result = Some(ResultView::new(*result, &tenant.name)),
        TaskState::Pruned(tombstone) => {
            view.pruned = Some(PrunedView {
                outcome: tombstone.outcome,
                stopped_at_ms: tombstone.stopped_at_ms,
                pruned_at_ms: tombstone.pruned_at_ms,
            });
        }
        TaskState::Running { started_at_ms, .. } => view.started_at_ms = Some(started_at_ms),
        TaskState::Queued { due_at_ms } => view.due_at_ms = due_at_ms,
        // Owned, yet no record anywhere: its queue was purged.
        TaskState::Unknown => {
            return Err(ApiError::not_found(format!(
                "task `{}` has no result and is not waiting (its queue was purged, or its cached result expired): enqueue it again",
                view.id
            )));
        }
    }
    Ok(axum::Json(view))
}

/// What a cancel did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    /// Task id.
    pub id: String,
    /// `cancelled` (it will not run, or is stopped), or `finished` (it
    /// ended before; its result stands).
    pub state: String,
}

/// Cancel a task: a queued one never runs, a running one is stopped.
#[utoipa::path(delete, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "Cancelled, or already finished", body = Cancelled),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 404, description = "No such task for this tenant", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Cancelled>, ApiError> {
    let tenant = caller.tenant()?;
    owned(&state, &tenant.name, &id).await?;
    let state_name = match state.client.cancel(&id).await? {
        CancelState::Finished(_) => "finished",
        CancelState::Requested { .. } => "cancelled",
    };
    Ok(axum::Json(Cancelled {
        id,
        state: state_name.into(),
    }))
}

/// A group's results.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// The group.
    pub group: String,
    /// Results so far, as tasks of the group finish.
    pub results: Vec<ResultView>,
}

/// The results of a group of the caller's.
#[utoipa::path(get, path = "/v1/groups/{group}", tag = "tasks",
    params(("group" = String, Path, description = "Group name")),
    responses(
        (status = 200, description = "The group's results so far", body = GroupView),
        (status = 400, description = "A bad name", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn group(
    State(state): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
) -> Result<axum::Json<GroupView>, ApiError> {
    let tenant = caller.tenant()?;
    check_name("group", &group).map_err(ApiError::bad_request)?;
    let results = state
        .client
        .store()
        .group_results(&tenant_group(&tenant.name, &group))
        .await?;
    Ok(axum::Json(GroupView {
        group,
        results: results
            .into_iter()
            .map(|r| ResultView::new(r, &tenant.name))
            .collect(),
    }))
}
