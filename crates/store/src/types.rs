//! The records the store keeps, and their JSON shapes.

use crate::backend::Columns;
use crate::{StoreError, parse_digest};
use wasq_core::workflow::AttemptRecord;
use wasq_core::{Digest, OutcomeKind};

pub use wasq_core::time::now_ms;

/// A module in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Content address.
    pub digest: Digest,
    /// Names pointing at it.
    pub names: Vec<String>,
    /// Size in bytes.
    pub size: u64,
    /// First upload, ms since the epoch.
    pub uploaded_at_ms: i64,
}

/// The stored result of one task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskResult {
    /// Task id.
    pub id: String,
    /// Module digest.
    pub module: Digest,
    /// Module name.
    pub module_name: String,
    /// Task name.
    pub task: String,
    /// The task's input JSON.
    pub input: String,
    /// Queue.
    pub queue: String,
    /// Group.
    pub group: Option<String>,
    /// An [`OutcomeKind`] name, or `abandoned` for a task given up after
    /// `max_attempts` deliveries without a result.
    pub outcome: String,
    /// Whether it succeeded.
    pub success: bool,
    /// stdout (within the output limit): a success's result, or what a
    /// failure printed (shown as its `stdout`, never as a result).
    pub result: Option<Vec<u8>>,
    /// The task's log.
    pub stderr: String,
    /// One-line error for failures with details (trap, invalid module…).
    pub error: Option<String>,
    /// Fuel burnt (None with fuel off).
    pub fuel: Option<u64>,
    /// CPU time, µs.
    pub cpu_us: u64,
    /// Wall time, µs.
    pub wall_us: u64,
    /// Peak linear memory, bytes.
    pub memory_peak: u64,
    /// Deliveries it took.
    pub attempts: u32,
    /// Enqueued, ms since the epoch.
    pub enqueued_at_ms: i64,
    /// Started, ms since the epoch.
    pub started_at_ms: i64,
    /// Finished, ms since the epoch.
    pub stopped_at_ms: i64,
    /// The cluster that ran it.
    pub cluster: String,
    /// Seconds to keep the result in the result cache instead of the
    /// database; `None` for a stored result.
    pub cached_secs: Option<u32>,
    /// The failed attempts before the last one (retries), oldest first.
    pub attempt_log: Vec<AttemptRecord>,
    /// The task's record (postcard), kept with failures so that
    /// `wasq failed resubmit` can enqueue it again.
    #[serde(skip)]
    pub record: Option<Vec<u8>>,
}

