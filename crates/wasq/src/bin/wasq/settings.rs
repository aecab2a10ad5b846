//! Flags every queue command shares, and turning them (with `wasq.toml` and
//! `WASQ_*` variables) into a configuration and connections.

use std::path::PathBuf;

use clap::Args;
use wasq::{Client, ClientError, Config};

use crate::cli_error::CliError;

/// Where the queue lives. Each flag overrides `wasq.toml` and `WASQ_*`.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct Settings {
    /// Configuration file [default: ./wasq.toml if present].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Broker URL, e.g. sqlite://.wasq/wasq.db or memory:// [env: WASQ_BROKER].
    #[arg(long, global = true, value_name = "URL")]
    broker: Option<String>,
    /// Store URL, e.g. sqlite://.wasq/wasq.db [env: WASQ_STORE].
    #[arg(long, global = true, value_name = "URL")]
    store: Option<String>,
    /// Cluster name, shown by `wasq info` [env: WASQ_NAME].
    #[arg(long, global = true, value_name = "NAME")]
    name: Option<String>,
    /// Secret the task packages are signed with [env: WASQ_SECRET].
    #[arg(long, global = true, value_name = "SECRET")]
    secret: Option<String>,
    /// Talk to a `wasq serve` at this URL instead of the broker and store
    /// (enqueue, result, cancel, module).
    #[arg(long, global = true, value_name = "URL", env = "WASQ_SERVER")]
    server: Option<String>,
    /// The API key for --server.
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        env = "WASQ_KEY",
        hide_env_values = true
    )]
    key: Option<String>,
}

/// `wasq --server URL --key KEY COMMAND`: the server and key given before
/// the command.
static REMOTE: std::sync::OnceLock<(Option<String>, Option<String>)> = std::sync::OnceLock::new();

/// Records the server and key given before the command.
pub(crate) fn set_remote(server: Option<String>, key: Option<String>) {
    let _ = REMOTE.set((server, key));
}

impl Settings {
    /// The configuration: file, then environment, then these flags.
    pub(crate) fn config(&self) -> Result<Config, CliError> {
        let mut config =
            Config::load(self.config.as_deref(), std::env::vars()).map_err(CliError::usage)?;
        if let Some(broker) = &self.broker {
            config.broker.clone_from(broker);
        }
        if let Some(store) = &self.store {
            config.store.clone_from(store);
        }
        if let Some(name) = &self.name {
            config.name.clone_from(name);
        }
        if let Some(secret) = &self.secret {
            config.secret.clone_from(secret);
        }
        config.secret = config.signing_secret().map_err(CliError::usage)?;
        Ok(config)
    }

    /// The server to talk to, when --server (or WASQ_SERVER) is given.
    pub(crate) fn remote(&self) -> Result<Option<crate::remote::Remote>, CliError> {
        let (top_server, top_key) = REMOTE.get().cloned().unwrap_or_default();
        let server = self.server.clone().or(top_server);
        let key = self.key.clone().or(top_key);
        server
            .filter(|s| !s.is_empty())
            .map(|server| crate::remote::Remote::new(&server, key.as_deref()))
            .transpose()
    }

    /// A client for the configured broker and store.
    pub(crate) async fn client(&self) -> Result<(Config, Client), CliError> {
        let config = self.config()?;
        let client = Client::connect(&config).await.map_err(CliError::from)?;
        Ok((config, client))
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::UnknownModule(_)
            | ClientError::Read { .. }
            | ClientError::Arguments(_)
            | ClientError::NoCache
            | ClientError::Invalid(_) => CliError::usage(error),
            ClientError::InvalidModule(_) => {
                CliError::with_code(wasq::OutcomeKind::InvalidModule.exit_code(), error)
            }
            ClientError::Broker(wasq_brokers::BrokerError::BadUrl { .. })
            | ClientError::Broker(wasq_brokers::BrokerError::UnsupportedScheme(_))
            | ClientError::Store(wasq::store::StoreError::BadUrl(_)) => CliError::usage(error),
            _ => CliError::other(error),
        }
    }
}

/// The sandbox settings with compiles in a worker process of this binary,
/// which can be limited and killed at the compile cap.
pub(crate) fn isolated(mut config: wasq::SandboxConfig) -> Result<wasq::SandboxConfig, CliError> {
    config.compile_isolation = wasq::sandbox::CompileIsolation::current_exe()?;
    Ok(config)
}
