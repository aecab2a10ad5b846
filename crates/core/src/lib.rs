//! wasq-core: what every layer of wasq shares, with no I/O.
//!
//! - [`package`]: the [`TaskRecord`](package::TaskRecord) a task travels as, and its signed,
//!   optionally compressed package ([`PackageCodec`](package::PackageCodec)).
//! - [`input`]: a task's input, its arguments as the guest reads them.
//! - [`limits`]: the per-task limits a record carries.
//! - [`workflow`]: retry policies, attempts, chain links and hooks.
//! - [`outcome`]: how a task ended ([`Outcome`], [`OutcomeKind`]), what it used and printed.
//! - [`tenant`]: tenant names, quotas, grants and API keys.
//! - [`digest`]: content addresses of modules.
//! - [`units`]: durations and sizes as people write them.
//! - [`time`]: the wall clock in milliseconds.
//! - [`metrics`]: the process-wide Prometheus counters.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod digest;
pub mod input;
pub mod limits;
pub mod metrics;
pub mod outcome;
pub mod package;
pub mod tenant;
pub mod time;
pub mod units;
pub mod workflow;

pub use digest::{Digest, DigestParseError};
pub use outcome::{Execution, Outcome, OutcomeKind, OutputStream, ScratchQuota, Usage};
