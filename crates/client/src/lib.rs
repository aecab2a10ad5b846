//! wasq-client: enqueue tasks, upload modules and read results from Rust —
//! Django Q2's `async_task` and `result` — over the broker and the store,
//! without the sandbox (no wasmtime).
//!
//! - [`Client`]: modules, tasks, chains, groups, schedules, results, cancels.
//! - [`config`]: the settings of a cluster and of the commands that talk to it
//!   (`wasq.toml`, `WASQ_*` variables), and the secret packages are signed with.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod client;
pub mod config;
mod secret_file;

pub use client::{
    Client, ClientError, ScheduleRequest, TaskRequest, tenant_group, validate_module,
};
pub use config::{Config, ConfigError};
