//! The workloads on wasq, run the way users run it: `wasq cluster` as its own process, and a
//! producer (this process, through [`wasq::Client`]) that enqueues and then counts results in
//! the store. Every run gets a fresh broker queue and result store.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use tokio::process::{Child, Command};
use wasq::{Client, Config, TaskRequest};

use crate::procmem;
use crate::report::{Latency, Memory, Run, quantile};

/// The brokers wasq is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// The embedded default: broker and store in one SQLite file.
    Sqlite,
    /// Redis broker, SQLite store.
    Redis,
    /// PostgreSQL broker and store, in one database.
    Postgres,
}

impl Backend {
    pub(crate) const ALL: [Backend; 3] = [Backend::Sqlite, Backend::Redis, Backend::Postgres];

    pub(crate) fn id(self) -> &'static str {
        match self {
            Backend::Sqlite => "wasq-sqlite",
            Backend::Redis => "wasq-redis",
            Backend::Postgres => "wasq-postgres",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "wasq · SQLite",
            Backend::Redis => "wasq · Redis",
            Backend::Postgres => "wasq · PostgreSQL",
        }
    }

    fn broker(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite (embedded)",
            Backend::Redis => "redis",
            Backend::Postgres => "postgres",
        }
    }

    fn store(self) -> &'static str {
        match self {
            Backend::Sqlite | Backend::Redis => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What every wasq run needs.
#[derive(Debug)]
pub(crate) struct WasqEnv {
    /// The release `wasq` binary.
    pub(crate) bin: PathBuf,
    /// `basics.wasm` and `markdown.wasm`.
    pub(crate) basics: Vec<u8>,
    pub(crate) markdown: Vec<u8>,
    /// The markdown document of the real-work workload.
    pub(crate) doc: String,
    /// Scratch space: stores, logs, the compiled-module cache shared by all runs.
    pub(crate) workdir: PathBuf,
    pub(crate) redis_url: Option<String>,
    pub(crate) postgres_url: Option<String>,
    /// Longest wait for one run's results.
    pub(crate) timeout: Duration,
}

const SECRET: &str = "wasq-bench-secret";

impl WasqEnv {
    /// The configuration of run number `n`: its broker, store and queue.
    fn config(&self, backend: Backend, n: usize, workers: usize) -> Result<Config> {
        let sqlite = format!("sqlite://{}", self.run_dir(n).join("wasq.db").display());
        let (broker, store) = match backend {
            Backend::Sqlite => (sqlite.clone(), sqlite),
            Backend::Redis => (
                self.redis_url
                    .clone()
                    .context("no Redis server (pass --redis-url)")?,
                sqlite,
            ),
            Backend::Postgres => {
                let server = self
                    .postgres_url
                    .as_deref()
                    .context("no PostgreSQL server (pass --postgres-url)")?;
                let url = with_database(server, &database_name(n));
                (url.clone(), url)
            }
        };
        Ok(Config {
            broker,
            store,
            queue: format!("bench-{n}"),
            workers,
            secret: SECRET.into(),
            save_limit: 0,
            cache_dir: Some(self.workdir.join("cache")),
            ..Config::default()
        })
    }

    /// [`Self::config`], with its directory and (on PostgreSQL) its database made afresh.
    async fn fresh_config(&self, backend: Backend, n: usize, workers: usize) -> Result<Config> {
        let dir = self.run_dir(n);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if let (Backend::Postgres, Some(server)) = (backend, &self.postgres_url) {
            fresh_database(server, &database_name(n)).await?;
        }
        self.config(backend, n, workers)
    }

    fn run_dir(&self, n: usize) -> PathBuf {
        self.workdir.join(format!("run-{n}"))
    }
}

fn database_name(n: usize) -> String {
    format!("wasq_bench_{n}")
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let server = base.rsplit_once('/').map_or(base, |(server, _db)| server);
    if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    }
}

/// `DROP DATABASE` and `CREATE DATABASE name` on the server of `url`.
async fn fresh_database(url: &str, name: &str) -> Result<()> {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", redact(url)))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    let _ = admin.close().await;
    Ok(())
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// A `wasq cluster` process.
struct ClusterProcess {
    child: Child,
    log: PathBuf,
}

impl ClusterProcess {
    /// Starts one on `config`, logging to `cluster.log` in the run's directory.
    fn start(env: &WasqEnv, config: &Config, n: usize) -> Result<Self> {
        let log_path = env.run_dir(n).join("cluster.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(&env.bin)
            .arg("cluster")
            .args(["--broker", &config.broker, "--store", &config.store])
            .args(["--queue", &config.queue, "--name", &config.name])
            .args(["--workers", &config.workers.to_string()])
            .env("WASQ_SECRET", &config.secret)
            .env("WASQ_SAVE_LIMIT", config.save_limit.to_string())
            .env("WASQ_CACHE_DIR", env.workdir.join("cache"))
            .current_dir(&env.workdir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", env.bin.display()))?;
        Ok(Self {
            child,
            log: log_path,
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// An error with the end of the log when the process has exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "wasq cluster exited ({status}): {}",
                log_tail(&self.log).unwrap_or_default()
            );
        }
        Ok(())
    }

    /// SIGTERM (a graceful stop), then SIGKILL after 15 s.
    async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("wasq cluster did not stop within 15 s of SIGTERM; killed");
            }
        }
        Ok(())
    }
}

