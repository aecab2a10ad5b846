//! Binds every package to its tenant before anything of it runs. A package
//! names its tenant, module and digest; the signature says only that
//! someone with the secret made it. So the cluster checks, against the
//! store, which is the only source of ownership and grants:
//!
//! - a tenant's package came from that tenant's broker queue, and an
//!   untenanted one from no tenant's (else it could dodge quotas or
//!   fairness, or borrow another tenant's turn);
//! - its group is in the tenant's namespace (`tenant/group`);
//! - the tenant uploaded a module with that digest (under any name, at any
//!   time: tasks queued before a re-upload still run the code they were
//!   enqueued with). Grants are then looked up by the tenant and module
//!   name, never taken from the package.
//!
//! Answers are cached for a moment; a store that cannot answer makes the
//! package wait (it is handed back), never run unchecked.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use wasq_core::Digest;
use wasq_core::package::TaskRecord;
use wasq_core::tenant::queue_tenant;
use wasq_store::Store;

/// How long an ownership answer is trusted.
const TTL: Duration = Duration::from_secs(2);
/// Answers kept at most (the cache is cleared when full).
const CAPACITY: usize = 10_000;

/// Why a package is not run.
#[derive(Debug)]
pub(crate) enum Unbound {
    /// It claims what its tenant does not own: refused for good.
    Refused(String),
    /// The store cannot say now: hand it back.
    Unknown(String),
}

/// Cached ownership answers: (tenant, digest) → owned, and when asked.
#[derive(Debug, Default)]
pub(crate) struct Ownership {
    answers: Mutex<HashMap<(String, Digest), (bool, Instant)>>,
}

impl Ownership {
    fn answers(&self) -> MutexGuard<'_, HashMap<(String, Digest), (bool, Instant)>> {
        self.answers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn owns(&self, store: &Store, tenant: &str, digest: &Digest) -> Result<bool, Unbound> {
        let key = (tenant.to_owned(), *digest);
        if let Some((owned, at)) = self.answers().get(&key)
            && at.elapsed() < TTL
        {
            return Ok(*owned);
        }
        let owned = store
            .tenant_owns_digest(tenant, digest)
            .await
            .map_err(|e| Unbound::Unknown(e.to_string()))?;
        let mut answers = self.answers();
        if answers.len() >= CAPACITY {
            answers.clear();
        }
        answers.insert(key, (owned, Instant::now()));
        Ok(owned)
    }
}

/// Checks that `record`, taken from broker queue `queue`, may run as the
/// tenant it names.
pub(crate) async fn verify(
    ownership: &Ownership,
    store: &Store,
    queue: &str,
    record: &TaskRecord,
) -> Result<(), Unbound> {
    let from = queue_tenant(queue);
    let Some(tenant) = record.tenant.as_deref() else {
        return match from {
            Some(owner) => Err(Unbound::Refused(format!(
                "task {}: an untenanted package in tenant {owner}'s queue",
                record.id
            ))),
            None => Ok(()),
        };
    };
    if from != Some(tenant) {
        return Err(Unbound::Refused(format!(
            "task {}: a package of tenant {tenant} in {}",
            record.id,
            match from {
                Some(owner) => format!("tenant {owner}'s queue"),
                None => "an untenanted queue".to_owned(),
            }
        )));
    }
    if let Some(group) = &record.group
        && !group
            .strip_prefix(tenant)
            .is_some_and(|rest| rest.starts_with('/'))
    {
        return Err(Unbound::Refused(format!(
            "task {}: group `{group}` is not in tenant {tenant}'s namespace",
            record.id
        )));
    }
    if !ownership.owns(store, tenant, &record.module).await? {
        return Err(Unbound::Refused(format!(
            "task {}: tenant {tenant} has no module with digest {} (the package names `{}`)",
            record.id, record.module, record.module_name
        )));
    }
    Ok(())
}
