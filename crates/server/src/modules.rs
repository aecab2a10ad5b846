//! `/v1/modules`: a tenant's modules — upload (streamed, refused as soon
//! as it is over the size limit, before it is read), list, get, delete,
//! and the grants of one.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt as _;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use wasq_core::tenant::{Grants, check_name};
use wasq_store::TenantModule;

/// A module of the caller's.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModuleView {
    /// Its name.
    pub name: String,
    /// Content address, `sha256:…`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Last upload, ms since the epoch.
    pub uploaded_at_ms: i64,
    /// What it may reach beyond the sandbox (nothing by default).
    pub grants: GrantsView,
    /// Where its compile stands: uploads compile in the background.
    pub compile: super::compiler::CompileView,
}

/// Grants of a module.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantsView {
    /// Environment variables the module sees.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// A fresh directory per task at `/scratch`, removed after the task.
    #[serde(default)]
    pub scratch: bool,
}

impl ModuleView {
    /// The view of `m`, with its compile state as `state`'s compiler knows it.
    pub(crate) fn of(state: &AppState, m: TenantModule) -> Self {
        Self {
            compile: state.compiler.state(&m.digest),
            name: m.name,
            digest: format!("sha256:{}", m.digest),
            size: m.size,
            uploaded_at_ms: m.uploaded_at_ms,
            grants: GrantsView {
                env: m.grants.env,
                scratch: m.grants.scratch,
            },
        }
    }
}

fn checked_name(name: &str) -> Result<(), ApiError> {
    check_name("module name", name).map_err(ApiError::bad_request)
}

/// Upload a module under a name (replacing what the name held).
#[utoipa::path(put, path = "/v1/modules/{name}", tag = "modules",
    params(("name" = String, Path, description = "Module name: letters, digits, `-`, `_`, `.`")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The module: WebAssembly binary (or text)"),
    responses(
        (status = 201, description = "Stored", body = ModuleView),
        (status = 400, description = "Not a WebAssembly module, or a bad name", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Over the module-count quota, or an admin key", body = ErrorBody),
        (status = 413, description = "Over the size limit (refused before the body is read)", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<ModuleView>), ApiError> {
    let limit = caller
        .tenant()
        .ok()
        .and_then(|t| t.quotas.max_module_size)
        .map_or(state.limits.max_upload, |q| q.min(state.limits.max_upload));
    let over = |size: String| {
        ApiError::too_large(format!(
            "the module is {size}, over the limit of {limit} bytes (quota max_module_size or the server's --max-upload)"
        ))
    };
    // A declared length over the limit is refused before a byte is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > limit
    {
        return Err(over(format!("{length} bytes")));
    }
    let tenant = match upload_allowed(&state, &caller, &name).await {
        Ok(tenant) => tenant,
        Err(error) => {
            discard(body, limit).await;
            return Err(error);
        }
    };
    // Bodies are read and checked a few at a time, so memory holds only a
    // few of them, and never on the request threads.
    let turn = match state.compiler.turn().await {
        Ok(turn) => turn,
        Err(error) => {
            discard(body, limit).await;
            return Err(error);
        }
    };
    let store = state.client.store();
    // Read at most `limit` bytes; a body that goes over is cut off there.
    let limited = http_body_util::Limited::new(body, limit as usize);
    let bytes = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(over("larger".into()));
        }
        Err(error) => {
            return Err(ApiError::bad_request(format!(
                "cannot read the body: {error}"
            )));
        }
    };
    state.compiler.check(bytes.clone()).await?;
    let module = store
        .put_tenant_module(&tenant.name, &name, &bytes, None)
        .await?;
    drop(turn);
    state.compiler.start(module.digest, bytes);
    state
        .audit(
            &caller,
            &tenant.name,
            "module.upload",
            format!("{name} {} ({} bytes)", module.digest, module.size),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ModuleView::of(&state, module)),
    ))
}

/// The caller's tenant, if it may upload module `name` (a good name, and
/// room under its `max_modules` quota).
async fn upload_allowed<'a>(
    state: &AppState,
    caller: &'a Caller,
    name: &str,
) -> Result<&'a wasq_core::tenant::Tenant, ApiError> {
    let tenant = caller.tenant()?;
    checked_name(name)?;
    if let Some(most) = tenant.quotas.max_modules {
        let held = state.client.store().tenant_modules(&tenant.name).await?;
        if held.len() as u64 >= most && !held.iter().any(|m| m.name == name) {
            return Err(ApiError::quota(
                StatusCode::FORBIDDEN,
                "max_modules",
                format!(
                    "the tenant holds {} modules, its quota max_modules is {most}: delete one first",
                    held.len()
                ),
            ));
        }
    }
    Ok(tenant)
}

