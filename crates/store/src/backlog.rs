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

use crate::backend::Backend;
use crate::sql::{COUNT_PENDING, DELETE_PENDING, QUOTAS_PG, QUOTAS_SQLITE};
use crate::{BacklogFull, Store, StoreError};

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
