//! What a task carries beyond its own run: its retry policy and the
//! attempts so far, the links of a chain still to run, and its hook. These
//! travel inside the task package; the cluster's monitor acts on them once
//! the task ends (see `wasq-cluster`'s `monitor.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits::TaskLimits;
use crate::{Digest, OutcomeKind};

/// When and how often a failed task is tried again: exponential backoff
/// with jitter. The delay before attempt `n + 1` is
/// `min(backoff * factor^(n-1), backoff_max)`, less a random share of up
/// to `jitter` of it (so retries of many tasks spread out, and a delay
/// never exceeds the curve).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included: 1 never retries.
    pub max_attempts: u32,
    /// Delay before the second attempt, in milliseconds.
    pub backoff_ms: u64,
    /// Growth of the delay per attempt.
    pub factor: f64,
    /// Longest delay, in milliseconds.
    pub backoff_max_ms: u64,
    /// Share of each delay taken off at random, 0 to 1.
    pub jitter: f64,
    /// The outcomes that are retried.
    pub retry_on: Vec<OutcomeKind>,
}

impl Default for RetryPolicy {
    /// One attempt; when more are allowed: 1 s doubling up to 5 min with
    /// 25% jitter, on guest errors, traps and timeouts.
    fn default() -> Self {
        Self {
            max_attempts: 1,
            backoff_ms: 1000,
            factor: 2.0,
            backoff_max_ms: 300_000,
            jitter: 0.25,
            retry_on: vec![
                OutcomeKind::GuestError,
                OutcomeKind::Trap,
                OutcomeKind::Timeout,
            ],
        }
    }
}

impl RetryPolicy {
    /// Whether a task that ended with `outcome` on attempt `attempt` is
    /// tried again.
    pub fn retries(&self, outcome: OutcomeKind, attempt: u32) -> bool {
        attempt < self.max_attempts && self.retry_on.contains(&outcome)
    }

    /// The delay after failed attempt `attempt` (1-based), before jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(63) as i32;
        let ms = (self.backoff_ms as f64) * self.factor.max(1.0).powi(exponent);
        Duration::from_millis(ms.min(self.backoff_max_ms as f64) as u64)
    }

    /// The delay after failed attempt `attempt`, jitter applied; `random`
    /// is uniform in `[0, 1)`.
    pub fn jittered_delay(&self, attempt: u32, random: f64) -> Duration {
        let delay = self.delay(attempt);
        delay.mul_f64(1.0 - self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0))
    }

    /// Checks the numbers: a one-line error naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("max_attempts: must be 1 or more".into());
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(format!(
                "backoff_factor: must be 1 or more, got {}",
                self.factor
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!(
                "jitter: must be between 0 and 1, got {}",
                self.jitter
            ));
        }
        if self.backoff_max_ms < self.backoff_ms {
            return Err("backoff_max: must not be below backoff".into());
        }
        if let Some(kind) = self.retry_on.iter().find(|k| {
            matches!(
                k,
                OutcomeKind::Success | OutcomeKind::Cancelled | OutcomeKind::Abandoned
            )
        }) {
            return Err(format!(
                "retry_on: `{kind}` is never retried; use guest_error, trap, timeout, fuel_exhausted, memory_limit, output_limit, invalid_module or scratch_limit"
            ));
        }
        Ok(())
    }
}

/// One failed attempt of a task that was tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The attempt, from 1.
    pub attempt: u32,
    /// Its outcome (`guest_error`, `trap`, `timeout`…).
    pub outcome: String,
    /// Its error: the trap, or the task's stderr (cut to 1000 bytes).
    pub error: String,
    /// When it started and ended, ms since the epoch.
    pub started_at_ms: i64,
    /// When it ended.
    pub stopped_at_ms: i64,
    /// The delay chosen before the next attempt, in ms.
    pub retry_in_ms: u64,
}

