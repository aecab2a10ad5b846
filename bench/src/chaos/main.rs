//! `wasq-chaos`: real `wasq cluster` processes against real servers, faults injected at random
//! moments, and an audit that every task ran to exactly one successful result. `cargo xtask
//! chaos` builds it and runs it (`--quick` inside `cargo xtask test`); by hand, build `wasq` in
//! release and the guests first (`cargo xtask build`), and have `redis-server` and PostgreSQL
//! findable (`WASQ_REDIS_SERVER`, `WASQ_PG_BIN`, as `cargo xtask servers` prints).
//!
//! - `scenarios.rs`: what each scenario sets up and which fault it injects how often;
//! - `backends.rs`: its private Redis / PostgreSQL servers, SQLite file or tmpfs;
//! - `fleet.rs`: its `wasq cluster` processes, killed, stopped and restarted;
//! - `faults.rs`: the faults; `run.rs`: one scenario from start to audit;
//! - `audit.rs`: the drain and the audit; `table.rs`: the table, JSON and Markdown.

#[path = "../machine.rs"]
mod machine;
#[path = "../markers.rs"]
mod markers;

mod audit;
mod backends;
mod faults;
mod fleet;
mod rng;
mod run;
mod scenarios;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Parser;

/// Faults injected into real wasq clusters and servers, and an audit of every task.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The short form: nine of the scenarios (one per kind of fault), fewer tasks and faults,
    /// shorter outages (about 80 s in all).
    #[arg(long)]
    quick: bool,
    /// Run only this scenario (see --list).
    #[arg(long, value_name = "NAME")]
    only: Option<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// Seed of the random fault moments [default: from the clock; printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Print the results as JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Write the Reliability section (table, machine, seed, command) into this file.
    #[arg(long, value_name = "FILE")]
    document: Option<PathBuf>,
    /// The command named in the document.
    #[arg(long, default_value = "cargo xtask chaos")]
    command: String,
    /// The release `wasq` binary.
    #[arg(long, default_value = "target/release/wasq")]
    wasq: PathBuf,
    /// Where basics.wasm is.
    #[arg(long, default_value = "target/wasm")]
    wasm_dir: PathBuf,
}

/// Errors as one line (no backtrace, whatever RUST_BACKTRACE says).
fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    match runtime
        .map_err(anyhow::Error::from)
        .and_then(|r| r.block_on(chaos()))
    {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The scenarios of the short form (`--quick`): a kill -9 of a cluster, rolling restarts, a
/// broker crash, a database crash, the store down, `pg_terminate_backend`, a full disk and a
/// wrong secret.
const QUICK: [&str; 9] = [
    "kill9-redis",
    "kill9-sqlite",
    "rolling-restarts",
    "redis-restart-kill",
    "postgres-restart-crash",
    "store-down",
    "pg-terminate-backend",
    "sqlite-full-disk",
    "wrong-secret",
];

async fn chaos() -> Result<ExitCode> {
    let args = Args::parse();
    let mut scenarios = scenarios::all(args.quick);
    if args.list {
        for scenario in &scenarios {
            println!("{:<26} {}", scenario.name, scenario.about);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.quick && args.only.is_none() {
        // CI's minutes: one scenario per kind of fault; the full run has
        // every one.
        scenarios.retain(|s| QUICK.contains(&s.name));
    }
    if let Some(only) = &args.only {
        scenarios.retain(|s| s.name == only);
        if scenarios.is_empty() {
            bail!("no scenario is called `{only}`: see `wasq-chaos --list`");
        }
    }
    let wasq = std::fs::canonicalize(&args.wasq).with_context(|| {
        format!(
            "no {}: build it with `cargo build --release -p wasq --bin wasq --features otel`",
            args.wasq.display()
        )
    })?;
    let module = std::fs::read(args.wasm_dir.join("basics.wasm"))
        .context("reading basics.wasm (build the guests: `cargo xtask build`)")?;
    let seed = args.seed.unwrap_or_else(clock_seed);
    let root = std::env::temp_dir().join(format!("wasq-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let form = if args.quick { " --quick" } else { "" };
    eprintln!(
        "wasq-chaos{form}: {} scenario(s), seed {seed} (repeat with --seed {seed}), in {}",
        scenarios.len(),
        root.display()
    );
    let run = run::Run {
        wasq: wasq.clone(),
        root: root.clone(),
        module,
        seed,
        quick: args.quick,
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    for scenario in &scenarios {
        eprintln!("  {:<26} {}…", scenario.name, scenario.about);
        let row = run.scenario(scenario).await;
        eprintln!(
            "  {:<26} {} in {:.0} s",
            scenario.name,
            row.status.text(),
            row.seconds
        );
        rows.push(row);
    }
    let seconds = started.elapsed().as_secs_f64();
    let machine = machine::Machine::describe(&wasq, None);
    let report = table::Report {
        command: args.command.clone(),
        seed,
        quick: args.quick,
        date: jiff::Timestamp::now()
            .round(jiff::Unit::Second)?
            .to_string(),
        seconds,
        machine: &machine,
        rows: &rows,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table::text(&rows));
        println!("seed {seed}; {:.0} s in all", seconds);
    }
    if let Some(path) = &args.document {
        markers::update(path, table::BEGIN, table::END, &table::section(&report))?;
        eprintln!("wrote the Reliability section of {}", path.display());
    }
    // Only the run's own directory: what failed scenarios keep is inside it.
    if std::fs::read_dir(&root)
        .is_ok_and(|mut entries| entries.all(|e| e.is_ok_and(|e| e.file_name() == "module-cache")))
    {
        let _ = std::fs::remove_dir_all(&root);
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|row| matches!(row.status, table::Status::Fail(_)))
        .map(|row| row.scenario.as_str())
        .collect();
    if !failed.is_empty() {
        // One line, without the backtrace an error returned from main would print.
        eprintln!(
            "error: {} scenario(s) failed: {}; repeat one with `target/release/wasq-chaos{form} --only {} --seed {seed}`",
            failed.len(),
            failed.join(", "),
            failed[0]
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A seed from the clock, when none is given.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
