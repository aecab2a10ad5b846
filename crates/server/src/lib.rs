//! `wasq serve`: the multi-tenant HTTP API (axum). Tenants upload modules,
//! enqueue tasks, read and wait for results, cancel, and see their queues,
//! usage and audit log, each seeing only what it owns. The OpenAPI
//! document at `/openapi.json` is generated from the handlers (utoipa).
//!
//! - [`auth`]: bearer keys, checked against stored hashes.
//! - [`dashboard`]: the web dashboard at `/` (logged in with a key).
//! - [`modules`], [`tasks`], [`schedules`], [`info`]: the routes.
//! - [`error`]: the one error shape; [`extract`]: extractors that use it.
//!
//! Limits: JSON bodies are capped (`max_body`), uploads are capped by
//! `max_upload` and the tenant's `max_module_size` and refused before they
//! are read when their length says so, and every request has a deadline
//! (`request_timeout`, answered 503).

mod audit;
pub mod auth;
pub mod compiler;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod info;
pub mod modules;
mod router;
pub mod schedules;
mod state;
pub mod tasks;

pub use router::{ApiDoc, metrics_router, router, serve};
pub use state::{AppState, ServeLimits};
