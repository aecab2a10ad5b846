//! The per-task limits a task record carries: overrides of the cluster's
//! sandbox limits.

use serde::{Deserialize, Serialize};

/// Per-task overrides of the sandbox limits; `None` takes the cluster's
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLimits {
    /// Wall-clock limit in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Fuel budget.
    pub fuel: Option<u64>,
    /// Linear memory limit in bytes.
    pub memory: Option<u64>,
}
