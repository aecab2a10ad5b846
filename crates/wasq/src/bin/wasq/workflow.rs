//! Workflow commands and flags: the task options of `wasq enqueue` (ETA,
//! priority, retries, hook, unique key), `wasq chain`, `wasq map`,
//! `wasq group`, `wasq cancel` and `wasq failed`.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use wasq::store::{CancelState, TaskResult, now_ms};
use wasq::units::{format_duration, parse_duration};
use wasq::workflow::RetryPolicy;
use wasq::{ClientError, OutcomeKind, TaskRequest};

use crate::cli_error::CliError;
use crate::settings::Settings;

/// When, how urgently and how persistently a task runs.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct TaskOptions {
    /// Priority in its queue, -1000..=1000: higher runs first (on brokers
    /// that order by priority; see the README).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    priority: i32,
    /// Run no sooner than TIME: RFC 3339 (2026-12-01T09:00:00Z) or a local
    /// date and time ('2026-12-01 09:00') in --tz.
    #[arg(long, value_name = "TIME", conflicts_with = "delay")]
    at: Option<String>,
    /// Run no sooner than DUR from now, e.g. 30s or 2h.
    #[arg(long = "in", value_name = "DUR", value_parser = parse_duration)]
    delay: Option<Duration>,
    /// Time zone of --at [default: UTC].
    #[arg(long, value_name = "TZ", default_value = "UTC")]
    tz: String,
    /// Attempts in all when the task fails (1 = no retry) [default: the
    /// module's policy, else the cluster's].
    #[arg(long, value_name = "N")]
    max_attempts: Option<u32>,
    /// Delay before the second attempt; it doubles each time (see
    /// --backoff-factor) [default: 1s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "max_attempts")]
    backoff: Option<Duration>,
    /// Growth of the delay per attempt [default: 2].
    #[arg(long, value_name = "X", requires = "max_attempts")]
    backoff_factor: Option<f64>,
    /// Longest delay between attempts [default: 5m].
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "max_attempts")]
    backoff_max: Option<Duration>,
    /// Share of each delay taken off at random, 0 to 1 [default: 0.25].
    #[arg(long, value_name = "X", requires = "max_attempts")]
    jitter: Option<f64>,
    /// Outcomes that are retried, comma-separated [default:
    /// guest_error,trap,timeout].
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        requires = "max_attempts"
    )]
    retry_on: Vec<String>,
    /// A task run with this task's record when it ends: MODULE:TASK.
    #[arg(long, value_name = "MODULE:TASK")]
    hook: Option<String>,
    /// Drop this task (and say so) while a task with the same key is
    /// queued or running.
    #[arg(long, value_name = "KEY")]
    unique_key: Option<String>,
    /// Hold the unique key at most this long [default: 24h, or until the
    /// task ends].
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "unique_key")]
    unique_for: Option<Duration>,
}

