//! `/v1/schedules`: a tenant's schedules — a task of one of its modules
//! run once, every N minutes, hourly … or on a cron expression, in a time
//! zone. The cluster's scheduler fires them; their tasks run for the
//! tenant, in its queue, and their results are its own.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use wasq_client::{ScheduleRequest, TaskRequest};
use wasq_core::tenant::check_name;
use wasq_store::Schedule;

/// A schedule to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleCreate {
    /// Its name, unique within the tenant.
    pub name: String,
    /// One of the caller's modules: its name.
    pub module: String,
    /// The task inside the module.
    pub task: String,
    /// Positional arguments.
    #[serde(default = "super::tasks::empty_array")]
    #[schema(value_type = Vec<Object>)]
    pub args: serde_json::Value,
    /// Named arguments.
    #[serde(default = "super::tasks::empty_object")]
    #[schema(value_type = Object)]
    pub kwargs: serde_json::Value,
    /// Queue (default: the server's).
    pub queue: Option<String>,
    /// Group of its tasks.
    pub group: Option<String>,
    /// `once`, `minutes`, `hourly`, `daily`, `weekly`, `biweekly`,
    /// `monthly`, `bimonthly`, `quarterly`, `yearly` or `cron`.
    pub kind: String,
    /// Every this many minutes (kind `minutes`).
    pub minutes: Option<u32>,
    /// A cron expression of 5 or 6 fields (kind `cron`).
    pub cron: Option<String>,
    /// IANA time zone (default UTC).
    pub tz: Option<String>,
    /// Runs: -1 forever (default), or a count.
    pub repeats: Option<i64>,
    /// The first run, ms since the epoch (default: now, or the next cron
    /// match).
    pub next_run_ms: Option<i64>,
}

/// A schedule of the caller's.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Its name.
    pub name: String,
    /// Module name.
    pub module: String,
    /// Task name.
    pub task: String,
    /// Its kind.
    pub kind: String,
    /// For kind `minutes`.
    pub minutes: Option<u32>,
    /// For kind `cron`.
    pub cron: Option<String>,
    /// Time zone.
    pub tz: String,
    /// Next run, ms since the epoch.
    pub next_run_ms: i64,
    /// Runs left: -1 forever, 0 done.
    pub repeats: i64,
    /// Runs so far.
    pub runs: i64,
    /// The last run, ms since the epoch.
    pub last_run_ms: Option<i64>,
    /// The task id of the last run.
    pub last_task: Option<String>,
}

impl ScheduleView {
    fn new(schedule: Schedule, tenant: &str) -> Self {
        let spec = schedule.spec;
        let prefix = format!("{tenant}/");
        Self {
            name: spec
                .name
                .strip_prefix(&prefix)
                .map_or(spec.name.clone(), str::to_owned),
            module: spec.module,
            task: spec.task,
            kind: spec.kind,
            minutes: spec.minutes,
            cron: spec.cron,
            tz: spec.tz,
            next_run_ms: spec.next_run_ms,
            repeats: spec.repeats,
            runs: schedule.runs,
            last_run_ms: schedule.last_run_ms,
            last_task: schedule.last_task,
        }
    }
}

/// Make a schedule.
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules",
    request_body = ScheduleCreate,
    responses(
        (status = 201, description = "Made", body = ScheduleView),
        (status = 400, description = "A bad name, kind, cron, time zone or argument", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 404, description = "No such module for this tenant", body = ErrorBody),
        (status = 409, description = "A schedule of that name exists", body = ErrorBody),
        (status = 413, description = "Body over its limit", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ScheduleCreate>,
) -> Result<(StatusCode, axum::Json<ScheduleView>), ApiError> {
    let tenant = caller.tenant()?;
    for (what, name) in [
        ("schedule name", Some(&body.name)),
        ("module", Some(&body.module)),
        ("task", Some(&body.task)),
        ("queue", body.queue.as_ref()),
        ("group", body.group.as_ref()),
    ] {
        if let Some(name) = name {
            check_name(what, name).map_err(ApiError::bad_request)?;
        }
    }
    let module = super::modules::find(&state, &tenant.name, &body.module).await?;
    let mut task = TaskRequest::new(module.name.clone(), body.task.clone())
        .args(body.args)
        .kwargs(body.kwargs);
    task.queue = body.queue;
    task.group = body.group;
    let mut request = ScheduleRequest::new(body.name, task, body.kind);
    request.minutes = body.minutes;
    request.cron = body.cron;
    if let Some(tz) = body.tz {
        request.tz = tz;
    }
    if let Some(repeats) = body.repeats {
        request.repeats = repeats;
    }
    request.next_run_ms = body.next_run_ms;
    let schedule = state
        .client
        .add_tenant_schedule(&tenant.name, &request, module.digest, module.name)
        .await?;
    state
        .audit(
            &caller,
            &tenant.name,
            "schedule.create",
            request.name.clone(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ScheduleView::new(schedule, &tenant.name)),
    ))
}

/// The caller's schedules, by next run.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    responses(
        (status = 200, description = "The schedules", body = [ScheduleView]),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<ScheduleView>>, ApiError> {
    let tenant = caller.tenant()?;
    let schedules = state.client.store().tenant_schedules(&tenant.name).await?;
    Ok(axum::Json(
        schedules
            .into_iter()
            .map(|s| ScheduleView::new(s, &tenant.name))
            .collect(),
    ))
}

/// One of the caller's schedules.
async fn find(state: &AppState, tenant: &str, name: &str) -> Result<Schedule, ApiError> {
    check_name("schedule name", name).map_err(ApiError::bad_request)?;
    state
        .client
        .store()
        .schedule(&format!("{tenant}/{name}"))
        .await?
        .filter(|s| s.spec.tenant.as_deref() == Some(tenant))
        .ok_or_else(|| ApiError::not_found(format!("no schedule `{name}`")))
}

/// One schedule of the caller's.
#[utoipa::path(get, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = 400, description = "A bad name", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 404, description = "No such schedule for this tenant", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<axum::Json<ScheduleView>, ApiError> {
    let tenant = caller.tenant()?;
    let schedule = find(&state, &tenant.name, &name).await?;
    Ok(axum::Json(ScheduleView::new(schedule, &tenant.name)))
}

/// Delete a schedule (tasks it already queued still run).
#[utoipa::path(delete, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A bad name", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 404, description = "No such schedule for this tenant", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = caller.tenant()?;
    let schedule = find(&state, &tenant.name, &name).await?;
    state
        .client
        .store()
        .remove_schedule(&schedule.spec.name)
        .await?;
    state
        .audit(&caller, &tenant.name, "schedule.delete", name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
