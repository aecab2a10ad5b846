//! Modules: the list (name, digest, size, and for an admin the tenants
//! holding each), uploading one (the page's script sends the file as the
//! body of a `PUT`; a tenant's upload goes through the API's own handler,
//! with its limits and quotas), and deleting a name.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Redirect, Response};
use http_body_util::BodyExt as _;
use maud::html;

use super::page::{self, bytes, csrf_field};
use super::{PageError, PageResult, Submitted, Viewer, session};
use crate::AppState;
use crate::error::ApiError;
use wasq_core::tenant::check_name;

pub(crate) async fn list(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let store = state.client.store();
    let content = match viewer.tenant() {
        Some(tenant) => {
            let modules = store.tenant_modules(tenant).await?;
            html! {
                @if modules.is_empty() { p.empty { "No module yet: upload one below." } } @else {
                    table #modules {
                        thead { tr { th { "Name" } th { "Digest" } th.num { "Size" } th { "Grants" } th { "Uploaded (UTC)" } th {} } }
                        tbody { @for m in &modules { tr {
                            td { b { (m.name) } }
                            td.mono { "sha256:" (m.digest.short()) }
                            td.num { (bytes(m.size)) }
                            td { (grants(&m.grants)) }
                            td { (page::time(m.uploaded_at_ms)) }
                            td { (delete_button(&viewer, &m.name)) }
                        } } }
                    }
                }
            }
        }
        None => {
            let modules = store.list_modules().await?;
            let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (tenant, module) in store.all_tenant_modules().await? {
                holders
                    .entry(module.digest.to_string())
                    .or_default()
                    .push(format!("{tenant}: {}", module.name));
            }
            html! {
                @if modules.is_empty() { p.empty { "No module yet: upload one below." } } @else {
                    table #modules {
                        thead { tr { th { "Digest" } th { "Names (shared)" } th { "Tenants' names" } th.num { "Size" } th { "Uploaded (UTC)" } } }
                        tbody { @for m in &modules { tr {
                            td.mono { "sha256:" (m.digest.short()) }
                            td {
                                @for name in &m.names { b { (name) } " " (delete_button(&viewer, name)) br; }
                                @if m.names.is_empty() { span.muted { "–" } }
                            }
                            td {
                                @match holders.get(&m.digest.to_string()) {
                                    Some(names) => { @for n in names { (n) br; } },
                                    None => { span.muted { "–" } },
                                }
                            }
                            td.num { (bytes(m.size)) }
                            td { (page::time(m.uploaded_at_ms)) }
                        } } }
                    }
                }
            }
        }
    };
    let content = html! {
        (content)
        h2 { "Upload" }
        form.grid #upload {
            label { "WebAssembly module (.wasm or .wat)" input type="file" name="file" accept=".wasm,.wat" required; }
            label { "Name" input name="name" required placeholder="basics"; }
            button.primary type="submit" { "Upload" }
            span #upload-status .muted {}
        }
        @if viewer.tenant().is_none() {
            p.muted { "An admin's upload is shared: tasks enqueued without a tenant use it. Tenants upload their own with their keys." }
        }
    };
    Ok(page::frame(&viewer, "/modules", "Modules", false, content))
}

fn grants(grants: &wasq_core::tenant::Grants) -> maud::Markup {
    html! {
        @if grants.env.is_empty() && !grants.scratch { span.muted { "none" } }
        @if !grants.env.is_empty() { span.badge.warn { "env: " (grants.env.keys().cloned().collect::<Vec<_>>().join(", ")) } " " }
        @if grants.scratch { span.badge.warn { "scratch" } }
    }
}

fn delete_button(viewer: &Viewer, name: &str) -> maud::Markup {
    html! {
        form.inline method="post" action="/modules/delete" data-confirm="Delete this module name? Queued tasks keep their bytes." {
            (csrf_field(viewer))
            input type="hidden" name="name" value=(name);
            button.danger type="submit" { "Delete" }
        }
    }
}

/// A plain-text answer the upload script shows as it is.
fn text(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

/// `PUT /modules/{name}` from the page's script (its form token in the
/// `x-wasq-csrf` header).
pub(crate) async fn upload(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let sent = headers
        .get("x-wasq-csrf")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !session::csrf_matches(&viewer.session, sent) {
        return text(
            StatusCode::FORBIDDEN,
            "the page's token is stale; reload it".into(),
        );
    }
    let outcome = match viewer.tenant() {
        Some(_) => crate::modules::upload(
            State(state.clone()),
            viewer.caller().clone(),
            crate::extract::Path(name.clone()),
            headers,
            body,
        )
        .await
        .map(|_| ()),
        None => shared_upload(&state, &name, body).await,
    };
    match outcome {
        Ok(()) => text(StatusCode::CREATED, format!("uploaded {name}")),
        Err(error) => text(error.status(), error.message().to_owned()),
    }
}

/// An admin's upload, into the shared registry.
async fn shared_upload(state: &AppState, name: &str, body: Body) -> Result<(), ApiError> {
    check_name("module name", name).map_err(ApiError::bad_request)?;
    let limit = state.limits.max_upload;
    let bytes = http_body_util::Limited::new(body, limit as usize)
        .collect()
        .await
        .map_err(|_| ApiError::too_large(format!("the module is over {limit} bytes")))?
        .to_bytes();
    let module = state.client.upload(&bytes, Some(name)).await?;
    tracing::info!(module = name, digest = %module.digest, "module uploaded from the dashboard");
    Ok(())
}

#[derive(serde::Deserialize)]
pub(crate) struct NameForm {
    name: String,
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Submitted(viewer, form): Submitted<NameForm>,
) -> PageResult {
    let store = state.client.store();
    let removed = match viewer.tenant() {
        Some(tenant) => {
            let removed = store.remove_tenant_module(tenant, &form.name).await?;
            if removed {
                state
                    .audit(viewer.caller(), tenant, "module.delete", form.name.clone())
                    .await?;
            }
            removed
        }
        None => store.remove_module(&form.name).await?,
    };
    if !removed {
        return Err(PageError::not_found(format!("no module `{}`", form.name)));
    }
    Ok(Redirect::to("/modules").into_response())
}
