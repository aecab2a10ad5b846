//! `wasq module`, `wasq queue` and `wasq info`: the registry, the queues,
//! and what the clusters are doing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use wasq::units::format_size;

use crate::cli_error::CliError;
use crate::settings::Settings;

/// Manage the module registry (modules live in the store, so every
/// cluster can run them).
#[derive(Debug, Args)]
pub(crate) struct ModuleArgs {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: ModuleCommand,
}

#[derive(Debug, Subcommand)]
enum ModuleCommand {
    /// Upload a .wasm file under a name (default: the file's stem).
    Upload {
        /// The module file.
        file: PathBuf,
        /// Name to run it by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List modules with their names, digests and sizes.
    List {
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Remove a name (the module goes when no name is left).
    Remove {
        /// The name.
        name: String,
    },
}

pub(crate) async fn module(args: ModuleArgs) -> Result<ExitCode, CliError> {
    if let Some(remote) = args.settings.remote()? {
        return remote_module(&remote, args.command).await;
    }
    let (config, client) = args.settings.client().await?;
    match args.command {
        ModuleCommand::Upload { file, name } => {
            let (name, bytes) = read_module_file(&file, name)?;
            let compiled = compile_before_upload(&config, &bytes).await?;
            let info = client.upload(&bytes, Some(&name)).await?;
            println!(
                "{name}  sha256:{}  {}  compiled in {:.2}s",
                info.digest,
                format_size(info.size),
                compiled.as_secs_f64()
            );
        }
        ModuleCommand::List { json } => {
            let modules = client
                .store()
                .list_modules()
                .await
                .map_err(CliError::other)?;
            if json {
                for m in &modules {
                    println!(
                        "{}",
                        serde_json::json!({"digest": m.digest.to_string(), "names": m.names, "size": m.size, "uploaded_at_ms": m.uploaded_at_ms})
                    );
                }
            } else if modules.is_empty() {
                eprintln!("no modules yet: `wasq module upload FILE.wasm --name NAME`");
            } else {
                println!("{:<24} {:<14} {:>10}", "name", "digest", "size");
                for m in &modules {
                    let names = if m.names.is_empty() {
                        "-".into()
                    } else {
                        m.names.join(",")
                    };
                    println!(
                        "{names:<24} {:<14} {:>10}",
                        m.digest.short(),
                        format_size(m.size)
                    );
                }
            }
        }
        ModuleCommand::Remove { name } => {
            if !client
                .store()
                .remove_module(&name)
                .await
                .map_err(CliError::other)?
            {
                return Err(CliError::usage(anyhow::anyhow!(
                    "no module named `{name}` (see `wasq module list`)"
                )));
            }
            println!("removed {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Compiles a module before it is stored, in a worker process limited as
/// the clusters' compiles are (`compile_timeout`, `compile_memory`), and
/// leaves the artifact where the clusters look: a module that would be
/// refused at its first task is refused now, and stored not at all.
async fn compile_before_upload(config: &wasq::Config, bytes: &[u8]) -> Result<Duration, CliError> {
    let sandbox = wasq::Sandbox::new(crate::settings::isolated(wasq::SandboxConfig {
        slots: 1,
        ..wasq::cluster::sandbox_config(config)
    })?)?;
    let started = std::time::Instant::now();
    sandbox.load(bytes).await?;
    Ok(started.elapsed())
}

/// A module file's bytes and the name to upload it as (default: the
/// file's stem).
fn read_module_file(
    file: &std::path::Path,
    name: Option<String>,
) -> Result<(String, Vec<u8>), CliError> {
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(CliError::usage)?;
    let name = name.unwrap_or_else(|| {
        file.file_stem()
            .map_or_else(|| "module".into(), |s| s.to_string_lossy().into_owned())
    });
    Ok((name, bytes))
}

/// Longest `wasq --server … module upload` waits for the server's compile.
const UPLOAD_VERDICT_WAIT: Duration = Duration::from_secs(120);

/// `wasq module` through a server.
async fn remote_module(
    remote: &crate::remote::Remote,
    command: ModuleCommand,
) -> Result<ExitCode, CliError> {
    match command {
        ModuleCommand::Upload { file, name } => {
            let (name, bytes) = read_module_file(&file, name)?;
            let mut module = remote.upload(&name, bytes).await?;
            // The server compiles uploads in the background: wait for the
            // verdict (bounded: a compile has a time cap of its own).
            let deadline = std::time::Instant::now() + UPLOAD_VERDICT_WAIT;
            while module["compile"]["state"] == "compiling" && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                module = remote.module(&name).await?;
            }
            let compile = &module["compile"];
            if compile["state"] == "refused" {
                return Err(CliError::with_code(
                    wasq::OutcomeKind::InvalidModule.exit_code(),
                    anyhow::anyhow!(
                        "{name} was stored but will not run: {}",
                        compile["reason"]
                            .as_str()
                            .unwrap_or("refused by the compiler")
                    ),
                ));
            }
            println!(
                "{name}  {}  {}  {}",
                module["digest"].as_str().unwrap_or_default(),
                format_size(module["size"].as_u64().unwrap_or(0)),
                compile["state"].as_str().unwrap_or("")
            );
        }
        ModuleCommand::List { json } => {
            let modules = remote.modules().await?;
            let modules = modules.as_array().cloned().unwrap_or_default();
            if json {
                for m in &modules {
                    println!("{m}");
                }
            } else if modules.is_empty() {
                eprintln!("no modules yet: `wasq module upload FILE.wasm --name NAME`");
            } else {
                println!("{:<24} {:<14} {:>10}", "name", "digest", "size");
                for m in &modules {
                    let digest = m["digest"].as_str().unwrap_or_default();
                    let short = digest.strip_prefix("sha256:").unwrap_or(digest);
                    println!(
                        "{:<24} {:<14} {:>10}",
                        m["name"].as_str().unwrap_or_default(),
                        &short[..short.len().min(12)],
                        format_size(m["size"].as_u64().unwrap_or(0))
                    );
                }
            }
        }
        ModuleCommand::Remove { name } => {
            remote.remove_module(&name).await?;
            println!("removed {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Look at or empty a queue.
#[derive(Debug, Args)]
pub(crate) struct QueueArgs {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: QueueCommand,
    /// Queue [default: the configured one].
    #[arg(long, global = true)]
    queue: Option<String>,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Tasks waiting and in flight.
    Size {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete the tasks waiting (not the ones running).
    Purge,
}

pub(crate) async fn queue(args: QueueArgs) -> Result<ExitCode, CliError> {
    let (config, client) = args.settings.client().await?;
    let queue = args.queue.unwrap_or(config.queue);
    let broker = client.broker();
    match args.command {
        QueueCommand::Size { json } => {
            let waiting = broker.queue_size(&queue).await.map_err(CliError::other)?;
            let in_flight = broker.lock_size(&queue).await.map_err(CliError::other)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"queue": queue, "queued": waiting, "in_flight": in_flight})
                );
            } else {
                println!("{queue}: {waiting} queued, {in_flight} in flight");
            }
        }
        QueueCommand::Purge => {
            let purged = broker.purge_queue(&queue).await.map_err(CliError::other)?;
            // Purged tasks never get results: a tenant's backlog lets go.
            client
                .store()
                .release_queue_backlog(&queue)
                .await
                .map_err(CliError::other)?;
            println!("purged {purged} task(s) from {queue}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Clusters, queues and results, like Django Q's qinfo.
#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    #[command(flatten)]
    settings: Settings,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn info(args: InfoArgs) -> Result<ExitCode, CliError> {
    let (config, client) = args.settings.client().await?;
    let broker = client.broker();
    let clusters = client
        .store()
        .clusters(Duration::from_secs(10))
        .await
        .map_err(CliError::other)?;
    let mut queues = broker.queues().await.map_err(CliError::other)?;
    if !queues.contains(&config.queue) {
        queues.push(config.queue.clone());
    }
    let mut queue_rows = Vec::new();
    for q in &queues {
        let waiting = broker.queue_size(q).await.map_err(CliError::other)?;
        let in_flight = broker.lock_size(q).await.map_err(CliError::other)?;
        queue_rows.push((q.clone(), waiting, in_flight));
    }
    let counts = client.store().counts().await.map_err(CliError::other)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "broker": wasq_brokers::redact(&config.broker),
                "store": wasq_brokers::redact(&config.store),
                "clusters": clusters.iter().map(|c| serde_json::json!({
                    "id": c.id, "name": c.name, "label": c.label, "host": c.host, "pid": c.pid,
                    "workers": c.workers, "in_flight": c.in_flight, "done": c.done, "status": c.status,
                    "started_at_ms": c.started_at_ms, "heartbeat_at_ms": c.heartbeat_at_ms,
                })).collect::<Vec<_>>(),
                "queues": queue_rows.iter().map(|(q, w, f)| serde_json::json!({"queue": q, "queued": w, "in_flight": f})).collect::<Vec<_>>(),
                "successes": counts.successes(),
                "failures": counts.failures(),
                "rejected": counts.rejected,
                "outcomes": counts.by_outcome.iter().map(|(o, n)| (o.clone(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("broker  {}", wasq_brokers::redact(&config.broker));
    println!("store   {}", wasq_brokers::redact(&config.store));
    println!();
    if clusters.is_empty() {
        println!("clusters: none running (start one with `wasq cluster`)");
    } else {
        print_clusters(&clusters);
    }
    println!();
    println!("{:<20} {:>9} {:>9}", "queue", "queued", "in flight");
    for (q, waiting, in_flight) in &queue_rows {
        println!("{q:<20} {waiting:>9} {in_flight:>9}");
    }
    println!();
    println!(
        "results: {} successes, {} failures, {} failed packages (`wasq failed list`)",
        counts.successes(),
        counts.failures(),
        counts.rejected
    );
    for (outcome, n) in &counts.by_outcome {
        println!("  {outcome:<16} {n:>9}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The clusters as an aligned table: one row per cluster process, from
/// every machine that shares the store.
fn print_clusters(clusters: &[wasq::store::ClusterStatus]) {
    let now = wasq::store::now_ms();
    let rows: Vec<[String; 7]> = clusters
        .iter()
        .map(|c| {
            [
                c.name.clone(),
                c.label.clone(),
                c.pid.to_string(),
                c.workers.to_string(),
                c.in_flight.to_string(),
                c.done.to_string(),
                format!(
                    "{:.1}s ago",
                    (now - c.heartbeat_at_ms).max(0) as f64 / 1000.0
                ),
            ]
        })
        .collect();
    let header = [
        "cluster",
        "label",
        "pid",
        "workers",
        "in flight",
        "done",
        "heartbeat",
    ];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: [&str; 7]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths[i];
            // Names left-aligned, numbers right-aligned.
            if i < 2 {
                out.push_str(&format!("{cell:<w$}  "));
            } else {
                out.push_str(&format!("{cell:>w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]]);
    }
}