/// A task of a chain that runs after the current one succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// Its task id, fixed when the chain is enqueued.
    pub id: String,
    /// Module digest.
    pub module: Digest,
    /// Module name.
    pub module_name: String,
    /// Task name.
    pub task: String,
    /// Its input: `{"args":[…],"kwargs":{…}}`.
    pub input: String,
    /// Queue.
    pub queue: String,
    /// Limits.
    pub limits: TaskLimits,
}

/// A task to run with the record of another once it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookTarget {
    /// Module digest.
    pub module: Digest,
    /// Module name.
    pub module_name: String,
    /// Task name.
    pub task: String,
}

/// The id of the hook task of task `id`: derived, so a task finished twice
/// (a lost lease) still runs one hook.
pub fn hook_id(id: &str) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(format!("wasq-hook:{id}").as_bytes());
    hex::encode(&hash[..16])
}

/// The input of the next link of a chain given the result of this one:
/// `result` prepended to its positional arguments.
pub fn pass_result(input: &str, result: serde_json::Value) -> String {
    let mut value: serde_json::Value =
        serde_json::from_str(input).unwrap_or_else(|_| serde_json::json!({}));
    let args = match value.get_mut("args") {
        Some(serde_json::Value::Array(args)) => args,
        _ => {
            value["args"] = serde_json::json!([]);
            match value.get_mut("args") {
                Some(serde_json::Value::Array(args)) => args,
                _ => return input.to_owned(),
            }
        }
    };
    args.insert(0, result);
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_that_never_end_a_run_again_are_refused_in_retry_on() {
        for kind in [
            OutcomeKind::Success,
            OutcomeKind::Cancelled,
            OutcomeKind::Abandoned,
        ] {
            let policy = RetryPolicy {
                retry_on: vec![OutcomeKind::Trap, kind],
                ..RetryPolicy::default()
            };
            let error = policy.validate().unwrap_err();
            assert!(error.contains(kind.as_str()), "{error}");
        }
        assert_eq!(RetryPolicy::default().validate(), Ok(()));
    }

    #[test]
    fn delays_grow_and_stop_at_the_maximum() {
        let policy = RetryPolicy {
            max_attempts: 10,
            backoff_ms: 100,
            factor: 3.0,
            backoff_max_ms: 2000,
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let delays: Vec<u64> = (1..=5)
            .map(|n| policy.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 300, 900, 2000, 2000]);
        assert_eq!(policy.delay(1000), Duration::from_millis(2000));
    }

    #[test]
    fn jitter_only_shortens() {
        let policy = RetryPolicy {
            jitter: 0.5,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.jittered_delay(1, 0.0), Duration::from_millis(1000));
        assert_eq!(policy.jittered_delay(1, 0.5), Duration::from_millis(750));
        assert!(policy.jittered_delay(1, 0.999) >= Duration::from_millis(500));
    }

    #[test]
    fn retries_only_listed_outcomes_while_attempts_remain() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(policy.retries(OutcomeKind::GuestError, 1));
        assert!(policy.retries(OutcomeKind::Timeout, 2));
        assert!(!policy.retries(OutcomeKind::Trap, 3));
        assert!(!policy.retries(OutcomeKind::FuelExhausted, 1));
        assert!(!RetryPolicy::default().retries(OutcomeKind::GuestError, 1));
    }

    #[test]
    fn validation_names_the_field() {
        let bad = RetryPolicy {
            jitter: 2.0,
            ..RetryPolicy::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("jitter:"));
        let bad = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("max_attempts:"));
    }

    #[test]
    fn results_are_passed_as_the_first_argument() {
        let next = pass_result(r#"{"args":[2],"kwargs":{"k":1}}"#, serde_json::json!(40));
        assert_eq!(next, r#"{"args":[40,2],"kwargs":{"k":1}}"#);
        let next = pass_result(r#"{"kwargs":{}}"#, serde_json::json!("x"));
        assert_eq!(next, r#"{"kwargs":{},"args":["x"]}"#);
    }

    #[test]
    fn hook_ids_are_stable_and_distinct() {
        assert_eq!(hook_id("a"), hook_id("a"));
        assert_ne!(hook_id("a"), hook_id("b"));
        assert_eq!(hook_id("a").len(), 32);
    }
}
