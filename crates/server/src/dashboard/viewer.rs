//! Who is looking at the dashboard: the [`Viewer`] every page is drawn for
//! (a logged-in session and the key it acts with), forms it posts
//! ([`Submitted`], checked for the session's CSRF token and the same
//! origin), and the error page ([`PageError`]).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use super::session;
use crate::AppState;
use crate::auth::{Caller, caller_for_key};
use crate::error::ApiError;

/// Who is looking: a logged-in session and the key it acts with.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub(crate) caller: Caller,
    pub(crate) session: session::Session,
    pub(crate) token: String,
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
pub(super) fn same_origin(parts: &Parts) -> bool {
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
pub(crate) struct PageError(pub(crate) ApiError);

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

/// What a page handler answers.
pub(crate) type PageResult = Result<Response, PageError>;

/// A form with nothing but its token.
#[derive(serde::Deserialize)]
pub(crate) struct NoFields {}
