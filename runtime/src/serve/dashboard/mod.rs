//! The web dashboard `wasq serve` serves at `/`: server-rendered HTML
//! (maud, escaped by default: task output is untrusted) with one small
//! script, all inside the binary, nothing from a CDN. It follows the API's
//! keys: an admin key sees every tenant, a tenant's key only its own.
//!
//! - `session`: logging in with a key, cookies, form tokens.
//! - `throughput`: tasks per second from the clusters' heartbeats.
//! - `page`: the frame of every page, formatting, the assets.
//! - `overview`, `tasks`, `schedules`, `modules`, `queues`: the
//!   pages and what their forms do.

mod modules;
mod overview;
mod page;
mod queues;
mod schedules;
pub(crate) mod session;
mod tasks;
mod throughput;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

pub use session::Sessions;
pub use throughput::Throughput;

use super::AppState;
use super::auth::{Caller, caller_for_key};
use super::error::ApiError;

/// The dashboard's routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::detail))
        .route("/tasks/{id}/resubmit", post(tasks::resubmit))
        .route("/tasks/{id}/delete", post(tasks::delete))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/failures", get(tasks::failures))
        .route("/schedules", get(schedules::list).post(schedules::create))
        .route(
            "/schedules/edit",
            get(schedules::edit).post(schedules::update),
        )
        .route("/schedules/action", post(schedules::action))
        .route("/modules", get(modules::list))
        .route(
            "/modules/{name}",
            axum::routing::put(modules::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/modules/delete", post(modules::delete))
        .route("/queues", get(queues::list))
        .route("/queues/purge", get(queues::confirm).post(queues::purge))
        .route("/assets/dashboard.css", get(page::stylesheet))
        .route("/assets/dashboard.js", get(page::script))
}

/// Who is looking: a logged-in session and the key it acts with.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    caller: Caller,
    session: session::Session,
    token: String,
}

impl Viewer {
    /// The tenant whose objects the viewer sees; `None`: an admin, who sees
    /// everything.
    pub(crate) fn tenant(&self) -> Option<&str> {
        match &self.caller {
            Caller::Tenant { tenant, .. } => Some(&tenant.name),
            Caller::Admin { .. } => None,
        }
    }

    /// The caller, for the API's handlers and the audit log.
    pub(crate) fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The token forms carry.
    pub(crate) fn csrf(&self) -> &str {
        &self.session.csrf
    }

    /// Whether the viewer sees objects of `tenant` (`None`: untenanted).
    pub(crate) fn sees(&self, tenant: Option<&str>) -> bool {
        self.tenant().is_none() || self.tenant() == tenant
    }
}

/// Not logged in: off to the login page, coming back here afterwards.
fn to_login(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    Redirect::to(&format!("/login?{query}")).into_response()
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if parts.method != Method::GET && parts.method != Method::HEAD && !same_origin(parts) {
            return Err(PageError::forbidden("a form of another site was refused").into_response());
        }
        let token = parts
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(session::token_in);
        let Some((token, session)) =
            token.and_then(|t| Some((t.to_owned(), state.sessions.get(t)?)))
        else {
            return Err(to_login(parts));
        };
        match caller_for_key(state, &session.key).await {
            Ok(caller) => Ok(Viewer {
                caller,
                session,
                token,
            }),
            Err(error) if error.status() == StatusCode::UNAUTHORIZED => {
                state.sessions.close(&token);
                Err(to_login(parts))
            }
            Err(error) => Err(PageError::from(error).into_response()),
        }
    }
}

/// Whether a request that changes something comes from a page of this
/// server: its `Origin` (sent by browsers with every such request) names
/// the host it was sent to. The cookie is `SameSite=Strict` too.
fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return true;
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

/// A submitted form of a logged-in viewer, its token checked: the viewer
/// and the form's fields.
pub(crate) struct Submitted<T>(pub(crate) Viewer, pub(crate) T);

/// The form token's field.
#[derive(serde::Deserialize)]
struct Token {
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Submitted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, state.limits.max_body)
            .await
            .map_err(|_| PageError::bad_request("the form is too large").into_response())?;
        let token: Token = serde_urlencoded::from_bytes(&bytes).map_err(|_| {
            PageError::forbidden("the form has no token; reload the page").into_response()
        })?;
        if !session::csrf_matches(&viewer.session, &token.csrf) {
            return Err(
                PageError::forbidden("the form's token is stale; reload the page").into_response(),
            );
        }
        let fields = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| PageError::bad_request(format!("a bad form: {e}")).into_response())?;
        Ok(Submitted(viewer, fields))
    }
}

/// A page that could not be shown: the API's error (its status and
/// message), rendered as HTML.
#[derive(Debug)]
pub(crate) struct PageError(ApiError);

impl PageError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self(ApiError::bad_request(message))
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self(ApiError::forbidden(message))
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self(ApiError::not_found(message))
    }
}

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status.is_server_error() {
            tracing::warn!(%status, message = self.0.message(), "dashboard page failed");
        }
        (status, page::error_page(status, self.0.message())).into_response()
    }
}

/// What a page handler answers.
pub(crate) type PageResult = Result<Response, PageError>;

/// Where login sends the browser afterwards: a path of this site only.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

async fn login_page(axum::extract::Query(query): axum::extract::Query<LoginQuery>) -> Response {
    page::login_page(safe_next(query.next.as_deref()), None).into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    key: String,
    next: Option<String>,
}

/// Logs in with an API key (checked as the API checks it).
async fn login(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !same_origin(&parts) {
        return PageError::forbidden("a form of another site was refused").into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 10).await else {
        return PageError::bad_request("the form is too large").into_response();
    };
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&bytes) else {
        return PageError::bad_request("the login form needs a key").into_response();
    };
    let next = safe_next(form.next.as_deref()).to_owned();
    let key = form.key.trim().to_owned();
    match caller_for_key(&state, &key).await {
        Ok(_) => {
            let token = state.sessions.open(key);
            (
                [(header::SET_COOKIE, session::set_cookie(&token))],
                Redirect::to(&next),
            )
                .into_response()
        }
        Err(error) if error.status() == StatusCode::UNAUTHORIZED => (
            StatusCode::UNAUTHORIZED,
            page::login_page(
                &next,
                Some("That key is unknown or revoked. Make one with `wasq key create --admin` (or `--tenant NAME`)."),
            ),
        )
            .into_response(),
        Err(error) => PageError::from(error).into_response(),
    }
}

/// A form with nothing but its token.
#[derive(serde::Deserialize)]
pub(crate) struct NoFields {}

async fn logout(
    State(state): State<AppState>,
    Submitted(viewer, NoFields {}): Submitted<NoFields>,
) -> Response {
    state.sessions.close(&viewer.token);
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/login"),
    )
        .into_response()
}
