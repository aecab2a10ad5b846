//! What the store keeps for workflows beyond results: deferred tasks (an
//! outbox of signed packages due at a time: ETAs, retries after their
//! backoff, the next link of a chain, hooks, the runs of schedules), unique
//! keys, cancel requests, failures to resubmit, groups and per-module
//! retry policies.
//!
//! A deferred task is written in the same transaction as what caused it
//! and moved to the broker by a cluster's scheduler once due: claimed for
//! a while, enqueued, then deleted. A cluster that dies in between leaves
//! the claim to expire and another moves it again; the task id inside is
//! the same, so it still ends with one result.

use sqlx::Row as _;

use crate::backend::Backend;
use crate::sql::INSERT_DEFERRED;
use crate::{CancelState, Deferred, Store, StoreError, TaskResult, now_ms};
use wasq_core::workflow::RetryPolicy;

const CLAIM_SQLITE: &str = "UPDATE wasq_deferred SET claimed_until = $1 WHERE id IN (
    SELECT id FROM wasq_deferred WHERE due_at <= $2 AND claimed_until < $2 ORDER BY due_at LIMIT $3)
    RETURNING id, task_id, queue, priority, due_at, package";

const CLAIM_POSTGRES: &str = "UPDATE wasq_deferred SET claimed_until = $1 WHERE id IN (
    SELECT id FROM wasq_deferred WHERE due_at <= $2 AND claimed_until < $2 ORDER BY due_at LIMIT $3
    FOR UPDATE SKIP LOCKED)
    RETURNING id, task_id, queue, priority, due_at, package";

impl Store {
    /// Adds tasks to hand to the broker at their due time.
    pub async fn defer(&self, tasks: &[Deferred]) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for task in tasks {
                sqlx::query(INSERT_DEFERRED)
                    .bind(&task.id)
                    .bind(&task.task_id)
                    .bind(&task.queue)
                    .bind(i64::from(task.priority))
                    .bind(task.due_at_ms)
                    .bind(&task.package)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Claims up to `limit` deferred tasks due by `now_ms` for `lease_ms`
    /// (no other cluster takes them meanwhile), oldest first.
    pub async fn claim_due(
        &self,
        now_ms: i64,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Deferred>, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite(_) => CLAIM_SQLITE,
            Backend::Postgres(_) => CLAIM_POSTGRES,
        };
        with_pool!(self, pool => {
            let rows = sqlx::query(sql)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Deferred {
                        id: row.try_get("id")?,
                        task_id: row.try_get("task_id")?,
                        queue: row.try_get("queue")?,
                        priority: row.try_get::<i64, _>("priority")? as i32,
                        due_at_ms: row.try_get("due_at")?,
                        package: row.try_get("package")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Deletes deferred tasks (handed to the broker).
    pub async fn remove_deferred(&self, ids: &[String]) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in ids {
                sqlx::query("DELETE FROM wasq_deferred WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// When the next unclaimed deferred task is due (ms), if any.
    pub async fn next_deferred_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar("SELECT MIN(due_at) FROM wasq_deferred WHERE claimed_until < $1")
                .bind(now_ms())
                .fetch_one(pool)
                .await?
        }))
    }

    /// Deferred tasks waiting, and how many are claimed.
    pub async fn deferred_count(&self) -> Result<u64, StoreError> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM wasq_deferred")
                .fetch_one(pool)
                .await?
        });
        Ok(n as u64)
    }

    // ---- unique keys ----

    /// Takes `key` for `task_id` until `expires_at_ms` (or until the task
    /// ends). Answers `None` when taken, or the id of the task that holds
    /// it.
    pub async fn acquire_unique(
        &self,
        key: &str,
        task_id: &str,
        expires_at_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let now = now_ms();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let taken = sqlx::query(
                "INSERT INTO wasq_unique (key, task_id, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET task_id = excluded.task_id, expires_at = excluded.expires_at
                 WHERE wasq_unique.expires_at <= $4",
            )
            .bind(key)
            .bind(task_id)
            .bind(expires_at_ms)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let holder = if taken {
                None
            } else {
                sqlx::query_scalar("SELECT task_id FROM wasq_unique WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?
            };
            tx.commit().await?;
            Ok(holder)
        })
    }

    /// Releases `key` if `task_id` holds it.
    pub async fn release_unique(&self, key: &str, task_id: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM wasq_unique WHERE key = $1 AND task_id = $2")
                .bind(key)
                .bind(task_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    // ---- cancel ----

    /// Asks for a task to be cancelled: unless it has a result, records
    /// the request and takes its deferred runs out.
    pub async fn request_cancel(&self, task_id: &str) -> Result<CancelState, StoreError> {
        if let Some(result) = self.result(task_id).await? {
            return Ok(CancelState::Finished(result.outcome));
        }
        let now = now_ms();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO wasq_cancelled (task_id, at) VALUES ($1, $2) ON CONFLICT (task_id) DO NOTHING",
            )
            .bind(task_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let deferred: Vec<Vec<u8>> =
                sqlx::query_scalar("DELETE FROM wasq_deferred WHERE task_id = $1 RETURNING package")
                    .bind(task_id)
                    .fetch_all(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(CancelState::Requested { deferred })
        })
    }

    /// Cancel requests recorded after sequence number `after`: `(seq, task
    /// id)`, in order.
    pub async fn cancelled_after(&self, after: i64) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as("SELECT seq, task_id FROM wasq_cancelled WHERE seq > $1 ORDER BY seq")
                .bind(after)
                .fetch_all(pool)
                .await?
        }))
    }

    // ---- failures and groups ----

    /// Failed results (every outcome but success), newest first.
    pub async fn failures(&self, limit: u32) -> Result<Vec<TaskResult>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT * FROM wasq_results WHERE success = 0 ORDER BY stopped_at DESC, id LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.iter().map(TaskResult::from_row).collect()
        })
    }

    /// Deletes a result (a failure resubmitted). Answers whether it existed.
    pub async fn remove_result(&self, id: &str) -> Result<bool, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query("DELETE FROM wasq_results WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// The results of a group, oldest first.
    pub async fn group_results(&self, group: &str) -> Result<Vec<TaskResult>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT * FROM wasq_results WHERE grp = $1 ORDER BY stopped_at, id",
            )
            .bind(group)
            .fetch_all(pool)
            .await?;
            rows.iter().map(TaskResult::from_row).collect()
        })
    }

    // ---- per-module retry policies ----

    /// Sets (or with `None` clears) the retry policy of a module name.
    /// Answers whether the name exists.
    pub async fn set_module_retry(
        &self,
        name: &str,
        policy: Option<&RetryPolicy>,
    ) -> Result<bool, StoreError> {
        let json = policy.map(|p| serde_json::to_string(p).unwrap_or_default());
        Ok(with_pool!(self, pool => {
            sqlx::query("UPDATE wasq_module_names SET retry = $1 WHERE name = $2")
                .bind(json)
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// The retry policy of a module name, if it has one.
    pub async fn module_retry(&self, name: &str) -> Result<Option<RetryPolicy>, StoreError> {
        let json: Option<Option<String>> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT retry FROM wasq_module_names WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        json.flatten()
            .map(|json| {
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("retry policy of `{name}`: {e}")))
            })
            .transpose()
    }
}
