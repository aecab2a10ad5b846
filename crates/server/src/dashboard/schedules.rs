//! Schedules: the list (when each runs next and ran last, its runs, and
//! whether it is paused), a form to create one, editing one in place,
//! pausing, resuming and deleting.

use axum::extract::{Query, State};
use axum::response::{IntoResponse as _, Redirect};
use maud::{Markup, html};

use super::page::{self, count, csrf_field, task_link};
use super::{PageError, PageResult, Submitted, Viewer};
use crate::AppState;
use wasq_client::{ScheduleRequest, TaskRequest};
use wasq_core::tenant::check_name;
use wasq_store::Schedule;

/// The kinds of schedule, as the form offers them.
const KINDS: [&str; 11] = [
    "minutes",
    "hourly",
    "daily",
    "weekly",
    "biweekly",
    "monthly",
    "bimonthly",
    "quarterly",
    "yearly",
    "cron",
    "once",
];

/// The name a viewer knows a schedule by (a tenant's without its prefix).
fn shown_name<'a>(viewer: &Viewer, schedule: &'a Schedule) -> &'a str {
    match (viewer.tenant(), &schedule.spec.tenant) {
        (Some(_), Some(tenant)) => shown_name_of(&schedule.spec.name, tenant),
        _ => &schedule.spec.name,
    }
}

/// How often it runs, in words.
fn every(schedule: &Schedule) -> String {
    let spec = &schedule.spec;
    match (spec.kind.as_str(), spec.minutes, &spec.cron) {
        ("minutes", Some(1), _) => "every minute".into(),
        ("minutes", Some(n), _) => format!("every {n} minutes"),
        ("cron", _, Some(cron)) => format!("cron {cron}"),
        (kind, _, _) => kind.to_owned(),
    }
}

pub(crate) async fn list(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let store = state.client.store();
    let schedules = match viewer.tenant() {
        Some(tenant) => store.tenant_schedules(tenant).await?,
        None => store.schedules().await?,
    };
    let admin = viewer.tenant().is_none();
    let content = html! {
        @if schedules.is_empty() {
            p.empty { "No schedule yet: make one below." }
        } @else {
            table #schedules {
                thead { tr {
                    th { "Name" } @if admin { th { "Tenant" } }
                    th { "Runs" } th { "Task" } th { "Next run (UTC)" } th { "Last run" }
                    th.num { "Runs so far" } th { "State" } th {}
                } }
                tbody { @for s in &schedules {
                    @let name = shown_name(&viewer, s);
                    tr data-schedule=(name) {
                        td { b { (name) } }
                        @if admin { td { (s.spec.tenant.as_deref().unwrap_or("–")) } }
                        td.every { (every(s)) @if s.spec.tz != "UTC" { " " span.muted { (s.spec.tz) } } }
                        td { (s.spec.module) "." (s.spec.task) }
                        td { @if s.active() { (page::time(s.spec.next_run_ms)) } @else { "–" } }
                        td.last-run {
                            @if let Some(task) = &s.last_task { (task_link(task)) }
                            @else { span.muted { "never" } }
                        }
                        td.num { (count(s.runs.max(0) as u64)) }
                        td.state {
                            @if !s.active() { span.badge.muted { "done" } }
                            @else if s.paused { span.badge.warn { "paused" } }
                            @else { span.badge.ok { "active" } }
                        }
                        td {
                            a href={ "/schedules/edit?" (name_query(&s.spec.name)) } { "Edit" } " "
                            (action_button(&viewer, s, if s.paused { "resume" } else { "pause" }))
                            " "
                            (action_button(&viewer, s, "delete"))
                        }
                    }
                } }
            }
        }
        h2 { "New schedule" }
        (schedule_form(&viewer, &ScheduleFields::default(), "/schedules", "Create schedule", &modules(&state, &viewer).await?))
    };
    Ok(page::frame(
        &viewer,
        "/schedules",
        "Schedules",
        false,
        content,
    ))
}

fn name_query(name: &str) -> String {
    serde_urlencoded::to_string([("name", name)]).unwrap_or_default()
}

fn action_button(viewer: &Viewer, schedule: &Schedule, action: &str) -> Markup {
    let label = match action {
        "pause" => "Pause",
        "resume" => "Resume",
        _ => "Delete",
    };
    html! {
        form.inline method="post" action="/schedules/action"
            data-confirm=[(action == "delete").then_some("Delete this schedule? Tasks it already queued still run.")] {
            (csrf_field(viewer))
            input type="hidden" name="name" value=(schedule.spec.name);
            input type="hidden" name="action" value=(action);
            button type="submit" class=(if action == "delete" { "danger" } else { "" }) { (label) }
        }
    }
}

/// The module names the viewer can schedule.
async fn modules(state: &AppState, viewer: &Viewer) -> Result<Vec<String>, PageError> {
    let store = state.client.store();
    Ok(match viewer.tenant() {
        Some(tenant) => store
            .tenant_modules(tenant)
            .await?
            .into_iter()
            .map(|m| m.name)
            .collect(),
        None => {
            let mut names: Vec<String> = store
                .list_modules()
                .await?
                .into_iter()
                .flat_map(|m| m.names)
                .collect();
            names.sort();
            names
        }
    })
}

