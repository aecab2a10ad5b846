//! `wasq serve`: the multi-tenant HTTP API over the configured broker and
//! store, optionally with a cluster in the same process.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use wasq::serve::{AppState, ServeLimits};
use wasq::units::{parse_duration, parse_size};
use wasq::{Cluster, Sandbox};

use crate::cli_error::CliError;
use crate::settings::Settings;

/// Serve the HTTP API: tenants upload modules, enqueue tasks and read
/// results with their API keys. The OpenAPI document is at /openapi.json.
#[derive(Debug, Args)]
#[command(after_help = "\
Set up a tenant and a key first (admin commands, on the store):
  wasq tenant create acme --quota max_queued=10000 --quota fuel_per_minute=1000000000
  wasq key create --tenant acme          # prints the key once

Then:
  wasq serve --listen 127.0.0.1:8080 --workers 8
  wasq --server http://127.0.0.1:8080 --key KEY module upload basics.wasm
  wasq --server http://127.0.0.1:8080 --key KEY enqueue basics fib --args '[20]' --wait")]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    settings: Settings,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Also run a cluster with this many workers in this process
    /// [default: none; run `wasq cluster` beside it].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Largest module upload (tenants' max_module_size may lower it).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    max_upload: u64,
    /// Largest JSON request body.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    max_body: u64,
    /// Deadline of a request.
    #[arg(long, value_name = "DUR", default_value = "90s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Mark the dashboard's session cookie `Secure` (sent over HTTPS only).
    /// Use it when a TLS proxy is in front; without it the cookie is
    /// `Secure` only on requests whose `X-Forwarded-Proto` (or `Forwarded`)
    /// says https.
    #[arg(long, env = "WASQ_SECURE_COOKIES")]
    secure_cookies: bool,
}

pub(crate) async fn serve(args: ServeArgs) -> Result<ExitCode, CliError> {
    let (mut config, client) = args.settings.client().await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| CliError::usage(anyhow::anyhow!("cannot listen on {}: {e}", args.listen)))?;
    let address = listener.local_addr().map_err(CliError::other)?;
    let (cluster, sandbox) = match args.workers {
        Some(workers) => {
            config.workers = workers.max(1);
            let sandbox = Sandbox::new(crate::settings::isolated(wasq::cluster::sandbox_config(
                &config,
            ))?)?;
            let reporters = wasq::report::from_config(&config)
                .map_err(|e| CliError::usage(anyhow::anyhow!(e)))?;
            let cluster = Cluster::start_reporting(
                config.clone(),
                client.broker().clone(),
                client.store().clone(),
                sandbox.clone(),
                reporters,
            );
            (Some(cluster), Some(sandbox))
        }
        None => (None, None),
    };
    // Uploads compile in the background, in the cluster's sandbox or, with
    // no cluster here, in a small one of their own (same engine settings,
    // so what it compiles lands in the shared artifact directory).
    let compiles_in = match &sandbox {
        Some(sandbox) => sandbox.clone(),
        None => Sandbox::new(crate::settings::isolated(wasq::SandboxConfig {
            slots: 4,
            ..wasq::cluster::sandbox_config(&config)
        })?)?,
    };
    let mut state = AppState::new(
        client,
        ServeLimits {
            max_upload: args.max_upload,
            max_body: args.max_body.min(usize::MAX as u64) as usize,
            request_timeout: args.request_timeout,
        },
        sandbox,
    )
    .compile_in(compiles_in);
    state.secure_cookies = args.secure_cookies;
    eprintln!(
        "wasq serve: http://{address} (dashboard at /, OpenAPI at /openapi.json), broker {}, store {}{}",
        wasq_brokers::redact(&config.broker),
        wasq_brokers::redact(&config.store),
        match args.workers {
            Some(n) => format!(", cluster of {} workers", n.max(1)),
            None => String::new(),
        }
    );
    wasq::serve::serve(listener, state, crate::cluster::wait_for_stop_signal())
        .await
        .map_err(CliError::other)?;
    if let Some(cluster) = cluster {
        eprintln!("stopping the cluster…");
        cluster.stop(Duration::from_secs(30)).await;
    }
    Ok(ExitCode::SUCCESS)
}
