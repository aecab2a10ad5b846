//! The audit log as handlers write it: who did what to an object of which
//! tenant.

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

impl AppState {
    /// Records what `caller` did to an object of `tenant` in the audit
    /// log.
    pub(crate) async fn audit(
        &self,
        caller: &auth::Caller,
        tenant: &str,
        action: &str,
        detail: String,
    ) -> Result<(), ApiError> {
        self.client
            .store()
            .audit(&wasq_store::AuditEntry {
                at_ms: wasq_store::now_ms(),
                tenant: Some(tenant.to_owned()),
                actor: caller.actor(),
                action: action.to_owned(),
                detail,
            })
            .await
            .map_err(ApiError::from)
    }
}
