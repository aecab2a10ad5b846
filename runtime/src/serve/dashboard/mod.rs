//! The web dashboard `wasq serve` serves at `/`: server-rendered HTML
//! (maud, escaped by default: task output is untrusted) with one small
//! script, all inside the binary, nothing from a CDN. It follows the API's
//! keys: an admin key sees every tenant, a tenant's key only its own.
//!
//! - `session`: logging in with a key, cookies, form tokens.
//! - `throttle`: login attempts limited per client and per key.
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
mod throttle;
mod throughput;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

pub use session::Sessions;
pub use throttle::LoginLimiter;
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
///
/// Browsers read `//host`, `/\host` and `/<tab>/host` (they drop tabs and
/// newlines and treat `\` as `/`) as another site, so `next` must be a
/// single `/` followed by something other than `/` or `\`, with no
/// backslash anywhere and nothing but printable ASCII (which is also all a
/// `Location` header may hold); anything else goes to `/`.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if is_local_path(n) => n,
        _ => "/",
    }
}

/// Whether `path` is a path of this site and nothing a browser could read
/// as another one (see [`safe_next`]).
fn is_local_path(path: &str) -> bool {
    let mut chars = path.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && path.len() <= 2048
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
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

/// Whether the browser reached us over HTTPS, so the session cookie gets
/// `Secure`: always with `wasq serve --secure-cookies`, else when a proxy in
/// front says so (`X-Forwarded-Proto: https` or `Forwarded: proto=https`).
///
/// Believing those headers is safe because they can only add `Secure`,
/// never take it away: a client that sends one over plain HTTP only gets a
/// cookie its browser will not send back over plain HTTP, and a page of
/// another site cannot add headers to a form it submits.
pub(crate) fn secure_request(parts: &Parts, state: &AppState) -> bool {
    let says_https = |name: &str, find: fn(&str) -> bool| {
        parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(find)
    };
    state.secure_cookies
        || says_https("x-forwarded-proto", |v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        })
        || says_https("forwarded", |v| {
            v.split([';', ','])
                .filter_map(|pair| pair.split_once('='))
                .any(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
        })
}

/// The peer address of a request, when the server was started with it
/// ([`crate::serve::serve`] does).
fn peer(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// The answer to a login over its limit: 429, when to try again.
fn too_many_logins(next: &str, wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let message = format!(
        "Too many failed logins from your address or for that key; try again in {seconds} s."
    );
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        page::login_page(next, Some(&message)),
    )
        .into_response()
}

/// Logs in with an API key (checked as the API checks it), at most as
/// often as [`throttle`] allows.
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
    let attempt = throttle::Attempt::new(peer(&parts), &key);
    if let Err(wait) = state.logins.try_take(&attempt, std::time::Instant::now()) {
        return too_many_logins(&next, wait);
    }
    match caller_for_key(&state, &key).await {
        Ok(_) => {
            state.logins.give_back(&attempt, std::time::Instant::now());
            let token = match state.sessions.open(key) {
                Ok(token) => token,
                Err(full) => {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        page::login_page(&next, Some(&full.to_string())),
                    )
                        .into_response();
                }
            };
            let secure = secure_request(&parts, &state);
            (
                [(header::SET_COOKIE, session::set_cookie(&token, secure))],
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
        Err(error) => {
            // The store failed, not the key: that attempt does not count.
            state.logins.give_back(&attempt, std::time::Instant::now());
            PageError::from(error).into_response()
        }
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
        [(
            header::SET_COOKIE,
            session::clear_cookie(state.secure_cookies),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_local_path_or_home() {
        for local in [
            "/",
            "/tasks",
            "/tasks?state=failed&page=2",
            "/tasks/%2F%2Fx",
        ] {
            assert_eq!(safe_next(Some(local)), local);
        }
        for hostile in [
            "//evil.com",
            "/\\evil.com",
            "/\\/evil.com",
            "/\t/evil.com",
            "/\t\t//evil.com",
            "/\n/evil.com",
            "/\r/evil.com",
            "/ /evil.com",
            "/tasks\\..\\",
            "/a\u{0}b",
            "/\u{7f}/evil.com",
            "/\u{e9}",
            "https://evil.com",
            "evil.com",
            "\\\\evil.com",
            " /tasks",
            "",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(5000)))), "/");
    }
}