/// Reads and drops up to `limit` bytes of a refused upload, so that the
/// client, still sending, gets the answer instead of a reset connection.
async fn discard(mut body: Body, limit: u64) {
    let mut read = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |d| d.len() as u64);
        if read > limit {
            break;
        }
    }
}

/// The caller's modules, by name.
#[utoipa::path(get, path = "/v1/modules", tag = "modules",
    responses(
        (status = 200, description = "The modules", body = [ModuleView]),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<ModuleView>>, ApiError> {
    let tenant = caller.tenant()?;
    let modules = state.client.store().tenant_modules(&tenant.name).await?;
    Ok(axum::Json(
        modules
            .into_iter()
            .map(|m| ModuleView::of(&state, m))
            .collect(),
    ))
}

/// Module `name` of `tenant` (by its name, not its digest); 404 if there
/// is none.
pub(crate) async fn find(
    state: &AppState,
    tenant: &str,
    name: &str,
) -> Result<TenantModule, ApiError> {
    checked_name(name)?;
    state
        .client
        .store()
        .tenant_module(tenant, name)
        .await?
        .filter(|m| m.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no module `{name}`")))
}

/// One module of the caller's.
#[utoipa::path(get, path = "/v1/modules/{name}", tag = "modules",
    params(("name" = String, Path, description = "Module name")),
    responses(
        (status = 200, description = "The module", body = ModuleView),
        (status = 400, description = "A bad name", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 404, description = "No such module for this tenant", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<axum::Json<ModuleView>, ApiError> {
    let tenant = caller.tenant()?;
    let module = find(&state, &tenant.name, &name).await?;
    Ok(axum::Json(ModuleView::of(&state, module)))
}

/// Delete a module name (tasks already queued with it still run).
#[utoipa::path(delete, path = "/v1/modules/{name}", tag = "modules",
    params(("name" = String, Path, description = "Module name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A bad name", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "An admin key", body = ErrorBody),
        (status = 404, description = "No such module for this tenant", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = caller.tenant()?;
    checked_name(&name)?;
    let store = state.client.store();
    if !store.remove_tenant_module(&tenant.name, &name).await? {
        return Err(ApiError::not_found(format!("no module `{name}`")));
    }
    state
        .audit(&caller, &tenant.name, "module.delete", name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set what a module may reach: environment variables, a scratch
/// directory. Each kind must be allowed for the tenant by an admin.
#[utoipa::path(put, path = "/v1/modules/{name}/grants", tag = "modules",
    params(("name" = String, Path, description = "Module name")),
    request_body = GrantsView,
    responses(
        (status = 200, description = "The module with its grants", body = ModuleView),
        (status = 400, description = "A bad name or grant", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A grant the tenant may not give, or an admin key", body = ErrorBody),
        (status = 404, description = "No such module for this tenant", body = ErrorBody),
        (status = 413, description = "Body over its limit", body = ErrorBody),
        (status = 503, description = "Store unreachable", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn set_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(view): Json<GrantsView>,
) -> Result<axum::Json<ModuleView>, ApiError> {
    let tenant = caller.tenant()?;
    find(&state, &tenant.name, &name).await?;
    let grants = Grants {
        env: view.env,
        scratch: view.scratch,
    };
    grants.check().map_err(ApiError::bad_request)?;
    for kind in grants.kinds() {
        if !tenant.quotas.allows(kind) {
            return Err(ApiError::forbidden(format!(
                "grant `{kind}` is not allowed for tenant {}: an admin allows it with `wasq tenant set {} --allow-grant {kind}`",
                tenant.name, tenant.name
            )));
        }
    }
    let store = state.client.store();
    store
        .set_module_grants(&tenant.name, &name, &grants)
        .await?;
    state
        .audit(
            &caller,
            &tenant.name,
            "module.grants",
            format!("{name} {}", grants.kinds().join(",")),
        )
        .await?;
    let module = find(&state, &tenant.name, &name).await?;
    Ok(axum::Json(ModuleView::of(&state, module)))
}
