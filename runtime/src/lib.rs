//! wasq: a background task queue whose tasks are WebAssembly modules.
//!
//! Every task names a module, a task inside it and its arguments. Workers run
//! each task in a fresh wasmtime instance with fuel, wall-clock and memory
//! limits, so a task can never touch the host or another task, and a runaway
//! task is stopped cleanly instead of killing a worker.
//!
//! # Layout
//!
//! - [`sandbox`]: the wasmtime engine, the module cache, per-task limits and
//!   the closed set of [`Outcome`]s a task can end with.
//! - [`Digest`]: content addresses (sha256) of modules.
//! - [`units`]: parsing and printing of durations and byte sizes as people
//!   write them (`1s`, `500ms`, `32MiB`).
//!
//! The guest side of the contract lives in `guest-sdk/ABI.md`.
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

mod client;
pub mod cluster;
pub mod config;
mod digest;
pub mod metrics;
pub mod package;
pub mod report;
pub mod sandbox;
pub mod schedule;
mod scratch;
mod secret_file;
#[cfg(feature = "serve")]
pub mod serve;
pub mod store;
pub mod tenant;
pub mod units;
pub mod workflow;

pub use client::{Client, ClientError, ScheduleRequest, TaskRequest, tenant_group};
pub use cluster::Cluster;
pub use config::Config;
pub use digest::{Digest, DigestParseError};
pub use sandbox::{
    CancelToken, CpuMetering, Execution, Limits, Outcome, OutcomeKind, OutputStream, Sandbox,
    SandboxConfig, SandboxError, ScratchLimits, ScratchQuota, TaskCall, TaskModule, Usage,
};