/// The schedule form's fields.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ScheduleFields {
    name: String,
    module: String,
    task: String,
    #[serde(default)]
    args: String,
    #[serde(default)]
    kwargs: String,
    kind: String,
    #[serde(default)]
    minutes: String,
    #[serde(default)]
    cron: String,
    #[serde(default)]
    tz: String,
    #[serde(default)]
    repeats: String,
    #[serde(default)]
    first_run: String,
    /// Editing: the schedule's stored name.
    #[serde(default)]
    stored: String,
}

impl Default for ScheduleFields {
    fn default() -> Self {
        Self {
            name: String::new(),
            module: String::new(),
            task: String::new(),
            args: "[]".into(),
            kwargs: "{}".into(),
            kind: "minutes".into(),
            minutes: "1".into(),
            cron: String::new(),
            tz: "UTC".into(),
            repeats: "-1".into(),
            first_run: String::new(),
            stored: String::new(),
        }
    }
}

impl ScheduleFields {
    fn of(viewer: &Viewer, schedule: &Schedule) -> Self {
        let spec = &schedule.spec;
        let input: serde_json::Value =
            serde_json::from_str(&spec.input).unwrap_or(serde_json::Value::Null);
        let json = |v: Option<&serde_json::Value>, empty: &str| {
            v.map_or(empty.to_owned(), |v| v.to_string())
        };
        Self {
            name: shown_name(viewer, schedule).to_owned(),
            module: spec.module.clone(),
            task: spec.task.clone(),
            args: json(input.get("args"), "[]"),
            kwargs: json(input.get("kwargs"), "{}"),
            kind: spec.kind.clone(),
            minutes: spec.minutes.map(|m| m.to_string()).unwrap_or_default(),
            cron: spec.cron.clone().unwrap_or_default(),
            tz: spec.tz.clone(),
            repeats: spec.repeats.to_string(),
            first_run: String::new(),
            stored: spec.name.clone(),
        }
    }

    /// The request the fields make, or what is wrong with them.
    fn request(&self) -> Result<ScheduleRequest, PageError> {
        let bad = |m: String| PageError::bad_request(m);
        check_name("schedule name", self.name.trim()).map_err(bad)?;
        check_name("module", self.module.trim()).map_err(bad)?;
        check_name("task", self.task.trim()).map_err(bad)?;
        let json = |field: &str, text: &str, empty: &str| {
            let text = if text.trim().is_empty() { empty } else { text };
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| bad(format!("{field} is not JSON: {e}")))
        };
        let args = json("args", &self.args, "[]")?;
        let kwargs = json("kwargs", &self.kwargs, "{}")?;
        let task = TaskRequest::new(self.module.trim(), self.task.trim())
            .args(args)
            .kwargs(kwargs);
        let mut request = ScheduleRequest::new(self.name.trim(), task, self.kind.trim());
        let number = |field: &str, text: &str| {
            text.trim()
                .parse::<i64>()
                .map_err(|_| bad(format!("{field} is not a whole number: `{text}`")))
        };
        if !self.minutes.trim().is_empty() {
            request.minutes = Some(
                u32::try_from(number("minutes", &self.minutes)?)
                    .map_err(|_| bad("minutes must be positive".into()))?,
            );
        }
        request.cron = Some(self.cron.trim().to_owned()).filter(|c| !c.is_empty());
        if !self.tz.trim().is_empty() {
            request.tz = self.tz.trim().to_owned();
        }
        if !self.repeats.trim().is_empty() {
            request.repeats = number("repeats", &self.repeats)?;
        }
        if !self.first_run.trim().is_empty() {
            let civil: jiff::civil::DateTime = self.first_run.trim().parse().map_err(|e| {
                bad(format!(
                    "first run `{}` is not a date and time like 2026-12-01T09:00: {e}",
                    self.first_run
                ))
            })?;
            let zoned = civil
                .in_tz(&request.tz)
                .map_err(|e| bad(format!("first run in {}: {e}", request.tz)))?;
            request.next_run_ms = Some(zoned.timestamp().as_millisecond());
        }
        Ok(request)
    }
}

