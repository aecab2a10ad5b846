//! What a benchmark run produces: one [`Run`] per system and workload (the same JSON shape that
//! `bench/peers/peer.py` prints for the Python queues), the [`Results`] file
//! (`bench/results/latest.json`), and the checks that every task was accounted for.

use serde::{Deserialize, Serialize};

/// The workloads every system runs, in the order of the tables.
pub(crate) const WORKLOADS: [&str; 5] = ["noop", "latency", "fib", "markdown", "memory"];

/// One workload on one system.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Run {
    /// `wasq-sqlite`, `celery`, …
    pub(crate) system: String,
    /// How tables name the system.
    #[serde(default)]
    pub(crate) label: String,
    /// One of [`WORKLOADS`].
    pub(crate) workload: String,
    /// The system's version (`celery 5.5.3`).
    #[serde(default)]
    pub(crate) version: String,
    #[serde(default)]
    pub(crate) broker: String,
    #[serde(default)]
    pub(crate) result_store: String,
    /// How the tasks were enqueued (`enqueue_many, 1,000 per call`).
    #[serde(default)]
    pub(crate) enqueue_method: String,
    #[serde(default)]
    pub(crate) workers: usize,
    /// Tasks enqueued.
    #[serde(default)]
    pub(crate) tasks: u64,
    /// Successful results counted in the system's own result store.
    #[serde(default)]
    pub(crate) counted: u64,
    /// `tasks - counted`.
    #[serde(default)]
    pub(crate) missing: u64,
    #[serde(default)]
    pub(crate) enqueue_s: Option<f64>,
    /// From the first enqueue until the last result was stored.
    #[serde(default)]
    pub(crate) total_s: Option<f64>,
    #[serde(default)]
    pub(crate) enqueue_per_s: Option<f64>,
    /// End-to-end tasks per second: `tasks / total_s`.
    #[serde(default)]
    pub(crate) per_s: Option<f64>,
    #[serde(default)]
    pub(crate) latency: Option<Latency>,
    #[serde(default)]
    pub(crate) memory: Option<Memory>,
    /// Why the run did not complete, in one line.
    #[serde(default)]
    pub(crate) error: Option<String>,
}

/// One task at a time into an idle cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Latency {
    pub(crate) samples: usize,
    /// From the enqueue call until the task started (the task's own clock).
    pub(crate) start_p50_ms: f64,
    pub(crate) start_p99_ms: f64,
    /// From the enqueue call until the producer saw the result.
    pub(crate) result_p50_ms: f64,
    pub(crate) result_p99_ms: f64,
}

/// Proportional set size of the cluster's whole process tree.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Memory {
    /// Started, warmed up, then idle.
    pub(crate) idle_kib: u64,
    /// The peak while working through `queued` tasks enqueued before it started.
    pub(crate) loaded_kib: u64,
    pub(crate) queued: u64,
}

/// wasq's tasks per second with a number of workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScalingPoint {
    pub(crate) system: String,
    pub(crate) label: String,
    pub(crate) workers: usize,
    pub(crate) tasks: u64,
    pub(crate) per_s: Option<f64>,
    pub(crate) error: Option<String>,
}

/// Everything one `cargo xtask bench` wrote: `bench/results/latest.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Results {
    /// When it ran (RFC 3339).
    pub(crate) date: String,
    /// The command that reproduces it.
    pub(crate) command: String,
    pub(crate) quick: bool,
    pub(crate) machine: crate::machine::Machine,
    /// Tasks per throughput workload.
    pub(crate) tasks: u64,
    /// Workers of every system.
    pub(crate) workers: usize,
    pub(crate) runs: Vec<Run>,
    pub(crate) scaling: Vec<ScalingPoint>,
}

impl Run {
    /// A run that could not start or finish, with the reason.
    pub(crate) fn failed(system: &str, label: &str, workload: &str, error: String) -> Self {
        Self {
            system: system.into(),
            label: label.into(),
            workload: workload.into(),
            error: Some(error),
            ..Self::default()
        }
    }

    /// Fills `missing` and `per_s`/`enqueue_per_s` from the counts and times.
    pub(crate) fn settle(&mut self) {
        self.missing = self.tasks.saturating_sub(self.counted);
        let rate =
            |seconds: Option<f64>| seconds.filter(|s| *s > 0.0).map(|s| self.tasks as f64 / s);
        if self.per_s.is_none() && self.missing == 0 {
            self.per_s = rate(self.total_s);
        }
        if self.enqueue_per_s.is_none() {
            self.enqueue_per_s = rate(self.enqueue_s);
        }
        if self.missing > 0 && self.error.is_none() {
            self.error = Some(format!(
                "{} of {} results missing from its result store",
                self.missing, self.tasks
            ));
        }
    }

    /// Whether it ran to the end with every task accounted for.
    pub(crate) fn complete(&self) -> bool {
        self.error.is_none() && self.missing == 0 && self.counted == self.tasks && self.tasks > 0
    }
}

impl Results {
    /// The run of `system` on `workload`.
    pub(crate) fn run(&self, system: &str, workload: &str) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| r.system == system && r.workload == workload)
    }

    /// One line per incomplete run or scaling point; empty when everything was accounted for.
    pub(crate) fn problems(&self) -> Vec<String> {
        let runs = self.runs.iter().filter(|r| !r.complete()).map(|r| {
            format!(
                "{} / {}: {}",
                r.label,
                r.workload,
                r.error.as_deref().unwrap_or("incomplete")
            )
        });
        let scaling = self.scaling.iter().filter_map(|p| {
            p.error
                .as_ref()
                .map(|e| format!("{} / scaling with {} workers: {e}", p.label, p.workers))
        });
        runs.chain(scaling).collect()
    }
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_counts_missing_results_as_an_error() {
        let mut run = Run {
            tasks: 100,
            counted: 97,
            total_s: Some(2.0),
            enqueue_s: Some(0.5),
            ..Run::default()
        };
        run.settle();
        assert_eq!(run.missing, 3);
        assert_eq!(run.per_s, None, "no throughput for an incomplete run");
        assert_eq!(run.enqueue_per_s, Some(200.0));
        assert!(!run.complete());
        assert!(run.error.as_deref().unwrap_or("").contains("3 of 100"));
    }

    #[test]
    fn a_complete_run_gets_its_rate() {
        let mut run = Run {
            tasks: 100,
            counted: 100,
            total_s: Some(0.5),
            ..Run::default()
        };
        run.settle();
        assert_eq!(run.per_s, Some(200.0));
        assert!(run.complete());
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), 51.0);
        assert_eq!(quantile(&values, 0.99), 99.0);
        assert_eq!(quantile(&values, 0.0), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn peer_json_with_extra_fields_parses() {
        let json = r#"{"system":"rq","workload":"noop","version":"rq 2.6.0","workers":4,
            "tasks":10,"counted":10,"missing":0,"enqueue_s":0.1,"total_s":1.0,
            "enqueue_per_s":100.0,"per_s":10.0,"latency":null,"memory":null,"error":null,
            "notes":"fork per job"}"#;
        let run: Run = serde_json::from_str(json).expect("parses");
        assert!(run.complete());
        assert_eq!(run.per_s, Some(10.0));
    }
}
