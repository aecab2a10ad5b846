//! `wasq-bench`: wasq side by side with Django Q2, Celery and RQ on this machine, in one run.
//! `cargo xtask bench` builds it, installs the peers into a venv, starts Redis and PostgreSQL,
//! and runs it; run by hand, it needs the same arguments (see `--help`).
//!
//! Every workload runs on every system with the same number of workers, one after another so
//! that they do not share the cores. Each run is checked: all its tasks must be counted in the
//! system's own result store. The results go to a JSON file, the terminal, and (for a full run)
//! the generated section of BENCHMARKS.md with its charts.

mod document;
mod machine;
mod markers;
mod peers;
mod procmem;
mod report;
mod tables;
mod wasq_runs;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;

use peers::{PEERS, PeerEnv};
use report::{Results, Run, ScalingPoint, WORKLOADS};
use wasq_runs::{Backend, Sizes, WasqEnv};

/// wasq against Django Q2, Celery and RQ: every workload on every system, in one run.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// A smoke run for CI: a few hundred tasks, 20 latency samples, 1,000 queued, scaling with
    /// 1 and 4 workers. Checks that every system ran and every task was accounted for.
    #[arg(long)]
    quick: bool,
    /// Tasks per throughput run [default: 5000, 300 with --quick].
    #[arg(long)]
    tasks: Option<u64>,
    /// Workers of every system (processes for the peers, threads for wasq).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Latency samples [default: 200, 10 with --quick].
    #[arg(long)]
    samples: Option<usize>,
    /// Tasks queued before the cluster starts, in the memory workload [default: 10000, 500
    /// with --quick].
    #[arg(long)]
    queued: Option<u64>,
    /// Worker counts of the scaling runs [default: 1,2,4,8,16; none with --quick].
    #[arg(long, value_delimiter = ',')]
    scaling: Option<Vec<usize>>,
    /// Only these systems (wasq-sqlite, wasq-redis, wasq-postgres, djq-redis, djq-orm, celery,
    /// rq).
    #[arg(long, value_delimiter = ',')]
    systems: Option<Vec<String>>,
    /// Only these workloads (noop, latency, fib, markdown, memory, scaling).
    #[arg(long, value_delimiter = ',')]
    workloads: Option<Vec<String>>,
    /// Longest wait for one run's results, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// The release `wasq` binary.
    #[arg(long, default_value = "target/release/wasq")]
    wasq: PathBuf,
    /// Where basics.wasm and markdown.wasm are.
    #[arg(long, default_value = "target/wasm")]
    wasm_dir: PathBuf,
    /// The Python of the venv the peers are installed in; without it the peers' rows say so.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Why the peers cannot run (their rows say it), when there is no --python.
    #[arg(long)]
    peers_missing: Option<String>,
    /// The peers' harness.
    #[arg(long, default_value = "bench/peers")]
    peers_dir: PathBuf,
    /// The document of the markdown workload.
    #[arg(long, default_value = "bench/workloads/doc.md")]
    doc: PathBuf,
    /// Redis, shared by wasq's Redis broker and the peers.
    #[arg(long, env = "WASQ_TEST_REDIS_URL")]
    redis_url: Option<String>,
    /// PostgreSQL, for wasq's PostgreSQL broker and store.
    #[arg(long, env = "WASQ_TEST_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Scratch directory (stores, logs), emptied first.
    #[arg(long, default_value = "target/bench/work")]
    workdir: PathBuf,
    /// The results file.
    #[arg(long, default_value = "target/bench/latest.json")]
    out: PathBuf,
    /// Draw the charts into this directory (with the venv's matplotlib).
    #[arg(long)]
    charts: Option<PathBuf>,
    /// Rewrite the generated section of this file (BENCHMARKS.md).
    #[arg(long)]
    document: Option<PathBuf>,
    /// The command recorded with the results.
    #[arg(long, default_value = "cargo xtask bench")]
    command: String,
    /// Run nothing: print the tables of this saved results file and redo --charts and
    /// --document from it (e.g. `--render bench/results/latest.json --document BENCHMARKS.md`).
    #[arg(long, value_name = "RESULTS_JSON")]
    render: Option<PathBuf>,
}

