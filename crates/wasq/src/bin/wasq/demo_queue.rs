//! The queue demo: a temporary embedded setup (broker and store in one
//! SQLite file), the example modules uploaded, a cluster, thousands of mixed
//! tasks with a progress bar, then a summary and a graceful stop.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use wasq::package::TaskLimits;
use wasq::store::Store;
use wasq::{Client, Cluster, Config, Sandbox, TaskRequest};

use crate::cli_error::CliError;

/// The mix: mostly real work, and a few tasks that hit each limit.
fn request(i: usize) -> TaskRequest {
    let text = "the quick brown fox jumps over the lazy dog and runs away";
    let base = |module: &str, task: &str, args| TaskRequest::new(module, task).args(args);
    match i % 1000 {
        0 => TaskRequest {
            limits: TaskLimits {
                timeout_ms: Some(200),
                ..TaskLimits::default()
            },
            ..base("basics", "spin", json!([]))
        },
        1 => TaskRequest {
            limits: TaskLimits {
                fuel: Some(5_000_000),
                ..TaskLimits::default()
            },
            ..base("basics", "spin", json!([]))
        },
        2 => base("basics", "panic", json!([])),
        3 => base("basics", "fail", json!([])),
        n if n % 3 == 0 => base("basics", "fib", json!([15 + n % 6])),
        n if n % 3 == 1 => base("basics", "wordcount", json!([text.repeat(1 + n % 8)])),
        n => base(
            "markdown",
            "render",
            json!([format!("# Task {n}\\n\\nSome *markdown* with `code`.")]),
        ),
    }
}

pub(crate) async fn run(
    wasm_dir: &Path,
    tasks: usize,
    workers: Option<usize>,
    noop: bool,
) -> Result<ExitCode, CliError> {
    let dir = tempfile::tempdir()
        .context("cannot make a temporary directory")
        .map_err(CliError::other)?;
    let db = format!("sqlite://{}", dir.path().join("wasq.db").display());
    let mut config = Config {
        broker: db.clone(),
        store: db,
        save_limit: 0,
        secret: wasq::package::new_task_id(),
        cache_dir: Some(dir.path().join("modules")),
        ..Config::default()
    };
    if let Some(workers) = workers {
        config.workers = workers.max(1);
    }
    println!(
        "embedded setup in {} ({} workers)",
        dir.path().display(),
        config.workers
    );

    let client = Client::connect(&config).await?;
    let mut modules = Vec::new();
    for name in ["basics", "markdown"] {
        let bytes = read_example(wasm_dir, name)?;
        let info = client.upload(&bytes, Some(name)).await?;
        println!("uploaded {name:<9} sha256:{}", info.digest.short());
        modules.push(bytes);
    }

    let broker = client.broker().clone();
    let store: Store = client.store().clone();
    let sandbox = Sandbox::new(crate::settings::isolated(wasq::cluster::sandbox_config(
        &config,
    ))?)?;
    // Compile the modules before the clock starts, as a warm cluster would have them.
    for bytes in &modules {
        sandbox.load(bytes).await?;
    }
    let cluster = Cluster::start(config, broker, store.clone(), sandbox);

    let started = Instant::now();
    let requests: Vec<TaskRequest> = if noop {
        vec![TaskRequest::new("basics", "noop"); tasks]
    } else {
        (0..tasks).map(request).collect()
    };
    for chunk in requests.chunks(1000) {
        client.enqueue_many(chunk).await?;
    }
    let enqueued_in = started.elapsed();
    println!(
        "enqueued {tasks} tasks in {:.2}s ({:.0}/s)",
        enqueued_in.as_secs_f64(),
        tasks as f64 / enqueued_in.as_secs_f64()
    );

    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = cluster.done() as usize;
        progress(done, tasks, started.elapsed());
        if done >= tasks {
            break;
        }
        if Instant::now() > deadline {
            println!();
            return Err(CliError::other(anyhow::anyhow!(
                "only {done} of {tasks} tasks finished in 10 minutes"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    println!();

    let counts = store.counts().await.map_err(CliError::other)?;
    let mut latencies: Vec<i64> = store
        .result_times()
        .await
        .map_err(CliError::other)?
        .into_iter()
        .map(|(enqueued, stopped)| stopped - enqueued)
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let total: u64 = counts.by_outcome.iter().map(|(_, n)| n).sum();
    println!("\n{:<16} {:>7}", "outcome", "tasks");
    for (outcome, n) in &counts.by_outcome {
        println!("{outcome:<16} {n:>7}");
    }
    println!("{:<16} {:>7}", "total", total);
    println!(
        "\n{tasks} tasks in {:.2}s: {:.0} tasks/s end to end; enqueue to finish p50 {} ms, p99 {} ms",
        elapsed.as_secs_f64(),
        tasks as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99)
    );
    print!("stopping the cluster… ");
    let _ = std::io::stdout().flush();
    cluster.stop(Duration::from_secs(10)).await;
    println!("stopped");
    if total as usize != tasks {
        return Err(CliError::other(anyhow::anyhow!(
            "{total} results for {tasks} tasks"
        )));
    }
    Ok(ExitCode::SUCCESS)
}

fn progress(done: usize, total: usize, elapsed: Duration) {
    const WIDTH: usize = 30;
    let filled = done * WIDTH / total.max(1);
    print!(
        "\r[{}{}] {done:>6}/{total} tasks  {:>7.0}/s",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        done as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    let _ = std::io::stdout().flush();
}

/// Reads an example module built by `cargo xtask build`.
pub(crate) fn read_example(wasm_dir: &std::path::Path, name: &str) -> Result<Vec<u8>, CliError> {
    let path = wasm_dir.join(format!("{name}.wasm"));
    std::fs::read(&path)
        .with_context(|| {
            format!(
                "cannot read {}; build the examples with `cargo xtask build`",
                path.display()
            )
        })
        .map_err(CliError::usage)
}
