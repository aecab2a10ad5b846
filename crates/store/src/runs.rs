//! Runs that started: a row per task and attempt counting the times a
//! cluster began to run it, written before the run (so a run that takes
//! its cluster down with it still counts) and deleted with the task's
//! result. A task is given up after `max_attempts` runs that started,
//! never for deliveries: a task prefetched by a cluster that was killed, or
//! handed back by one that stopped, has not run.

use crate::backend::Backend;
use crate::{Store, StoreError, now_ms};

/// Counts one more run of `(task id, attempt)`; answers the new count.
const MARK_SQLITE: &str = "
INSERT INTO wasq_runs (task_id, attempt, runs, started_at) VALUES ($1, $2, 1, $3)
ON CONFLICT (task_id, attempt) DO UPDATE SET runs = wasq_runs.runs + 1, started_at = excluded.started_at
RETURNING runs";

/// [`MARK_SQLITE`] for a batch in one statement (PostgreSQL); answers
/// `(task_id, attempt, runs)` of each row.
const MARK_POSTGRES: &str = "
INSERT INTO wasq_runs (task_id, attempt, runs, started_at)
SELECT t, a, 1, $3 FROM unnest($1::text[], $2::bigint[]) AS u(t, a)
ON CONFLICT (task_id, attempt) DO UPDATE SET runs = wasq_runs.runs + 1, started_at = excluded.started_at
RETURNING task_id, attempt, runs";

impl Store {
    /// Counts a run that starts now for each `(task id, attempt)`, in one
    /// transaction; answers, in order, how many runs of it have started,
    /// this one included. The pairs must be distinct.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be written (then nothing is
    /// counted, and the tasks must not run).
    pub async fn mark_runs(&self, runs: &[(&str, u32)]) -> Result<Vec<u32>, StoreError> {
        let now = now_ms();
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let mut counts = Vec::with_capacity(runs.len());
                for (id, attempt) in runs {
                    let count: i64 = sqlx::query_scalar(MARK_SQLITE)
                        .bind(id)
                        .bind(i64::from(*attempt))
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                    counts.push(u32::try_from(count).unwrap_or(u32::MAX));
                }
                tx.commit().await?;
                Ok(counts)
            }
            Backend::Postgres(pool) => {
                let ids: Vec<&str> = runs.iter().map(|(id, _)| *id).collect();
                let attempts: Vec<i64> = runs.iter().map(|(_, a)| i64::from(*a)).collect();
                let rows: Vec<(String, i64, i64)> = sqlx::query_as(MARK_POSTGRES)
                    .bind(&ids)
                    .bind(&attempts)
                    .bind(now)
                    .fetch_all(pool)
                    .await?;
                let count_of = |id: &str, attempt: u32| {
                    rows.iter()
                        .find(|(i, a, _)| i == id && *a == i64::from(attempt))
                        .map(|(_, _, runs)| u32::try_from(*runs).unwrap_or(u32::MAX))
                };
                runs.iter()
                    .map(|(id, attempt)| {
                        count_of(id, *attempt).ok_or_else(|| {
                            StoreError::Corrupt(format!("no run count returned for task {id}"))
                        })
                    })
                    .collect()
            }
        }
    }

    /// How many runs of `(task id, attempt)` have started and not ended
    /// with a saved result (0 when none).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be read.
    pub async fn runs_started(&self, task_id: &str, attempt: u32) -> Result<u32, StoreError> {
        let count: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT runs FROM wasq_runs WHERE task_id = $1 AND attempt = $2")
                .bind(task_id)
                .bind(i64::from(attempt))
                .fetch_optional(pool)
                .await?
        });
        Ok(count.map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX)))
    }
}