impl TaskOptions {
    /// The request with these options applied.
    pub(crate) fn apply(&self, mut request: TaskRequest) -> Result<TaskRequest, CliError> {
        request.priority = self.priority;
        if let Some(at) = &self.at {
            let at = wasq::schedule::parse_time(at, &self.tz)
                .map_err(|e| CliError::usage(anyhow!("--at: {e}")))?;
            request.eta_ms = Some(at.as_millisecond());
        }
        if let Some(delay) = self.delay {
            request.eta_ms = Some(now_ms() + delay.as_millis() as i64);
        }
        if let Some(max_attempts) = self.max_attempts {
            let defaults = RetryPolicy::default();
            let retry_on = self
                .retry_on
                .iter()
                .map(|name| {
                    OutcomeKind::ALL
                        .into_iter()
                        .find(|k| k.as_str() == name.trim())
                        .ok_or_else(|| {
                            CliError::usage(anyhow!(
                                "--retry-on: unknown outcome `{name}`; use guest_error, trap, timeout, fuel_exhausted, memory_limit or output_limit"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            request.retry = Some(RetryPolicy {
                max_attempts,
                backoff_ms: self
                    .backoff
                    .map_or(defaults.backoff_ms, |d| d.as_millis() as u64),
                factor: self.backoff_factor.unwrap_or(defaults.factor),
                backoff_max_ms: self
                    .backoff_max
                    .map_or(defaults.backoff_max_ms, |d| d.as_millis() as u64),
                jitter: self.jitter.unwrap_or(defaults.jitter),
                retry_on: if retry_on.is_empty() {
                    defaults.retry_on
                } else {
                    retry_on
                },
            });
        }
        if let Some(hook) = &self.hook {
            let (module, task) = hook
                .rsplit_once(':')
                .filter(|(m, t)| !m.is_empty() && !t.is_empty())
                .ok_or_else(|| {
                    CliError::usage(anyhow!(
                        "--hook: expected MODULE:TASK, e.g. basics:record, got `{hook}`"
                    ))
                })?;
            request.hook = Some((module.to_owned(), task.to_owned()));
        }
        request.unique_key.clone_from(&self.unique_key);
        request.unique_for = self.unique_for;
        Ok(request)
    }
}

/// Run tasks one after another, each once the one before succeeded.
#[derive(Debug, Args)]
#[command(after_help = "\
FILE is JSON: a list of tasks, or {\"pass_result\": true, \"tasks\": [...]}.
Each task is {\"module\": M, \"task\": T, \"args\": [...], \"kwargs\": {...}}
(args, kwargs, \"queue\" and \"group\" optional). A failed task stops the
chain; the tasks after it end `cancelled`. With pass_result (or
--pass-result) each result is put in front of the next task's args.

Example file:
  {\"pass_result\": true, \"tasks\": [
     {\"module\": \"basics\", \"task\": \"add\", \"args\": [1, 2]},
     {\"module\": \"basics\", \"task\": \"add\", \"args\": [10]}]}")]
pub(crate) struct ChainArgs {
    #[command(flatten)]
    settings: Settings,
    /// The chain, as JSON (- for stdin).
    file: PathBuf,
    /// Pass each result to the next task as its first argument.
    #[arg(long)]
    pass_result: bool,
    /// Wait for the whole chain and print each result.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainTask {
    module: String,
    task: String,
    #[serde(default = "empty_array")]
    args: serde_json::Value,
    #[serde(default = "empty_object")]
    kwargs: serde_json::Value,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    group: Option<String>,
}

fn empty_array() -> serde_json::Value {
    serde_json::json!([])
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ChainFile {
    Tasks(Vec<ChainTask>),
    Full {
        #[serde(default)]
        pass_result: bool,
        tasks: Vec<ChainTask>,
    },
}

fn read_input(path: &PathBuf) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        return std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::usage(anyhow!("cannot read stdin: {e}")));
    }
    std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(anyhow!("cannot read {}: {e}", path.display())))
}

pub(crate) async fn chain(args: ChainArgs) -> Result<ExitCode, CliError> {
    let text = read_input(&args.file)?;
    let file: ChainFile = serde_json::from_str(&text).map_err(|e| {
        CliError::usage(anyhow!(
            "{}: not a chain ({e}); expected a list of {{\"module\", \"task\", \"args\"}} objects",
            args.file.display()
        ))
    })?;
    let (pass_result, tasks) = match file {
        ChainFile::Tasks(tasks) => (false, tasks),
        ChainFile::Full { pass_result, tasks } => (pass_result, tasks),
    };
    let requests: Vec<TaskRequest> = tasks
        .into_iter()
        .map(|t| TaskRequest {
            args: t.args,
            kwargs: t.kwargs,
            queue: t.queue,
            group: t.group,
            ..TaskRequest::new(t.module, t.task)
        })
        .collect();
    let (_, client) = args.settings.client().await?;
    let ids = client
        .enqueue_chain(&requests, pass_result || args.pass_result)
        .await?;
    if !args.wait {
        if args.json {
            println!("{}", serde_json::json!({ "ids": ids }));
        } else {
            for id in &ids {
                println!("{id}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let results = wait_all(&client, &ids, args.timeout).await?;
    print_results(&results, args.json)
}

/// Waits for every id's result, in order.
async fn wait_all(
    client: &wasq::Client,
    ids: &[String],
    timeout: Duration,
) -> Result<Vec<TaskResult>, CliError> {
    let deadline = std::time::Instant::now() + timeout;
    let mut results = Vec::with_capacity(ids.len());
    for (n, id) in ids.iter().enumerate() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match client.wait(id, left).await? {
            Some(result) => results.push(result),
            None => {
                return Err(CliError::other(anyhow!(
                    "{n} of {} results arrived within {}; is a cluster running? (task {id} has none yet)",
                    ids.len(),
                    format_duration(timeout)
                )));
            }
        }
    }
    Ok(results)
}

/// Prints results in order (one line each, or a JSON array); the exit
/// code is 0 when all succeeded, else the first failure's.
fn print_results(results: &[TaskResult], json: bool) -> Result<ExitCode, CliError> {
    if json {
        let all: Vec<_> = results.iter().map(TaskResult::to_json).collect();
        println!("{}", serde_json::Value::Array(all));
    } else {
        for result in results {
            if result.success {
                println!("{}", result.result_json());
            } else {
                println!(
                    "{} {}{}",
                    result.outcome,
                    result.id,
                    result
                        .error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    let code = results
        .iter()
        .find(|r| !r.success)
        .map_or(0, TaskResult::exit_code);
    Ok(ExitCode::from(code))
}

/// Enqueue one task per line of a JSON Lines file (a group), and with
/// --wait print the results in input order.
#[derive(Debug, Args)]
#[command(after_help = "\
Each line of FILE is the arguments of one task: a JSON array (positional),
an object with \"args\" and/or \"kwargs\", or any other JSON value (one
positional argument). Blank lines are skipped.

Example:
  printf '[1,2]\\n[3,4]\\n' > pairs.jsonl
  wasq map basics add --args-file pairs.jsonl --wait")]
pub(crate) struct MapArgs {
    #[command(flatten)]
    settings: Settings,
    /// Module: an uploaded name, a digest, or a path to a .wasm file.
    module: String,
    /// Task inside the module.
    task: String,
    /// JSON Lines, one task's arguments per line (- for stdin).
    #[arg(long, value_name = "FILE")]
    args_file: PathBuf,
    /// Group of the tasks [default: a new one, printed].
    #[arg(long)]
    group: Option<String>,
    /// Queue [default: the configured one].
    #[arg(long)]
    queue: Option<String>,
    #[command(flatten)]
    options: TaskOptions,
    /// Wait for all results and print them in input order.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn map(args: MapArgs) -> Result<ExitCode, CliError> {
    let text = read_input(&args.args_file)?;
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("map-{}", &wasq::package::new_task_id()[..12]));
    let mut requests = Vec::new();
    for (n, line) in std::io::Cursor::new(text).lines().enumerate() {
        let line =
            line.map_err(|e| CliError::usage(anyhow!("{}: {e}", args.args_file.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
            CliError::usage(anyhow!(
                "{} line {}: bad JSON: {e}",
                args.args_file.display(),
                n + 1
            ))
        })?;
        let (positional, named) = match value {
            serde_json::Value::Array(_) => (value, empty_object()),
            serde_json::Value::Object(mut object)
                if object.contains_key("args") || object.contains_key("kwargs") =>
            {
                (
                    object.remove("args").unwrap_or_else(empty_array),
                    object.remove("kwargs").unwrap_or_else(empty_object),
                )
            }
            other => (serde_json::json!([other]), empty_object()),
        };
        let request = TaskRequest {
            args: positional,
            kwargs: named,
            queue: args.queue.clone(),
            group: Some(group.clone()),
            ..TaskRequest::new(&args.module, &args.task)
        };
        requests.push(args.options.apply(request)?);
    }
    if requests.is_empty() {
        return Err(CliError::usage(anyhow!(
            "{}: no tasks in it",
            args.args_file.display()
        )));
    }
    let (_, client) = args.settings.client().await?;
    let ids = client.enqueue_many(&requests).await?;
    if !args.wait {
        if args.json {
            println!("{}", serde_json::json!({ "group": group, "ids": ids }));
        } else {
            eprintln!("enqueued {} tasks in group {group}", ids.len());
            for id in &ids {
                println!("{id}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let results = wait_all(&client, &ids, args.timeout).await?;
    print_results(&results, args.json)
}

/// List the results of a group, with counts per outcome.
#[derive(Debug, Args)]
pub(crate) struct GroupArgs {
    #[command(flatten)]
    settings: Settings,
    /// The group name.
    #[arg(value_name = "NAME")]
    group: String,
    /// Print JSON: {"group", "count", "outcomes", "results"}.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn group(args: GroupArgs) -> Result<ExitCode, CliError> {
    let (_, client) = args.settings.client().await?;
    let results = client
        .store()
        .group_results(&args.group)
        .await
        .map_err(ClientError::from)?;
    let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
    for result in &results {
        *counts.entry(result.outcome.as_str()).or_default() += 1;
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "group": args.group,
                "count": results.len(),
                "outcomes": counts,
                "results": results.iter().map(TaskResult::to_json).collect::<Vec<_>>(),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if results.is_empty() {
        println!("group {}: no results yet", args.group);
        return Ok(ExitCode::SUCCESS);
    }
    let summary: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
    println!(
        "group {}: {} results ({})",
        args.group,
        results.len(),
        summary.join(", ")
    );
    println!("{:<32}  {:<14}  {:<16}  RESULT", "ID", "OUTCOME", "TASK");
    for r in &results {
        let value = if r.success {
            r.result_json().to_string()
        } else {
            r.error
                .clone()
                .unwrap_or_else(|| r.stderr.trim().to_owned())
        };
        let value: String = value.chars().take(60).collect();
        println!("{:<32}  {:<14}  {:<16}  {value}", r.id, r.outcome, r.task);
    }
    Ok(ExitCode::SUCCESS)
}

/// Cancel a task: a queued one never runs, a running one is stopped.
#[derive(Debug, Args)]
#[command(after_help = "\
The task's result becomes `cancelled` (exit code 9 for `wasq result`). A
task that already finished is left alone: the command says how it ended
and exits 1.")]
pub(crate) struct CancelArgs {
    #[command(flatten)]
    settings: Settings,
    /// The task id.
    id: String,
    /// Print JSON: {"id", "state"}.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn cancel(args: CancelArgs) -> Result<ExitCode, CliError> {
    if let Some(remote) = args.settings.remote()? {
        let answer = remote.cancel(&args.id).await?;
        if args.json {
            println!("{answer}");
        } else if answer["state"] == "finished" {
            return Err(CliError::other(anyhow!(
                "task {} already finished; nothing to cancel",
                args.id
            )));
        } else {
            println!("cancelled {}", args.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (_, client) = args.settings.client().await?;
    match client.cancel(&args.id).await? {
        CancelState::Finished(outcome) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"id": args.id, "state": "finished", "outcome": outcome})
                );
            }
            Err(CliError::other(anyhow!(
                "task {} already finished ({outcome}); nothing to cancel",
                args.id
            )))
        }
        CancelState::Requested { .. } => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"id": args.id, "state": "cancelled"})
                );
            } else {
                println!(
                    "cancelled {}: it will not run, or stops within a moment if running",
                    args.id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Failed tasks and packages no cluster would run: list them, queue one
/// again, or remove one.
#[derive(Debug, Args)]
pub(crate) struct FailedArgs {
    #[command(subcommand)]
    command: FailedCommand,
}

#[derive(Debug, Subcommand)]
enum FailedCommand {
    /// List failed tasks, newest first, then the packages no cluster
    /// would run (a signature that did not verify, bytes that did not
    /// decode, a claim their tenant does not own), kept with their bytes.
    List {
        #[command(flatten)]
        settings: Settings,
        /// At most this many of each.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only the packages.
        #[arg(long)]
        packages: bool,
        /// Print JSON: an array of failed tasks (with --packages, of packages).
        #[arg(long)]
        json: bool,
    },
    /// Enqueue a failed task again (a new id, fresh attempts) and remove
    /// the failure, printing the new id; or, with --package, re-sign a
    /// failed package with this configuration's secret and queue it again
    /// (its task id kept), printing the task id. A package's contents were
    /// never verified: resubmit only what you trust (most often tasks
    /// refused by a cluster that had the wrong secret).
    Resubmit {
        #[command(flatten)]
        settings: Settings,
        #[command(flatten)]
        target: FailedTarget,
    },
    /// Delete a failed task's result, or with --package a failed package.
    Remove {
        #[command(flatten)]
        settings: Settings,
        #[command(flatten)]
        target: FailedTarget,
    },
}

/// A failed task by id, or a failed package by digest.
#[derive(Debug, Args)]
struct FailedTarget {
    /// The failed task's id.
    #[arg(required_unless_present = "package", conflicts_with = "package")]
    id: Option<String>,
    /// The digest of a failed package (or its first 8 or more digits).
    #[arg(long, value_name = "DIGEST")]
    package: Option<String>,
}

pub(crate) async fn failed(args: FailedArgs) -> Result<ExitCode, CliError> {
    match args.command {
        FailedCommand::List {
            settings,
            limit,
            packages,
            json,
        } => {
            let (_, client) = settings.client().await?;
            let dead = client
                .store()
                .dead_letters(limit)
                .await
                .map_err(ClientError::from)?;
            if packages {
                if json {
                    println!("{}", serde_json::to_value(&dead).map_err(CliError::other)?);
                } else {
                    print_packages(&dead);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let failures = client
                .store()
                .failures(limit)
                .await
                .map_err(ClientError::from)?;
            if json {
                let all: Vec<_> = failures.iter().map(TaskResult::to_json).collect();
                println!("{}", serde_json::Value::Array(all));
                return Ok(ExitCode::SUCCESS);
            }
            if failures.is_empty() {
                println!("no failed tasks");
                if !dead.is_empty() {
                    println!();
                    print_packages(&dead);
                }
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<32}  {:<14}  {:<16}  {:>8}  ERROR",
                "ID", "OUTCOME", "TASK", "ATTEMPTS"
            );
            for f in &failures {
                let error = f
                    .error
                    .clone()
                    .unwrap_or_else(|| f.stderr.trim().to_owned());
                let error: String = error.replace('\n', " ").chars().take(60).collect();
                println!(
                    "{:<32}  {:<14}  {:<16}  {:>8}  {error}",
                    f.id, f.outcome, f.task, f.attempts
                );
            }
            if !dead.is_empty() {
                println!();
                print_packages(&dead);
            }
            Ok(ExitCode::SUCCESS)
        }
        FailedCommand::Resubmit {
            settings,
            target: FailedTarget { id, package },
        } => {
            let (_, client) = settings.client().await?;
            let new_id = match (id, package) {
                (_, Some(digest)) => client.resubmit_package(&digest).await?,
                (Some(id), None) => client.resubmit(&id).await?,
                (None, None) => {
                    return Err(CliError::usage(anyhow!(
                        "give a task id or --package DIGEST"
                    )));
                }
            };
            println!("{new_id}");
            Ok(ExitCode::SUCCESS)
        }
        FailedCommand::Remove {
            settings,
            target: FailedTarget { id, package },
        } => {
            let (_, client) = settings.client().await?;
            let store = client.store();
            let removed = match (&id, &package) {
                (_, Some(digest)) => {
                    match store.dead_letter(digest).await.map_err(ClientError::from)? {
                        Some((dead, _)) => store
                            .remove_dead_letter(&dead.digest)
                            .await
                            .map_err(ClientError::from)?,
                        None => false,
                    }
                }
                (Some(id), None) => {
                    let failed = store
                        .result(id)
                        .await
                        .map_err(ClientError::from)?
                        .is_some_and(|r| !r.success);
                    failed && store.remove_result(id).await.map_err(ClientError::from)?
                }
                (None, None) => {
                    return Err(CliError::usage(anyhow!(
                        "give a task id or --package DIGEST"
                    )));
                }
            };
            if !removed {
                let what = package.map_or_else(
                    || format!("no failed task with id `{}`", id.unwrap_or_default()),
                    |d| format!("no failed package with digest `{d}`"),
                );
                return Err(CliError::other(anyhow!("{what}; see `wasq failed list`")));
            }
            println!("removed");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The failed packages as an aligned table.
fn print_packages(dead: &[wasq::store::DeadLetter]) {
    if dead.is_empty() {
        println!("no failed packages");
        return;
    }
    println!(
        "packages no cluster would run (re-sign with `wasq failed resubmit --package DIGEST`):"
    );
    println!(
        "{:<16}  {:<32}  {:<10}  {:<16}  {:>8}  REASON",
        "DIGEST", "TASK ID", "VERIFIED", "QUEUE", "REFUSALS"
    );
    for d in dead {
        println!(
            "{:<16}  {:<32}  {:<10}  {:<16}  {:>8}  {}",
            &d.digest[..d.digest.len().min(16)],
            d.task_id.as_deref().unwrap_or("?"),
            if d.verified { "yes" } else { "no" },
            d.queue,
            d.refusals,
            d.reason
                .replace('\n', " ")
                .chars()
                .take(60)
                .collect::<String>()
        );
    }
}
