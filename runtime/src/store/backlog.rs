//! Each tenant's backlog for its `max_queued` quota: one row per task of
//! the tenant that waits for its result — in any queue, deferred (an ETA,
//! a retry's backoff), queued, running — in `wasq_tenant_pending`. The
//! quota counts rows rather than keeping a counter, so it cannot drift.
//!
//! - **Taken** before a task is handed to the broker or the deferred
//!   tasks, in one transaction that locks the tenant first (SQLite: the
//!   write lock, `BEGIN IMMEDIATE`; PostgreSQL: the tenant's row, `FOR
//!   UPDATE`), inserts the rows and counts: over the quota, it rolls back.
//!   Concurrent requests are serialised per tenant, so they cannot
//!   overshoot. A task id already holding a row takes nothing (a retry
//!   keeps its task's row).
//! - **Released** in the transaction that saves a task's result (see
//!   `save_in_database`): a delete by task id, so a redelivered task
//!   that ends twice releases once. Purging a queue releases the rows of
//!   that queue's tasks that are not deferred.
//! - Schedules take their run's row in the transaction that fires it
//!   (`schedules.rs`); a run refused is saved as a failed result naming
//!   the quota.

use super::backend::Backend;
use super::{Store, StoreError, TaskResult, now_ms};

/// A take refused: the tenant's backlog is at its `max_queued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogFull {
    /// Tasks of the tenant waiting now.
    pub queued: u64,
    /// Its quota.
    pub max_queued: u64,
}

impl BacklogFull {
    /// The message for the caller, naming the quota.
    pub fn message(&self) -> String {
        format!(
            "{} tasks of the tenant are waiting (in all its queues, deferred tasks included), its quota max_queued is {}: retry when some have run",
            self.queued, self.max_queued
        )
    }
}

/// A tenant's quotas, locking its row until the end of the transaction
/// (SQLite: the transaction holds the write lock already).
pub(super) const QUOTAS_SQLITE: &str = "SELECT quotas FROM wasq_tenants WHERE name = $1";
/// [`QUOTAS_SQLITE`] for PostgreSQL: the row lock serialises takers of
/// one tenant.
pub(super) const QUOTAS_PG: &str = "SELECT quotas FROM wasq_tenants WHERE name = $1 FOR UPDATE";
/// A task's row, once per task id.
pub(super) const INSERT_PENDING: &str =
    "INSERT INTO wasq_tenant_pending (task_id, tenant, queue, at)
    VALUES ($1, $2, $3, $4) ON CONFLICT (task_id) DO NOTHING";
/// The rows of a tenant.
pub(super) const COUNT_PENDING: &str = "SELECT count(*) FROM wasq_tenant_pending WHERE tenant = $1";
/// Releases a task's row.
pub(super) const DELETE_PENDING: &str = "DELETE FROM wasq_tenant_pending WHERE task_id = $1";

/// Takes rows for `$tasks` (`&[(task id, queue)]`) of `$tenant` inside
/// `$tx`, reading (and locking, with `$quotas_sql`) the tenant's quotas
/// first; evaluates to `Err(BacklogFull)` when the count goes over its
/// `max_queued` (the caller rolls back or writes nothing else for them).
macro_rules! take_in {
    ($tx:ident, $quotas_sql:expr, $tenant:expr, $tasks:expr) => {{
        let quotas: Option<String> = sqlx::query_scalar($quotas_sql)
            .bind($tenant)
            .fetch_optional(&mut *$tx)
            .await?;
        let max_queued = match quotas {
            Some(quotas) => {
                serde_json::from_str::<crate::tenant::Quotas>(&quotas)
                    .map_err(|e| super::StoreError::Corrupt(format!("quotas: {e}")))?
                    .max_queued
            }
            None => None,
        };
        let now = super::now_ms();
        for (id, queue) in $tasks {
            sqlx::query(super::backlog::INSERT_PENDING)
                .bind(id)
                .bind($tenant)
                .bind(queue)
                .bind(now)
                .execute(&mut *$tx)
                .await?;
        }
        match max_queued {
            None => Ok(()),
            Some(max_queued) => {
                let count: i64 = sqlx::query_scalar(super::backlog::COUNT_PENDING)
                    .bind($tenant)
                    .fetch_one(&mut *$tx)
                    .await?;
                let count = count.max(0) as u64;
                if count > max_queued {
                    Err(super::backlog::BacklogFull {
                        queued: count.saturating_sub($tasks.len() as u64),
                        max_queued,
                    })
                } else {
                    Ok(())
                }
            }
        }
    }};
}
pub(super) use take_in;

