//! The API's errors: one JSON shape for every failure,
//! `{"error": {"code", "message", "quota"?}}`, with the status that fits.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use wasq_client::ClientError;
use wasq_store::StoreError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `payload_too_large`, `quota_exceeded`, `unavailable`,
    /// `internal`.
    pub code: String,
    /// For people: what was wrong and what to do.
    pub message: String,
    /// The quota that refused the request, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
}

/// An error the API answers with.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    quota: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            quota: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no key, or a key that is unknown or revoked.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the key may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such object for this tenant.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413: the body is over a limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// A quota refused the request: 429 for quotas that free up with time
    /// (queued tasks), 403 for fixed ones (per-task maxima, module count).
    pub fn quota(status: StatusCode, quota: &str, message: impl Into<String>) -> Self {
        Self {
            quota: Some(quota.to_owned()),
            ..Self::new(status, "quota_exceeded", message)
        }
    }

    /// 503: the broker or store cannot be reached, or the request took too
    /// long.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: something in the server failed that the caller cannot fix.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message, for people.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, message = %self.message, "request failed");
        }
        let status = self.status;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                quota: self.quota,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wasq\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Duplicate(message) => Self::new(StatusCode::CONFLICT, "conflict", message),
            other => Self::unavailable(format!("the store failed: {other}")),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::UnknownModule(name) => Self::not_found(format!("no module `{name}`")),
            ClientError::InvalidModule(message) | ClientError::Invalid(message) => {
                Self::bad_request(message)
            }
            ClientError::Arguments(error) => Self::bad_request(error.to_string()),
            ClientError::NotFound(message) => Self::not_found(message),
            ClientError::Duplicate { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            ClientError::NoCache => Self::bad_request(error.to_string()),
            ClientError::BacklogFull(full) => {
                Self::quota(StatusCode::TOO_MANY_REQUESTS, "max_queued", full.message())
            }
            ClientError::Store(error) => error.into(),
            other => Self::unavailable(other.to_string()),
        }
    }
}
