//! Who is calling: the bearer token of each request, checked against the
//! stored hash of its key in constant time. A tenant's key acts for that
//! tenant only; an admin key manages and observes but owns nothing.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use wasq_core::tenant::{Tenant, parse_key, secret_matches};

/// The caller of a request.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per request, moved rarely; boxing the tenant would only add an allocation"
)]
pub enum Caller {
    /// A tenant's key.
    Tenant {
        /// The tenant.
        tenant: Tenant,
        /// The key's id.
        key: String,
    },
    /// An admin key.
    Admin {
        /// The key's id.
        key: String,
    },
}

impl Caller {
    /// The tenant, or 403 for an admin key.
    pub fn tenant(&self) -> Result<&Tenant, ApiError> {
        match self {
            Caller::Tenant { tenant, .. } => Ok(tenant),
            Caller::Admin { .. } => Err(ApiError::forbidden(
                "an admin key owns no modules or tasks; use a tenant's key (`wasq key create --tenant NAME`)",
            )),
        }
    }

    /// `key:ID`, for the audit log.
    pub fn actor(&self) -> String {
        match self {
            Caller::Tenant { key, .. } | Caller::Admin { key } => format!("key:{key}"),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("no API key: send `Authorization: Bearer KEY`")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header is not `Bearer KEY`")
            })?;
        caller_for_key(state, token).await
    }
}

/// The caller a key acts as, if the key is known, not revoked, and its
/// tenant still exists (the dashboard checks its sessions' keys here too,
/// so a revocation takes effect on the next page).
pub(crate) async fn caller_for_key(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let refused = || ApiError::unauthorized("unknown or revoked API key");
    let (id, secret) = parse_key(token).ok_or_else(refused)?;
    let store = state.client.store();
    let key = store.key(id).await?.ok_or_else(refused)?;
    if !secret_matches(secret, &key.hash) || key.revoked_at_ms.is_some() {
        return Err(refused());
    }
    match key.tenant {
        None => Ok(Caller::Admin { key: key.id }),
        Some(name) => {
            let tenant = store.tenant(&name).await?.ok_or_else(refused)?;
            Ok(Caller::Tenant {
                tenant,
                key: key.id,
            })
        }
    }
}
