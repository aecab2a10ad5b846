//! The store's tenant tables: tenants and their quotas, API keys (hashes
//! only), each tenant's module names and grants, which tenant owns which
//! task, fuel used per tenant per window, and the audit log.

use std::collections::HashMap;

use crate::{Store, StoreError, now_ms, parse_digest};
use wasq_core::Digest;
use wasq_core::tenant::{Grants, Quotas, Tenant};

/// An API key as stored: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredKey {
    /// Public id (the middle of the token).
    pub id: String,
    /// The tenant it acts for; `None` for an admin key.
    pub tenant: Option<String>,
    /// SHA-256 of the secret, hex.
    #[serde(skip)]
    pub hash: String,
    /// What it is for.
    pub label: String,
    /// Created, ms since the epoch.
    pub created_at_ms: i64,
    /// Revoked, ms since the epoch.
    pub revoked_at_ms: Option<i64>,
}

/// A module name of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantModule {
    /// The name, within the tenant.
    pub name: String,
    /// The bytes' content address.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// What the module may reach.
    pub grants: Grants,
    /// Last upload, ms since the epoch.
    pub uploaded_at_ms: i64,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The tenant concerned, if any.
    pub tenant: Option<String>,
    /// Who: `key:ID`, or `cli` for an admin command.
    pub actor: String,
    /// What: `module.upload`, `key.create`…
    pub action: String,
    /// The object and details.
    pub detail: String,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn tenant_from(row: (String, i64, String, i64)) -> Result<Tenant, StoreError> {
    let (name, weight, quotas, created_at_ms) = row;
    Ok(Tenant {
        quotas: serde_json::from_str::<Quotas>(&quotas).map_err(|e| corrupt("quotas", e))?,
        name,
        weight: weight.clamp(1, i64::from(u32::MAX)) as u32,
        created_at_ms,
    })
}

type KeyRow = (String, Option<String>, String, String, i64, Option<i64>);

fn key_from((id, tenant, hash, label, created_at_ms, revoked_at_ms): KeyRow) -> StoredKey {
    StoredKey {
        id,
        tenant,
        hash,
        label,
        created_at_ms,
        revoked_at_ms,
    }
}

type ModuleRow = (String, String, i64, String, i64, Option<String>);

fn module_from(row: ModuleRow) -> Result<TenantModule, StoreError> {
    let (name, digest, size, grants, uploaded_at_ms, quotas) = row;
    let grants: Grants = serde_json::from_str(&grants).map_err(|e| corrupt("grants", e))?;
    // What the tenant allows now bounds what its modules' records say, so a
    // grant set just before an admin removed its allowance never counts.
    let quotas = match quotas {
        Some(quotas) => serde_json::from_str(&quotas).map_err(|e| corrupt("quotas", e))?,
        None => Quotas::default(),
    };
    Ok(TenantModule {
        name,
        digest: parse_digest(&digest)?,
        size: size as u64,
        grants: allowed(grants, &quotas),
        uploaded_at_ms,
    })
}

/// `grants` without the kinds `quotas` does not allow.
fn allowed(mut grants: Grants, quotas: &Quotas) -> Grants {
    if !quotas.allows("env") {
        grants.env.clear();
    }
    if !quotas.allows("scratch") {
        grants.scratch = false;
    }
    grants
}

/// Records the owner of a task: `(id, tenant, at)`.
pub(super) const OWN_TASK: &str = "INSERT INTO wasq_tenant_tasks (id, tenant, at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING";

const TENANT_COLUMNS: &str = "SELECT name, weight, quotas, created_at FROM wasq_tenants";
const KEY_COLUMNS: &str =
    "SELECT id, tenant, hash, label, created_at, revoked_at FROM wasq_api_keys";
/// A tenant's modules (`m`) with the tenant's quotas, whose allowances
/// bound the grants read.
const MODULE_COLUMNS: &str = "SELECT m.name, m.digest, m.size, m.grants, m.uploaded_at, t.quotas
    FROM wasq_tenant_modules m LEFT JOIN wasq_tenants t ON t.name = m.tenant";