impl TaskResult {
    pub(super) fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.text("id")?,
            module: parse_digest(&row.text("module")?)?,
            module_name: row.text("module_name")?,
            task: row.text("task")?,
            input: row.text("input")?,
            queue: row.text("queue")?,
            group: row.opt_text("grp")?,
            outcome: row.text("outcome")?,
            success: row.int("success")? != 0,
            result: row.opt_bytes("result")?,
            stderr: row.text("stderr")?,
            error: row.opt_text("error")?,
            fuel: row.opt_int("fuel")?.map(|v| v as u64),
            cpu_us: row.int("cpu_us")? as u64,
            wall_us: row.int("wall_us")? as u64,
            memory_peak: row.int("memory_peak")? as u64,
            attempts: row.int("attempts")? as u32,
            enqueued_at_ms: row.int("enqueued_at")?,
            started_at_ms: row.int("started_at")?,
            stopped_at_ms: row.int("stopped_at")?,
            cluster: row.text("cluster")?,
            cached_secs: None,
            attempt_log: match row.opt_text("attempt_log")? {
                Some(json) => serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("attempt_log: {e}")))?,
                None => Vec::new(),
            },
            record: row.opt_bytes("record")?,
        })
    }

    /// The attempt log as stored: JSON, or NULL when there were no retries.
    pub(super) fn attempt_log_json(&self) -> Option<String> {
        (!self.attempt_log.is_empty())
            .then(|| serde_json::to_string(&self.attempt_log).unwrap_or_default())
    }

    /// The outcome as a kind (`None` only for a row this version does not
    /// know).
    pub fn outcome_kind(&self) -> Option<OutcomeKind> {
        OutcomeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == self.outcome)
    }

    /// The exit code `wasq` commands use for this result (as `wasq run`;
    /// 11 for `abandoned`).
    pub fn exit_code(&self) -> u8 {
        self.outcome_kind().map_or(1, OutcomeKind::exit_code)
    }

    /// The result value: stdout as JSON when it is JSON, else a string;
    /// `null` for failures.
    pub fn result_json(&self) -> serde_json::Value {
        match (&self.result, self.success) {
            (Some(bytes), true) => serde_json::from_slice(bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
            }),
            _ => serde_json::Value::Null,
        }
    }

    /// What a failed task printed to stdout (invalid UTF-8 replaced);
    /// `None` for a success (its stdout is its result) or when it printed
    /// nothing.
    pub fn failure_stdout(&self) -> Option<String> {
        match (&self.result, self.success) {
            (Some(bytes), false) if !bytes.is_empty() => {
                Some(String::from_utf8_lossy(bytes).into_owned())
            }
            _ => None,
        }
    }

    /// The report scripts read: the fields of `wasq run --json` plus the
    /// task's identity and times; a failure's output is its `stdout`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut report = serde_json::json!({
            "id": self.id,
            "outcome": self.outcome,
            "result": self.result_json(),
            "stderr": self.stderr,
            "error": self.error,
            "cpu_us": self.cpu_us,
            "duration_us": self.wall_us,
            "memory_peak_bytes": self.memory_peak,
            "fuel_consumed": self.fuel,
            "module": self.module_name,
            "digest": self.module.to_string(),
            "task": self.task,
            "queue": self.queue,
            "group": self.group,
            "attempts": self.attempts,
            "attempt_log": self.attempt_log,
            "enqueued_at_ms": self.enqueued_at_ms,
            "started_at_ms": self.started_at_ms,
            "stopped_at_ms": self.stopped_at_ms,
            "cluster": self.cluster,
        });
        if let Some(stdout) = self.failure_stdout() {
            report["stdout"] = stdout.into();
        }
        report
    }
}

/// Stored results per outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// `(outcome, count)`, by outcome name.
    pub by_outcome: Vec<(String, u64)>,
    /// Packages refused before running.
    pub rejected: u64,
}

impl OutcomeCounts {
    /// Successful results.
    pub fn successes(&self) -> u64 {
        self.by_outcome
            .iter()
            .filter(|(o, _)| o == "success")
            .map(|(_, n)| n)
            .sum()
    }

    /// Failed results.
    pub fn failures(&self) -> u64 {
        self.by_outcome
            .iter()
            .filter(|(o, _)| o != "success")
            .map(|(_, n)| n)
            .sum()
    }
}

/// A task running in a cluster, as its heartbeat reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunningTask {
    /// Task id.
    pub id: String,
    /// Module name.
    pub module: String,
    /// Task name.
    pub task: String,
    /// Tenant, if any.
    pub tenant: Option<String>,
    /// When it started, ms since the epoch.
    pub started_at_ms: i64,
    /// Its fuel budget.
    pub fuel_limit: u64,
}

/// What a running cluster reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// Unique id of this process: `name/host/pid/random`.
    pub id: String,
    /// Cluster name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Worker concurrency.
    pub workers: usize,
    /// Start, ms since the epoch.
    pub started_at_ms: i64,
    /// Last heartbeat, ms since the epoch.
    pub heartbeat_at_ms: i64,
    /// Tasks held (running or waiting for a worker).
    pub in_flight: u64,
    /// Tasks finished since start.
    pub done: u64,
    /// `running` or `stopping`.
    pub status: String,
    /// Tasks running at the heartbeat (at most [`RUNNING_REPORTED`]).
    pub running: Vec<RunningTask>,
}

/// The most running tasks a heartbeat reports.
pub const RUNNING_REPORTED: usize = 64;

impl ClusterStatus {
    pub(super) fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.text("id")?,
            name: row.text("name")?,
            label: row.text("label")?,
            host: row.text("host")?,
            pid: row.int("pid")? as u32,
            workers: row.int("workers")? as usize,
            started_at_ms: row.int("started_at")?,
            heartbeat_at_ms: row.int("heartbeat_at")?,
            in_flight: row.int("in_flight")? as u64,
            done: row.int("done")? as u64,
            status: row.text("status")?,
            running: row
                .opt_text("running")?
                .map(|json| serde_json::from_str(&json))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("running tasks: {e}")))?
                .unwrap_or_default(),
        })
    }
}