/// The last non-empty line of a log file.
pub(crate) fn log_tail(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string)
}

/// Runs one workload on wasq, recording any failure in the returned [`Run`].
pub(crate) async fn run(
    env: &WasqEnv,
    backend: Backend,
    workload: &str,
    n: usize,
    opts: &Sizes,
) -> Run {
    let mut run = Run {
        system: backend.id().into(),
        label: backend.label().into(),
        workload: workload.into(),
        version: format!("wasq {}", env!("CARGO_PKG_VERSION")),
        broker: backend.broker().into(),
        result_store: backend.store().into(),
        enqueue_method: "Client::enqueue_many, 1,000 per call".into(),
        workers: opts.workers,
        ..Run::default()
    };
    let outcome = match workload {
        "noop" | "fib" | "markdown" => {
            throughput(
                env,
                backend,
                workload,
                n,
                opts.workers,
                opts.tasks,
                &mut run,
            )
            .await
        }
        "latency" => latency(env, backend, n, opts, &mut run).await,
        "memory" => memory(env, backend, n, opts, &mut run).await,
        other => Err(anyhow::anyhow!("unknown workload {other}")),
    };
    if let Err(error) = outcome {
        run.error = Some(format!("{error:#}").replace('\n', " "));
    }
    run.settle();
    run
}

/// Sizes of the workloads.
#[derive(Debug, Clone)]
pub(crate) struct Sizes {
    pub(crate) tasks: u64,
    pub(crate) workers: usize,
    pub(crate) samples: usize,
    pub(crate) queued: u64,
}

/// The task of a throughput workload, and a check of its result.
fn workload_task(workload: &str, doc: &str) -> (TaskRequest, fn(&str) -> bool) {
    match workload {
        "fib" => (
            TaskRequest::new("basics", "fib").args(serde_json::json!([25])),
            |out| out.trim() == "75025",
        ),
        "markdown" => (
            TaskRequest::new("markdown", "render").args(serde_json::json!([doc])),
            |out| out.contains("<h1>") && out.contains("<table>"),
        ),
        _ => (TaskRequest::new("basics", "noop"), |out| {
            out.trim() == "null"
        }),
    }
}

/// Starts a cluster on a fresh setup, uploads the modules and runs one task through it, so
/// that timing starts with a warm cluster (as the peers' do).
async fn ready_cluster(
    env: &WasqEnv,
    backend: Backend,
    n: usize,
    workers: usize,
) -> Result<(Client, ClusterProcess)> {
    let config = env.fresh_config(backend, n, workers).await?;
    let client = Client::connect(&config)
        .await
        .context("connecting the producer")?;
    client.upload(&env.basics, Some("basics")).await?;
    client.upload(&env.markdown, Some("markdown")).await?;
    let mut cluster = ClusterProcess::start(env, &config, n)?;
    for warm_up in [
        TaskRequest::new("basics", "noop"),
        TaskRequest::new("markdown", "render").args(serde_json::json!(["# warm"])),
    ] {
        let id = client.enqueue(&warm_up).await?;
        wait_result(&client, &id, &mut cluster, Duration::from_secs(120)).await?;
    }
    Ok((client, cluster))
}

