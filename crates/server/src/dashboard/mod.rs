//! The web dashboard `wasq serve` serves at `/`: server-rendered HTML
//! (maud, escaped by default: task output is untrusted) with one small
//! script, all inside the binary, nothing from a CDN. It follows the API's
//! keys: an admin key sees every tenant, a tenant's key only its own.
//!
//! - `session`: logging in with a key, cookies, form tokens.
//! - `throttle`: login attempts limited per client and per key.
//! - `throughput`: tasks per second from the clusters' heartbeats.
//! - `page`: the frame of every page, formatting, the assets.
//! - `overview`, `tasks`, `schedules`, `modules`, `queues`: the
//!   pages and what their forms do.

mod login;
mod modules;
mod overview;
mod page;
mod queues;
mod schedules;
pub(crate) mod session;
mod tasks;
mod throttle;
mod throughput;
mod viewer;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use session::Sessions;
pub use throttle::LoginLimiter;
pub use throughput::Throughput;
pub(crate) use viewer::{NoFields, PageError, PageResult, Submitted, Viewer};

use crate::AppState;
use login::{login, login_page, logout};

/// The dashboard's routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::detail))
        .route("/tasks/{id}/resubmit", post(tasks::resubmit))
        .route("/tasks/{id}/delete", post(tasks::delete))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/failures", get(tasks::failures))
        .route("/schedules", get(schedules::list).post(schedules::create))
        .route(
            "/schedules/edit",
            get(schedules::edit).post(schedules::update),
        )
        .route("/schedules/action", post(schedules::action))
        .route("/modules", get(modules::list))
        .route(
            "/modules/{name}",
            axum::routing::put(modules::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/modules/delete", post(modules::delete))
        .route("/queues", get(queues::list))
        .route("/queues/purge", get(queues::confirm).post(queues::purge))
        .route("/assets/dashboard.css", get(page::stylesheet))
        .route("/assets/dashboard.js", get(page::script))
}
