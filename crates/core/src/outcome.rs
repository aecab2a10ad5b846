//! How a task ended: the closed [`Outcome`] enum, the resources it used
//! ([`Usage`]), and the [`Execution`] report that carries both with the
//! task's output.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which output stream went over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// The result stream.
    Stdout,
    /// The log stream.
    Stderr,
}

impl OutputStream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// Which scratch quota a task went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScratchQuota {
    /// Bytes of the files in its scratch directory.
    Bytes,
    /// Files, directories and links in its scratch directory.
    Entries,
    /// How deep directories nest in its scratch directory.
    Depth,
}

impl ScratchQuota {
    /// `bytes`, `entries` or `depth`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bytes => "bytes",
            Self::Entries => "entries",
            Self::Depth => "depth",
        }
    }
}

/// How a task ended. Closed: every execution ends in exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Exit code 0; stdout is the result.
    Success,
    /// The guest exited with a non-zero code (any: 126 and more too, as
    /// C's `exit(200)` or AssemblyScript's `abort`); stderr says why.
    GuestError {
        /// The exit code, as the guest passed it (C's `exit(-1)` is -1).
        code: i32,
    },
    /// The guest trapped (unreachable, out-of-bounds access, stack overflow…).
    Trap {
        /// The trap, one line.
        message: String,
    },
    /// The wall-clock limit passed.
    Timeout,
    /// The fuel budget ran out.
    FuelExhausted,
    /// The task failed after a memory or table grow was refused.
    MemoryLimit,
    /// The task wrote more than its limit to stdout or stderr.
    OutputLimit {
        /// The stream that overflowed.
        stream: OutputStream,
    },
    /// The module could not be compiled or instantiated.
    InvalidModule {
        /// What is wrong with it, one line.
        message: String,
    },
    /// Cancelled from outside (`wasq cancel`) before or while it ran.
    Cancelled,
    /// The task went over a quota of its scratch directory and was
    /// stopped (whether or not it would have succeeded).
    ScratchLimit {
        /// The quota it went over.
        what: ScratchQuota,
    },
}

/// The name of an [`Outcome`] without its data, as used in JSON and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// See [`Outcome::Success`].
    Success,
    /// See [`Outcome::GuestError`].
    GuestError,
    /// See [`Outcome::Trap`].
    Trap,
    /// See [`Outcome::Timeout`].
    Timeout,
    /// See [`Outcome::FuelExhausted`].
    FuelExhausted,
    /// See [`Outcome::MemoryLimit`].
    MemoryLimit,
    /// See [`Outcome::OutputLimit`].
    OutputLimit,
    /// See [`Outcome::InvalidModule`].
    InvalidModule,
    /// See [`Outcome::Cancelled`].
    Cancelled,
    /// See [`Outcome::ScratchLimit`].
    ScratchLimit,
    /// Not an ending of a run: the task started and never ended more times
    /// than its `max_attempts` (each run took its cluster down, or lost its
    /// lease), so a cluster recorded it without running it again.
    Abandoned,
}

impl OutcomeKind {
    /// Every kind, in the order of their exit codes.
    pub const ALL: [OutcomeKind; 11] = [
        Self::Success,
        Self::GuestError,
        Self::Trap,
        Self::Timeout,
        Self::FuelExhausted,
        Self::MemoryLimit,
        Self::OutputLimit,
        Self::InvalidModule,
        Self::Cancelled,
        Self::ScratchLimit,
        Self::Abandoned,
    ];

    /// The snake_case name: `success`, `guest_error`, `fuel_exhausted`…
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::GuestError => "guest_error",
            Self::Trap => "trap",
            Self::Timeout => "timeout",
            Self::FuelExhausted => "fuel_exhausted",
            Self::MemoryLimit => "memory_limit",
            Self::OutputLimit => "output_limit",
            Self::InvalidModule => "invalid_module",
            Self::Cancelled => "cancelled",
            Self::ScratchLimit => "scratch_limit",
            Self::Abandoned => "abandoned",
        }
    }

    /// The exit code `wasq run` uses for this outcome. 2 is left for usage
    /// errors: 0 success, 1 guest error, 3 trap, 4 timeout, 5 fuel
    /// exhausted, 6 memory limit, 7 output limit, 8 invalid module, 9
    /// cancelled, 10 scratch limit, 11 abandoned.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::GuestError => 1,
            Self::Trap => 3,
            Self::Timeout => 4,
            Self::FuelExhausted => 5,
            Self::MemoryLimit => 6,
            Self::OutputLimit => 7,
            Self::InvalidModule => 8,
            Self::Cancelled => 9,
            Self::ScratchLimit => 10,
            Self::Abandoned => 11,
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Outcome {
    /// The name of this outcome without its data.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Self::Success => OutcomeKind::Success,
            Self::GuestError { .. } => OutcomeKind::GuestError,
            Self::Trap { .. } => OutcomeKind::Trap,
            Self::Timeout => OutcomeKind::Timeout,
            Self::FuelExhausted => OutcomeKind::FuelExhausted,
            Self::MemoryLimit => OutcomeKind::MemoryLimit,
            Self::OutputLimit { .. } => OutcomeKind::OutputLimit,
            Self::InvalidModule { .. } => OutcomeKind::InvalidModule,
            Self::Cancelled => OutcomeKind::Cancelled,
            Self::ScratchLimit { .. } => OutcomeKind::ScratchLimit,
        }
    }

    /// Whether the task succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }
}