impl Store {
    // ---- tenants ----

    /// Adds a tenant; [`StoreError::Duplicate`] if the name is taken.
    pub async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let quotas = serde_json::to_string(&tenant.quotas).map_err(|e| corrupt("quotas", e))?;
        let done = with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO wasq_tenants (name, weight, quotas, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&tenant.name)
            .bind(i64::from(tenant.weight))
            .bind(quotas)
            .bind(tenant.created_at_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::Duplicate(format!(
                "tenant `{}` exists already",
                tenant.name
            )));
        }
        Ok(())
    }

    /// Changes a tenant's weight and quotas; whether it exists. Grants it no
    /// longer allows are taken from its modules (see
    /// [`update_tenant_revoking`](Self::update_tenant_revoking)).
    pub async fn update_tenant(&self, tenant: &Tenant) -> Result<bool, StoreError> {
        Ok(self.update_tenant_revoking(tenant).await?.is_some())
    }

    /// Changes a tenant's weight and quotas and, in the same transaction,
    /// takes every grant it no longer allows from its modules' records.
    /// `None` if there is no such tenant, else the names of the modules
    /// that lost a grant.
    pub async fn update_tenant_revoking(
        &self,
        tenant: &Tenant,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let quotas = serde_json::to_string(&tenant.quotas).map_err(|e| corrupt("quotas", e))?;
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query("UPDATE wasq_tenants SET weight = $2, quotas = $3 WHERE name = $1")
                .bind(&tenant.name)
                .bind(i64::from(tenant.weight))
                .bind(quotas)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated != 1 {
                tx.rollback().await?;
                None
            } else {
                let rows: Vec<(String, String)> =
                    sqlx::query_as("SELECT name, grants FROM wasq_tenant_modules WHERE tenant = $1 ORDER BY name")
                        .bind(&tenant.name)
                        .fetch_all(&mut *tx)
                        .await?;
                let mut cut = Vec::new();
                for (name, json) in rows {
                    let grants: Grants =
                        serde_json::from_str(&json).map_err(|e| corrupt("grants", e))?;
                    let kept = allowed(grants.clone(), &tenant.quotas);
                    if kept == grants {
                        continue;
                    }
                    let kept = serde_json::to_string(&kept).map_err(|e| corrupt("grants", e))?;
                    sqlx::query("UPDATE wasq_tenant_modules SET grants = $3 WHERE tenant = $1 AND name = $2")
                        .bind(&tenant.name)
                        .bind(&name)
                        .bind(kept)
                        .execute(&mut *tx)
                        .await?;
                    cut.push(name);
                }
                tx.commit().await?;
                Some(cut)
            }
        }))
    }

    /// Every tenant, by name.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows: Vec<(String, i64, String, i64)> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{TENANT_COLUMNS} ORDER BY name")))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(tenant_from).collect()
    }

    /// A tenant by name.
    pub async fn tenant(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let row: Option<(String, i64, String, i64)> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{TENANT_COLUMNS} WHERE name = $1")))
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        row.map(tenant_from).transpose()
    }

    /// Removes a tenant, revoking its keys and dropping its module names
    /// (results stay until pruned). Whether it existed.
    pub async fn remove_tenant(&self, name: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let gone = sqlx::query("DELETE FROM wasq_tenants WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("UPDATE wasq_api_keys SET revoked_at = $2 WHERE tenant = $1 AND revoked_at IS NULL")
                .bind(name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM wasq_tenant_modules WHERE tenant = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            // A tenant made again later under this name owns none of these.
            sqlx::query("DELETE FROM wasq_tenant_digests WHERE tenant = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            gone == 1
        }))
    }

    // ---- keys ----

    /// Stores a key's hash.
    pub async fn create_key(
        &self,
        id: &str,
        tenant: Option<&str>,
        hash: &str,
        label: &str,
    ) -> Result<StoredKey, StoreError> {
        let now = now_ms();
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO wasq_api_keys (id, tenant, hash, label, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(tenant)
            .bind(hash)
            .bind(label)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(StoredKey {
            id: id.to_owned(),
            tenant: tenant.map(str::to_owned),
            hash: hash.to_owned(),
            label: label.to_owned(),
            created_at_ms: now,
            revoked_at_ms: None,
        })
    }

    /// A key by id.
    pub async fn key(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        let row: Option<KeyRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{KEY_COLUMNS} WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(key_from))
    }

    /// Every key (of one tenant, or all), oldest first.
    pub async fn keys(&self, tenant: Option<&str>) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{KEY_COLUMNS} WHERE ($1 IS NULL OR tenant = $1) ORDER BY created_at, id"
            )))
            .bind(tenant)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(key_from).collect())
    }

    /// Revokes a key; whether it was live.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query("UPDATE wasq_api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected()
        }) == 1)
    }

    // ---- a tenant's modules ----

    /// Stores a module's bytes and points the tenant's `name` at them.
    /// Grants are kept from an earlier upload of the name unless `grants`
    /// is given.
    pub async fn put_tenant_module(
        &self,
        tenant: &str,
        name: &str,
        bytes: &[u8],
        grants: Option<&Grants>,
    ) -> Result<TenantModule, StoreError> {
        let digest = Digest::of(bytes);
        let now = now_ms();
        let grants_json = serde_json::to_string(&grants.cloned().unwrap_or_default())
            .map_err(|e| corrupt("grants", e))?;
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(crate::sql::INSERT_MODULE_BYTES)
            .bind(digest.to_string())
            .bind(bytes)
            .bind(bytes.len() as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO wasq_tenant_modules (tenant, name, digest, size, grants, uploaded_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant, name) DO UPDATE SET digest = excluded.digest,
                     size = excluded.size, uploaded_at = excluded.uploaded_at,
                     grants = CASE WHEN $7 THEN excluded.grants ELSE wasq_tenant_modules.grants END",
            )
            .bind(tenant)
            .bind(name)
            .bind(digest.to_string())
            .bind(bytes.len() as i64)
            .bind(&grants_json)
            .bind(now)
            .bind(grants.is_some())
            .execute(&mut *tx)
            .await?;
            // Every digest a tenant ever uploaded: tasks queued before a
            // re-upload still run the code they were enqueued with.
            sqlx::query(
                "INSERT INTO wasq_tenant_digests (tenant, digest) VALUES ($1, $2)
                 ON CONFLICT (tenant, digest) DO NOTHING",
            )
            .bind(tenant)
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        self.tenant_module(tenant, name)
            .await?
            .ok_or_else(|| corrupt("module", "vanished after its upload"))
    }

    /// Whether `tenant` ever uploaded a module with this digest (under any
    /// name). The cluster checks it before running a tenant's package.
    pub async fn tenant_owns_digest(
        &self,
        tenant: &str,
        digest: &Digest,
    ) -> Result<bool, StoreError> {
        // COUNT(*) is a BIGINT on both databases (a bare 1 is INT4 on PostgreSQL).
        let found: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM wasq_tenant_digests WHERE tenant = $1 AND digest = $2",
            )
            .bind(tenant)
            .bind(digest.to_string())
            .fetch_one(pool)
            .await?
        });
        Ok(found > 0)
    }

    /// A tenant's module by name, or by digest (full, `sha256:` or not).
    pub async fn tenant_module(
        &self,
        tenant: &str,
        reference: &str,
    ) -> Result<Option<TenantModule>, StoreError> {
        let digest = reference.strip_prefix("sha256:").unwrap_or(reference);
        let row: Option<ModuleRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{MODULE_COLUMNS} WHERE m.tenant = $1 AND (m.name = $2 OR m.digest = $3)
                 ORDER BY m.name = $2 DESC, m.uploaded_at DESC LIMIT 1"
            )))
            .bind(tenant)
            .bind(reference)
            .bind(digest)
            .fetch_optional(pool)
            .await?
        });
        row.map(module_from).transpose()
    }

    /// A tenant's modules, by name.
    pub async fn tenant_modules(&self, tenant: &str) -> Result<Vec<TenantModule>, StoreError> {
        let rows: Vec<ModuleRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{MODULE_COLUMNS} WHERE m.tenant = $1 ORDER BY m.name")))
                .bind(tenant)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(module_from).collect()
    }

    /// Removes a tenant's module name (the bytes stay for tasks queued
    /// with them); whether it existed.
    pub async fn remove_tenant_module(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query("DELETE FROM wasq_tenant_modules WHERE tenant = $1 AND name = $2")
                .bind(tenant)
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
        }) == 1)
    }

    /// Sets what a tenant's module may reach; whether it exists.
    pub async fn set_module_grants(
        &self,
        tenant: &str,
        name: &str,
        grants: &Grants,
    ) -> Result<bool, StoreError> {
        let grants = serde_json::to_string(grants).map_err(|e| corrupt("grants", e))?;
        Ok(with_pool!(self, pool => {
            sqlx::query("UPDATE wasq_tenant_modules SET grants = $3 WHERE tenant = $1 AND name = $2")
                .bind(tenant)
                .bind(name)
                .bind(grants)
                .execute(pool)
                .await?
                .rows_affected()
        }) == 1)
    }

    // ---- which tenant owns a task ----

    /// Records that `tenant` owns tasks `ids`.
    pub async fn own_tasks(&self, tenant: &str, ids: &[String]) -> Result<(), StoreError> {
        let now = now_ms();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in ids {
                sqlx::query(OWN_TASK)
                    .bind(id)
                    .bind(tenant)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The tenant that owns task `id`.
    pub async fn task_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar("SELECT tenant FROM wasq_tenant_tasks WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    // ---- usage ----

    /// Adds fuel and task counts to tenants' usage in the window starting
    /// at `window_start_ms`.
    pub async fn add_usage(
        &self,
        window_start_ms: i64,
        usage: &[(String, u64, u64)],
    ) -> Result<(), StoreError> {
        if usage.is_empty() {
            return Ok(());
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (tenant, fuel, tasks) in usage {
                sqlx::query(
                    "INSERT INTO wasq_tenant_usage (tenant, window_start, fuel, tasks) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant, window_start) DO UPDATE SET
                         fuel = wasq_tenant_usage.fuel + excluded.fuel,
                         tasks = wasq_tenant_usage.tasks + excluded.tasks",
                )
                .bind(tenant)
                .bind(window_start_ms)
                .bind(*fuel as i64)
                .bind(*tasks as i64)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM wasq_tenant_usage WHERE window_start < $1")
                .bind(window_start_ms - 24 * 3600 * 1000)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Fuel and tasks per tenant in the window starting at
    /// `window_start_ms`.
    pub async fn usage(
        &self,
        window_start_ms: i64,
    ) -> Result<HashMap<String, (u64, u64)>, StoreError> {
        let rows: Vec<(String, i64, i64)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT tenant, fuel, tasks FROM wasq_tenant_usage WHERE window_start = $1")
                .bind(window_start_ms)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(t, fuel, tasks)| (t, (fuel.max(0) as u64, tasks.max(0) as u64)))
            .collect())
    }

    // ---- audit ----

    /// Appends to the audit log.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO wasq_audit (at, tenant, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
                .bind(entry.at_ms)
                .bind(&entry.tenant)
                .bind(&entry.actor)
                .bind(&entry.action)
                .bind(&entry.detail)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The newest `limit` audit entries (of one tenant, or all), newest
    /// first.
    pub async fn audit_log(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<(i64, Option<String>, String, String, String)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT at, tenant, actor, action, detail FROM wasq_audit
                 WHERE ($1 IS NULL OR tenant = $1) ORDER BY seq DESC LIMIT $2",
            )
            .bind(tenant)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(at_ms, tenant, actor, action, detail)| AuditEntry {
                at_ms,
                tenant,
                actor,
                action,
                detail,
            })
            .collect())
    }
}
