//! wasq: a background task queue whose tasks are WebAssembly modules.
//!
//! Every task names a module, a task inside it and its arguments. Workers run
//! each task in a fresh wasmtime instance with fuel, wall-clock and memory
//! limits, so a task can never touch the host or another task, and a runaway
//! task is stopped cleanly instead of killing a worker.
//!
//! # Layout
//!
//! This crate is the `wasq` command line; as a library it re-exports the
//! crates of the layers, lowest first, each of which can be used alone:
//!
//! - [`wasq_core`] (re-exported as [`package`], [`workflow`], [`tenant`],
//!   [`units`], [`metrics`], [`digest`]): task records and packages,
//!   outcomes, tenants — no I/O.
//! - [`sandbox`] ([`wasq_sandbox`]): the wasmtime engine, the module cache,
//!   per-task limits and the closed set of [`Outcome`]s a task can end with.
//! - [`store`] ([`wasq_store`]): results, modules, schedules, tenants.
//! - [`Client`] and [`config`] ([`wasq_client`]): enqueue and read results
//!   from Rust, without the sandbox.
//! - [`cluster`] ([`wasq_cluster`]): the pusher, workers, monitor, scheduler
//!   and lease keeper under a sentinel.
//! - [`serve`] ([`wasq_server`], feature `serve`): the HTTP API and the
//!   dashboard.
//!
//! The brokers are [`wasq_brokers`]. The guest side of the contract lives in
//! `guest-sdk/ABI.md`.
//!
//! # Example
//!
//! Run a task of a module through the sandbox:
//!
//! ```
//! use wasq::{Limits, Sandbox, SandboxConfig, TaskCall};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::new(SandboxConfig::default())?;
//! // Any WASI preview 1 command module works; this one prints `42`.
//! let module = sandbox
//!     .load(
//!         r#"(module
//!             (import "wasi_snapshot_preview1" "fd_write"
//!                 (func $fd_write (param i32 i32 i32 i32) (result i32)))
//!             (memory (export "memory") 1)
//!             (data (i32.const 8) "42")
//!             (func (export "_start")
//!                 (i32.store (i32.const 0) (i32.const 8))
//!                 (i32.store (i32.const 4) (i32.const 2))
//!                 (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))"#
//!             .as_bytes(),
//!     )
//!     .await?;
//! let call = TaskCall::new("answer", "answer", &serde_json::json!([]), &serde_json::json!({}))?;
//! let execution = sandbox.run(&module, &call, &Limits::default()).await;
//! assert!(execution.outcome.is_success());
//! assert_eq!(execution.stdout, b"42");
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `cli` (default): the `wasq` command line.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub use wasq_brokers;
pub use wasq_client;
pub use wasq_cluster;
pub use wasq_core;
pub use wasq_sandbox;
#[cfg(feature = "serve")]
pub use wasq_server;
pub use wasq_store;

pub use wasq_client::config;
pub use wasq_cluster as cluster;
pub use wasq_cluster::report;
pub use wasq_core::{digest, metrics, package, tenant, units, workflow};
pub use wasq_sandbox as sandbox;
#[cfg(feature = "serve")]
pub use wasq_server as serve;
pub use wasq_store as store;
pub use wasq_store::schedule;

pub use wasq_client::{Client, ClientError, Config, ScheduleRequest, TaskRequest, tenant_group};
pub use wasq_cluster::Cluster;
pub use wasq_core::{Digest, DigestParseError};
pub use wasq_sandbox::{
    CancelToken, CpuMetering, Execution, Limits, Outcome, OutcomeKind, OutputStream, Sandbox,
    SandboxConfig, SandboxError, ScratchLimits, ScratchQuota, TaskCall, TaskModule, Usage,
};
