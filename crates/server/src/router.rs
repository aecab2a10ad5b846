//! The routes of the API and the dashboard, the OpenAPI document, the
//! per-request deadline, and [`serve`].

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{dashboard, info, modules, schedules, tasks};

/// The OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "wasq", description = "Run untrusted WebAssembly tasks as a multi-tenant service. Every call but /v1/health needs `Authorization: Bearer KEY`; a key acts for one tenant, which sees only its own modules, tasks and results."),
    paths(
        info::health,
        modules::upload, modules::list, modules::get, modules::delete, modules::set_grants,
        tasks::enqueue, tasks::enqueue_batch, tasks::get, tasks::cancel, tasks::group,
        schedules::create, schedules::list, schedules::get, schedules::delete,
        info::queues, info::cluster, info::usage, info::audit, info::metrics,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "modules", description = "WebAssembly modules of the caller's tenant"),
        (name = "tasks", description = "Tasks, results and groups"),
        (name = "schedules", description = "Tasks run on a schedule"),
        (name = "info", description = "Queues, clusters, usage and audit"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's router.
pub fn router(state: AppState) -> Router {
    let max_body = state.limits.max_body;
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/v1/health", get(info::health))
        .route("/v1/modules", get(modules::list))
        .route(
            "/v1/modules/{name}",
            put(modules::upload)
                .layer(DefaultBodyLimit::disable())
                .get(modules::get)
                .delete(modules::delete),
        )
        .route("/v1/modules/{name}/grants", put(modules::set_grants))
        .route("/v1/tasks", axum::routing::post(tasks::enqueue))
        .route("/v1/tasks/batch", axum::routing::post(tasks::enqueue_batch))
        .route("/v1/tasks/{id}", get(tasks::get).delete(tasks::cancel))
        .route("/v1/groups/{group}", get(tasks::group))
        .route(
            "/v1/schedules",
            get(schedules::list).post(schedules::create),
        )
        .route(
            "/v1/schedules/{name}",
            get(schedules::get).delete(schedules::delete),
        )
        .route("/v1/queues", get(info::queues))
        .route("/v1/cluster", get(info::cluster))
        .route("/v1/usage", get(info::usage))
        .route("/v1/audit", get(info::audit))
        .route("/metrics", get(info::metrics))
        .merge(dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API is described at /openapi.json")
}

async fn method_not_allowed() -> Response {
    let mut response =
        ApiError::bad_request("method not allowed here; see /openapi.json").into_response();
    *response.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// Answers 503 when a request outlives its deadline.
async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable("the request took too long").into_response(),
    }
}

/// `/metrics` alone, unauthenticated, for a `wasq cluster` process
/// (`--metrics ADDR`; bind it where only Prometheus reaches).
pub fn metrics_router(
    broker: wasq_brokers::SharedBroker,
    sandbox: wasq_sandbox::Sandbox,
) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let (broker, sandbox) = (broker.clone(), sandbox.clone());
            async move {
                match info::gauges(&broker, Some(&sandbox)).await {
                    Ok(gauges) => info::prometheus_response(wasq_core::metrics::render(&gauges)),
                    Err(error) => {
                        ApiError::unavailable(format!("the broker failed: {error}")).into_response()
                    }
                }
            }
        }),
    )
}

/// Serves the API on `listener` until `shutdown` resolves. Each request
/// knows its peer's address (`ConnectInfo`), which the dashboard's login
/// limit counts by.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