/// Resources a task used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU time on the threads that ran the task (zero when CPU metering is
    /// off).
    pub cpu: Duration,
    /// Wall-clock time from instantiation to exit.
    pub wall: Duration,
    /// Largest total of linear memory the task had (every memory of its
    /// instance together), in bytes.
    pub memory_peak: u64,
    /// Fuel burnt; `None` when fuel is off.
    pub fuel_consumed: Option<u64>,
}

/// The report of one task execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// How it ended.
    pub outcome: Outcome,
    /// What it wrote to stdout (its result), up to the limit.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr (its log), up to the limit.
    pub stderr: Vec<u8>,
    /// What it used.
    pub usage: Usage,
}

impl Execution {
    /// An execution that never started because its module is invalid.
    pub fn invalid_module(message: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::InvalidModule {
                message: message.into(),
            },
            stdout: Vec::new(),
            stderr: Vec::new(),
            usage: Usage::default(),
        }
    }

    /// The result as JSON: stdout parsed as JSON when it is JSON, otherwise
    /// as a string; `null` when the task did not succeed.
    pub fn result_json(&self) -> serde_json::Value {
        if !self.outcome.is_success() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&self.stdout).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&self.stdout).into_owned())
        })
    }

    /// The log as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The report scripts read (`wasq run --json`): outcome, result, log,
    /// usage, and for failures with details an `error` (and `exit_code`);
    /// a failure that printed to stdout has it as `stdout` (never as its
    /// `result`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut report = serde_json::json!({
            "outcome": self.outcome.kind(),
            "result": self.result_json(),
            "stderr": self.stderr_text(),
            "cpu_us": self.usage.cpu.as_micros() as u64,
            "duration_us": self.usage.wall.as_micros() as u64,
            "memory_peak_bytes": self.usage.memory_peak,
            "fuel_consumed": self.usage.fuel_consumed,
        });
        let detail = match &self.outcome {
            Outcome::GuestError { code } => {
                report["exit_code"] = (*code).into();
                None
            }
            Outcome::Trap { message } | Outcome::InvalidModule { message } => Some(message.clone()),
            Outcome::OutputLimit { stream } => {
                Some(format!("{} is over its limit", stream.as_str()))
            }
            Outcome::ScratchLimit { what } => Some(format!(
                "its scratch directory went over its {} quota",
                what.as_str()
            )),
            _ => None,
        };
        if let Some(detail) = detail {
            report["error"] = detail.into();
        }
        if !self.outcome.is_success() && !self.stdout.is_empty() {
            report["stdout"] = String::from_utf8_lossy(&self.stdout).into_owned().into();
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_exit_codes() {
        let mut codes: Vec<u8> = OutcomeKind::ALL.iter().map(|k| k.exit_code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), OutcomeKind::ALL.len());
        assert!(!codes.contains(&2), "2 is reserved for usage errors");
    }

    #[test]
    fn outcome_serializes_with_its_kind() {
        let json = serde_json::to_value(Outcome::OutputLimit {
            stream: OutputStream::Stdout,
        })
        .unwrap();
        assert_eq!(json["outcome"], "output_limit");
        assert_eq!(json["stream"], "stdout");
        assert_eq!(
            serde_json::to_value(OutcomeKind::FuelExhausted).unwrap(),
            "fuel_exhausted"
        );
    }

    #[test]
    fn report_has_the_documented_fields() {
        let e = Execution {
            outcome: Outcome::GuestError { code: 3 },
            stdout: Vec::new(),
            stderr: b"bad".to_vec(),
            usage: Usage {
                cpu: Duration::from_micros(5),
                wall: Duration::from_micros(9),
                memory_peak: 65536,
                fuel_consumed: Some(7),
            },
        };
        let json = e.to_json();
        assert_eq!(json["outcome"], "guest_error");
        assert_eq!(json["exit_code"], 3);
        assert_eq!(json["stderr"], "bad");
        assert_eq!(json["cpu_us"], 5);
        assert_eq!(json["duration_us"], 9);
        assert_eq!(json["memory_peak_bytes"], 65536);
        assert_eq!(json["fuel_consumed"], 7);
        assert!(json["result"].is_null());
    }

    #[test]
    fn result_is_json_or_text() {
        let mut e = Execution::invalid_module("x");
        assert!(e.result_json().is_null());
        e.outcome = Outcome::Success;
        e.stdout = b"75025".to_vec();
        assert_eq!(e.result_json(), serde_json::json!(75025));
        e.stdout = b"plain words".to_vec();
        assert_eq!(e.result_json(), serde_json::json!("plain words"));
    }
}
