//! Tasks: search results by id, module, task, group and outcome; the
//! tasks still waiting for a result; one task with its arguments, result,
//! log, fuel, memory, duration and attempts; failures, with resubmit and
//! delete; and cancelling a task that has not finished.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse as _, Redirect};
use maud::{Markup, html};

use super::page::{self, bytes, count, micros, outcome, post_button, pretty_json, task_link};
use super::{NoFields, PageError, PageResult, Submitted, Viewer};
use crate::AppState;
use wasq_client::tenant_group;
use wasq_core::OutcomeKind;
use wasq_store::{ResultFilter, TaskResult};

/// Results on a page.
const PAGE_SIZE: u32 = 50;

/// The search form's fields.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Search {
    #[serde(default)]
    id: String,
    #[serde(default)]
    module: String,
    #[serde(default)]
    task: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    outcome: String,
    before: Option<i64>,
}

impl Search {
    fn filter(&self, viewer: &Viewer) -> ResultFilter {
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        ResultFilter {
            tenant: viewer.tenant().map(str::to_owned),
            id: given(&self.id),
            module: given(&self.module),
            task: given(&self.task),
            group: given(&self.group).map(|g| match viewer.tenant() {
                Some(tenant) => tenant_group(tenant, &g),
                None => g,
            }),
            outcome: given(&self.outcome),
            before_ms: self.before,
            limit: PAGE_SIZE,
        }
    }

    fn is_empty(&self) -> bool {
        [
            &self.id,
            &self.module,
            &self.task,
            &self.group,
            &self.outcome,
        ]
        .iter()
        .all(|s| s.trim().is_empty())
            && self.before.is_none()
    }

    /// The query string of the next page.
    fn next_page(&self, before: i64) -> String {
        serde_urlencoded::to_string([
            ("id", self.id.as_str()),
            ("module", &self.module),
            ("task", &self.task),
            ("group", &self.group),
            ("outcome", &self.outcome),
            ("before", &before.to_string()),
        ])
        .unwrap_or_default()
    }
}

/// The queue as the viewer names it (a tenant's without its suffix).
fn shown_queue<'a>(viewer: &Viewer, queue: &'a str) -> &'a str {
    match viewer.tenant() {
        Some(tenant) => queue
            .strip_suffix(tenant)
            .and_then(|q| q.strip_suffix("__t_"))
            .unwrap_or(queue),
        None => queue,
    }
}

/// The group as the viewer names it (a tenant's without its prefix).
fn shown_group<'a>(viewer: &Viewer, group: &'a str) -> &'a str {
    match viewer.tenant() {
        Some(tenant) => group
            .strip_prefix(tenant)
            .and_then(|g| g.strip_prefix('/'))
            .unwrap_or(group),
        None => group,
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(search): Query<Search>,
) -> PageResult {
    let store = state.client.store();
    let results = store.search_results(&search.filter(&viewer)).await?;
    let waiting = if search.is_empty() {
        store.waiting_tasks(viewer.tenant(), PAGE_SIZE).await?
    } else {
        Vec::new()
    };
    let outcomes = ["success", "failed"]
        .into_iter()
        .chain(OutcomeKind::ALL.iter().map(|k| k.as_str()).skip(1));
    let content = html! {
        form.search method="get" action="/tasks" {
            label { "Task id" input name="id" value=(search.id) placeholder="id or its start"; }
            label { "Module" input name="module" value=(search.module); }
            label { "Task" input name="task" value=(search.task); }
            label { "Group" input name="group" value=(search.group); }
            label { "Outcome"
                select name="outcome" {
                    option value="" { "any" }
                    @for o in outcomes.clone() {
                        option value=(o) selected[search.outcome == o] { (o) }
                    }
                }
            }
            button.primary type="submit" { "Search" }
            @if !search.is_empty() { a href="/tasks" { "Clear" } }
        }
        @if !waiting.is_empty() {
            h2 { "Waiting for a result (" (waiting.len()) @if waiting.len() as u32 == PAGE_SIZE { "+" } ")" }
            table #waiting {
                thead { tr { th { "Task" } @if viewer.tenant().is_none() { th { "Tenant" } } th { "Enqueued (UTC)" } } }
                tbody { @for w in &waiting { tr {
                    td { (task_link(&w.id)) }
                    @if viewer.tenant().is_none() { td { (w.tenant) } }
                    td { (page::time(w.enqueued_at_ms)) }
                } } }
            }
        }
        h2 { "Finished" }
        (results_table(&viewer, &results, false))
        @if results.len() as u32 == PAGE_SIZE
            && let Some(last) = results.last() {
            p.pager { a href={ "/tasks?" (search.next_page(last.stopped_at_ms)) } { "Older →" } }
        }
    };
    Ok(page::frame(&viewer, "/tasks", "Tasks", false, content))
}