/// Polls the store every millisecond for a task's result.
async fn wait_result(
    client: &Client,
    id: &str,
    cluster: &mut ClusterProcess,
    timeout: Duration,
) -> Result<wasq::store::TaskResult> {
    let started = Instant::now();
    loop {
        if let Some(result) = client.result(id).await? {
            if !result.success {
                bail!(
                    "task {id} failed: {}",
                    result.error.unwrap_or(result.outcome)
                );
            }
            return Ok(result);
        }
        if started.elapsed() > timeout {
            bail!("no result for task {id} after {timeout:?}");
        }
        cluster.check_alive()?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until `target` successes are in the store (counting from `baseline`), or a failure
/// shows up, or the timeout; returns the number counted.
async fn wait_count(
    client: &Client,
    baseline: u64,
    target: u64,
    cluster: &mut ClusterProcess,
    timeout: Duration,
    mut sample: impl FnMut(),
) -> Result<u64> {
    let started = Instant::now();
    loop {
        let (successes, failures) = client.store().result_totals().await?;
        let done = successes.saturating_sub(baseline);
        if done >= target {
            return Ok(done);
        }
        if failures > 0 {
            bail!("{failures} tasks failed (see `wasq failed list` on the run's store)");
        }
        if started.elapsed() > timeout {
            return Ok(done);
        }
        cluster.check_alive()?;
        sample();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn throughput(
    env: &WasqEnv,
    backend: Backend,
    workload: &str,
    n: usize,
    workers: usize,
    tasks: u64,
    run: &mut Run,
) -> Result<()> {
    run.tasks = tasks;
    let (client, mut cluster) = ready_cluster(env, backend, n, workers).await?;
    let (task, check) = workload_task(workload, &env.doc);
    let baseline = client.store().result_totals().await?.0;

    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(tasks as usize);
    let mut left = tasks as usize;
    while left > 0 {
        let batch = vec![task.clone(); left.min(1000)];
        ids.extend(client.enqueue_many(&batch).await?);
        left -= batch.len();
    }
    run.enqueue_s = Some(t0.elapsed().as_secs_f64());
    run.counted = wait_count(&client, baseline, tasks, &mut cluster, env.timeout, || {}).await?;
    run.total_s = Some(t0.elapsed().as_secs_f64());

    // Every result is stored; check a few of them say the right thing.
    for id in [ids.first(), ids.get(ids.len() / 2), ids.last()]
        .into_iter()
        .flatten()
    {
        let result = client.result(id).await?.context("a counted result")?;
        let out = String::from_utf8_lossy(result.result.as_deref().unwrap_or_default());
        if !check(&out) {
            bail!("task {id} returned an unexpected result: {out:.80}");
        }
    }
    cluster.stop().await
}

async fn latency(
    env: &WasqEnv,
    backend: Backend,
    n: usize,
    opts: &Sizes,
    run: &mut Run,
) -> Result<()> {
    run.enqueue_method = "Client::enqueue, one task at a time".into();
    run.tasks = opts.samples as u64;
    let (client, mut cluster) = ready_cluster(env, backend, n, opts.workers).await?;
    let stamp = TaskRequest::new("basics", "stamp");
    let (mut to_start, mut to_result) = (Vec::new(), Vec::new());
    for _ in 0..opts.samples {
        let enqueued = now_us();
        let id = client.enqueue(&stamp).await?;
        let result = wait_result(&client, &id, &mut cluster, Duration::from_secs(30)).await?;
        let seen = now_us();
        let started: u64 = std::str::from_utf8(result.result.as_deref().unwrap_or_default())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .context("the stamp task returned no number")?;
        to_start.push(started.saturating_sub(enqueued) as f64 / 1000.0);
        to_result.push(seen.saturating_sub(enqueued) as f64 / 1000.0);
        run.counted += 1;
        // Let the cluster go idle again.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    to_start.sort_by(f64::total_cmp);
    to_result.sort_by(f64::total_cmp);
    run.latency = Some(Latency {
        samples: opts.samples,
        start_p50_ms: quantile(&to_start, 0.5),
        start_p99_ms: quantile(&to_start, 0.99),
        result_p50_ms: quantile(&to_result, 0.5),
        result_p99_ms: quantile(&to_result, 0.99),
    });
    cluster.stop().await
}

async fn memory(
    env: &WasqEnv,
    backend: Backend,
    n: usize,
    opts: &Sizes,
    run: &mut Run,
) -> Result<()> {
    run.tasks = opts.queued;
    let (client, cluster) = ready_cluster(env, backend, n, opts.workers).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_kib = cluster.pid().map_or(0, procmem::tree_kib);
    cluster.stop().await?;

    // The backlog goes in with no cluster running, then a new cluster works through it.
    let baseline = client.store().result_totals().await?.0;
    let noop = TaskRequest::new("basics", "noop");
    let mut left = opts.queued as usize;
    while left > 0 {
        let batch = vec![noop.clone(); left.min(1000)];
        client.enqueue_many(&batch).await?;
        left -= batch.len();
    }
    let mut cluster = ClusterProcess::start(env, &env.config(backend, n, opts.workers)?, n)?;
    let pid = cluster.pid().context("the cluster has no pid")?;
    let mut peak = 0;
    run.counted = wait_count(
        &client,
        baseline,
        opts.queued,
        &mut cluster,
        env.timeout,
        || peak = peak.max(procmem::tree_kib(pid)),
    )
    .await?;
    cluster.stop().await?;
    run.memory = Some(Memory {
        idle_kib,
        loaded_kib: peak,
        queued: opts.queued,
    });
    Ok(())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