/// One thing to measure.
#[derive(Debug, Clone)]
enum Job {
    Wasq(Backend, &'static str),
    Peer(peers::Peer, &'static str),
    Scaling(Backend, usize),
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs everything; `Ok(false)` when some run did not account for all its tasks.
async fn run(mut args: Args) -> Result<bool> {
    if let Some(saved) = args.render.clone() {
        let text = std::fs::read_to_string(&saved)
            .with_context(|| format!("reading {}", saved.display()))?;
        let results: Results = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a wasq-bench results file", saved.display()))?;
        args.out = saved;
        write_outputs(&args, &results, false)?;
        return Ok(results.problems().is_empty());
    }
    let quick = args.quick;
    // Absolute, not canonical: a venv's python is a symlink that must stay one.
    if let Some(python) = &args.python {
        args.python = Some(std::path::absolute(python)?);
    }
    let sizes = Sizes {
        tasks: args.tasks.unwrap_or(if quick { 300 } else { 5000 }),
        workers: args.workers,
        samples: args.samples.unwrap_or(if quick { 10 } else { 200 }),
        queued: args.queued.unwrap_or(if quick { 500 } else { 10_000 }),
    };
    let scaling = args.scaling.clone().unwrap_or_else(|| {
        if quick {
            // The smoke run leaves scaling to the full run: CI's minutes.
            Vec::new()
        } else {
            vec![1, 2, 4, 8, 16]
        }
    });
    if sizes.tasks == 0 || sizes.workers == 0 || scaling.contains(&0) {
        bail!("--tasks, --workers and --scaling need numbers above 0");
    }
    let jobs = plan(&args, &scaling)?;

    if args.workdir.exists() {
        std::fs::remove_dir_all(&args.workdir)
            .with_context(|| format!("emptying {}", args.workdir.display()))?;
    }
    std::fs::create_dir_all(&args.workdir)?;
    let workdir = std::fs::canonicalize(&args.workdir)?;
    let read = |name: &str| {
        let path = args.wasm_dir.join(name);
        std::fs::read(&path)
            .with_context(|| format!("reading {} (run `cargo xtask build`)", path.display()))
    };
    let timeout = Duration::from_secs(args.timeout);
    let wasq = WasqEnv {
        bin: std::fs::canonicalize(&args.wasq)
            .with_context(|| format!("{} (run `cargo xtask bench`)", args.wasq.display()))?,
        basics: read("basics.wasm")?,
        markdown: read("markdown.wasm")?,
        doc: std::fs::read_to_string(&args.doc)
            .with_context(|| format!("reading {}", args.doc.display()))?,
        workdir: workdir.join("wasq"),
        redis_url: args.redis_url.clone(),
        postgres_url: args.postgres_url.clone(),
        timeout,
    };
    let peer_env = PeerEnv {
        python: args.python.clone().unwrap_or_default(),
        dir: std::fs::canonicalize(&args.peers_dir).unwrap_or_else(|_| args.peers_dir.clone()),
        doc: std::fs::canonicalize(&args.doc)?,
        redis_url: args.redis_url.clone(),
        workdir: workdir.join("peers"),
        timeout,
    };

    println!(
        "{} runs: {} tasks each, {} workers, {} latency samples, {} queued for memory",
        jobs.len(),
        sizes.tasks,
        sizes.workers,
        sizes.samples,
        sizes.queued
    );
    let mut runs: Vec<Run> = Vec::new();
    let mut points: Vec<ScalingPoint> = Vec::new();
    let width = jobs.len().to_string().len();
    for (n, job) in jobs.iter().enumerate() {
        let started = Instant::now();
        let line = match job {
            Job::Wasq(backend, workload) => {
                let run = wasq_runs::run(&wasq, *backend, workload, n, &sizes).await;
                let line = progress(&run);
                runs.push(run);
                line
            }
            Job::Peer(peer, workload) => {
                let run = if args.python.is_some() {
                    peers::run(&peer_env, *peer, workload, n, &sizes).await
                } else {
                    let why = args.peers_missing.clone().unwrap_or_else(|| {
                        "no Python venv with the peers (pass --python; `cargo xtask bench` makes \
                         one)"
                            .into()
                    });
                    Run::failed(peer.id, peer.label, workload, why)
                };
                let line = progress(&run);
                runs.push(run);
                line
            }
            Job::Scaling(backend, workers) => {
                let run_sizes = Sizes {
                    workers: *workers,
                    ..sizes.clone()
                };
                let run = wasq_runs::run(&wasq, *backend, "noop", n, &run_sizes).await;
                let line = format!("scaling {workers:>2}  {}", progress(&run));
                points.push(ScalingPoint {
                    system: run.system,
                    label: run.label,
                    workers: *workers,
                    tasks: run.tasks,
                    per_s: run.per_s,
                    error: run.error,
                });
                line
            }
        };
        println!(
            "[{:>width$}/{}] {line}  ({:.1} s)",
            n + 1,
            jobs.len(),
            started.elapsed().as_secs_f64()
        );
    }

    let results = Results {
        date: jiff::Timestamp::now()
            .round(jiff::Unit::Second)?
            .to_string(),
        command: args.command.clone(),
        quick,
        machine: machine::Machine::describe(&wasq.bin, args.python.as_deref()),
        tasks: sizes.tasks,
        workers: sizes.workers,
        runs,
        scaling: points,
    };
    write_outputs(&args, &results, true)?;

    let problems = results.problems();
    if problems.is_empty() {
        println!("every run accounted for all its tasks");
        return Ok(true);
    }
    eprintln!("{} runs did not complete:", problems.len());
    for problem in &problems {
        eprintln!("  {problem}");
    }
    Ok(false)
}

/// The jobs, workload by workload, every system in turn, then the scaling runs.
fn plan(args: &Args, scaling: &[usize]) -> Result<Vec<Job>> {
    let known: Vec<&str> = Backend::ALL
        .iter()
        .map(|b| b.id())
        .chain(PEERS.iter().map(|p| p.id))
        .collect();
    for system in args.systems.iter().flatten() {
        if !known.contains(&system.as_str()) {
            bail!("unknown system `{system}`; known: {}", known.join(", "));
        }
    }
    for workload in args.workloads.iter().flatten() {
        if !WORKLOADS.contains(&workload.as_str()) && workload != "scaling" {
            bail!(
                "unknown workload `{workload}`; known: {}, scaling",
                WORKLOADS.join(", ")
            );
        }
    }
    let system_on = |id: &str| {
        args.systems
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == id))
    };
    let workload_on = |w: &str| {
        args.workloads
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == w))
    };
    let mut jobs = Vec::new();
    for workload in WORKLOADS.into_iter().filter(|w| workload_on(w)) {
        for backend in Backend::ALL.into_iter().filter(|b| system_on(b.id())) {
            jobs.push(Job::Wasq(backend, workload));
        }
        for peer in PEERS.into_iter().filter(|p| system_on(p.id)) {
            jobs.push(Job::Peer(peer, workload));
        }
    }
    if workload_on("scaling") {
        for backend in [Backend::Sqlite, Backend::Redis]
            .into_iter()
            .filter(|b| system_on(b.id()))
        {
            for &workers in scaling {
                jobs.push(Job::Scaling(backend, workers));
            }
        }
    }
    if jobs.is_empty() {
        bail!("nothing to run: --systems and --workloads leave no run");
    }
    Ok(jobs)
}

