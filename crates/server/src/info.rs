//! What a caller may observe: its queues, the clusters serving them, its
//! quotas and usage, and its audit log; plus the unauthenticated health
//! check.

use std::time::Duration;

use axum::extract::State;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::Query;
use wasq_store::now_ms;

/// The service is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// wasq's version.
    pub version: String,
}

/// Whether the service answers (no key needed).
#[utoipa::path(get, path = "/v1/health", tag = "info",
    responses((status = 200, description = "Up", body = Health)))]
pub async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// A queue of the caller's.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    /// Its name, as the caller uses it.
    pub queue: String,
    /// Tasks waiting.
    pub size: u64,
}

/// The caller's queues and how many tasks wait in each.
#[utoipa::path(get, path = "/v1/queues", tag = "info",
    responses(
        (status = 200, description = "The queues", body = [QueueView]),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 503, description = "Broker unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn queues(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<QueueView>>, ApiError> {
    let tenant = caller.tenant()?;
    let broker = state.client.broker();
    let unavailable =
        |e: wasq_brokers::BrokerError| ApiError::unavailable(format!("the broker failed: {e}"));
    let suffix = format!("__t_{}", tenant.name);
    let mut names: Vec<String> = broker
        .queues()
        .await
        .map_err(unavailable)?
        .into_iter()
        .filter_map(|q| q.strip_suffix(&suffix).map(str::to_owned))
        .collect();
    let default = &state.client.config().queue;
    if !names.contains(default) {
        names.push(default.clone());
    }
    names.sort();
    let mut views = Vec::with_capacity(names.len());
    for queue in names {
        let size = broker
            .queue_size(&wasq_core::tenant::tenant_queue(&queue, &tenant.name))
            .await
            .map_err(unavailable)?;
        views.push(QueueView { queue, size });
    }
    Ok(axum::Json(views))
}

/// A cluster serving the queues.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// Cluster name.
    pub name: String,
    /// Worker concurrency.
    pub workers: usize,
    /// Tasks held now.
    pub in_flight: u64,
    /// Tasks finished since it started.
    pub done: u64,
    /// `running` or `stopping`.
    pub status: String,
    /// Started, ms since the epoch.
    pub started_at_ms: i64,
    /// Host name (admin keys only).
    pub host: Option<String>,
}

/// The clusters that reported in the last 10 seconds.
#[utoipa::path(get, path = "/v1/cluster", tag = "info",
    responses(
        (status = 200, description = "The clusters", body = [ClusterView]),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn cluster(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<ClusterView>>, ApiError> {
    let admin = matches!(caller, Caller::Admin { .. });
    let clusters = state
        .client
        .store()
        .clusters(Duration::from_secs(10))
        .await?;
    Ok(axum::Json(
        clusters
            .into_iter()
            .map(|c| ClusterView {
                name: c.name,
                workers: c.workers,
                in_flight: c.in_flight,
                done: c.done,
                status: c.status,
                started_at_ms: c.started_at_ms,
                host: admin.then_some(c.host),
            })
            .collect(),
    ))
}

/// The caller's quotas and what it used.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// The tenant.
    pub tenant: String,
    /// Its share of the round robin.
    pub weight: u32,
    /// Its quotas (absent: no limit).
    #[schema(value_type = Object)]
    pub quotas: wasq_core::tenant::Quotas,
    /// Fuel burnt in the current minute (all clusters).
    pub fuel_this_minute: u64,
    /// Tasks finished in the current minute.
    pub tasks_this_minute: u64,
    /// Modules held.
    pub modules: u64,
}

/// The caller's quotas and usage.
#[utoipa::path(get, path = "/v1/usage", tag = "info",
    responses(
        (status = 200, description = "Quotas and usage", body = UsageView),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<UsageView>, ApiError> {
    let tenant = caller.tenant()?;
    let store = state.client.store();
    let window_ms = state.client.config().fuel_window.as_millis().max(1000) as i64;
    let now = now_ms();
    let usage = store.usage(now - now.rem_euclid(window_ms)).await?;
    let (fuel, tasks) = usage.get(&tenant.name).copied().unwrap_or((0, 0));
    Ok(axum::Json(UsageView {
        tenant: tenant.name.clone(),
        weight: tenant.weight,
        quotas: tenant.quotas.clone(),
        fuel_this_minute: fuel,
        tasks_this_minute: tasks,
        modules: store.tenant_modules(&tenant.name).await?.len() as u64,
    }))
}

/// How much of the audit log to read.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// At most this many entries, newest first (default 100, at most 1000).
    #[param(maximum = 1000)]
    pub limit: Option<u32>,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Who (`key:ID`, or `cli`).
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub detail: String,
    /// The tenant concerned.
    pub tenant: Option<String>,
}

/// The audit log: module uploads and key changes (a tenant sees its own,
/// an admin all).
#[utoipa::path(get, path = "/v1/audit", tag = "info",
    params(AuditQuery),
    responses(
        (status = 200, description = "Entries, newest first", body = [AuditView]),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<Vec<AuditView>>, ApiError> {
    let tenant = match &caller {
        Caller::Tenant { tenant, .. } => Some(tenant.name.as_str()),
        Caller::Admin { .. } => None,
    };
    let limit = query.limit.unwrap_or(100).min(1000);
    let entries = state.client.store().audit_log(tenant, limit).await?;
    Ok(axum::Json(
        entries
            .into_iter()
            .map(|e| AuditView {
                at_ms: e.at_ms,
                actor: e.actor,
                action: e.action,
                detail: e.detail,
                tenant: e.tenant,
            })
            .collect(),
    ))
}

/// The gauges of a scrape: every queue's depth, and the pool slots in use
/// when this process runs a cluster.
pub async fn gauges(
    broker: &wasq_brokers::SharedBroker,
    sandbox: Option<&wasq_sandbox::Sandbox>,
) -> Result<wasq_core::metrics::Gauges, wasq_brokers::BrokerError> {
    let mut queue_depth = Vec::new();
    for queue in broker.queues().await? {
        let depth = broker.queue_size(&queue).await?;
        queue_depth.push((queue, depth));
    }
    Ok(wasq_core::metrics::Gauges {
        queue_depth,
        pool_slots_in_use: sandbox.map(wasq_sandbox::Sandbox::slots_in_use),
    })
}

/// Prometheus metrics (admin keys only): tasks enqueued, started and
/// finished by outcome and tenant, duration and fuel histograms, leases,
/// redeliveries, compile cache, queue depth, pool slots.
#[utoipa::path(get, path = "/metrics", tag = "info",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 503, description = "Broker unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::response::Response, ApiError> {
    if !matches!(caller, Caller::Admin { .. }) {
        return Err(ApiError::forbidden(
            "metrics cover every tenant: scrape them with an admin key (`wasq key create --admin`)",
        ));
    }
    let gauges = gauges(state.client.broker(), state.sandbox.as_ref())
        .await
        .map_err(|e| ApiError::unavailable(format!("the broker failed: {e}")))?;
    Ok(prometheus_response(wasq_core::metrics::render(&gauges)))
}

/// A Prometheus text response.
pub fn prometheus_response(text: String) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
