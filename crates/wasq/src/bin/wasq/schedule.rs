//! `wasq schedule add|list|pause|resume|remove`: tasks that run on a schedule (every N
//! minutes, daily, monthly, cron…) in a time zone. Each due run starts
//! once however many clusters run.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use wasq::store::Schedule;
use wasq::{ClientError, ScheduleRequest, TaskRequest};

use crate::cli_error::CliError;
use crate::settings::Settings;

/// Run tasks on a schedule.
#[derive(Debug, Args)]
pub(crate) struct ScheduleArgs {
    #[command(subcommand)]
    command: ScheduleCommand,
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    Add(Box<AddArgs>),
    /// List schedules: next run, type, runs left.
    List {
        #[command(flatten)]
        settings: Settings,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a schedule by name (tasks it already queued still run).
    Remove(NameArgs),
    /// Pause a schedule: it does not fire until resumed.
    Pause(NameArgs),
    /// Resume a paused schedule; runs it missed are caught up as after an
    /// outage (once each, or once for all with --no-catch-up).
    Resume(NameArgs),
}

/// A schedule by name.
#[derive(Debug, Args)]
struct NameArgs {
    #[command(flatten)]
    settings: Settings,
    /// The schedule's name.
    #[arg(value_name = "NAME")]
    schedule: String,
}

/// Add a schedule.
#[derive(Debug, Args)]
#[command(after_help = "\
Types: once, minutes (with --minutes N), hourly, daily, weekly, biweekly,
monthly, bimonthly, quarterly, yearly, cron (with --cron, 5 fields
`min hour day month weekday` or 6 with seconds first). Daily and longer
keep their wall-clock time in --tz across DST changes (a 02:30 run on a
spring-forward day runs once, at 03:30; on an autumn-back day it runs
once); minutes and hourly are exact intervals.

Examples:
  wasq schedule add nightly basics fib --args '[20]' --every daily --next-run '2026-12-01 02:30' --tz Europe/Amsterdam
  wasq schedule add poll basics add --args '[1,2]' --every minutes --minutes 5 --repeats 12
  wasq schedule add weekdays basics hello --args '[\"team\"]' --every cron --cron '0 9 * * mon-fri' --tz America/New_York")]
struct AddArgs {
    #[command(flatten)]
    settings: Settings,
    /// A unique name for the schedule.
    #[arg(value_name = "NAME")]
    schedule: String,
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
    /// How often: once, minutes, hourly, daily, weekly, biweekly, monthly,
    /// bimonthly, quarterly, yearly or cron.
    #[arg(long, value_name = "TYPE")]
    every: String,
    /// For --every minutes: the interval in minutes.
    #[arg(long, value_name = "N")]
    minutes: Option<u32>,
    /// For --every cron: the expression.
    #[arg(long, value_name = "EXPR")]
    cron: Option<String>,
    /// IANA time zone, e.g. Europe/Amsterdam.
    #[arg(long, value_name = "TZ", default_value = "UTC")]
    tz: String,
    /// The first run: RFC 3339, or a local time in --tz ('2026-12-01
    /// 09:00') [default: now, or the next cron match].
    #[arg(long, value_name = "TIME")]
    next_run: Option<String>,
    /// Runs: -1 forever, or a count.
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    repeats: i64,
    /// After an outage run once, not once per missed time.
    #[arg(long)]
    no_catch_up: bool,
    /// Only clusters of this name run it.
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Queue [default: the cluster's].
    #[arg(long)]
    queue: Option<String>,
    /// Group of its tasks.
    #[arg(long)]
    group: Option<String>,
    /// Priority of its tasks.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    /// Print the schedule as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn schedule(args: ScheduleArgs) -> Result<ExitCode, CliError> {
    match args.command {
        ScheduleCommand::Add(args) => add(*args).await,
        ScheduleCommand::List { settings, json } => {
            let (_, client) = settings.client().await?;
            let schedules = client
                .store()
                .schedules()
                .await
                .map_err(ClientError::from)?;
            print_schedules(&schedules, json);
            Ok(ExitCode::SUCCESS)
        }
        ScheduleCommand::Remove(args) => by_name(args, Change::Remove).await,
        ScheduleCommand::Pause(args) => by_name(args, Change::Pause).await,
        ScheduleCommand::Resume(args) => by_name(args, Change::Resume).await,
    }
}

/// What a command does to a schedule named on the command line.
#[derive(Debug, Clone, Copy)]
enum Change {
    Remove,
    Pause,
    Resume,
}

async fn by_name(args: NameArgs, change: Change) -> Result<ExitCode, CliError> {
    let name = args.schedule;
    let (_, client) = args.settings.client().await?;
    let store = client.store();
    let (found, done) = match change {
        Change::Remove => (store.remove_schedule(&name).await, "removed"),
        Change::Pause => (store.set_schedule_paused(&name, true).await, "paused"),
        Change::Resume => (store.set_schedule_paused(&name, false).await, "resumed"),
    };
    if found.map_err(ClientError::from)? {
        println!("{done} schedule {name}");
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::other(anyhow!(
            "no schedule named `{name}`; see `wasq schedule list`"
        )))
    }
}

async fn add(args: AddArgs) -> Result<ExitCode, CliError> {
    let (positional, named) = crate::run::parse_task_args(&args.args, &args.kwargs)?;
    let next_run_ms = match &args.next_run {
        Some(text) => Some(
            wasq::schedule::parse_time(text, &args.tz)
                .map_err(|e| CliError::usage(anyhow!("next_run: {e}")))?
                .as_millisecond(),
        ),
        None => None,
    };
    let task = TaskRequest {
        args: positional,
        kwargs: named,
        queue: args.queue.clone(),
        group: args.group.clone(),
        priority: args.priority,
        ..TaskRequest::new(&args.module, &args.task)
    };
    let request = ScheduleRequest {
        minutes: args.minutes,
        cron: args.cron.clone(),
        tz: args.tz.clone(),
        next_run_ms,
        repeats: args.repeats,
        catch_up: !args.no_catch_up,
        cluster: args.cluster.clone(),
        ..ScheduleRequest::new(&args.schedule, task, &args.every)
    };
    let (_, client) = args.settings.client().await?;
    let schedule = client.add_schedule(&request).await?;
    if args.json {
        println!("{}", schedule_json(&schedule));
    } else {
        println!(
            "added schedule {}: {} {}, next run {}",
            schedule.spec.name,
            schedule.spec.kind,
            describe(&schedule),
            when(schedule.spec.next_run_ms, &schedule.spec.tz)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn schedule_json(schedule: &Schedule) -> serde_json::Value {
    let mut value = serde_json::to_value(schedule).unwrap_or_default();
    value["digest"] = serde_json::json!(schedule.spec.digest.to_string());
    value["active"] = serde_json::json!(schedule.active());
    value
}

/// The frequency's detail: `every 5 min`, `0 9 * * 1-5`, or nothing.
fn describe(schedule: &Schedule) -> String {
    match (&schedule.spec.minutes, &schedule.spec.cron) {
        (Some(m), _) => format!("every {m} min"),
        (_, Some(cron)) => format!("`{cron}`"),
        _ => String::new(),
    }
}

/// A time in a zone, as people read it.
fn when(ms: i64, tz: &str) -> String {
    wasq::schedule::Timestamp::from_millisecond(ms)
        .ok()
        .and_then(|t| jiff_zoned(t, tz))
        .unwrap_or_else(|| ms.to_string())
}

fn jiff_zoned(t: wasq::schedule::Timestamp, tz: &str) -> Option<String> {
    let zone = jiff::tz::TimeZone::get(tz).ok()?;
    Some(
        t.to_zoned_datetime(zone)
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
    )
}

fn print_schedules(schedules: &[Schedule], json: bool) {
    if json {
        let all: Vec<_> = schedules.iter().map(schedule_json).collect();
        println!("{}", serde_json::Value::Array(all));
        return;
    }
    if schedules.is_empty() {
        println!("no schedules; add one with `wasq schedule add`");
        return;
    }
    println!(
        "{:<16}  {:<24}  {:<10}  {:<18}  {:<27}  {:>7}  {:>4}",
        "NAME", "TASK", "TYPE", "DETAIL", "NEXT RUN", "REPEATS", "RUNS"
    );
    for s in schedules {
        let next = if !s.active() {
            "done".into()
        } else if s.paused {
            "paused".into()
        } else {
            when(s.spec.next_run_ms, &s.spec.tz)
        };
        let repeats = if s.spec.repeats < 0 {
            "forever".to_owned()
        } else {
            s.spec.repeats.to_string()
        };
        println!(
            "{:<16}  {:<24}  {:<10}  {:<18}  {:<27}  {:>7}  {:>4}",
            s.spec.name,
            format!("{}:{}", s.spec.module, s.spec.task),
            s.spec.kind,
            describe(s),
            next,
            repeats,
            s.runs
        );
    }
}
