//! `cargo xtask`: the commands a fresh machine needs, thin wrappers around
//! the cargo commands a person would type.
//!
//! - `build` (alias `wasm`): installs the wasm target and the C toolchain
//!   when missing, builds the example guests into `target/wasm/`.
//! - `demo`: `build`, then the release `wasq` binary, then `wasq demo`.
//! - `test`: `build`, then fmt, clippy, the release binary, every test, and
//!   the docs — what CI runs. The tests get real servers: Redis, PostgreSQL
//!   and moto (an SQS endpoint), installed when missing (apt-get, pip into
//!   `target/test-venv`), started on free loopback ports for the run and
//!   stopped afterwards, also when a step fails (`servers.rs`); and the
//!   tools tests drive (schemathesis, tmux, Chromium with chromedriver),
//!   installed the same way.
//! - `servers`: starts those servers and prints the `export` lines that let
//!   a person run `cargo nextest` by hand; Enter or Ctrl-C stops them.
//! - `bench`: `build`, then the side-by-side benchmark (`wasq-bench`, in `bench/`): wasq
//!   against Django Q2, Celery and RQ, installed into `target/bench-venv` with pip, with the
//!   test servers; `bench micro` runs the criterion benchmarks, `bench brokers` the e2e example
//!   on each broker.
//! - `cycles`: fails if two modules of a crate import each other (`cycles.rs`).
//! - `chaos`: `build`, then the chaos suite (`wasq-chaos`, in `bench/`, see `chaos.rs`).

mod chaos;
mod cycles;
mod guests;
mod servers;
mod steps;
mod toolchains;

use steps::{WASQ_FEATURES, cargo, step};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  build    build the example guests into target/wasm/ (installs the wasm target and clang when missing)
  demo     build everything and run a real workload through wasq
  test     build everything and run every check and test (what CI runs); the tests get
           their own Redis, PostgreSQL and moto (SQS), installed when missing (apt-get,
           pip into target/test-venv) and stopped at the end; tmux, Chromium and
           chromedriver (apt-get) and schemathesis (pip) for the terminal, browser and
           API tests
  servers  start those test servers and print the `export` lines that let you run
           `cargo nextest run --workspace --release` by hand; Enter or Ctrl-C stops them
  bench [--quick] [ARGS]
           wasq side by side with Django Q2, Celery and RQ (pip into target/bench-venv), every
           workload on every system, with the test servers: writes bench/results/latest.json,
           the charts, and the tables in BENCHMARKS.md. --quick: a few hundred tasks per run,
           results in target/bench/ (CI runs it); other ARGS go to wasq-bench (see
           `target/release/wasq-bench --help`, e.g. --systems celery,wasq-redis --tasks 2000)
  bench fairness [ARGS]
           how long a small tenant's task waits to start while another tenant's long tasks fill
           every worker (ARGS go to wasq-fairness, e.g. --workers 4 --long 200 --sleep-ms 2000)
  bench micro [FILTER]
           the criterion micro-benchmarks: sandbox, task packages, brokers
  bench brokers [TASKS]
           end-to-end no-op tasks per second and idle latency on every broker, with
           the test servers (crates/wasq/examples/e2e.rs; default 20000 tasks)
  chaos [--quick] [ARGS]
           real wasq clusters against private Redis, PostgreSQL and SQLite, with kill -9,
           rolling restarts, server restarts and outages, pg_terminate_backend, a full disk,
           long tasks and a wrong secret; audits that every task ended with exactly one
           successful result, and writes the Reliability table into BENCHMARKS.md.
           --quick: the short form (`cargo xtask test` runs it); other ARGS go to wasq-chaos
           (see `target/release/wasq-chaos --help`, e.g. --only kill9-redis --seed 42)
  cycles   fail if two modules of a crate import each other (a step of `test`)

