//! Process-wide metrics, written in the Prometheus text format: tasks
//! enqueued, started and finished (by outcome and tenant), duration and
//! fuel histograms, lease renewals and losses, redeliveries, compile cache
//! hits and misses. Counters live in one registry behind a mutex (one
//! uncontended lock per event); gauges that are cheaper to read when
//! scraped (queue depth, pool slots, held tasks) are passed to
//! [`render`] by whoever serves `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, PoisonError};

/// Upper bounds of the duration histogram, seconds.
const DURATION_BOUNDS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0,
];
/// Upper bounds of the fuel histogram.
const FUEL_BOUNDS: [f64; 8] = [1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11];

/// Every metric: name, type, help.
const FAMILIES: [(&str, &str, &str); 12] = [
    (
        "wasq_tasks_enqueued_total",
        "counter",
        "Tasks enqueued by this process.",
    ),
    (
        "wasq_tasks_started_total",
        "counter",
        "Tasks that began to run.",
    ),
    (
        "wasq_tasks_finished_total",
        "counter",
        "Tasks that ended, by outcome.",
    ),
    (
        "wasq_task_duration_seconds",
        "histogram",
        "Wall time of finished tasks.",
    ),
    (
        "wasq_task_fuel",
        "histogram",
        "Fuel burnt by finished tasks (fuel on).",
    ),
    (
        "wasq_leases_renewed_total",
        "counter",
        "Leases of running tasks renewed.",
    ),
    (
        "wasq_leases_lost_total",
        "counter",
        "Leases found lost on renewal or acknowledgement.",
    ),
    (
        "wasq_redeliveries_total",
        "counter",
        "Tasks taken again after an earlier delivery.",
    ),
    (
        "wasq_compile_cache_hits_total",
        "counter",
        "Tasks whose module was compiled and in memory.",
    ),
    (
        "wasq_compile_cache_misses_total",
        "counter",
        "Tasks whose module had to be loaded or compiled.",
    ),
    ("wasq_queue_depth", "gauge", "Tasks waiting in a queue."),
    (
        "wasq_pool_slots_in_use",
        "gauge",
        "Sandbox pool slots taken by running tasks.",
    ),
];

#[derive(Debug, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: usize) -> Self {
        Self {
            buckets: vec![0; bounds],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, bounds: &[f64], value: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(bounds) {
            if value <= *bound {
                *bucket += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Registry {
    counters: BTreeMap<(&'static str, String), u64>,
    histograms: BTreeMap<(&'static str, String), Histogram>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Renders labels: `{a="x",b="y"}`, or nothing.
fn labels(pairs: &[(&str, &str)]) -> String {
    let shown: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            let escaped = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{escaped}\"")
        })
        .collect();
    if shown.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", shown.join(","))
    }
}

/// Adds `n` to counter `name` with `pairs` as labels.
pub fn count(name: &'static str, pairs: &[(&str, &str)], n: u64) {
    *registry()
        .counters
        .entry((name, labels(pairs)))
        .or_default() += n;
}

/// Counts tasks enqueued for `tenant` (`""`: none).
pub fn enqueued(tenant: &str, n: u64) {
    count("wasq_tasks_enqueued_total", &[("tenant", tenant)], n);
}

/// Records a task's end: its outcome, wall time and fuel.
pub fn finished(tenant: &str, outcome: &str, seconds: f64, fuel: Option<u64>) {
    let mut registry = registry();
    let by_tenant = labels(&[("tenant", tenant)]);
    *registry
        .counters
        .entry((
            "wasq_tasks_finished_total",
            labels(&[("outcome", outcome), ("tenant", tenant)]),
        ))
        .or_default() += 1;
    registry
        .histograms
        .entry(("wasq_task_duration_seconds", by_tenant.clone()))
        .or_insert_with(|| Histogram::new(DURATION_BOUNDS.len()))
        .observe(&DURATION_BOUNDS, seconds);
    if let Some(fuel) = fuel {
        registry
            .histograms
            .entry(("wasq_task_fuel", by_tenant))
            .or_insert_with(|| Histogram::new(FUEL_BOUNDS.len()))
            .observe(&FUEL_BOUNDS, fuel as f64);
    }
}

/// Gauges read when `/metrics` is scraped.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Tasks waiting, per queue.
    pub queue_depth: Vec<(String, u64)>,
    /// Pool slots in use, if this process runs tasks.
    pub pool_slots_in_use: Option<u64>,
}

/// The Prometheus text of every metric so far, with `gauges`.
pub fn render(gauges: &Gauges) -> String {
    let registry = registry();
    let mut out = String::new();
    for (name, kind, help) in FAMILIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        match kind {
            "counter" => {
                for ((family, labels), value) in &registry.counters {
                    if *family == name {
                        let _ = writeln!(out, "{name}{labels} {value}");
                    }
                }
            }
            "histogram" => {
                let bounds: &[f64] = if name == "wasq_task_fuel" {
                    &FUEL_BOUNDS
                } else {
                    &DURATION_BOUNDS
                };
                for ((family, labels), histogram) in &registry.histograms {
                    if *family != name {
                        continue;
                    }
                    let inner = labels.trim_start_matches('{').trim_end_matches('}');
                    let join = if inner.is_empty() { "" } else { "," };
                    for (bound, bucket) in bounds.iter().zip(&histogram.buckets) {
                        let _ =
                            writeln!(out, "{name}_bucket{{{inner}{join}le=\"{bound}\"}} {bucket}");
                    }
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{inner}{join}le=\"+Inf\"}} {}",
                        histogram.count
                    );
                    let _ = writeln!(out, "{name}_sum{labels} {}", histogram.sum);
                    let _ = writeln!(out, "{name}_count{labels} {}", histogram.count);
                }
            }
            _ if name == "wasq_queue_depth" => {
                for (queue, depth) in &gauges.queue_depth {
                    let _ = writeln!(out, "{name}{} {depth}", labels(&[("queue", queue)]));
                }
            }
            _ => {
                if let Some(slots) = gauges.pool_slots_in_use {
                    let _ = writeln!(out, "{name} {slots}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        count("wasq_leases_renewed_total", &[], 3);
        finished("acme", "success", 0.002, Some(5000));
        let text = render(&Gauges {
            queue_depth: vec![("default".into(), 4)],
            pool_slots_in_use: Some(1),
        });
        assert!(text.contains("# TYPE wasq_tasks_finished_total counter"));
        assert!(text.contains("wasq_tasks_finished_total{outcome=\"success\",tenant=\"acme\"}"));
        assert!(text.contains("wasq_task_duration_seconds_bucket{tenant=\"acme\",le=\"0.005\"}"));
        assert!(text.contains("wasq_task_fuel_count{tenant=\"acme\"}"));
        assert!(text.contains("wasq_queue_depth{queue=\"default\"} 4"));
        assert!(text.contains("wasq_pool_slots_in_use 1"));
        assert!(
            text.lines()
                .any(|l| l.starts_with("wasq_leases_renewed_total "))
        );
    }
}