/// A table of results; `actions`: with resubmit and delete buttons.
fn results_table(viewer: &Viewer, results: &[TaskResult], actions: bool) -> Markup {
    html! {
        @if results.is_empty() {
            p.empty { "No task matches." }
        } @else {
            table #results {
                thead { tr {
                    th { "Task" } th { "Module" } th { "Function" } th { "Outcome" }
                    @if actions { th { "Error" } }
                    th.num { "Duration" } th.num { "Fuel" } th.num { "Memory" } th.num { "Attempts" }
                    th { "Finished (UTC)" }
                    @if actions { th {} }
                } }
                tbody { @for r in results { tr {
                    td { (task_link(&r.id)) }
                    td { (r.module_name) }
                    td { (r.task) }
                    td { (outcome(&r.outcome)) }
                    @if actions { td.muted { (first_line(r.error.as_deref().unwrap_or(&r.stderr))) } }
                    td.num { (micros(r.wall_us)) }
                    td.num { (r.fuel.map_or("–".into(), count)) }
                    td.num { (bytes(r.memory_peak)) }
                    td.num { (r.attempts) }
                    td { (page::time(r.stopped_at_ms)) }
                    @if actions { td {
                        (post_button(viewer, &format!("/tasks/{}/resubmit", r.id), "Resubmit", "primary", None))
                        " "
                        (post_button(viewer, &format!("/tasks/{}/delete", r.id), "Delete", "danger", Some("Delete this failure? Its record goes too.")))
                    } }
                } } }
            }
        }
    }
}

/// The first line of an error, at most 120 characters.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

pub(crate) async fn failures(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(search): Query<Search>,
) -> PageResult {
    let filter = ResultFilter {
        outcome: Some("failed".into()),
        ..search.filter(&viewer)
    };
    let results = state.client.store().search_results(&filter).await?;
    let content = html! {
        p.muted { "Every outcome but success. Resubmit runs the task again as a new task, with the same module and arguments; delete forgets it." }
        (results_table(&viewer, &results, true))
        @if results.len() as u32 == PAGE_SIZE
            && let Some(last) = results.last() {
            p.pager { a href={ "/failures?before=" (last.stopped_at_ms) } { "Older →" } }
        }
    };
    Ok(page::frame(
        &viewer,
        "/failures",
        "Failures",
        false,
        content,
    ))
}

/// Whether the viewer may see task `id`: an admin every task, a tenant
/// the tasks it owns.
async fn visible(state: &AppState, viewer: &Viewer, id: &str) -> Result<bool, PageError> {
    Ok(match viewer.tenant() {
        None => true,
        Some(tenant) => state.client.store().task_owner(id).await?.as_deref() == Some(tenant),
    })
}

fn no_task(id: &str) -> PageError {
    PageError::not_found(format!("no task `{id}`"))
}

