//! The store: task results, the module registry (the bytes live here, so
//! every worker of every machine can fetch them), refused packages and
//! cluster heartbeats. Two backends behind one API: SQLite (one file, the
//! embedded default) and PostgreSQL (for many machines). The SQL is written
//! once where the dialects agree (`$1` parameters work in both) and per
//! backend where they do not (schema, bulk inserts, locking).

#[macro_use]
mod macros;

mod backend;
mod backlog;
mod browse;
mod cache;
mod dead_letter;
mod error;
mod followups;
mod prune;
mod runs;
pub mod schedule;
mod schedules;
mod schema;
mod sql;
mod state;
mod store;
mod tenants;
mod types;
mod workflow;

pub use browse::{OutcomeBucket, ResultFilter, WaitingTask};
pub use dead_letter::{DeadLetter, Refusal};
pub use error::{BacklogFull, StoreError};
use error::{parse_digest, unreachable};
pub use followups::{CancelState, Deferred, Followup, Followups};
pub use prune::TOMBSTONES;
pub use schedules::{Schedule, ScheduleFire, ScheduleSpec};
pub use state::{TaskState, Tombstone};
pub use store::Store;
pub use tenants::{AuditEntry, StoredKey, TenantModule};
pub use types::{
    ClusterStatus, ModuleInfo, OutcomeCounts, RUNNING_REPORTED, RunningTask, TaskResult, now_ms,
};

#[cfg(test)]
mod tests;
