//! The store: task results, the module registry (the bytes live here, so
//! every worker of every machine can fetch them), rejected packages and
//! cluster heartbeats. SQLite through sqlx; the SQL is plain enough that a
//! Postgres store follows the same API.

mod schema;
mod types;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::Digest;
pub use types::{ClusterStatus, ModuleInfo, OutcomeCounts, Rejected, TaskResult, now_ms};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Not a store URL wasq knows.
    #[error("bad store URL `{0}`: use sqlite://PATH")]
    BadUrl(String),
    /// The database could not be opened.
    #[error("store unreachable ({url}): {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A query failed.
    #[error("store error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row is not what this version expects.
    #[error("corrupt store row: {0}")]
    Corrupt(String),
}

/// Handle to the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the store at `url` and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| StoreError::BadUrl(url.to_owned()))?;
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(StoreError::BadUrl(url.to_owned()));
        }
        let unreachable = |reason: String| StoreError::Unreachable {
            url: url.to_owned(),
            reason,
        };
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| unreachable(format!("cannot create {}: {e}", parent.display())))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| unreachable(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        // Another process may be initialising the same new file (switching
        // it to WAL, migrating); the busy timeout does not cover that step,
        // so setup is retried for a few seconds.
        let mut attempt = 0;
        loop {
            match Self::setup(options.clone()).await {
                Ok(store) => return Ok(store),
                Err(e) if is_busy(&e) && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(StoreError::Database(e)) => return Err(unreachable(e.to_string())),
                Err(e) => return Err(e),
            }
        }
    }

    async fn setup(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS wasq_store_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM wasq_store_migrations")
                .fetch_one(&mut *tx)
                .await?;
        for (version, sql) in schema::MIGRATIONS {
            if done.is_some_and(|d| d >= *version) {
                continue;
            }
            // The migrations are constants of this crate, not input.
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO wasq_store_migrations (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- modules ----

    /// Stores a module's bytes (once per digest) and points `name` at it.
    pub async fn put_module(
        &self,
        bytes: &[u8],
        name: Option<&str>,
    ) -> Result<ModuleInfo, StoreError> {
        let digest = Digest::of(bytes);
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT OR IGNORE INTO wasq_modules (digest, bytes, size, uploaded_at) VALUES (?, ?, ?, ?)")
            .bind(digest.to_string())
            .bind(bytes)
            .bind(bytes.len() as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if let Some(name) = name {
            sqlx::query(
                "INSERT INTO wasq_module_names (name, digest, updated_at) VALUES (?, ?, ?)
                 ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(digest.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ModuleInfo {
            digest,
            names: name.map(|n| vec![n.to_owned()]).unwrap_or_default(),
            size: bytes.len() as u64,
            uploaded_at_ms: now,
        })
    }

    /// The bytes of a module.
    pub async fn module_bytes(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT bytes FROM wasq_modules WHERE digest = ?")
                .bind(digest.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A module by name, or by digest (full, or a unique prefix of at least
    /// 8 hex digits).
    pub async fn resolve_module(
        &self,
        reference: &str,
    ) -> Result<Option<(Digest, String)>, StoreError> {
        let by_name =
            sqlx::query_scalar::<_, String>("SELECT digest FROM wasq_module_names WHERE name = ?")
                .bind(reference)
                .fetch_optional(&self.pool)
                .await?;
        if let Some(digest) = by_name {
            return Ok(Some((parse_digest(&digest)?, reference.to_owned())));
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() < 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let found: Vec<String> =
            sqlx::query_scalar("SELECT digest FROM wasq_modules WHERE digest LIKE ? LIMIT 2")
                .bind(format!("{}%", hex.to_ascii_lowercase()))
                .fetch_all(&self.pool)
                .await?;
        match found.as_slice() {
            [one] => {
                let digest = parse_digest(one)?;
                let name: Option<String> = sqlx::query_scalar(
                    "SELECT name FROM wasq_module_names WHERE digest = ? ORDER BY name LIMIT 1",
                )
                .bind(one)
                .fetch_optional(&self.pool)
                .await?;
                Ok(Some((digest, name.unwrap_or_else(|| digest.short()))))
            }
            _ => Ok(None),
        }
    }

    /// Every module with its names, newest first.
    pub async fn list_modules(&self) -> Result<Vec<ModuleInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.digest, m.size, m.uploaded_at, group_concat(n.name, ',') AS names
             FROM wasq_modules m LEFT JOIN wasq_module_names n ON n.digest = m.digest
             GROUP BY m.digest ORDER BY m.uploaded_at DESC, m.digest",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let names: Option<String> = row.try_get("names")?;
                let mut names: Vec<String> = names
                    .map(|n| n.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                names.sort();
                Ok(ModuleInfo {
                    digest: parse_digest(&row.try_get::<String, _>("digest")?)?,
                    names,
                    size: row.try_get::<i64, _>("size")? as u64,
                    uploaded_at_ms: row.try_get("uploaded_at")?,
                })
            })
            .collect()
    }

    /// Removes a module name; the bytes go too when no name is left.
    /// Returns whether the name existed.
    pub async fn remove_module(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let digest: Option<String> =
            sqlx::query_scalar("DELETE FROM wasq_module_names WHERE name = ? RETURNING digest")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(digest) = &digest {
            sqlx::query(
                "DELETE FROM wasq_modules WHERE digest = ?
                 AND NOT EXISTS (SELECT 1 FROM wasq_module_names WHERE digest = ?)",
            )
            .bind(digest)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(digest.is_some())
    }

    // ---- results ----

    /// Saves results in one transaction. A result whose task already has
    /// one is ignored (the first completion wins: a late duplicate from a
    /// lost lease can neither overwrite nor duplicate it). Returns, per
    /// result, whether it was saved. Applies `save_limit` (0 keeps all
    /// successes, -1 none; failures are always kept).
    pub async fn save_results(
        &self,
        results: &[TaskResult],
        save_limit: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let mut saved = Vec::with_capacity(results.len());
        let mut tx = self.pool.begin().await?;
        for r in results {
            if r.success && save_limit < 0 {
                saved.push(true);
                continue;
            }
            let done = sqlx::query(
                "INSERT OR IGNORE INTO wasq_results (id, module, module_name, task, input, queue, grp, outcome,
                    success, result, stderr, error, fuel, cpu_us, wall_us, memory_peak, attempts, enqueued_at,
                    started_at, stopped_at, cluster)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.id)
            .bind(r.module.to_string())
            .bind(&r.module_name)
            .bind(&r.task)
            .bind(&r.input)
            .bind(&r.queue)
            .bind(&r.group)
            .bind(&r.outcome)
            .bind(r.success)
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
            .execute(&mut *tx)
            .await?;
            saved.push(done.rows_affected() == 1);
        }
        if save_limit > 0 && results.iter().any(|r| r.success) {
            sqlx::query(
                "DELETE FROM wasq_results WHERE success = 1 AND stopped_at < (
                    SELECT stopped_at FROM wasq_results WHERE success = 1
                    ORDER BY stopped_at DESC LIMIT 1 OFFSET ?)",
            )
            .bind(save_limit - 1)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(saved)
    }

    /// The result of a task.
    pub async fn result(&self, id: &str) -> Result<Option<TaskResult>, StoreError> {
        let row = sqlx::query("SELECT * FROM wasq_results WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(TaskResult::from_row).transpose()
    }

    /// `(enqueued_at, stopped_at)` of stored results, in ms: for latency
    /// figures.
    pub async fn result_times(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query("SELECT enqueued_at, stopped_at FROM wasq_results")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("enqueued_at")?, row.try_get("stopped_at")?)))
            .collect()
    }

    /// Counts of stored results per outcome, and of rejected packages.
    pub async fn counts(&self) -> Result<OutcomeCounts, StoreError> {
        let rows = sqlx::query(
            "SELECT outcome, COUNT(*) AS n FROM wasq_results GROUP BY outcome ORDER BY outcome",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts = OutcomeCounts::default();
        for row in rows {
            let n = row.try_get::<i64, _>("n")? as u64;
            counts.by_outcome.push((row.try_get("outcome")?, n));
        }
        counts.rejected = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM wasq_rejected")
            .fetch_one(&self.pool)
            .await? as u64;
        Ok(counts)
    }

    /// Records a package that was refused (bad signature, undecodable).
    pub async fn record_rejected(&self, rejected: &Rejected) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO wasq_rejected (queue, broker_id, reason, size, at, cluster) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&rejected.queue)
            .bind(&rejected.broker_id)
            .bind(&rejected.reason)
            .bind(rejected.size as i64)
            .bind(rejected.at_ms)
            .bind(&rejected.cluster)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Rejected packages, newest first.
    pub async fn rejected(&self, limit: u32) -> Result<Vec<Rejected>, StoreError> {
        let rows = sqlx::query("SELECT * FROM wasq_rejected ORDER BY id DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Rejected {
                    queue: row.try_get("queue")?,
                    broker_id: row.try_get("broker_id")?,
                    reason: row.try_get("reason")?,
                    size: row.try_get::<i64, _>("size")? as u64,
                    at_ms: row.try_get("at")?,
                    cluster: row.try_get("cluster")?,
                })
            })
            .collect()
    }

    // ---- clusters ----

    /// Records a cluster's heartbeat.
    pub async fn heartbeat(&self, status: &ClusterStatus) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO wasq_clusters (id, name, label, host, pid, workers, started_at, heartbeat_at, in_flight, done, status)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, in_flight = excluded.in_flight,
                done = excluded.done, status = excluded.status",
        )
        .bind(&status.id)
        .bind(&status.name)
        .bind(&status.label)
        .bind(&status.host)
        .bind(i64::from(status.pid))
        .bind(status.workers as i64)
        .bind(status.started_at_ms)
        .bind(status.heartbeat_at_ms)
        .bind(status.in_flight as i64)
        .bind(status.done as i64)
        .bind(&status.status)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Clusters that sent a heartbeat within `within`.
    pub async fn clusters(&self, within: Duration) -> Result<Vec<ClusterStatus>, StoreError> {
        let since = now_ms() - within.as_millis() as i64;
        let rows =
            sqlx::query("SELECT * FROM wasq_clusters WHERE heartbeat_at >= ? ORDER BY started_at")
                .bind(since)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(ClusterStatus::from_row).collect()
    }

    /// Forgets a cluster (on graceful stop).
    pub async fn remove_cluster(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM wasq_clusters WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// SQLITE_BUSY: another connection holds the lock.
fn is_busy(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(sqlx::Error::Database(e)) if e.code().as_deref() == Some("5"))
}

fn parse_digest(s: &str) -> Result<Digest, StoreError> {
    s.parse()
        .map_err(|e: crate::DigestParseError| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests;