pub(crate) async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    if !visible(&state, &viewer, &id).await? {
        return Err(no_task(&id));
    }
    let store = state.client.store();
    let Some(r) = store.result(&id).await? else {
        let owner = store.task_owner(&id).await?;
        let running = store
            .clusters(std::time::Duration::from_secs(10))
            .await?
            .into_iter()
            .flat_map(|c| c.running)
            .find(|t| t.id == id);
        if owner.is_none() && running.is_none() {
            return Err(no_task(&id));
        }
        let content = html! {
            dl.fields {
                dt { "Task" } dd.mono { (id) }
                dt { "State" } dd { @if running.is_some() { span.badge.warn { "running" } } @else { span.badge.muted { "waiting" } } }
                @if let Some(t) = &running {
                    dt { "Module" } dd { (t.module) }
                    dt { "Function" } dd { (t.task) }
                    dt { "Started (UTC)" } dd { (page::time(t.started_at_ms)) }
                    dt { "Fuel budget" } dd { (count(t.fuel_limit)) }
                }
            }
            div.actions {
                (post_button(&viewer, &format!("/tasks/{id}/cancel"), "Cancel", "danger", Some("Cancel this task?")))
            }
        };
        return Ok(page::frame(&viewer, "/tasks", "Task", true, content));
    };
    let content = html! {
        dl.fields #task {
            dt { "Task" } dd.mono { (r.id) }
            dt { "Outcome" } dd { (outcome(&r.outcome)) }
            dt { "Module" } dd { (r.module_name) " " span.mono.muted { "sha256:" (r.module.short()) } }
            dt { "Function" } dd { (r.task) }
            dt { "Queue" } dd.mono { (shown_queue(&viewer, &r.queue)) }
            @if let Some(group) = &r.group { dt { "Group" } dd { (shown_group(&viewer, group)) } }
            dt { "Duration" } dd { (micros(r.wall_us)) " wall, " (micros(r.cpu_us)) " CPU" }
            dt { "Fuel" } dd { (r.fuel.map_or("not metered".into(), count)) }
            dt { "Memory peak" } dd { (bytes(r.memory_peak)) }
            dt { "Attempts" } dd { (r.attempts) }
            dt { "Enqueued (UTC)" } dd { (page::time(r.enqueued_at_ms)) }
            dt { "Started" } dd { (page::time(r.started_at_ms)) }
            dt { "Finished" } dd { (page::time(r.stopped_at_ms)) }
            dt { "Cluster" } dd { (r.cluster) }
        }
        @if !r.success {
            div.actions {
                (post_button(&viewer, &format!("/tasks/{}/resubmit", r.id), "Resubmit", "primary", None))
                (post_button(&viewer, &format!("/tasks/{}/delete", r.id), "Delete", "danger", Some("Delete this failure? Its record goes too.")))
            }
        }
        h2 { "Arguments" }
        pre #args { (pretty_json(&r.input)) }
        @if r.success {
            h2 { "Result" }
            pre #result { (serde_json::to_string_pretty(&r.result_json()).unwrap_or_default()) }
        }
        @if let Some(error) = &r.error {
            h2 { "Error" }
            pre #error { (error) }
        }
        h2 { "Log" }
        @if r.stderr.is_empty() { p.empty { "The task wrote nothing to stderr." } } @else { pre #log { (r.stderr) } }
        @if !r.attempt_log.is_empty() {
            h2 { "Earlier attempts" }
            table {
                thead { tr { th.num { "Attempt" } th { "Outcome" } th { "Error" } th { "Ended (UTC)" } th.num { "Retried after" } } }
                tbody { @for a in &r.attempt_log { tr {
                    td.num { (a.attempt) }
                    td { (outcome(&a.outcome)) }
                    td.muted { (first_line(&a.error)) }
                    td { (page::time(a.stopped_at_ms)) }
                    td.num { (micros(a.retry_in_ms * 1000)) }
                } } }
            }
        }
    };
    Ok(page::frame(&viewer, "/tasks", "Task", false, content))
}

/// The viewer's failure `id`.
async fn failure(state: &AppState, viewer: &Viewer, id: &str) -> Result<TaskResult, PageError> {
    if !visible(state, viewer, id).await? {
        return Err(no_task(id));
    }
    state
        .client
        .store()
        .result(id)
        .await?
        .filter(|r| !r.success)
        .ok_or_else(|| PageError::not_found(format!("no failed task `{id}`")))
}

pub(crate) async fn resubmit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted(viewer, NoFields {}): Submitted<NoFields>,
) -> PageResult {
    failure(&state, &viewer, &id).await?;
    let new_id = state.client.resubmit(&id).await?;
    tracing::info!(task_id = %id, new_task_id = %new_id, "failure resubmitted from the dashboard");
    Ok(Redirect::to(&format!("/tasks/{new_id}")).into_response())
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted(viewer, NoFields {}): Submitted<NoFields>,
) -> PageResult {
    failure(&state, &viewer, &id).await?;
    let store = state.client.store();
    store.remove_result(&id).await?;
    store.disown_task(&id).await?;
    Ok(Redirect::to("/failures").into_response())
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted(viewer, NoFields {}): Submitted<NoFields>,
) -> PageResult {
    if !visible(&state, &viewer, &id).await? {
        return Err(no_task(&id));
    }
    state.client.cancel(&id).await?;
    Ok(Redirect::to(&format!("/tasks/{id}")).into_response())
}