Set WASQ_REDIS_SERVER, WASQ_PG_BIN (the directory of initdb and postgres) or
WASQ_MOTO_SERVER to use those binaries instead of finding or installing them.";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let root = workspace_root()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        bail!("no command given\n\n{USAGE}");
    };
    let rest = &args[1..];
    match command.as_str() {
        "build" | "wasm" => guests::build_guests(&root).map(drop),
        "demo" => demo(&root, rest),
        "test" => test(&root, rest),
        "servers" => servers::serve(&root),
        "bench" => bench(&root, rest),
        "chaos" => chaos::chaos(&root, rest),
        "cycles" => cycles::check(&root),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

/// Left out of the test builds: the criterion benchmarks' crate, whose criterion would add
/// features to crates the release binary shares and so rebuild them (`cargo xtask bench micro`
/// runs it).
const NOT_TESTED: [&str; 2] = ["--exclude", "wasq-micro-benches"];

/// The release `wasq` binary, and with `chaos` the `wasq-chaos` suite in the same build.
fn build_release_binary(root: &Path, chaos: bool) -> anyhow::Result<PathBuf> {
    let mut build = cargo(root);
    build.args(["build", "--release", "--package", "wasq", "--bin", "wasq"]);
    build.args(WASQ_FEATURES);
    if chaos {
        build.args(["--package", "wasq-bench", "--bin", "wasq-chaos"]);
    }
    step("build the release wasq binary", build)?;
    Ok(root.join("target/release/wasq"))
}

fn demo(root: &Path, rest: &[String]) -> anyhow::Result<()> {
    guests::build_guests(root)?;
    let wasq = build_release_binary(root, false)?;
    let mut run = Command::new(wasq);
    run.current_dir(root).arg("demo").args(rest);
    step("wasq demo", run)
}

fn test(root: &Path, rest: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    guests::build_guests(root)?;
    // Install the servers now, so a machine that cannot fails before the long builds.
    let binaries = servers::ensure(root)?;

    let mut fmt = cargo(root);
    fmt.args(["fmt", "--all", "--", "--check"]);
    step("cargo fmt --check", fmt)?;
    println!("==> import cycles");
    cycles::check(root)?;

    let mut clippy = cargo(root);
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    step("cargo clippy", clippy)?;

    let mut guest_clippy = cargo(root);
    guest_clippy
        .args(["clippy", "--manifest-path", "examples-wasm/Cargo.toml"])
        .args(["--target", "wasm32-wasip1", "--", "-D", "warnings"])
        .env("CARGO_TARGET_DIR", root.join("target"));
    step("cargo clippy (examples-wasm)", guest_clippy)?;

    let mut js_clippy = cargo(root);
    js_clippy
        .args(["clippy", "--manifest-path", "guest-sdk/js/Cargo.toml"])
        .args(["--target", "wasm32-wasip1", "--", "-D", "warnings"])
        .env("CARGO_TARGET_DIR", root.join("target"))
        .env("WASI_SDK", guests::wasi_sdk_dir(root));
    step("cargo clippy (guest-sdk/js)", js_clippy)?;

    // Tests run against the release build: the binary the README uses, and
    // one build of wasmtime shared by every step below.
    let wasq = build_release_binary(root, true)?;
    // Stopped when dropped: after the doc tests, or on the way out of a failed step.
    let servers = servers::TestServers::start(binaries)?;
    let server_env = servers.env();
    let nextest = cargo(root)
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    let mut tests = cargo(root);
    if nextest {
        tests.args([
            "nextest",
            "run",
            "--workspace",
            "--release",
            "--no-fail-fast",
        ]);
    } else {
        println!("    (cargo-nextest not found; using cargo test)");
        tests.args(["test", "--workspace", "--release", "--no-fail-fast"]);
    }
    tests.args(NOT_TESTED);
    tests
        .args(rest)
        .env("WASQ_BIN", &wasq)
        .envs(server_env.iter().cloned());
    step("tests", tests)?;
    chaos::quick_step(root, &server_env)?;

    if nextest {
        let mut doctests = cargo(root);
        doctests
            .args(["test", "--workspace", "--release", "--doc"])
            .args(NOT_TESTED)
            .envs(server_env.iter().cloned());
        step("doc tests", doctests)?;
    }
    servers.stop()?;

    let mut docs = cargo(root);
    docs.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    step("cargo doc", docs)?;

    println!(
        "all checks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn bench(root: &Path, rest: &[String]) -> anyhow::Result<()> {
    guests::build_guests(root)?;
    match rest.first().map(String::as_str) {
        Some("brokers") => bench_brokers(root, rest.get(1).map(String::as_str)),
        Some("micro") => bench_micro(root, &rest[1..]),
        Some("fairness") => bench_fairness(root, &rest[1..]),
        _ => bench_side_by_side(root, rest),
    }
}

/// `bench fairness`: how long a small tenant's task waits behind another
/// tenant's long tasks (`wasq-fairness`, in `bench/`).
fn bench_fairness(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let mut build = cargo(root);
    build.args(["build", "--release", "--package", "wasq", "--bin", "wasq"]);
    build.args(WASQ_FEATURES);
    build.args(["--package", "wasq-bench", "--bin", "wasq-fairness"]);
    step("build wasq and wasq-fairness (release)", build)?;
    let mut run = Command::new(root.join("target/release/wasq-fairness"));
    run.current_dir(root).args(args);
    step(
        "fairness: a small tenant behind a big tenant's long tasks",
        run,
    )
}

/// `bench micro`: the criterion benchmarks of the hot path.
fn bench_micro(root: &Path, filter: &[String]) -> anyhow::Result<()> {
    let binaries = servers::ensure(root)?;
    let servers = servers::TestServers::start(binaries)?;
    let mut bench = cargo(root);
    bench
        .args(["bench", "--package", "wasq-micro-benches", "--benches"])
        .arg("--")
        .args(filter)
        .envs(servers.env());
    step("criterion benchmarks (results in target/criterion/)", bench)?;
    servers.stop()
}

/// `bench [--quick]`: `wasq-bench` with the peers' venv and the test servers.
fn bench_side_by_side(root: &Path, rest: &[String]) -> anyhow::Result<()> {
    let quick = rest.iter().any(|a| a == "--quick");
    let mut build = cargo(root);
    build.args(["build", "--release", "--package", "wasq", "--bin", "wasq"]);
    build.args(WASQ_FEATURES);
    build.args(["--package", "wasq-bench", "--bin", "wasq-bench"]);
    step("build wasq and wasq-bench (release)", build)?;
    let binaries = servers::ensure(root)?;
    // Without the peers the benchmark still runs wasq, and their rows say why they are missing.
    let python = wasq_testkit::ensure_venv_requirements(
        &root.join("target/bench-venv"),
        &root.join("bench/peers/requirements.txt"),
        "the benchmark runs Django Q2, Celery and RQ beside wasq",
    );
    let servers = servers::TestServers::start(binaries)?;
    let mut run = Command::new(root.join("target/release/wasq-bench"));
    run.current_dir(root).envs(servers.env());
    match &python {
        Ok(python) => {
            run.arg("--python").arg(python);
        }
        Err(error) => {
            println!("    the peers cannot run: {error:#}");
            run.arg("--peers-missing").arg(format!("{error:#}"));
        }
    }
    if quick {
        run.args([
            "--out",
            "target/bench/quick.json",
            "--charts",
            "target/bench",
        ]);
        run.args(["--command", "cargo xtask bench --quick"]);
    } else {
        run.args([
            "--out",
            "bench/results/latest.json",
            "--charts",
            "bench/results",
        ]);
        run.args([
            "--document",
            "BENCHMARKS.md",
            "--command",
            "cargo xtask bench",
        ]);
    }
    run.args(rest);
    let outcome = step("side-by-side benchmark", run);
    servers.stop()?;
    outcome
}

/// `bench brokers`: the e2e example on each broker, one after another, on
/// the test servers.
fn bench_brokers(root: &Path, tasks: Option<&str>) -> anyhow::Result<()> {
    let tasks = tasks.unwrap_or("20000");
    let count: usize = tasks
        .parse()
        .with_context(|| format!("TASKS must be a number, not `{tasks}`"))?;
    let mut build = cargo(root);
    build.args([
        "build",
        "--release",
        "--package",
        "wasq",
        "--example",
        "e2e",
    ]);
    step("build the e2e example", build)?;
    let binaries = servers::ensure(root)?;
    let servers = servers::TestServers::start(binaries)?;
    let env = servers.env();
    let var = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let dir = servers.dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let sqlite = format!("sqlite://{}", dir.join("wasq.db").display());
    let postgres = var("WASQ_TEST_POSTGRES_URL");
    let redis = var("WASQ_TEST_REDIS_URL");
    let sqs = format!(
        "sqs://bench?region=us-east-1&endpoint={}",
        var("WASQ_TEST_SQS_ENDPOINT")
    );
    // moto is a Python server whose receive scans the whole queue: a few
    // hundred tasks take it long enough.
    let sqs_tasks = (count / 40).clamp(100, 500).to_string();
    let runs: [(&str, &str, &str, &str); 5] = [
        ("sqlite broker, sqlite store", &sqlite, &sqlite, tasks),
        ("redis broker, sqlite store", &redis, "-", tasks),
        ("redis broker, postgres store", &redis, &postgres, tasks),
        ("postgres broker and store", &postgres, &postgres, tasks),
        ("sqs (moto) broker, sqlite store", &sqs, "-", &sqs_tasks),
    ];
    let example = root.join("target/release/examples/e2e");
    for (name, broker, store, n) in runs {
        let mut run = Command::new(&example);
        run.current_dir(root)
            .args([broker, store, n, "8", "500"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        step(name, run)?;
    }
    servers.stop()
}
