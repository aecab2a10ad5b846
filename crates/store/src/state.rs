//! Where a task stands, as `wasq result` and `GET /v1/tasks/{id}` tell it:
//! finished (its result), finished but pruned by `save_limit` (a
//! tombstone, see `prune.rs`), running (a cluster's heartbeat lists it;
//! heartbeats list up to [`RUNNING_REPORTED`](crate::RUNNING_REPORTED)
//! tasks each), queued (a deferred task — an ETA, a retry waiting for its
//! backoff — with the time it is due; a tenant's task holding a place in
//! its backlog), or unknown.
//!
//! Plain untenanted tasks in the broker have no row in the store (one
//! write per enqueue would cost the hot path), so for them "unknown" is
//! all the store can say: still queued, or never enqueued.

use std::time::Duration;

use crate::{Store, StoreError, TaskResult};

/// How recent a heartbeat must be for its running tasks to count.
const HEARTBEAT_FRESH: Duration = Duration::from_secs(10);

/// A result `save_limit` pruned: what is left of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// Task id.
    pub id: String,
    /// How it ended.
    pub outcome: String,
    /// When it finished, ms since the epoch.
    pub stopped_at_ms: i64,
    /// When its result was pruned, ms since the epoch.
    pub pruned_at_ms: i64,
}

/// Where a task stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// It has a result.
    Finished(Box<TaskResult>),
    /// It finished; its result was pruned by `save_limit`.
    Pruned(Tombstone),
    /// A cluster runs it.
    Running {
        /// The cluster's id.
        cluster: String,
        /// When it started, ms since the epoch.
        started_at_ms: i64,
    },
    /// It waits to run.
    Queued {
        /// When it is due, when it is deferred (an ETA, a retry's
        /// backoff); `None` when it waits in the broker.
        due_at_ms: Option<i64>,
    },
    /// The store knows nothing of it: still queued in the broker (plain
    /// tasks have no row before they finish), or never enqueued.
    Unknown,
}

impl TaskState {
    /// `finished`, `pruned`, `running`, `queued` or `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Finished(_) => "finished",
            Self::Pruned(_) => "pruned",
            Self::Running { .. } => "running",
            Self::Queued { .. } => "queued",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the task has ended (its result kept or pruned).
    pub fn has_ended(&self) -> bool {
        matches!(self, Self::Finished(_) | Self::Pruned(_))
    }

    /// The details of a state without a result, as JSON fields besides
    /// `state`: `outcome`, `stopped_at_ms` and `pruned_at_ms` when pruned;
    /// `cluster` and `started_at_ms` when running; `due_at_ms` when
    /// queued (null unless deferred). Empty for the others.
    pub fn details_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let value = match self {
            Self::Pruned(t) => serde_json::json!({
                "outcome": t.outcome,
                "stopped_at_ms": t.stopped_at_ms,
                "pruned_at_ms": t.pruned_at_ms,
            }),
            Self::Running {
                cluster,
                started_at_ms,
            } => serde_json::json!({ "cluster": cluster, "started_at_ms": started_at_ms }),
            Self::Queued { due_at_ms } => serde_json::json!({ "due_at_ms": due_at_ms }),
            Self::Finished(_) | Self::Unknown => serde_json::json!({}),
        };
        match value {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }
}

impl Store {
    /// Where task `id` stands: its result first, then its tombstone, a
    /// heartbeat that lists it running, its deferred runs, its tenant's
    /// backlog; read once more for a result if none of those knows it (it
    /// may have finished meanwhile).
    pub async fn task_state(&self, id: &str) -> Result<TaskState, StoreError> {
        if let Some(ended) = self.ended(id).await? {
            return Ok(ended);
        }
        let running = self
            .clusters(HEARTBEAT_FRESH)
            .await?
            .into_iter()
            .find_map(|c| {
                let task = c.running.into_iter().find(|t| t.id == id)?;
                Some((c.id, task.started_at_ms))
            });
        if let Some((cluster, started_at_ms)) = running {
            return Ok(TaskState::Running {
                cluster,
                started_at_ms,
            });
        }
        let (due_at_ms, pending): (Option<i64>, i64) = with_pool!(self, pool => {
            let due = sqlx::query_scalar("SELECT MIN(due_at) FROM wasq_deferred WHERE task_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?;
            let pending = sqlx::query_scalar(
                "SELECT COUNT(*) FROM wasq_tenant_pending WHERE task_id = $1",
            )
            .bind(id)
            .fetch_one(pool)
            .await?;
            (due, pending)
        });
        if due_at_ms.is_some() || pending > 0 {
            return Ok(TaskState::Queued { due_at_ms });
        }
        Ok(self.ended(id).await?.unwrap_or(TaskState::Unknown))
    }

    /// Task `id`'s state if it has ended: its result, else its tombstone.
    pub async fn ended(&self, id: &str) -> Result<Option<TaskState>, StoreError> {
        if let Some(result) = self.result(id).await? {
            return Ok(Some(TaskState::Finished(Box::new(result))));
        }
        Ok(self.tombstone(id).await?.map(TaskState::Pruned))
    }

    /// The tombstone of task `id`, if `save_limit` pruned its result
    /// (among the newest [`TOMBSTONES`](crate::TOMBSTONES)).
    pub async fn tombstone(&self, id: &str) -> Result<Option<Tombstone>, StoreError> {
        let row: Option<(String, i64, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT outcome, stopped_at, pruned_at FROM wasq_pruned WHERE task_id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(outcome, stopped_at_ms, pruned_at_ms)| Tombstone {
            id: id.to_owned(),
            outcome,
            stopped_at_ms,
            pruned_at_ms,
        }))
    }
}
