//! The integration tests, one binary. Each module is a topic:
//!
//! - `run_outcomes`: `wasq run` on the example tasks, one test per outcome,
//!   with the exit codes `--help` documents.
//! - `run_bad_input`: files that are not wasm, missing imports, unknown
//!   tasks, arguments that are not JSON: one-line errors, non-zero exits.
//! - `escape`: every task of escape.wasm fails inside the guest.
//! - `guests`: each example guest (Rust SDK, markdown, C) gives the right
//!   results.
//! - `languages`: the guest SDKs for C, Zig, AssemblyScript and JavaScript
//!   run the `basics` tasks through `wasq run` and through a cluster.
//! - `broker_conformance`: every broker (memory, SQLite, Redis, PostgreSQL,
//!   SQS) against one suite.
//! - `cluster`: the queue on its embedded default, black box — enqueue and
//!   wait, crashes, tampered packages, long tasks, bad input.
//! - `many_clusters`: clusters of different names on Redis and PostgreSQL
//!   share 20,000 tasks; a killed cluster and a restarted broker lose
//!   nothing; a broker that is down is named in one line.
//! - `service`: `wasq serve` through HTTP — tenants isolated, keys, quotas,
//!   a 100 MB upload, fair scheduling, fuel budgets, grants, schemathesis.
//! - `dashboard`: the web dashboard in headless Chromium — tasks,
//!   resubmitting a failure, a schedule firing, uploads, purges, who sees
//!   what; screenshots under `target/dashboard-screenshots/`.
//! - `monitor`: `wasq monitor` in tmux — a running task, redraws, `q`.
//! - `reporting`: a failed task reaches a stand-in for Sentry; logs from
//!   enqueue to result name the task.
//! - `sandbox_api`: the library API — concurrency without a thread per
//!   task, the compiled-module cache, limits.
//!
//! They need the example modules (`cargo xtask build`) and the `wasq`
//! binary of the same profile, and the servers (Redis, PostgreSQL, an SQS
//! endpoint) whose URLs arrive in `WASQ_TEST_*` variables; `cargo xtask
//! test` provides all of them.

mod broker_conformance;
mod cluster;
mod dashboard;
mod escape;
mod guests;
mod languages;
mod many_clusters;
mod monitor;
mod reporting;
mod run_bad_input;
mod run_outcomes;
mod sandbox_api;
mod service;
mod workflows;
