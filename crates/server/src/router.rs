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

/// The router answered in-process (`tower::ServiceExt::oneshot`), over a
/// memory broker and a temporary SQLite store: what needs no `wasq serve`
/// process. The black-box tests (`tests/all/service*.rs`) cover the rest.
#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    use wasq_client::{Client, Config};

    use super::*;
    use crate::ServeLimits;

    async fn app(dir: &std::path::Path, limits: ServeLimits) -> Router {
        let broker = wasq_brokers::connect("memory://").await.unwrap();
        let url = format!("sqlite://{}", dir.join("store.db").display());
        let store = wasq_store::Store::connect(&url).await.unwrap();
        let config = Config {
            secret: "router-tests".into(),
            ..Config::default()
        };
        router(AppState::new(
            Client::new(config, broker, store),
            limits,
            None,
        ))
    }

    async fn call(app: Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn health_needs_no_key_and_unknown_routes_name_the_api_document() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), ServeLimits::default()).await;
        let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
        let (status, body) = call(app.clone(), get("/v1/health")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "ok");
        let (status, body) = call(app, get("/v1/no-such-route")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("/openapi.json")),
            "{body}"
        );
    }

    /// A tenant `alpha` with a key; answers the key's token.
    async fn tenant_key(dir: &std::path::Path) -> String {
        let url = format!("sqlite://{}", dir.join("store.db").display());
        let store = wasq_store::Store::connect(&url).await.unwrap();
        store
            .create_tenant(&wasq_core::tenant::Tenant {
                name: "alpha".into(),
                weight: 1,
                quotas: wasq_core::tenant::Quotas::default(),
                created_at_ms: wasq_store::now_ms(),
            })
            .await
            .unwrap();
        let key = wasq_core::tenant::new_key();
        store
            .create_key(&key.id, Some("alpha"), &key.hash, "router tests")
            .await
            .unwrap();
        key.token
    }

    #[tokio::test]
    async fn a_task_without_a_key_is_unauthorized_and_a_body_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ServeLimits {
            max_body: 256,
            ..ServeLimits::default()
        };
        let app = app(dir.path(), limits).await;
        let token = tenant_key(dir.path()).await;
        let enqueue = |key: Option<&str>, body: String| {
            let mut request =
                Request::post("/v1/tasks").header(header::CONTENT_TYPE, "application/json");
            if let Some(key) = key {
                request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
            }
            request.body(Body::from(body)).unwrap()
        };
        let small = r#"{"module":"nowhere","task":"t"}"#.to_owned();
        let response = app
            .clone()
            .oneshot(enqueue(None, small.clone()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        // With the key, a small body gets as far as the module lookup …
        let (status, body) = call(app.clone(), enqueue(Some(&token), small)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        // … and one over `max_body` is refused before it is read as JSON.
        let large = format!(
            r#"{{"module":"nowhere","task":"t","args":["{}"]}}"#,
            "x".repeat(1000)
        );
        let (status, body) = call(app, enqueue(Some(&token), large)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    }

    #[tokio::test]
    async fn the_openapi_document_lists_the_task_routes() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), ServeLimits::default()).await;
        let (status, body) = call(
            app,
            Request::get("/openapi.json").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        for path in ["/v1/tasks", "/v1/tasks/{id}", "/v1/modules/{name}"] {
            assert!(body["paths"].get(path).is_some(), "{path} missing");
        }
    }
}
