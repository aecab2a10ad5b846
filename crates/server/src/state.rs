//! What every handler shares: the [`AppState`] (the client, the limits,
//! the dashboard's sessions and login limits, the compiler of uploads) and
//! the service's [`ServeLimits`].

use std::time::Duration;

use wasq_client::Client;

use crate::{compiler, dashboard};

/// The service's limits.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Largest module upload, bytes.
    pub max_upload: u64,
    /// Largest JSON body, bytes.
    pub max_body: usize,
    /// Deadline of a request (a result wait is capped below it).
    pub request_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_upload: 64 << 20,
            max_body: 1 << 20,
            request_timeout: Duration::from_secs(90),
        }
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Broker and store.
    pub client: Client,
    /// Limits.
    pub limits: ServeLimits,
    /// The sandbox of the cluster running in this process, if any (for
    /// `/metrics`).
    pub sandbox: Option<wasq_sandbox::Sandbox>,
    /// The dashboard's logged-in browsers.
    pub sessions: dashboard::Sessions,
    /// The clusters' tasks per second, sampled by the dashboard.
    pub throughput: dashboard::Throughput,
    /// Dashboard logins per client and per key, limited.
    pub logins: dashboard::LoginLimiter,
    /// Mark the session cookie `Secure` on every response (`wasq serve
    /// --secure-cookies`), not only on requests a proxy says came over
    /// HTTPS. Default: off.
    pub secure_cookies: bool,
    /// Checks and compiles uploads off the request threads.
    pub compiler: compiler::Compiler,
}

impl AppState {
    /// The state of a service over `client`, with no one logged in.
    pub fn new(
        client: Client,
        limits: ServeLimits,
        sandbox: Option<wasq_sandbox::Sandbox>,
    ) -> Self {
        Self {
            client,
            limits,
            sessions: dashboard::Sessions::default(),
            throughput: dashboard::Throughput::default(),
            logins: dashboard::LoginLimiter::default(),
            secure_cookies: false,
            compiler: compiler::Compiler::new(sandbox.clone()),
            sandbox,
        }
    }

    /// Compiles uploads in `sandbox` (by default in the cluster's, if this
    /// process runs one; else uploads are only checked).
    pub fn compile_in(mut self, sandbox: wasq_sandbox::Sandbox) -> Self {
        self.compiler = compiler::Compiler::new(Some(sandbox));
        self
    }
}
