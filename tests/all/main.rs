//! The integration tests, one binary. Each module is a topic:
//!
//! - `run_outcomes`: `wasq run` on the example tasks, one test per outcome,
//!   with the exit codes `--help` documents.
//! - `run_bad_input`: files that are not wasm, missing imports, unknown
//!   tasks, arguments that are not JSON: one-line errors, non-zero exits.
//! - `escape`: every task of escape.wasm fails inside the guest.
//! - `isolation_resources`: memory limits total over a component's or
//!   module's memories; scratch quotas (bytes, entries, depth) stop a task
//!   with `scratch_limit`; a tree too deep for any stack is removed; the
//!   scratch root is private, planted links are not followed, a killed
//!   cluster's leftovers are swept; `.wasq/wasq.db` is 0600.
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
//! - `delivery_outcomes`: every non-zero exit (126 and more too) is a
//!   `guest_error` with its code; a failure keeps its stdout; `wasq result`
//!   and `GET /v1/tasks/{id}` tell unknown, queued (with its due time),
//!   running, finished and pruned apart.
//! - `delivery_runs`: attempts count runs, not deliveries (dead consumers
//!   and graceful stops use none up; runs that kill their cluster do); a
//!   cluster with the wrong secret destroys nothing, its refusals kept as
//!   failed packages that `wasq failed resubmit --package` queues again.
//! - `enqueue_paths`: every `wasq enqueue` option, with and without
//!   `--server`, ends in the same stored record and behaviour; what the
//!   server cannot honour is refused in one line.
//! - `service`: `wasq serve` through HTTP — tenants isolated, keys, quotas,
//!   a 100 MB upload, fair scheduling, fuel budgets, grants, schemathesis.
//! - `dashboard`: the web dashboard in headless Chromium — tasks,
//!   resubmitting a failure, a schedule firing, uploads, purges, who sees
//!   what; screenshots under `target/dashboard-screenshots/`.
//! - `dashboard_security`: the login and grants under attack, plain HTTP —
//!   hostile `next` values stay on-site, failed logins get 429 per client
//!   and per key, one key's logins end only its own sessions, `Secure`
//!   cookies, `--deny-grant` revokes from modules and their tasks.
//! - `delivery_supervision`: a panicking part stops the cluster with its
//!   reason, a stateless one is restarted; acknowledgements outlast a Redis
//!   outage shorter than the lease; an outage logs once per part at start
//!   and end; renewals racing acknowledgements are no lost leases; the stop
//!   line counts what finished during the stop.
//! - `monitor`: `wasq monitor` in tmux — a running task, redraws, `q`.
//! - `reporting`: a failed task reaches a stand-in for Sentry; logs from
//!   enqueue to result name the task.
//! - `isolation_compile`: imports wasq lacks and compiler-bomb shapes refused
//!   before compiling; a bomb stopped at its cap, its worker killed,
//!   refused at once after, never holding up compiled modules.
//! - `isolation_binding`: forged packages (another tenant's digest, queue
//!   or group) refused and recorded; no built-in secret.
//! - `sandbox_api`: the library API — concurrency without a thread per
//!   task, the compiled-module cache, limits.
//! - `isolation_quotas`: tenants' quotas on every path — `max_queued`
//!   over deferred tasks, every queue, racing batches, schedules and
//!   resubmits; fuel charged while tasks run; timeouts capped by the
//!   cluster's; one tenant's long tasks never starve another's.
//!
//! They need the example modules (`cargo xtask build`) and the `wasq`
//! binary of the same profile, and the servers (Redis, PostgreSQL, an SQS
//! endpoint) whose URLs arrive in `WASQ_TEST_*` variables; `cargo xtask
//! test` provides all of them.

mod broker_conformance;
mod cluster;
mod dashboard;
mod dashboard_security;
mod delivery_outcomes;
mod delivery_runs;
mod delivery_supervision;
mod enqueue_paths;
mod escape;
mod guests;
mod isolation_binding;
mod isolation_compile;
mod isolation_quotas;
mod isolation_resources;
mod languages;
mod many_clusters;
mod monitor;
mod reporting;
mod run_bad_input;
mod run_outcomes;
mod sandbox_api;
mod service;
mod workflows;
