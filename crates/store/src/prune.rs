//! `save_limit`, exact, and the tombstones of what it prunes.
//!
//! After a batch of results is saved, each queue the batch saved a success
//! in keeps its newest `save_limit` successes — exactly that many: ties on
//! `stopped_at` (many results in one millisecond) are broken by a total
//! order, `stopped_at` then the row (SQLite's rowid, PostgreSQL's task
//! id), the same in the cut-off and the delete. Failures are never pruned.
//!
//! Every success pruned leaves a tombstone in `wasq_pruned` — task id,
//! outcome, `stopped_at`, `pruned_at` — written in the same transaction as
//! the prune (on PostgreSQL in the same statement), so `wasq result` can
//! say the task finished instead of "no record". With `save_limit = -1`
//! successes are never stored and leave only a tombstone. Tombstones are
//! bounded: the newest [`TOMBSTONES`] are kept (older ones are trimmed
//! whenever a prune writes new ones), so an id pruned long ago reads as
//! unknown again.

use sqlx::{PgConnection, SqliteConnection};

use crate::{StoreError, TaskResult, now_ms};

/// The most tombstones kept: the newest 100,000 (a few MB).
pub const TOMBSTONES: i64 = 100_000;

/// SQLite: the oldest success a queue keeps (`$1` the queue, `$2`
/// `save_limit - 1`), as `(stopped_at, rowid)`.
const CUT_SQLITE: &str = "SELECT stopped_at, rowid FROM wasq_results
    WHERE queue = $1 AND success = 1 ORDER BY stopped_at DESC, rowid DESC LIMIT 1 OFFSET $2";

/// SQLite: tombstones for the successes of queue `$1` older than the cut
/// `($2, $3)` (`stopped_at`, rowid), pruned at `$4`.
const TOMBSTONE_OLDER_SQLITE: &str =
    "INSERT INTO wasq_pruned (task_id, outcome, stopped_at, pruned_at)
    SELECT id, outcome, stopped_at, $4 FROM wasq_results
    WHERE queue = $1 AND success = 1 AND stopped_at <= $2 AND (stopped_at < $2 OR rowid < $3)
    ON CONFLICT (task_id) DO NOTHING";

/// SQLite: deletes what [`TOMBSTONE_OLDER_SQLITE`] marked (the same rows:
/// the transaction holds the write lock).
const DELETE_OLDER_SQLITE: &str = "DELETE FROM wasq_results
    WHERE queue = $1 AND success = 1 AND stopped_at <= $2 AND (stopped_at < $2 OR rowid < $3)";

/// PostgreSQL, in one statement: the cut (`$1` the queue, `$2`
/// `save_limit - 1`), the delete of what is older, and their tombstones
/// (pruned at `$3`).
const PRUNE_POSTGRES: &str = "WITH cut AS (
        SELECT stopped_at, id FROM wasq_results WHERE queue = $1 AND success = 1
        ORDER BY stopped_at DESC, id DESC LIMIT 1 OFFSET $2),
    gone AS (
        DELETE FROM wasq_results r USING cut
        WHERE r.queue = $1 AND r.success = 1 AND r.stopped_at <= cut.stopped_at
          AND (r.stopped_at < cut.stopped_at OR r.id < cut.id)
        RETURNING r.id, r.outcome, r.stopped_at)
    INSERT INTO wasq_pruned (task_id, outcome, stopped_at, pruned_at)
    SELECT id, outcome, stopped_at, $3 FROM gone ON CONFLICT (task_id) DO NOTHING";

/// One tombstone: `$1` task id, `$2` outcome, `$3` stopped_at, `$4`
/// pruned_at.
const TOMBSTONE_SQLITE: &str = "INSERT INTO wasq_pruned (task_id, outcome, stopped_at, pruned_at)
    VALUES ($1, $2, $3, $4) ON CONFLICT (task_id) DO NOTHING";

/// Tombstones of a batch: `$1` task ids, `$2` outcomes, `$3` stopped_at,
/// `$4` pruned_at.
const TOMBSTONES_POSTGRES: &str =
    "INSERT INTO wasq_pruned (task_id, outcome, stopped_at, pruned_at)
    SELECT t, o, s, $4 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(t, o, s)
    ON CONFLICT (task_id) DO NOTHING";

/// Keeps the newest [`TOMBSTONES`] (`$1`).
const TRIM: &str = "DELETE FROM wasq_pruned WHERE seq <= (SELECT MAX(seq) FROM wasq_pruned) - $1";

/// Applies `save_limit` after `results` were saved in the transaction of
/// `tx` (SQLite).
pub(super) async fn sqlite(
    tx: &mut SqliteConnection,
    results: &[TaskResult],
    save_limit: i64,
) -> Result<(), StoreError> {
    let now = now_ms();
    let mut marked = 0;
    if save_limit < 0 {
        for r in results.iter().filter(|r| r.success) {
            marked += sqlx::query(TOMBSTONE_SQLITE)
                .bind(&r.id)
                .bind(&r.outcome)
                .bind(r.stopped_at_ms)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
    }
    for queue in pruned_queues(results, save_limit) {
        let cut: Option<(i64, i64)> = sqlx::query_as(CUT_SQLITE)
            .bind(queue)
            .bind(save_limit - 1)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((stopped_at, rowid)) = cut else {
            continue;
        };
        marked += sqlx::query(TOMBSTONE_OLDER_SQLITE)
            .bind(queue)
            .bind(stopped_at)
            .bind(rowid)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(DELETE_OLDER_SQLITE)
            .bind(queue)
            .bind(stopped_at)
            .bind(rowid)
            .execute(&mut *tx)
            .await?;
    }
    if marked > 0 {
        sqlx::query(TRIM).bind(TOMBSTONES).execute(&mut *tx).await?;
    }
    Ok(())
}

/// Applies `save_limit` after `results` were saved in the transaction of
/// `tx` (PostgreSQL).
pub(super) async fn postgres(
    tx: &mut PgConnection,
    results: &[TaskResult],
    save_limit: i64,
) -> Result<(), StoreError> {
    let now = now_ms();
    let mut marked = 0;
    if save_limit < 0 {
        let dropped: Vec<&TaskResult> = results.iter().filter(|r| r.success).collect();
        if !dropped.is_empty() {
            marked += sqlx::query(TOMBSTONES_POSTGRES)
                .bind(dropped.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
                .bind(
                    dropped
                        .iter()
                        .map(|r| r.outcome.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(dropped.iter().map(|r| r.stopped_at_ms).collect::<Vec<_>>())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
    }
    for queue in pruned_queues(results, save_limit) {
        marked += sqlx::query(PRUNE_POSTGRES)
            .bind(queue)
            .bind(save_limit - 1)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    if marked > 0 {
        sqlx::query(TRIM).bind(TOMBSTONES).execute(&mut *tx).await?;
    }
    Ok(())
}

/// The queues a batch prunes in: `save_limit` counts per queue, so one
/// tenant's successes (in its own queue) never push out another's.
fn pruned_queues(results: &[TaskResult], save_limit: i64) -> Vec<&str> {
    if save_limit <= 0 {
        return Vec::new();
    }
    let mut queues: Vec<&str> = results
        .iter()
        .filter(|r| r.success)
        .map(|r| r.queue.as_str())
        .collect();
    queues.sort_unstable();
    queues.dedup();
    queues
}
