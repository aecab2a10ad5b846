//! End-to-end throughput and idle latency of the queue on any broker: the
//! numbers in BENCHMARKS.md ("Brokers").
//!
//! ```text
//! cargo run --release -p wasq --example e2e -- BROKER_URL [STORE_URL|-] [TASKS] [WORKERS] [LATENCY_SAMPLES]
//! ```
//!
//! Defaults: a temporary SQLite store, 20,000 tasks, 8 workers, 1,000
//! latency samples. Needs `target/wasm/basics.wasm` (`cargo xtask build`).
//!
//! 1. Uploads the basics module and enqueues TASKS no-op tasks in bulk.
//! 2. Starts a cluster in this process and times it until every task is
//!    done (run, result saved, acknowledged): tasks per second.
//! 3. With the queue idle, enqueues one task at a time and times each from
//!    the call to `enqueue` until the cluster starts running it: the p50,
//!    p90 and p99 of enqueue-to-start latency.

use std::time::{Duration, Instant};

use wasq::{Client, Cluster, Config, Sandbox, TaskRequest};

const USAGE: &str = "usage: e2e BROKER_URL [STORE_URL|-] [TASKS] [WORKERS] [LATENCY_SAMPLES]";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = tempfile::tempdir()?;
    let broker = args.next().ok_or(USAGE)?;
    let store = args
        .next()
        .filter(|s| s != "-")
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("store.db").display()));
    let tasks: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let workers: usize = args.next().map_or(Ok(8), |a| a.parse())?;
    let samples: usize = args.next().map_or(Ok(1_000), |a| a.parse())?;

    // 1. Module and backlog. `WASQ_*` variables tune the rest (e.g.
    // WASQ_SAVE_LIMIT, WASQ_BULK, WASQ_QUEUE_LIMIT).
    let base = Config::load(None, std::env::vars())?;
    let config = Config {
        broker: broker.clone(),
        store: store.clone(),
        queue: format!("e2e-{}", wasq::package::new_task_id()),
        workers,
        cache_dir: Some(dir.path().join("cache")),
        ..base
    };
    let client = Client::connect(&config).await?;
    let wasm = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/wasm/basics.wasm");
    let bytes =
        std::fs::read(wasm).map_err(|e| format!("{wasm}: {e} (run `cargo xtask build`)"))?;
    client.upload(&bytes, Some("basics")).await?;
    println!(
        "broker {} ({}), store {}, {tasks} no-op tasks, {workers} workers",
        wasq_brokers::redact(&broker),
        client.broker().info().kind,
        client.store().kind(),
    );
    let started = Instant::now();
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(1000) {
        let requests: Vec<_> = chunk
            .iter()
            .map(|_| TaskRequest::new("basics", "noop"))
            .collect();
        client.enqueue_many(&requests).await?;
    }
    let enqueue = started.elapsed();

    // 2. Throughput.
    let sandbox = Sandbox::new(wasq::cluster::sandbox_config(&config))?;
    let cluster = Cluster::start(
        config.clone(),
        client.broker().clone(),
        client.store().clone(),
        sandbox,
    );
    let started = Instant::now();
    while (cluster.done() as usize) < tasks {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let run = started.elapsed();
    println!(
        "enqueue  {:>9.0} tasks/s  ({tasks} in {:.2?})",
        tasks as f64 / enqueue.as_secs_f64(),
        enqueue
    );
    println!(
        "run      {:>9.0} tasks/s  ({tasks} in {:.2?}: run, saved, acknowledged)",
        tasks as f64 / run.as_secs_f64(),
        run
    );

    // 3. Idle latency, one task at a time.
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let done = cluster.done();
        let t0 = Instant::now();
        client.enqueue(&TaskRequest::new("basics", "noop")).await?;
        // Sleep, not spin: a spinning waiter would take a core from the
        // cluster (and from the broker's server) on a small machine.
        while cluster.done() == done {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = cluster.last_start().ok_or("no task started")?;
        latencies.push(started.saturating_duration_since(t0));
        // Let the cluster go idle (waiting on the broker) again.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if !latencies.is_empty() {
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        println!(
            "latency  p50 {:.3?}  p90 {:.3?}  p99 {:.3?}  (enqueue to start, idle queue, {samples} samples)",
            at(0.5),
            at(0.9),
            at(0.99)
        );
    }
    cluster.stop(Duration::from_secs(10)).await;
    Ok(())
}
