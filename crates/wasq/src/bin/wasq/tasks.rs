//! `wasq enqueue` and `wasq result`: send a task, read or wait for its
//! result.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use wasq::package::TaskLimits;
use wasq::store::{TaskResult, TaskState};

use crate::task_state::state_line;
use wasq::units::{parse_duration, parse_size};
use wasq::{Client, TaskRequest};

use crate::cli_error::CliError;
use crate::settings::Settings;

/// Enqueue a task and print its id (with --wait, its result).
#[derive(Debug, Args)]
#[command(after_help = "\
With --wait the exit code is the task's, as for `wasq run` (0 success,
1 guest error, 3 trap, 4 timeout, 5 fuel, 6 memory, 7 output, 8 invalid
module, 9 cancelled); 2 is a usage error, 1 also means no result arrived
in time, or that --unique-key dropped the task (nothing was enqueued).

Examples:
  wasq enqueue basics fib --args '[20]' --wait
  wasq enqueue target/wasm/basics.wasm hello --kwargs '{\"name\": \"Ada\"}'
  wasq enqueue basics add --args '[1,2]' --in 10m --priority 5
  wasq enqueue basics fib --args '[20]' --at '2026-12-01 09:00' --tz Europe/Amsterdam
  wasq enqueue basics flaky --args '[3]' --unique-key sync:42 --max-attempts 5 --backoff 2s
  wasq enqueue basics fib --args '[20]' --hook basics:record")]
pub(crate) struct EnqueueArgs {
    #[command(flatten)]
    settings: Settings,
    /// Module: an uploaded name, a digest, or a path to a .wasm file.
    module: String,
    /// Task inside the module.
    task: String,
    /// Positional arguments, as a JSON array.
    #[arg(long, default_value = "[]", value_name = "JSON")]
    args: String,
    /// Named arguments, as a JSON object.
    #[arg(long, default_value = "{}", value_name = "JSON")]
    kwargs: String,
    /// Queue [default: the configured one].
    #[arg(long)]
    queue: Option<String>,
    /// Group name.
    #[arg(long)]
    group: Option<String>,
    /// The task's wall-clock limit, e.g. 1s [default: the cluster's].
    #[arg(long = "task-timeout", value_name = "DUR", value_parser = parse_duration)]
    task_timeout: Option<Duration>,
    /// The task's fuel budget [default: the cluster's].
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// The task's memory limit, e.g. 32MiB [default: the cluster's].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Keep the result this long in the result cache (`cache` in
    /// wasq.toml, a Redis URL) instead of the store, e.g. 10m.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    cached: Option<Duration>,
    #[command(flatten)]
    options: crate::workflow::TaskOptions,
    /// Wait for the result and print it.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration, requires = "wait")]
    timeout: Duration,
    /// Print JSON: {"id": …} or, with --wait, the whole result.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn enqueue(args: EnqueueArgs) -> Result<ExitCode, CliError> {
    let (positional, named) = crate::run::parse_task_args(&args.args, &args.kwargs)?;
    let request = TaskRequest {
        module: args.module.clone(),
        task: args.task.clone(),
        args: positional,
        kwargs: named,
        queue: args.queue.clone(),
        group: args.group.clone(),
        limits: TaskLimits {
            timeout_ms: args.task_timeout.map(|d| d.as_millis() as u64),
            fuel: args.fuel,
            memory: args.memory,
        },
        cached: args.cached,
        ..TaskRequest::new(&args.module, &args.task)
    };
    let request = args.options.apply(request)?;
    if let Some(remote) = args.settings.remote()? {
        let id = remote.enqueue(&remote_body(&request)?).await?;
        if !args.wait {
            print_id(&id, args.json);
            return Ok(ExitCode::SUCCESS);
        }
        let task = remote.task(&id, args.timeout).await?;
        return crate::remote::print_task(&task, args.json);
    }
    let (_, client) = args.settings.client().await?;
    let id = client.enqueue(&request).await?;
    if !args.wait {
        print_id(&id, args.json);
        return Ok(ExitCode::SUCCESS);
    }
    wait_and_print(&client, &id, args.timeout, args.json).await
}

