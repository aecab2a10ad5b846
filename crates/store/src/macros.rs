//! The macros the store's queries share: one body for both backends'
//! pools, and the follow-ups written with a batch of results.

/// Runs `$body` with `$pool` bound to the backend's pool; the body is
/// compiled once per backend, so the same query code serves both.
macro_rules! with_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.backend {
            $crate::backend::Backend::Sqlite($pool) => $body,
            $crate::backend::Backend::Postgres($pool) => $body,
        }
    };
}

/// Writes the follow-ups of a batch of results inside transaction `$tx`:
/// deferred tasks whose parent is in `$saved` (or that have none), and
/// unique-key releases.
macro_rules! write_followups {
    ($tx:ident, $followups:expr, $saved:expr) => {
        for followup in &$followups.deferred {
            if followup
                .parent
                .as_deref()
                .is_some_and(|parent| !$saved.contains(parent))
            {
                continue;
            }
            let task = &followup.task;
            sqlx::query($crate::sql::INSERT_DEFERRED)
                .bind(&task.id)
                .bind(&task.task_id)
                .bind(&task.queue)
                .bind(i64::from(task.priority))
                .bind(task.due_at_ms)
                .bind(&task.package)
                .execute(&mut *$tx)
                .await?;
            // A tenant's chain link or hook takes the place in its
            // backlog that its parent's result just freed.
            if followup.parent.is_some()
                && let Some(tenant) = wasq_core::tenant::queue_tenant(&task.queue)
            {
                sqlx::query($crate::sql::INSERT_PENDING)
                    .bind(&task.task_id)
                    .bind(tenant)
                    .bind(&task.queue)
                    .bind(task.due_at_ms)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
        for (key, task_id) in &$followups.release {
            sqlx::query("DELETE FROM wasq_unique WHERE key = $1 AND task_id = $2")
                .bind(key)
                .bind(task_id)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

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
                serde_json::from_str::<wasq_core::tenant::Quotas>(&quotas)
                    .map_err(|e| $crate::StoreError::Corrupt(format!("quotas: {e}")))?
                    .max_queued
            }
            None => None,
        };
        let now = $crate::now_ms();
        for (id, queue) in $tasks {
            sqlx::query($crate::sql::INSERT_PENDING)
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
                let count: i64 = sqlx::query_scalar($crate::sql::COUNT_PENDING)
                    .bind($tenant)
                    .fetch_one(&mut *$tx)
                    .await?;
                let count = count.max(0) as u64;
                if count > max_queued {
                    Err($crate::BacklogFull {
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

/// Inserts one result inside transaction `$tx` (kept if the task has
/// none); evaluates to the query's result (one row affected: it was new).
macro_rules! insert_result {
    ($tx:ident, $r:expr) => {{
        let r: &$crate::TaskResult = $r;
        sqlx::query($crate::backend::INSERT_RESULT)
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