/// One aligned line about a finished run.
fn progress(run: &Run) -> String {
    let head = format!("{:<9} {:<25}", run.workload, run.label);
    if let Some(error) = run.error.as_deref().filter(|_| !run.complete()) {
        return format!("{head} FAILED: {error}");
    }
    let detail = if let Some(l) = &run.latency {
        format!(
            "start p50 {:.2} ms, p99 {:.2} ms; result p50 {:.2} ms",
            l.start_p50_ms, l.start_p99_ms, l.result_p50_ms
        )
    } else if let Some(m) = &run.memory {
        format!(
            "idle {:.0} MiB, peak {:.0} MiB with {} queued",
            m.idle_kib as f64 / 1024.0,
            m.loaded_kib as f64 / 1024.0,
            m.queued
        )
    } else {
        format!(
            "{:>9} tasks/s  ({} tasks)",
            tables::thousands(run.per_s.unwrap_or(0.0)),
            run.tasks
        )
    };
    format!("{head} {detail}")
}

/// The JSON file, the tables on the terminal, the charts and BENCHMARKS.md;
/// `save`: write the JSON file (not when re-rendering it).
fn write_outputs(args: &Args, results: &Results, save: bool) -> Result<()> {
    if save {
        if let Some(parent) = args.out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&args.out, serde_json::to_string_pretty(results)? + "\n")
            .with_context(|| format!("writing {}", args.out.display()))?;
    }
    println!();
    for table in tables::all(results) {
        println!("{}", table.text());
    }
    println!("results: {}", args.out.display());
    if let (Some(dir), Some(python)) = (&args.charts, &args.python) {
        std::fs::create_dir_all(dir)?;
        let status = std::process::Command::new(python)
            .arg(
                args.peers_dir
                    .parent()
                    .unwrap_or(&args.peers_dir)
                    .join("chart.py"),
            )
            .arg(&args.out)
            .arg(dir)
            .status()
            .context("running bench/chart.py")?;
        if !status.success() {
            bail!("bench/chart.py failed ({status})");
        }
        println!("charts:  {}", dir.display());
    }
    if let Some(path) = &args.document {
        let charts = args.charts.as_ref().and_then(|dir| {
            let base = path.parent().unwrap_or(path.as_path());
            dir.strip_prefix(base)
                .ok()
                .map(|rel| rel.display().to_string())
        });
        document::update(path, &document::section(results, charts.as_deref()))?;
        println!("updated: {}", path.display());
    }
    Ok(())
}