impl Store {
    /// Takes a place in `tenant`'s backlog for each of `tasks` (`(task id,
    /// broker queue)`), all or none: refused with [`BacklogFull`] when
    /// the tenant would have more tasks waiting than its `max_queued`
    /// (read here, under the lock; without the quota the rows are still
    /// taken, so a quota set later counts right). Call it before handing
    /// the tasks on; release with [`release_backlog`](Self::release_backlog)
    /// if that fails.
    pub async fn take_backlog(
        &self,
        tenant: &str,
        tasks: &[(String, String)],
    ) -> Result<Result<(), BacklogFull>, StoreError> {
        macro_rules! take {
            ($tx:ident, $quotas_sql:expr) => {{
                let taken: Result<(), BacklogFull> = take_in!($tx, $quotas_sql, tenant, tasks);
                match taken {
                    Ok(()) => $tx.commit().await?,
                    Err(_) => $tx.rollback().await?,
                }
                Ok(taken)
            }};
        }
        match &self.backend {
            Backend::Sqlite(pool) => {
                // The write lock at once: takers of every tenant queue up.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                take!(tx, QUOTAS_SQLITE)
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                take!(tx, QUOTAS_PG)
            }
        }
    }

    /// Gives back the places of tasks that were never handed on.
    pub async fn release_backlog(&self, task_ids: &[String]) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in task_ids {
                sqlx::query(DELETE_PENDING).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Releases the places of the tasks of broker queue `queue` that are
    /// not deferred (after the queue was purged: they will never have a
    /// result). Answers how many.
    pub async fn release_queue_backlog(&self, queue: &str) -> Result<u64, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query(
                "DELETE FROM wasq_tenant_pending WHERE queue = $1
                 AND task_id NOT IN (SELECT task_id FROM wasq_deferred)",
            )
            .bind(queue)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Tasks of `tenant` waiting for their result (its `max_queued` count).
    pub async fn backlog(&self, tenant: &str) -> Result<u64, StoreError> {
        let count: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(COUNT_PENDING).bind(tenant).fetch_one(pool).await?
        });
        Ok(count.max(0) as u64)
    }
}

/// The result saved for a schedule's run that was never queued because
/// its tenant's backlog was full: a failure naming the quota, readable as
/// the schedule's last task.
pub(super) fn refused_run(
    spec: &super::ScheduleSpec,
    digest: crate::Digest,
    task: &super::Deferred,
    full: BacklogFull,
) -> TaskResult {
    let now = now_ms();
    TaskResult {
        id: task.task_id.clone(),
        module: digest,
        module_name: spec.module.clone(),
        task: spec.task.clone(),
        input: spec.input.clone(),
        queue: task.queue.clone(),
        group: spec.group.clone(),
        outcome: "abandoned".into(),
        success: false,
        result: None,
        stderr: String::new(),
        error: Some(format!(
            "not queued (schedule `{}`): max_queued: {}",
            spec.name,
            full.message()
        )),
        fuel: None,
        cpu_us: 0,
        wall_us: 0,
        memory_peak: 0,
        attempts: 0,
        enqueued_at_ms: now,
        started_at_ms: now,
        stopped_at_ms: now,
        cluster: String::new(),
        cached_secs: None,
        attempt_log: Vec::new(),
        record: None,
    }
}

/// Inserts one result inside transaction `$tx` (kept if the task has
/// none); evaluates to the query's result (one row affected: it was new).
macro_rules! insert_result {
    ($tx:ident, $r:expr) => {{
        let r: &$crate::store::TaskResult = $r;
        sqlx::query($crate::store::backend::INSERT_RESULT)
            .bind(&r.id)
            .bind(r.module.to_string())
            .bind(&r.module_name)
            .bind(&r.task)
            .bind(&r.input)
            .bind(&r.queue)
            .bind(&r.group)
            .bind(&r.outcome)
            .bind(i64::from(r.success))
            .bind(&r.result)
            .bind(&r.stderr)
            .bind(&r.error)
            .bind(r.fuel.map(|f| f as i64))
            .bind(r.cpu_us as i64)
            .bind(r.wall_us as i64)
            .bind(r.memory_peak as i64)
            .bind(i64::from(r.attempts))
            .bind(r.enqueued_at_ms)
            .bind(r.started_at_ms)
            .bind(r.stopped_at_ms)
            .bind(&r.cluster)
            .bind(r.attempt_log_json())
            .bind(&r.record)
            .execute(&mut *$tx)
            .await?
    }};
}
pub(super) use insert_result;
