//! `wasq run`: run one task of a module file in the sandbox, right here,
//! with no queue — the quickest way to try a task and its limits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use wasq::units::{format_duration, format_size, parse_duration, parse_size};
use wasq::{Execution, Limits, Outcome, OutputStream, Sandbox, SandboxConfig, TaskCall};

use crate::cli_error::CliError;

/// Run a task of a WebAssembly module in the sandbox and print its result.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit codes:
  0  success             the task's result is printed on stdout
  1  guest_error         the task exited non-zero; its stderr says why
  2  usage error         bad flags, unreadable file, arguments that are not JSON
  3  trap                the task crashed (unreachable, out-of-bounds access, …)
  4  timeout             the task ran past --timeout
  5  fuel_exhausted      the task burnt all its --fuel
  6  memory_limit        the task needed more than --memory
  7  output_limit        the task wrote more than its output limit
  8  invalid_module      not wasm, an import wasq does not provide, no _start

Examples:
  wasq run target/wasm/basics.wasm fib --args '[25]'
  wasq run target/wasm/basics.wasm hello --kwargs '{\"name\": \"Ada\"}' --json
  wasq run target/wasm/basics.wasm spin --timeout 1s")]
pub(crate) struct RunArgs {
    /// The module: a .wasm file (or WebAssembly text, .wat).
    file: PathBuf,

    /// The task to run inside the module.
    task: String,

    /// Positional arguments, as a JSON array.
    #[arg(long, default_value = "[]", value_name = "JSON")]
    args: String,

    /// Named arguments, as a JSON object.
    #[arg(long, default_value = "{}", value_name = "JSON")]
    kwargs: String,

    /// Fuel budget: roughly the wasm instructions the task may run.
    #[arg(long, value_name = "N", default_value = "1_000_000_000_000", value_parser = parse_fuel)]
    fuel: u64,

    /// Do not count fuel (faster on call-heavy code); only --timeout stops the task.
    #[arg(long, conflicts_with = "fuel")]
    no_fuel: bool,

    /// Wall-clock limit, e.g. 500ms, 1s, 2m.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,

    /// Linear memory limit, e.g. 32MiB, 1GiB.
    #[arg(long, value_name = "SIZE", default_value = "128MiB", value_parser = parse_size)]
    memory: u64,

    /// Print one JSON object: outcome, result, stderr, cpu_us, duration_us,
    /// memory_peak_bytes, fuel_consumed.
    #[arg(long)]
    json: bool,

    /// Directory of compiled modules [default: $WASQ_CACHE_DIR, else
    /// $XDG_CACHE_HOME/wasq/modules, else ~/.cache/wasq/modules].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile in memory only; read and write no cache directory.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,

    /// Longest the module may take to compile (in a worker process, killed
    /// then); a module past it is refused with exit code 8, and refused at
    /// once next time while the cache directory remembers it.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    compile_timeout: Duration,
}

fn parse_fuel(s: &str) -> Result<u64, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of fuel units"))
}

/// Where compiled modules are kept between runs.
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WASQ_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(base.join("wasq").join("modules"))
}

/// Parses `--args` (a JSON array) and `--kwargs` (a JSON object), naming
/// the flag and showing the fix on a mistake.
pub(crate) fn parse_task_args(
    args: &str,
    kwargs: &str,
) -> Result<(serde_json::Value, serde_json::Value), CliError> {
    let positional: serde_json::Value = serde_json::from_str(args)
        .map_err(|e| CliError::usage(anyhow::anyhow!("--args is not valid JSON ({e}): {args}")))?;
    if !positional.is_array() {
        return Err(CliError::usage(anyhow::anyhow!(
            "--args must be a JSON array of positional arguments, e.g. --args '[{args}]'"
        )));
    }
    let named: serde_json::Value = serde_json::from_str(kwargs).map_err(|e| {
        CliError::usage(anyhow::anyhow!(
            "--kwargs is not valid JSON ({e}): {kwargs}"
        ))
    })?;
    Ok((positional, named))
}

pub(crate) async fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    let module_name = args
        .file
        .file_stem()
        .map_or_else(|| "module".to_owned(), |s| s.to_string_lossy().into_owned());
    let (positional, named) = parse_task_args(&args.args, &args.kwargs)?;
    let call = TaskCall::new(&module_name, &args.task, &positional, &named)?;
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))
        .map_err(CliError::usage)?;

    let config = SandboxConfig {
        fuel: !args.no_fuel,
        slots: 4,
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(default_cache_dir)
        },
        compile_timeout: args.compile_timeout,
        compile_isolation: wasq::sandbox::CompileIsolation::current_exe()?,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config)?;
    let limits = Limits {
        timeout: args.timeout,
        fuel: args.fuel,
        memory: args.memory,
        ..Limits::default()
    };
    let execution = match sandbox.load(&bytes).await {
        Ok(module) => sandbox.run(&module, &call, &limits).await,
        Err(error) if args.json => Execution::invalid_module(error.to_string()),
        Err(error) => {
            return Err(CliError::from(error).context(&args.file));
        }
    };

    if args.json {
        println!("{}", execution.to_json());
    } else {
        print_human(&execution, &args, &limits);
    }
    Ok(ExitCode::from(execution.outcome.kind().exit_code()))
}

/// The result on stdout; the task's log and, on failure, one line saying
/// what happened and what to do, on stderr.
fn print_human(execution: &Execution, args: &RunArgs, limits: &Limits) {
    use std::io::Write as _;
    let log = execution.stderr_text();
    let log = log.trim_end();
    if execution.outcome.is_success() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&execution.stdout);
        if !execution.stdout.ends_with(b"\n") {
            let _ = out.write_all(b"\n");
        }
        if !log.is_empty() {
            eprintln!("{log}");
        }
        return;
    }
    let task = &args.task;
    let summary = match &execution.outcome {
        Outcome::Success => return,
        Outcome::GuestError { code } if !log.contains('\n') && !log.is_empty() => {
            eprintln!("error: task `{task}` failed (exit code {code}): {log}");
            return;
        }
        Outcome::GuestError { code } => format!("task `{task}` failed with exit code {code}"),
        Outcome::Trap { message } => format!("task `{task}` trapped: {message}"),
        Outcome::Cancelled => format!("task `{task}` was cancelled"),
        Outcome::ScratchLimit { what } => format!(
            "task `{task}` went over its scratch {} quota and was stopped",
            what.as_str()
        ),
        Outcome::Timeout => format!(
            "task `{task}` timed out after {}; raise --timeout if it needs longer",
            format_duration(limits.timeout)
        ),
        Outcome::FuelExhausted => format!(
            "task `{task}` ran out of fuel ({} units); raise --fuel if it needs more",
            limits.fuel
        ),
        Outcome::MemoryLimit => format!(
            "task `{task}` needed more than its memory limit of {}; raise --memory if it needs more",
            format_size(limits.memory)
        ),
        Outcome::OutputLimit { stream } => format!(
            "task `{task}` wrote more to {} than its limit of {}",
            stream.as_str(),
            format_size(match stream {
                OutputStream::Stdout => limits.stdout,
                OutputStream::Stderr => limits.stderr,
            } as u64)
        ),
        Outcome::InvalidModule { message } => format!("{}: {message}", args.file.display()),
    };
    if !log.is_empty() {
        eprintln!("{log}");
    }
    eprintln!("error: {summary}");
}