/// The `POST /v1/tasks` body of a request: every option `wasq enqueue`
/// takes, so the server honours or refuses each (none is dropped). A
/// module given as a file cannot go: the server runs uploaded modules only.
fn remote_body(request: &TaskRequest) -> Result<serde_json::Value, CliError> {
    use serde_json::Value;
    if (request.module.ends_with(".wasm") || request.module.ends_with(".wat"))
        && std::path::Path::new(&request.module).is_file()
    {
        return Err(CliError::usage(anyhow::anyhow!(
            "with --server, MODULE is the name or digest of a module on the server: upload {} first (`wasq module upload {} --name NAME`), then enqueue NAME",
            request.module,
            request.module
        )));
    }
    let mut body = serde_json::json!({
        "module": request.module,
        "task": request.task,
        "args": request.args,
        "kwargs": request.kwargs,
    });
    let retry = request
        .retry
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(CliError::other)?;
    let fields = [
        ("queue", request.queue.clone().map(Value::from)),
        ("group", request.group.clone().map(Value::from)),
        ("fuel", request.limits.fuel.map(Value::from)),
        ("memory", request.limits.memory.map(Value::from)),
        ("timeout_ms", request.limits.timeout_ms.map(Value::from)),
        (
            "priority",
            (request.priority != 0).then(|| Value::from(request.priority)),
        ),
        ("eta_ms", request.eta_ms.map(Value::from)),
        ("retry", retry),
        (
            "hook",
            request
                .hook
                .as_ref()
                .map(|(module, task)| serde_json::json!({"module": module, "task": task})),
        ),
        ("unique_key", request.unique_key.clone().map(Value::from)),
        (
            "unique_for_ms",
            request
                .unique_for
                .map(|d| Value::from(d.as_millis().min(u128::from(u64::MAX)) as u64)),
        ),
        (
            "cached_secs",
            request
                .cached
                .map(|d| Value::from(d.as_secs().clamp(1, u64::from(u32::MAX)))),
        ),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            body[name] = value;
        }
    }
    Ok(body)
}

/// Prints a new task's id, as JSON with `json`.
fn print_id(id: &str, json: bool) {
    if json {
        println!("{}", serde_json::json!({ "id": id }));
    } else {
        println!("{id}");
    }
}

/// Print a task's result or wait for it.
#[derive(Debug, Args)]
pub(crate) struct ResultArgs {
    #[command(flatten)]
    settings: Settings,
    /// The task id `wasq enqueue` printed.
    id: String,
    /// Wait for the result if there is none yet.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print the whole result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn result(args: ResultArgs) -> Result<ExitCode, CliError> {
    if let Some(remote) = args.settings.remote()? {
        let wait = if args.wait {
            args.timeout
        } else {
            Duration::ZERO
        };
        let task = remote.task(&args.id, wait).await?;
        return crate::remote::print_task(&task, args.json);
    }
    let (_, client) = args.settings.client().await?;
    if args.wait {
        return wait_and_print(&client, &args.id, args.timeout, args.json).await;
    }
    let state = client.state(&args.id).await?;
    print_state(&args.id, state, args.json, None)
}

pub(crate) async fn wait_and_print(
    client: &Client,
    id: &str,
    timeout: Duration,
    json: bool,
) -> Result<ExitCode, CliError> {
    let state = client.wait_state(id, timeout).await?;
    print_state(id, state, json, Some(timeout))
}

/// Prints where task `id` stands: its result as `wasq run` would (and its
/// exit code), or else one line saying whether it is queued (and when it
/// is due), running, finished with its result pruned, or unknown (exit
/// code 1). With `json`, an object with a `state` field instead of the
/// line. `waited` is how long `--wait` waited, if it did.
pub(crate) fn print_state(
    id: &str,
    state: TaskState,
    json: bool,
    waited: Option<Duration>,
) -> Result<ExitCode, CliError> {
    match &state {
        TaskState::Finished(result) => Ok(print_result(result, json)),
        _ if json => {
            let mut report = serde_json::Map::new();
            report.insert("id".into(), id.into());
            report.insert("state".into(), state.name().into());
            report.extend(state.details_json());
            println!("{}", serde_json::Value::Object(report));
            Ok(ExitCode::from(1))
        }
        _ => Err(CliError::other(anyhow::anyhow!(
            state_line(id, &state, waited).unwrap_or_default()
        ))),
    }
}

/// Prints a result as `wasq run` would, and returns its exit code.
pub(crate) fn print_result(result: &TaskResult, json: bool) -> ExitCode {
    if json {
        let mut report = result.to_json();
        report["state"] = "finished".into();
        println!("{report}");
    } else if result.success {
        let text = match result.result_json() {
            serde_json::Value::String(s)
                if result
                    .result
                    .as_deref()
                    .is_some_and(|r| !r.starts_with(b"\"")) =>
            {
                s
            }
            value => value.to_string(),
        };
        println!("{text}");
        if !result.stderr.trim().is_empty() {
            eprintln!("{}", result.stderr.trim_end());
        }
    } else {
        let log = result.stderr.trim_end();
        let detail = result
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        if log.is_empty() || log.contains('\n') {
            if !log.is_empty() {
                eprintln!("{log}");
            }
            eprintln!(
                "error: task `{}` ended with {}{detail}",
                result.task, result.outcome
            );
        } else {
            eprintln!(
                "error: task `{}` ended with {}{detail}: {log}",
                result.task, result.outcome
            );
        }
    }
    ExitCode::from(result.exit_code())
}
