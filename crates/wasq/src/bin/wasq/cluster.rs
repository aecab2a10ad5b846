//! `wasq cluster`: run a cluster until SIGINT or SIGTERM, then stop
//! gracefully; a part of the cluster that fails for good stops it too,
//! with a one-line error and a non-zero exit.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use wasq::{Cluster, Sandbox, store::Store};

use crate::cli_error::CliError;
use crate::settings::Settings;

/// Run a cluster: take tasks from the broker, run them in the sandbox,
/// save their results. Stops gracefully on Ctrl-C or SIGTERM.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(flatten)]
    settings: Settings,
    /// Tasks run at once [default: 4 per CPU; env: WASQ_WORKERS].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Queue to serve [default: default; env: WASQ_QUEUE].
    #[arg(long, value_name = "QUEUE")]
    queue: Option<String>,
    /// Label shown by `wasq info` [default: the host name].
    #[arg(long)]
    label: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (no key: bind it
    /// where only Prometheus reaches, e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Longest wait for running tasks on stop before they are handed back.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = wasq::units::parse_duration)]
    grace: Duration,
}

pub(crate) async fn cluster(args: ClusterArgs) -> Result<ExitCode, CliError> {
    let mut config = args.settings.config()?;
    if let Some(workers) = args.workers {
        config.workers = workers.max(1);
    }
    if let Some(queue) = args.queue {
        config.queue = queue;
    }
    if args.label.is_some() {
        config.label = args.label;
    }
    let reporters =
        wasq::report::from_config(&config).map_err(|e| CliError::usage(anyhow::anyhow!(e)))?;
    let broker = wasq_brokers::connect(&config.broker)
        .await
        .map_err(|e| CliError::from(wasq::ClientError::from(e)))?;
    let mut store = Store::connect(&config.store)
        .await
        .map_err(|e| CliError::from(wasq::ClientError::from(e)))?;
    if let Some(cache) = &config.cache {
        store = store
            .with_cache(cache)
            .await
            .map_err(|e| CliError::from(wasq::ClientError::from(e)))?;
    }
    let sandbox = Sandbox::new(crate::settings::isolated(wasq::cluster::sandbox_config(
        &config,
    ))?)?;
    eprintln!(
        "wasq cluster `{}`: {} workers on queue `{}`, broker {}, store {}",
        config.name,
        config.workers,
        config.queue,
        wasq_brokers::redact(&config.broker),
        wasq_brokers::redact(&config.store),
    );
    if let Some(address) = &args.metrics {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| CliError::usage(anyhow::anyhow!("cannot listen on {address}: {e}")))?;
        let router = wasq::serve::metrics_router(broker.clone(), sandbox.clone());
        eprintln!("metrics at http://{address}/metrics");
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "the metrics server stopped");
            }
        });
    }
    let cluster = Cluster::start_reporting(config, broker, store, sandbox, reporters);
    tokio::select! {
        _ = wait_for_stop_signal() => {
            eprintln!(
                "stopping: finishing {} task(s) in flight…",
                cluster.in_flight()
            );
        }
        // The cluster is already stopping by itself; the reason comes last.
        _ = cluster.wait_failure() => {}
    }
    // Counted once the stop is over: tasks that finish during it count.
    let stopped = cluster.stop(args.grace).await;
    match stopped.failure {
        None => {
            eprintln!("stopped after {} task(s)", stopped.done);
            Ok(ExitCode::SUCCESS)
        }
        Some(failure) => Err(CliError::other(anyhow::anyhow!(
            "{failure}; it stopped after {} task(s): see the log above, then start it again",
            stopped.done
        ))),
    }
}

pub(crate) async fn wait_for_stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
