//! `wasq-fairness`: how long a small tenant's task waits to start while
//! another tenant keeps every worker busy with long tasks. `cargo xtask
//! bench fairness` builds it and runs it; by hand, build `wasq` in release
//! and the guests first (`cargo xtask build`).
//!
//! 1. A fresh SQLite broker and store in a temporary directory, tenants
//!    `big` and `small`, each with `basics.wasm`.
//! 2. A `wasq cluster` with `--workers` workers (4).
//! 3. `big` enqueues `--long` (200) `sleep` tasks of `--sleep-ms` (2000).
//! 4. Once they run, `small` enqueues one `noop` at a time, `--samples`
//!    times, and each one's enqueue → start time is read from its result.
//!
//! It runs twice: with the default share (`tenant_max_running` =
//! workers − 1) and with `tenant_max_running` = workers (nothing held
//! back: the small tenant waits for a long task to end).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use wasq::tenant::{Quotas, Tenant};
use wasq::{Client, Config, TaskRequest};

/// The small tenant's wait behind the big tenant's long tasks.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Workers of the cluster.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Long tasks of the big tenant.
    #[arg(long, default_value_t = 200)]
    long: usize,
    /// How long each sleeps, ms.
    #[arg(long, default_value_t = 2000)]
    sleep_ms: u64,
    /// Tasks of the small tenant, one at a time.
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// The release `wasq` binary.
    #[arg(long, default_value = "target/release/wasq")]
    wasq: PathBuf,
    /// Where basics.wasm is.
    #[arg(long, default_value = "target/wasm")]
    wasm_dir: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = Args::parse();
    if !args.wasq.exists() {
        bail!(
            "no {}: build it with `cargo build --release -p wasq`",
            args.wasq.display()
        );
    }
    // The cluster runs in a directory of its own.
    args.wasq = std::fs::canonicalize(&args.wasq)?;
    let module = std::fs::read(args.wasm_dir.join("basics.wasm"))
        .context("reading basics.wasm (build the guests: `cargo xtask build`)")?;
    println!(
        "fairness: {} workers, big tenant {} × sleep({} ms), small tenant {} × noop, one at a time",
        args.workers, args.long, args.sleep_ms, args.samples
    );
    for (label, share) in [
        ("default share (tenant_max_running = workers - 1)", None),
        (
            "no share held back (tenant_max_running = workers)",
            Some(args.workers),
        ),
    ] {
        let waits = run(&args, &module, share).await?;
        report(label, &waits);
    }
    Ok(())
}

/// Prints the median and the worst wait.
fn report(label: &str, waits: &[i64]) {
    let mut sorted = waits.to_vec();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let worst = sorted.last().copied().unwrap_or(0);
    println!(
        "{label}: small tenant's enqueue → start: median {median} ms, worst {worst} ms ({waits:?})"
    );
}

/// One run in a fresh directory; the small tenant's waits, ms.
async fn run(args: &Args, module: &[u8], share: Option<usize>) -> Result<Vec<i64>> {
    let dir = std::env::temp_dir().join(format!(
        "wasq-fairness-{}",
        &wasq::package::new_task_id()[..8]
    ));
    std::fs::create_dir_all(&dir)?;
    let db = format!("sqlite://{}", dir.join("wasq.db").display());
    let config = Config {
        broker: db.clone(),
        store: db,
        secret: format!("fairness-{}", wasq::package::new_task_id()),
        workers: args.workers,
        ..Config::default()
    };
    let client = Client::connect(&config).await?;
    let store = client.store();
    for name in ["big", "small"] {
        store
            .create_tenant(&Tenant {
                name: name.into(),
                weight: 1,
                quotas: Quotas::default(),
                created_at_ms: wasq::store::now_ms(),
            })
            .await?;
        store
            .put_tenant_module(name, "basics", module, None)
            .await?;
    }
    let cluster = start_cluster(args, &config, &dir, share)?;
    let long = TaskRequest::new("basics", "sleep").args(serde_json::json!([args.sleep_ms]));
    let digest = store
        .tenant_module("big", "basics")
        .await?
        .context("big's module")?
        .digest;
    let batch: Vec<_> = (0..args.long)
        .map(|_| (long.clone(), digest, "basics".to_owned()))
        .collect();
    client.enqueue_many_for_tenant("big", &batch).await?;
    // Let the cluster fill its workers with the long tasks.
    tokio::time::sleep(Duration::from_millis(args.sleep_ms / 2)).await;
    let small_digest = store
        .tenant_module("small", "basics")
        .await?
        .context("small's module")?
        .digest;
    let mut waits = Vec::with_capacity(args.samples);
    for _ in 0..args.samples {
        let record = client
            .enqueue_for_tenant(
                "small",
                &TaskRequest::new("basics", "noop"),
                small_digest,
                "basics".to_owned(),
            )
            .await?;
        let result = client
            .wait(&record.id, Duration::from_secs(120))
            .await?
            .context("the small tenant's task never finished")?;
        waits.push(result.started_at_ms - result.enqueued_at_ms);
        // Spread the samples over the long tasks' cycle.
        tokio::time::sleep(Duration::from_millis(args.sleep_ms / 3)).await;
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(waits)
}

/// A `wasq cluster` process, killed when dropped.
struct ClusterProcess(std::process::Child);

impl Drop for ClusterProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_cluster(
    args: &Args,
    config: &Config,
    dir: &Path,
    share: Option<usize>,
) -> Result<ClusterProcess> {
    let log = std::fs::File::create(dir.join("cluster.log"))?;
    let mut command = std::process::Command::new(&args.wasq);
    command
        .arg("cluster")
        .args(["--broker", &config.broker, "--store", &config.store])
        .args(["--workers", &config.workers.to_string()])
        .env("WASQ_SECRET", &config.secret)
        .env("WASQ_CACHE_DIR", dir.join("cache"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(share) = share {
        command.env("WASQ_TENANT_MAX_RUNNING", share.to_string());
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", args.wasq.display()))?;
    // The cluster reads tenants every 250 ms; give it a moment to know them.
    std::thread::sleep(Duration::from_millis(500));
    Ok(ClusterProcess(child))
}
