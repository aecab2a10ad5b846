//! `wasq demo`: run every example task through the sandbox and print what
//! each one did — outcome, fuel, time, memory — in one table.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use wasq::units::{format_duration, format_size};
use wasq::{Limits, OutcomeKind, Sandbox, SandboxConfig, TaskCall};

use crate::cli_error::CliError;

/// Run a real workload on a temporary embedded setup: upload the example
/// modules (built by `cargo xtask build`), start a cluster, enqueue
/// thousands of mixed tasks, and report outcomes, throughput and latency.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Directory holding the example modules.
    #[arg(long, value_name = "DIR", default_value = "target/wasm")]
    wasm_dir: PathBuf,
    /// Tasks to enqueue.
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    /// Cluster workers [default: 4 per CPU].
    #[arg(long)]
    workers: Option<usize>,
    /// Enqueue only no-op tasks: measures the queue's own overhead end to
    /// end (the BENCHMARKS.md figure).
    #[arg(long, conflicts_with = "tour")]
    noop: bool,
    /// Instead, run each example task once through the sandbox and print a
    /// table of outcomes, fuel and time.
    #[arg(long)]
    tour: bool,
}

/// One row of the demo: a task, its arguments, its limits, and the outcome
/// the demo expects (so a surprise is reported, not hidden).
struct Case {
    module: &'static str,
    task: &'static str,
    args: serde_json::Value,
    limits: Limits,
    expect: OutcomeKind,
}

fn cases() -> Vec<Case> {
    let case = |module, task, args, expect| Case {
        module,
        task,
        args,
        limits: Limits::default(),
        expect,
    };
    use OutcomeKind::*;
    vec![
        case("basics", "hello", json!(["wasq"]), Success),
        case("basics", "add", json!([2, 40]), Success),
        case("basics", "fib", json!([25]), Success),
        case(
            "basics",
            "wordcount",
            json!(["the quick brown fox jumps over the lazy dog"]),
            Success,
        ),
        case("basics", "sleep", json!([50]), Success),
        Case {
            limits: Limits {
                timeout: Duration::from_millis(500),
                ..Limits::default()
            },
            ..case("basics", "spin", json!([]), Timeout)
        },
        Case {
            limits: Limits {
                fuel: 10_000_000,
                ..Limits::default()
            },
            ..case("basics", "spin", json!([]), FuelExhausted)
        },
        Case {
            limits: Limits {
                memory: 32 << 20,
                ..Limits::default()
            },
            ..case("basics", "alloc", json!([]), MemoryLimit)
        },
        case("basics", "panic", json!([]), GuestError),
        case("basics", "fail", json!([]), GuestError),
        case(
            "markdown",
            "render",
            json!(["# wasq\n\nTasks in *WebAssembly*."]),
            Success,
        ),
        case("escape", "read_file", json!([]), GuestError),
        case("escape", "list_dir", json!([]), GuestError),
        case("escape", "env", json!([]), GuestError),
        case("escape", "connect", json!([]), GuestError),
        case("hello_c", "hello", json!(["C"]), Success),
    ]
}

pub(crate) async fn demo(args: DemoArgs) -> Result<ExitCode, CliError> {
    if args.tour {
        tour(&args).await
    } else {
        crate::demo_queue::run(&args.wasm_dir, args.tasks, args.workers, args.noop).await
    }
}

async fn tour(args: &DemoArgs) -> Result<ExitCode, CliError> {
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    println!(
        "{:<9} {:<10} {:<15} {:>13} {:>9} {:>9} {:>9}  result or log",
        "module", "task", "outcome", "fuel", "cpu", "wall", "memory"
    );
    let mut surprises = 0;
    for case in cases() {
        let bytes = crate::demo_queue::read_example(&args.wasm_dir, case.module)?;
        let module = sandbox.load(&bytes).await?;
        let call = TaskCall::new(case.module, case.task, &case.args, &json!({}))?;
        let execution = sandbox.run(&module, &call, &case.limits).await;
        let kind = execution.outcome.kind();
        let shown = if kind == OutcomeKind::Success {
            execution.result_json().to_string()
        } else {
            execution
                .stderr_text()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        let mark = if kind == case.expect {
            ""
        } else {
            "  (unexpected!)"
        };
        surprises += usize::from(kind != case.expect);
        println!(
            "{:<9} {:<10} {:<15} {:>13} {:>9} {:>9} {:>9}  {}{mark}",
            case.module,
            case.task,
            kind.as_str(),
            execution
                .usage
                .fuel_consumed
                .map_or("-".into(), |f| f.to_string()),
            format_duration(execution.usage.cpu),
            format_duration(execution.usage.wall),
            format_size(execution.usage.memory_peak),
            truncate(&shown, 48),
        );
    }
    if surprises > 0 {
        return Err(CliError::other(anyhow::anyhow!(
            "{surprises} task(s) ended with an unexpected outcome"
        )));
    }
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}
