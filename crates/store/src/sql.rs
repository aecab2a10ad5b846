//! The SQL statements more than one file of the store runs.

/// A tenant's quotas, locking its row until the end of the transaction
/// (SQLite: the transaction holds the write lock already).
pub(crate) const QUOTAS_SQLITE: &str = "SELECT quotas FROM wasq_tenants WHERE name = $1";
/// [`QUOTAS_SQLITE`] for PostgreSQL: the row lock serialises takers of
/// one tenant.
pub(crate) const QUOTAS_PG: &str = "SELECT quotas FROM wasq_tenants WHERE name = $1 FOR UPDATE";
/// A task's row, once per task id.
pub(crate) const INSERT_PENDING: &str =
    "INSERT INTO wasq_tenant_pending (task_id, tenant, queue, at)
    VALUES ($1, $2, $3, $4) ON CONFLICT (task_id) DO NOTHING";
/// The rows of a tenant.
pub(crate) const COUNT_PENDING: &str = "SELECT count(*) FROM wasq_tenant_pending WHERE tenant = $1";
/// Releases a task's row.
pub(crate) const DELETE_PENDING: &str = "DELETE FROM wasq_tenant_pending WHERE task_id = $1";

/// Forgets the runs of a task whose result is saved (every attempt).
pub(crate) const FORGET_SQLITE: &str = "DELETE FROM wasq_runs WHERE task_id = $1";
/// [`FORGET_SQLITE`] for a batch of ids (PostgreSQL).
pub(crate) const FORGET_POSTGRES: &str = "DELETE FROM wasq_runs WHERE task_id = ANY($1)";

/// Stores a module's bytes once per digest: `(digest, bytes, size, at)`.
pub(crate) const INSERT_MODULE_BYTES: &str =
    "INSERT INTO wasq_modules (digest, bytes, size, uploaded_at)
    VALUES ($1, $2, $3, $4) ON CONFLICT (digest) DO NOTHING";

/// Inserts a deferred task, once per id.
pub(crate) const INSERT_DEFERRED: &str =
    "INSERT INTO wasq_deferred (id, task_id, queue, priority, due_at, package)
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
