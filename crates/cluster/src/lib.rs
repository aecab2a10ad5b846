//! The cluster: a **pusher** takes packages from the broker in bulk (up to
//! `queue_limit` held at once), **workers** run them in the sandbox (`workers`
//! at a time), a **monitor** saves results in batches and then acknowledges
//! them, a **lease keeper** renews the leases of held tasks so a long task
//! is never handed to a second cluster, and a **heartbeat** reports to the
//! store for `wasq info`. The [`Cluster`] handle is the sentinel: it
//! watches them (see `supervise`: a stateless part that fails is
//! restarted, a failure of one that holds tasks stops the cluster and says
//! why) and stops them gracefully.
//!
//! Delivery is at-least-once; results are saved before the acknowledgement
//! and the store keeps the first result of a task, so a task killed halfway
//! runs again and still ends with exactly one result.

mod binding;
mod cancel;
mod cluster;
mod dispatch;
mod jobs;
mod lease;
mod monitor;
mod outage;
mod pusher;
mod refusal;
mod refusal_log;
pub mod report;
mod runs;
mod scheduler;
mod sentinel;
mod shared;
mod stop;
mod supervise;
mod tenants;

pub use cluster::{Cluster, Stopped};
pub use sentinel::PartFailure;
pub use shared::host_name;
pub use supervise::RESTARTS;

use shared::{Shared, Taken};
use stop::stopped;
use wasq_client::config::Config;

/// Sandbox settings for a cluster with `config`: its fuel switch, a pool slot
/// per worker at least, its compiled-module cache and compile limits.
pub fn sandbox_config(config: &Config) -> wasq_sandbox::SandboxConfig {
    let defaults = wasq_sandbox::SandboxConfig::default();
    wasq_sandbox::SandboxConfig {
        fuel: config.fuel,
        slots: defaults
            .slots
            .max(u32::try_from(config.workers).unwrap_or(u32::MAX)),
        cache_dir: Some(config.cache_dir()),
        compile_timeout: config.compile_timeout,
        compile_memory: config.compile_memory,
        ..defaults
    }
}
