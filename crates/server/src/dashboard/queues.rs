//! Queues: how many tasks wait and how many are held by workers, per
//! queue the viewer sees (a tenant its own, under the names it uses), and
//! purging one, after a page that asks for its name.

use axum::extract::{Query, State};
use axum::response::{IntoResponse as _, Redirect};
use maud::html;

use super::page::{self, count, csrf_field};
use super::{PageError, PageResult, Submitted, Viewer};
use crate::AppState;
use wasq_core::tenant::{queue_tenant, tenant_queue};

/// A queue the viewer sees.
#[derive(Debug)]
pub(crate) struct QueueRow {
    /// As the viewer names it (a tenant without its suffix).
    pub(crate) name: String,
    /// As the broker names it.
    pub(crate) broker_queue: String,
    /// The tenant it belongs to.
    pub(crate) tenant: Option<String>,
    /// Tasks waiting.
    pub(crate) waiting: u64,
    /// Tasks held by workers (SQLite, PostgreSQL and Redis; 0 where the
    /// broker cannot tell).
    pub(crate) in_flight: u64,
}

fn broker_failed(error: wasq_brokers::BrokerError) -> PageError {
    PageError(crate::error::ApiError::unavailable(format!(
        "the broker failed: {error}"
    )))
}

/// The queues the viewer sees, by name; the default queue is always
/// there.
pub(crate) async fn in_scope(
    state: &AppState,
    viewer: &Viewer,
) -> Result<Vec<QueueRow>, PageError> {
    let broker = state.client.broker();
    let mut queues: Vec<String> = broker.queues().await.map_err(broker_failed)?;
    let default = &state.client.config().queue;
    let default_queue = match viewer.tenant() {
        Some(tenant) => tenant_queue(default, tenant),
        None => default.clone(),
    };
    if !queues.contains(&default_queue) {
        queues.push(default_queue);
    }
    let mut rows = Vec::new();
    for broker_queue in queues {
        let tenant = queue_tenant(&broker_queue).map(str::to_owned);
        if !viewer.sees(tenant.as_deref()) {
            continue;
        }
        let name = match (&tenant, viewer.tenant()) {
            (Some(t), Some(_)) => broker_queue
                .strip_suffix(&format!("__t_{t}"))
                .unwrap_or(&broker_queue)
                .to_owned(),
            _ => broker_queue.clone(),
        };
        let waiting = broker
            .queue_size(&broker_queue)
            .await
            .map_err(broker_failed)?;
        let in_flight = broker.lock_size(&broker_queue).await.unwrap_or(0);
        rows.push(QueueRow {
            name,
            broker_queue,
            tenant,
            waiting,
            in_flight,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

pub(crate) async fn list(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let rows = in_scope(&state, &viewer).await?;
    let admin = viewer.tenant().is_none();
    let content = html! {
        table #queues {
            thead { tr {
                th { "Queue" }
                @if admin { th { "Tenant" } }
                th.num { "Waiting" } th.num { "In flight" } th {}
            } }
            tbody {
                @for q in &rows { tr data-queue=(q.name) {
                    td.mono { (q.name) }
                    @if admin { td { (q.tenant.as_deref().unwrap_or("–")) } }
                    td.num.waiting { (count(q.waiting)) }
                    td.num.in-flight { (count(q.in_flight)) }
                    td { a href={ "/queues/purge?queue=" (urlencode(&q.name)) } { "Purge…" } }
                } }
            }
        }
        p.muted { "Waiting tasks have not been taken by a worker; in flight ones are held under a lease." }
    };
    Ok(page::frame(&viewer, "/queues", "Queues", true, content))
}

fn urlencode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

#[derive(serde::Deserialize)]
pub(crate) struct QueueQuery {
    queue: String,
}

/// The viewer's queue of that name.
async fn find(state: &AppState, viewer: &Viewer, name: &str) -> Result<QueueRow, PageError> {
    in_scope(state, viewer)
        .await?
        .into_iter()
        .find(|q| q.name == name)
        .ok_or_else(|| PageError::not_found(format!("no queue `{name}`")))
}

/// Asks for the queue's name before purging it.
pub(crate) async fn confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<QueueQuery>,
) -> PageResult {
    let queue = find(&state, &viewer, &query.queue).await?;
    let content = html! {
        div.problem {
            "Purging deletes the " b { (count(queue.waiting)) } " tasks waiting in "
            b.mono { (queue.name) } ". They will not run and cannot be brought back. Tasks already held by workers finish."
        }
        form.grid #purge method="post" action="/queues/purge" {
            (csrf_field(&viewer))
            input type="hidden" name="queue" value=(queue.name);
            label { "Type the queue's name to confirm"
                input name="confirm" autocomplete="off" required placeholder=(queue.name);
            }
            button.danger.solid type="submit" { "Purge " (queue.name) }
            a href="/queues" { "Cancel" }
        }
    };
    Ok(page::frame(
        &viewer,
        "/queues",
        "Purge a queue",
        false,
        content,
    ))
}

#[derive(serde::Deserialize)]
pub(crate) struct PurgeForm {
    queue: String,
    confirm: String,
}

pub(crate) async fn purge(
    State(state): State<AppState>,
    Submitted(viewer, form): Submitted<PurgeForm>,
) -> PageResult {
    let queue = find(&state, &viewer, &form.queue).await?;
    if form.confirm.trim() != queue.name {
        return Err(PageError::bad_request(format!(
            "the name typed does not match `{}`; nothing was purged",
            queue.name
        )));
    }
    let purged = state
        .client
        .broker()
        .purge_queue(&queue.broker_queue)
        .await
        .map_err(broker_failed)?;
    // The purged tasks will never have results: their tenant's backlog
    // (`max_queued`) lets go of them.
    state
        .client
        .store()
        .release_queue_backlog(&queue.broker_queue)
        .await?;
    if let Some(tenant) = &queue.tenant {
        state
            .audit(
                viewer.caller(),
                tenant,
                "queue.purge",
                format!("{} ({purged} tasks)", queue.name),
            )
            .await?;
    }
    tracing::info!(queue = %queue.broker_queue, purged, "queue purged from the dashboard");
    Ok(Redirect::to("/queues").into_response())
}
