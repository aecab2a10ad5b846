//! The [`Store`] handle: connecting, modules, results, cluster heartbeats
//! and the batch save of results with their follow-ups. Other files add
//! methods for tenants, schedules, backlogs, dead letters and browsing.

use std::collections::HashSet;
use std::time::Duration;

use crate::backend::Backend;
use crate::cache::ResultCache;
use crate::error::{StoreError, parse_digest};
use crate::followups::Followups;
use crate::types::{ClusterStatus, ModuleInfo, OutcomeCounts, TaskResult, now_ms};
use wasq_core::Digest;

/// Handle to the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    /// Where results of tasks enqueued with a cache time go.
    pub(crate) cache: Option<ResultCache>,
}

impl Store {
    /// Opens the store at `url` and applies its migrations:
    /// `sqlite://PATH` (the file and its directories are created if
    /// missing) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let backend = Backend::connect(url).await?;
        Ok(Self {
            backend,
            cache: None,
        })
    }

    /// This store with a result cache (`redis://…`): results that carry a
    /// cache time are kept there, expiring, instead of in the database.
    pub async fn with_cache(mut self, url: &str) -> Result<Self, StoreError> {
        self.cache = Some(ResultCache::connect(url).await?);
        Ok(self)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
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
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(crate::sql::INSERT_MODULE_BYTES)
            .bind(digest.to_string())
            .bind(bytes)
            .bind(bytes.len() as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(name) = name {
                sqlx::query(
                    "INSERT INTO wasq_module_names (name, digest, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(digest.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(ModuleInfo {
            digest,
            names: name.map(|n| vec![n.to_owned()]).unwrap_or_default(),
            size: bytes.len() as u64,
            uploaded_at_ms: now,
        })
    }

    /// The bytes of a module.
    pub async fn module_bytes(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar("SELECT bytes FROM wasq_modules WHERE digest = $1")
                .bind(digest.to_string())
                .fetch_optional(pool)
                .await?
        }))
    }

    /// A module by name, or by digest (full, or a unique prefix of at least
    /// 8 hex digits).
    pub async fn resolve_module(
        &self,
        reference: &str,
    ) -> Result<Option<(Digest, String)>, StoreError> {
        let by_name: Option<String> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT digest FROM wasq_module_names WHERE name = $1")
                .bind(reference)
                .fetch_optional(pool)
                .await?
        });
        if let Some(digest) = by_name {
            return Ok(Some((parse_digest(&digest)?, reference.to_owned())));
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() < 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let found: Vec<String> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT digest FROM wasq_modules WHERE digest LIKE $1 LIMIT 2")
                .bind(format!("{}%", hex.to_ascii_lowercase()))
                .fetch_all(pool)
                .await?
        });
        match found.as_slice() {
            [one] => {
                let digest = parse_digest(one)?;
                let name: Option<String> = with_pool!(self, pool => {
                    sqlx::query_scalar(
                        "SELECT name FROM wasq_module_names WHERE digest = $1 ORDER BY name LIMIT 1",
                    )
                    .bind(one)
                    .fetch_optional(pool)
                    .await?
                });
                Ok(Some((digest, name.unwrap_or_else(|| digest.short()))))
            }
            _ => Ok(None),
        }
    }

    /// Every module with its names, newest first.
    pub async fn list_modules(&self) -> Result<Vec<ModuleInfo>, StoreError> {
        let modules: Vec<(String, i64, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT digest, size, uploaded_at FROM wasq_modules ORDER BY uploaded_at DESC, digest",
            )
            .fetch_all(pool)
            .await?
        });
        let names: Vec<(String, String)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT digest, name FROM wasq_module_names ORDER BY name")
                .fetch_all(pool)
                .await?
        });
        modules
            .into_iter()
            .map(|(digest, size, uploaded_at_ms)| {
                Ok(ModuleInfo {
                    names: names
                        .iter()
                        .filter(|(d, _)| *d == digest)
                        .map(|(_, n)| n.clone())
                        .collect(),
                    digest: parse_digest(&digest)?,
                    size: size as u64,
                    uploaded_at_ms,
                })
            })
            .collect()
    }

    /// Removes a module name; the bytes go too when no name is left.
    /// Returns whether the name existed.
    pub async fn remove_module(&self, name: &str) -> Result<bool, StoreError> {
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let digest: Option<String> =
                sqlx::query_scalar("DELETE FROM wasq_module_names WHERE name = $1 RETURNING digest")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(digest) = &digest {
                sqlx::query(
                    "DELETE FROM wasq_modules WHERE digest = $1
                     AND NOT EXISTS (SELECT 1 FROM wasq_module_names WHERE digest = $1)",
                )
                .bind(digest)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            digest.is_some()
        }))
    }

    // ---- results ----

    /// Saves results in one transaction. A result whose task already has
    /// one is ignored (the first completion wins: a late duplicate from a
    /// lost lease can neither overwrite nor duplicate it). Returns, per
    /// result, whether it was saved. Applies `save_limit` (0 keeps all
    /// successes, -1 none; failures are always kept), exactly, leaving a
    /// tombstone per success it prunes (see `prune.rs`).
    ///
    /// Results with a cache time go to the result cache when there is one
    /// (and to the database when there is none).
    pub async fn save_results(
        &self,
        results: &[TaskResult],
        save_limit: i64,
    ) -> Result<Vec<bool>, StoreError> {
        self.complete(results, &Followups::default(), save_limit)
            .await
    }

    /// [`save_results`](Self::save_results), and in the same transaction
    /// what follows from them: tasks to run later (the next link of a
    /// chain, a hook, a retry; each only if its parent's result was saved
    /// now, so a task finished twice starts them once) and unique keys to
    /// release.
    pub async fn complete(
        &self,
        results: &[TaskResult],
        followups: &Followups,
        save_limit: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let no_cached = HashSet::new();
        let Some(cache) = &self.cache else {
            return self
                .save_in_database(results, followups, &no_cached, save_limit)
                .await;
        };
        let (cached, stored): (Vec<_>, Vec<_>) =
            results.iter().partition(|r| r.cached_secs.is_some());
        if cached.is_empty() {
            return self
                .save_in_database(results, followups, &no_cached, save_limit)
                .await;
        }
        let in_cache = cache.put(&cached).await?;
        let cached_saved: HashSet<String> = cached
            .iter()
            .zip(&in_cache)
            .filter(|(_, saved)| **saved)
            .map(|(r, _)| r.id.clone())
            .collect();
        let mut in_cache = in_cache.into_iter();
        let stored: Vec<TaskResult> = stored.into_iter().cloned().collect();
        let mut in_database = self
            .save_in_database(&stored, followups, &cached_saved, save_limit)
            .await?
            .into_iter();
        Ok(results
            .iter()
            .map(|r| {
                let answers = if r.cached_secs.is_some() {
                    &mut in_cache
                } else {
                    &mut in_database
                };
                answers.next().unwrap_or(false)
            })
            .collect())
    }

    async fn save_in_database(
        &self,
        results: &[TaskResult],
        followups: &Followups,
        also_saved: &HashSet<String>,
        save_limit: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let keep = |r: &TaskResult| !(r.success && save_limit < 0);
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut saved = Vec::with_capacity(results.len());
                let mut tx = pool.begin().await?;
                for r in results {
                    if !keep(r) {
                        saved.push(true);
                        continue;
                    }
                    let done = insert_result!(tx, r);
                    saved.push(done.rows_affected() == 1);
                }
                for r in results {
                    sqlx::query(crate::sql::FORGET_SQLITE)
                        .bind(&r.id)
                        .execute(&mut *tx)
                        .await?;
                }
                let saved_ids: HashSet<&str> = results
                    .iter()
                    .zip(&saved)
                    .filter(|(_, saved)| **saved)
                    .map(|(r, _)| r.id.as_str())
                    .chain(also_saved.iter().map(String::as_str))
                    .collect();
                for id in released(results, also_saved) {
                    sqlx::query(crate::sql::DELETE_PENDING)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                write_followups!(tx, followups, saved_ids);
                crate::prune::sqlite(&mut tx, results, save_limit).await?;
                tx.commit().await?;
                Ok(saved)
            }
            Backend::Postgres(pool) => {
                // One statement for the whole batch: a round trip per row
                // would cap a cluster at a few thousand results a second.
                let kept: Vec<&TaskResult> = results.iter().filter(|r| keep(r)).collect();
                let texts =
                    |f: fn(&TaskResult) -> String| kept.iter().map(|r| f(r)).collect::<Vec<_>>();
                let ints =
                    |f: fn(&TaskResult) -> i64| kept.iter().map(|r| f(r)).collect::<Vec<_>>();
                let mut tx = pool.begin().await?;
                let inserted: Vec<String> = sqlx::query_scalar(crate::backend::INSERT_RESULTS_PG)
                    .bind(texts(|r| r.id.clone()))
                    .bind(texts(|r| r.module.to_string()))
                    .bind(texts(|r| r.module_name.clone()))
                    .bind(texts(|r| r.task.clone()))
                    .bind(texts(|r| r.input.clone()))
                    .bind(texts(|r| r.queue.clone()))
                    .bind(kept.iter().map(|r| r.group.clone()).collect::<Vec<_>>())
                    .bind(texts(|r| r.outcome.clone()))
                    .bind(ints(|r| i64::from(r.success)))
                    .bind(kept.iter().map(|r| r.result.clone()).collect::<Vec<_>>())
                    .bind(texts(|r| r.stderr.clone()))
                    .bind(kept.iter().map(|r| r.error.clone()).collect::<Vec<_>>())
                    .bind(
                        kept.iter()
                            .map(|r| r.fuel.map(|f| f as i64))
                            .collect::<Vec<_>>(),
                    )
                    .bind(ints(|r| r.cpu_us as i64))
                    .bind(ints(|r| r.wall_us as i64))
                    .bind(ints(|r| r.memory_peak as i64))
                    .bind(ints(|r| i64::from(r.attempts)))
                    .bind(ints(|r| r.enqueued_at_ms))
                    .bind(ints(|r| r.started_at_ms))
                    .bind(ints(|r| r.stopped_at_ms))
                    .bind(texts(|r| r.cluster.clone()))
                    .bind(
                        kept.iter()
                            .map(|r| r.attempt_log_json())
                            .collect::<Vec<_>>(),
                    )
                    .bind(kept.iter().map(|r| r.record.clone()).collect::<Vec<_>>())
                    .fetch_all(&mut *tx)
                    .await?;
                let saved_ids: HashSet<&str> = inserted
                    .iter()
                    .map(String::as_str)
                    .chain(results.iter().filter(|r| !keep(r)).map(|r| r.id.as_str()))
                    .chain(also_saved.iter().map(String::as_str))
                    .collect();
                sqlx::query(crate::sql::FORGET_POSTGRES)
                    .bind(results.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
                    .execute(&mut *tx)
                    .await?;
                let released: Vec<&str> = released(results, also_saved).collect();
                if !released.is_empty() {
                    sqlx::query("DELETE FROM wasq_tenant_pending WHERE task_id = ANY($1)")
                        .bind(released)
                        .execute(&mut *tx)
                        .await?;
                }
                write_followups!(tx, followups, saved_ids);
                crate::prune::postgres(&mut tx, results, save_limit).await?;
                tx.commit().await?;
                // A task id twice in one batch: only its first is saved.
                let mut inserted: std::collections::HashSet<String> =
                    inserted.into_iter().collect();
                Ok(results
                    .iter()
                    .map(|r| !keep(r) || inserted.remove(&r.id))
                    .collect())
            }
        }
    }

    /// The result of a task: from the result cache if it is there, else
    /// from the database.
    pub async fn result(&self, id: &str) -> Result<Option<TaskResult>, StoreError> {
        if let Some(cache) = &self.cache
            && let Some(result) = cache.get(id).await?
        {
            return Ok(Some(result));
        }
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT * FROM wasq_results WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(TaskResult::from_row).transpose()
        })
    }

    /// `(enqueued_at, stopped_at)` of stored results, in ms: for latency
    /// figures.
    pub async fn result_times(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as("SELECT enqueued_at, stopped_at FROM wasq_results")
                .fetch_all(pool)
                .await?
        }))
    }

    /// `(successes, failures)` among stored results, counted through the
    /// `(success, stopped_at)` index: cheap enough to poll while a cluster
    /// works, unlike [`Store::counts`], which groups every row by outcome.
    pub async fn result_totals(&self) -> Result<(u64, u64), StoreError> {
        let (successes, failures): (i64, i64) = with_pool!(self, pool => {
            let successes = sqlx::query_scalar("SELECT COUNT(*) FROM wasq_results WHERE success = 1")
                .fetch_one(pool)
                .await?;
            let failures = sqlx::query_scalar("SELECT COUNT(*) FROM wasq_results WHERE success = 0")
                .fetch_one(pool)
                .await?;
            (successes, failures)
        });
        Ok((successes as u64, failures as u64))
    }

    /// Counts of stored results per outcome, and of packages no cluster
    /// would run (see `dead_letter`).
    pub async fn counts(&self) -> Result<OutcomeCounts, StoreError> {
        let (by_outcome, rejected): (Vec<(String, i64)>, i64) = with_pool!(self, pool => {
            let by_outcome = sqlx::query_as(
                "SELECT outcome, COUNT(*) AS n FROM wasq_results GROUP BY outcome ORDER BY outcome",
            )
            .fetch_all(pool)
            .await?;
            let rejected = sqlx::query_scalar(
                "SELECT COUNT(*) FROM wasq_dead_letters WHERE dead_at IS NOT NULL",
            )
                .fetch_one(pool)
                .await?;
            (by_outcome, rejected)
        });
        Ok(OutcomeCounts {
            by_outcome: by_outcome
                .into_iter()
                .map(|(outcome, n)| (outcome, n as u64))
                .collect(),
            rejected: rejected as u64,
        })
    }

    // ---- clusters ----

    /// Records a cluster's heartbeat.
    pub async fn heartbeat(&self, status: &ClusterStatus) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO wasq_clusters (id, name, label, host, pid, workers, started_at, heartbeat_at, in_flight, done, status, running)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, in_flight = excluded.in_flight,
                    done = excluded.done, status = excluded.status, running = excluded.running",
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
            .bind(serde_json::to_string(&status.running).ok())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Clusters that sent a heartbeat within `within`, oldest first.
    pub async fn clusters(&self, within: Duration) -> Result<Vec<ClusterStatus>, StoreError> {
        let since = now_ms() - within.as_millis() as i64;
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT * FROM wasq_clusters WHERE heartbeat_at >= $1 ORDER BY started_at, id",
            )
            .bind(since)
            .fetch_all(pool)
            .await?;
            rows.iter().map(ClusterStatus::from_row).collect()
        })
    }

    /// Forgets a cluster (on graceful stop).
    pub async fn remove_cluster(&self, id: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM wasq_clusters WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

/// The tasks whose places in their tenants' backlogs a batch of results
/// releases: results of tenants' queues (whether saved now or a duplicate:
/// releasing twice is nothing) and results saved in the result cache.
fn released<'a>(
    results: &'a [TaskResult],
    also_saved: &'a HashSet<String>,
) -> impl Iterator<Item = &'a str> {
    results
        .iter()
        .filter(|r| wasq_core::tenant::queue_tenant(&r.queue).is_some())
        .map(|r| r.id.as_str())
        .chain(also_saved.iter().map(String::as_str))
}
