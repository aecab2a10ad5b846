//! The `wasq` command line: parses arguments, sets up logging, and hands
//! each subcommand to its module. Errors print as one line and map to the
//! documented exit codes.

mod admin;
mod cli_error;
mod cluster;
mod demo;
mod demo_queue;
mod monitor;
mod remote;
mod run;
mod schedule;
mod serve;
mod settings;
mod task_state;
mod tasks;
#[cfg(feature = "otel")]
mod telemetry;
mod tenants;
mod workflow;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli_error::CliError;

/// wasq runs untrusted code as background tasks: each task is a WebAssembly
/// module run in a fresh sandbox with fuel, time and memory limits.
#[derive(Debug, Parser)]
#[command(name = "wasq", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log more: -v for info, -vv for debug (or set WASQ_LOG=debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Talk to a `wasq serve` at this URL (enqueue, result, cancel,
    /// module) instead of the broker and store [env: WASQ_SERVER].
    #[arg(long, value_name = "URL")]
    server: Option<String>,

    /// The API key for --server [env: WASQ_KEY].
    #[arg(long, value_name = "KEY")]
    key: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::RunArgs),
    Cluster(cluster::ClusterArgs),
    Enqueue(tasks::EnqueueArgs),
    Result(tasks::ResultArgs),
    Cancel(workflow::CancelArgs),
    Chain(workflow::ChainArgs),
    Map(workflow::MapArgs),
    Group(workflow::GroupArgs),
    Failed(workflow::FailedArgs),
    Schedule(schedule::ScheduleArgs),
    Module(admin::ModuleArgs),
    Queue(admin::QueueArgs),
    Info(admin::InfoArgs),
    Monitor(monitor::MonitorArgs),
    Serve(serve::ServeArgs),
    Tenant(tenants::TenantArgs),
    Key(tenants::KeyArgs),
    Audit(tenants::AuditArgs),
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    // The sandbox runs this binary again to compile modules in a process
    // it can limit and kill (see `CompileIsolation`); that is not a
    // command for people, so it is not in --help.
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new(wasq::sandbox::COMPILE_WORKER_ARG)) {
        let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        return ExitCode::from(wasq::sandbox::compile_worker_main(&rest));
    }
    let cli = Cli::parse();
    // Dropped last: flushes the spans not yet exported.
    let _telemetry = init_logging(cli.verbose);
    settings::set_remote(cli.server.clone(), cli.key.clone());
    let result = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async {
            match cli.command {
                Command::Run(args) => run::run(args).await,
                Command::Cluster(args) => cluster::cluster(args).await,
                Command::Enqueue(args) => tasks::enqueue(args).await,
                Command::Result(args) => tasks::result(args).await,
                Command::Cancel(args) => workflow::cancel(args).await,
                Command::Chain(args) => workflow::chain(args).await,
                Command::Map(args) => workflow::map(args).await,
                Command::Group(args) => workflow::group(args).await,
                Command::Failed(args) => workflow::failed(args).await,
                Command::Schedule(args) => schedule::schedule(args).await,
                Command::Module(args) => admin::module(args).await,
                Command::Queue(args) => admin::queue(args).await,
                Command::Info(args) => admin::info(args).await,
                Command::Monitor(args) => monitor::monitor(args).await,
                Command::Serve(args) => serve::serve(args).await,
                Command::Tenant(args) => tenants::tenant(args).await,
                Command::Key(args) => tenants::key(args).await,
                Command::Audit(args) => tenants::audit_log(args).await,
                Command::Demo(args) => demo::demo(args).await,
            }
        }),
        Err(e) => Err(CliError::other(anyhow::anyhow!(
            "cannot start the async runtime: {e}"
        ))),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error.message());
            ExitCode::from(error.code())
        }
    }
}

/// Quiet by default: only wasq's warnings (and other crates' errors: the
/// AWS SDK warns about every credential source it tries), unless -v or
/// WASQ_LOG says otherwise. With the `otel` feature and a collector
/// configured, wasq's spans are also exported (see `telemetry`).
fn init_logging(verbose: u8) -> Option<Box<dyn std::any::Any>> {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    let default = match verbose {
        0 => "error,wasq=warn,wasq_brokers=warn",
        1 => "warn,wasq=info,wasq_brokers=info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("WASQ_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(filter);
    let registry = tracing_subscriber::registry().with(console);
    #[cfg(feature = "otel")]
    {
        let (export, telemetry) = match telemetry::layer() {
            Ok(found) => found.unzip(),
            Err(error) => {
                eprintln!("wasq: {error}; spans are not exported");
                (None, None)
            }
        };
        // Without a collector no layer is added at all, so that debug spans
        // stay disabled at their call sites.
        match export {
            Some(layer) => registry
                .with(layer.with_filter(EnvFilter::new("wasq=debug")))
                .init(),
            None => registry.init(),
        }
        telemetry.map(|t| Box::new(t) as Box<dyn std::any::Any>)
    }
    #[cfg(not(feature = "otel"))]
    {
        registry.init();
        None
    }
}