fn schedule_form(
    viewer: &Viewer,
    fields: &ScheduleFields,
    action: &str,
    submit: &str,
    modules: &[String],
) -> Markup {
    let editing = !fields.stored.is_empty();
    html! {
        form.grid #schedule-form method="post" action=(action) {
            (csrf_field(viewer))
            @if editing { input type="hidden" name="stored" value=(fields.stored); }
            label { "Name" input name="name" required value=(fields.name) readonly[editing]; }
            label { "Module" input name="module" required list="module-names" value=(fields.module); }
            datalist #module-names { @for m in modules { option value=(m) {} } }
            label { "Task" input name="task" required value=(fields.task); }
            label { "Args (JSON list)" textarea name="args" rows="1" cols="18" { (fields.args) } }
            label { "Kwargs (JSON object)" textarea name="kwargs" rows="1" cols="18" { (fields.kwargs) } }
            label { "Runs"
                select name="kind" {
                    @for k in KINDS { option value=(k) selected[fields.kind == k] { (k) } }
                }
            }
            label { "Every N minutes" input name="minutes" size="4" value=(fields.minutes); }
            label { "Cron" input name="cron" size="14" placeholder="*/5 * * * *" value=(fields.cron); }
            label { "Time zone" input name="tz" size="12" value=(fields.tz); }
            label { "Repeats (−1: forever)" input name="repeats" size="5" value=(fields.repeats); }
            label { "First run (optional)" input name="first_run" type="datetime-local" value=(fields.first_run); }
            button.primary type="submit" { (submit) }
            @if editing { a href="/schedules" { "Cancel" } }
        }
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Submitted(viewer, fields): Submitted<ScheduleFields>,
) -> PageResult {
    let request = fields.request()?;
    let schedule = match viewer.tenant() {
        Some(tenant) => {
            let module = tenant_module(&state, tenant, &request.task.module).await?;
            state
                .client
                .add_tenant_schedule(tenant, &request, module.digest, module.name)
                .await?
        }
        None => state.client.add_schedule(&request).await?,
    };
    if let Some(tenant) = &schedule.spec.tenant {
        state
            .audit(viewer.caller(), tenant, "schedule.create", request.name)
            .await?;
    }
    Ok(Redirect::to("/schedules").into_response())
}

async fn tenant_module(
    state: &AppState,
    tenant: &str,
    name: &str,
) -> Result<wasq_store::TenantModule, PageError> {
    Ok(crate::modules::find(state, tenant, name).await?)
}

/// The viewer's schedule stored as `name`.
async fn find(state: &AppState, viewer: &Viewer, name: &str) -> Result<Schedule, PageError> {
    state
        .client
        .store()
        .schedule(name)
        .await?
        .filter(|s| viewer.sees(s.spec.tenant.as_deref()))
        .ok_or_else(|| PageError::not_found(format!("no schedule `{name}`")))
}

#[derive(serde::Deserialize)]
pub(crate) struct NameQuery {
    name: String,
}

pub(crate) async fn edit(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<NameQuery>,
) -> PageResult {
    let schedule = find(&state, &viewer, &query.name).await?;
    let fields = ScheduleFields::of(&viewer, &schedule);
    let modules = match &schedule.spec.tenant {
        Some(tenant) => state
            .client
            .store()
            .tenant_modules(tenant)
            .await?
            .into_iter()
            .map(|m| m.name)
            .collect(),
        None => modules(&state, &viewer).await?,
    };
    let content = html! {
        p.muted { "Saving keeps the runs so far and the pause; the schedule counts from its next run, now or as given." }
        (schedule_form(&viewer, &fields, "/schedules/edit", "Save", &modules))
    };
    Ok(page::frame(
        &viewer,
        "/schedules",
        &format!("Edit schedule {}", fields.name),
        false,
        content,
    ))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Submitted(viewer, fields): Submitted<ScheduleFields>,
) -> PageResult {
    let schedule = find(&state, &viewer, &fields.stored).await?;
    let mut request = fields.request()?;
    let tenant = schedule.spec.tenant.as_deref();
    let stored = match tenant {
        Some(tenant) => {
            // The stored name is `tenant/NAME`; the request carries NAME.
            request.name = shown_name_of(&schedule.spec.name, tenant).to_owned();
            let module = tenant_module(&state, tenant, &request.task.module).await?;
            state
                .client
                .replace_schedule(&request, Some((tenant, module.digest, module.name)))
                .await?
        }
        None => {
            request.name = schedule.spec.name.clone();
            state.client.replace_schedule(&request, None).await?
        }
    };
    if let Some(tenant) = tenant {
        state
            .audit(viewer.caller(), tenant, "schedule.edit", stored.spec.name)
            .await?;
    }
    Ok(Redirect::to("/schedules").into_response())
}

/// A tenant's schedule's name without the tenant.
fn shown_name_of<'a>(stored: &'a str, tenant: &str) -> &'a str {
    stored
        .strip_prefix(tenant)
        .and_then(|n| n.strip_prefix('/'))
        .unwrap_or(stored)
}

#[derive(serde::Deserialize)]
pub(crate) struct ActionForm {
    name: String,
    action: String,
}

pub(crate) async fn action(
    State(state): State<AppState>,
    Submitted(viewer, form): Submitted<ActionForm>,
) -> PageResult {
    let schedule = find(&state, &viewer, &form.name).await?;
    let store = state.client.store();
    let name = &schedule.spec.name;
    match form.action.as_str() {
        "pause" => store.set_schedule_paused(name, true).await?,
        "resume" => store.set_schedule_paused(name, false).await?,
        "delete" => store.remove_schedule(name).await?,
        other => return Err(PageError::bad_request(format!("no action `{other}`"))),
    };
    if let Some(tenant) = &schedule.spec.tenant {
        state
            .audit(
                viewer.caller(),
                tenant,
                &format!("schedule.{}", form.action),
                name.clone(),
            )
            .await?;
    }
    Ok(Redirect::to("/schedules").into_response())
}
