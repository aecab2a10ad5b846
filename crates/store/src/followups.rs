//! What a finished task leaves to do: deferred tasks (retries after their
//! backoff, chain links, hooks, ETAs) and unique keys to release, saved with
//! the results; and what a cancel request found.

/// A signed task package to hand to the broker at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    /// Row id: the task id, or `task:attempt` for a retry.
    pub id: String,
    /// The task's id.
    pub task_id: String,
    /// Its queue.
    pub queue: String,
    /// Its priority.
    pub priority: i32,
    /// When to enqueue it, ms since the epoch.
    pub due_at_ms: i64,
    /// The signed package.
    pub package: Vec<u8>,
}

/// A deferred task caused by a finished task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followup {
    /// The finished task whose saved result it depends on; `None` for a
    /// retry (which saves no result).
    pub parent: Option<String>,
    /// The task.
    pub task: Deferred,
}

/// What a batch of finished tasks leaves to do, saved with their results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Followups {
    /// Tasks to enqueue (now or later).
    pub deferred: Vec<Followup>,
    /// Unique keys to release: `(key, task id)`.
    pub release: Vec<(String, String)>,
}

/// What a cancel request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelState {
    /// The task already has a result with this outcome.
    Finished(String),
    /// Recorded: clusters skip the task if it is queued and stop it if it
    /// runs. `deferred` holds the packages of its runs that were waiting
    /// for their time, removed now.
    Requested {
        /// Packages taken out of the deferred tasks.
        deferred: Vec<Vec<u8>>,
    },
}
