//! `wasq tenant`, `wasq key` and `wasq audit`: the admin commands of a
//! multi-tenant service, run against the store directly.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use wasq::store::{AuditEntry, Store, now_ms};
use wasq::tenant::{Quotas, Tenant, check_tenant_name, new_key};

use crate::cli_error::CliError;
use crate::settings::Settings;

/// Manage tenants: who may use `wasq serve`, and how much.
#[derive(Debug, Args)]
#[command(after_help = "\
Quotas (--quota NAME=VALUE, repeatable): max_running, max_queued,
fuel_per_minute, max_fuel, max_memory, max_timeout_ms, max_module_size,
max_modules, scratch_bytes, scratch_entries, scratch_depth (the scratch
ones at most the cluster's own). Grants a tenant may give its modules (--allow-grant): env,
scratch. --deny-grant takes an allowance away and revokes that grant from
every module of the tenant at once (tasks already running keep it until
they end; the next task sees it gone within seconds).

Examples:
  wasq tenant create acme --weight 2 --quota max_queued=10000 --allow-grant scratch
  wasq tenant set acme --quota fuel_per_minute=5000000000
  wasq tenant set acme --deny-grant scratch
  wasq tenant list")]
pub(crate) struct TenantArgs {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Add a tenant.
    Create {
        /// Its name: lower-case letters, digits and `-`.
        name: String,
        #[command(flatten)]
        settings: TenantSettings,
    },
    /// Change a tenant's weight, quotas or allowed grants.
    Set {
        /// The tenant.
        name: String,
        #[command(flatten)]
        settings: TenantSettings,
    },
    /// List tenants with their quotas.
    List {
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Remove a tenant: its keys are revoked and its module names dropped.
    Remove {
        /// The tenant.
        name: String,
    },
}

#[derive(Debug, Args)]
struct TenantSettings {
    /// Share of the cluster's round robin (1 or more).
    #[arg(long, value_name = "N")]
    weight: Option<u32>,
    /// A quota, NAME=VALUE (sizes and durations as numbers: bytes, ms).
    #[arg(long = "quota", value_name = "NAME=VALUE")]
    quotas: Vec<String>,
    /// A grant the tenant may give its modules: env or scratch.
    #[arg(long = "allow-grant", value_name = "KIND", value_parser = ["env", "scratch"])]
    allow_grants: Vec<String>,
    /// A grant the tenant may no longer give: env or scratch. Its modules
    /// that have it lose it.
    #[arg(long = "deny-grant", value_name = "KIND", value_parser = ["env", "scratch"])]
    deny_grants: Vec<String>,
}

impl TenantSettings {
    fn apply(&self, tenant: &mut Tenant) -> Result<(), CliError> {
        if let Some(weight) = self.weight {
            if weight == 0 {
                return Err(CliError::usage(anyhow::anyhow!(
                    "--weight must be at least 1"
                )));
            }
            tenant.weight = weight;
        }
        for quota in &self.quotas {
            let (name, value) = quota.split_once('=').ok_or_else(|| {
                CliError::usage(anyhow::anyhow!(
                    "--quota {quota}: write NAME=VALUE, e.g. max_queued=1000"
                ))
            })?;
            let value: u64 = value.trim().parse().map_err(|_| {
                CliError::usage(anyhow::anyhow!(
                    "--quota {quota}: the value is not a whole number"
                ))
            })?;
            tenant
                .quotas
                .set(name.trim(), value)
                .map_err(|e| CliError::usage(anyhow::anyhow!(e)))?;
        }
        if let Some(kind) = self
            .allow_grants
            .iter()
            .find(|k| self.deny_grants.contains(k))
        {
            return Err(CliError::usage(anyhow::anyhow!(
                "--allow-grant {kind} and --deny-grant {kind}: give one of them"
            )));
        }
        for kind in &self.allow_grants {
            if !tenant.quotas.allows(kind) {
                tenant.quotas.allow_grants.push(kind.clone());
            }
        }
        tenant
            .quotas
            .allow_grants
            .retain(|kind| !self.deny_grants.contains(kind));
        Ok(())
    }
}

async fn store(settings: &Settings) -> Result<Store, CliError> {
    let config = settings.config()?;
    Store::connect(&config.store)
        .await
        .map_err(|e| CliError::from(wasq::ClientError::from(e)))
}

async fn audit(
    store: &Store,
    tenant: Option<&str>,
    action: &str,
    detail: String,
) -> Result<(), CliError> {
    store
        .audit(&AuditEntry {
            at_ms: now_ms(),
            tenant: tenant.map(str::to_owned),
            actor: "cli".into(),
            action: action.into(),
            detail,
        })
        .await
        .map_err(CliError::other)
}

fn quota_summary(quotas: &Quotas) -> String {
    let value = serde_json::to_value(quotas).unwrap_or_default();
    let mut parts: Vec<String> = Quotas::NAMES
        .iter()
        .filter_map(|name| value[name].as_u64().map(|v| format!("{name}={v}")))
        .collect();
    if !quotas.allow_grants.is_empty() {
        parts.push(format!("grants={}", quotas.allow_grants.join(",")));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

pub(crate) async fn tenant(args: TenantArgs) -> Result<ExitCode, CliError> {
    let store = store(&args.settings).await?;
    match args.command {
        TenantCommand::Create { name, settings } => {
            check_tenant_name(&name).map_err(|e| CliError::usage(anyhow::anyhow!(e)))?;
            let mut tenant = Tenant {
                name: name.clone(),
                weight: 1,
                quotas: Quotas::default(),
                created_at_ms: now_ms(),
            };
            settings.apply(&mut tenant)?;
            store
                .create_tenant(&tenant)
                .await
                .map_err(CliError::usage)?;
            audit(
                &store,
                Some(&name),
                "tenant.create",
                quota_summary(&tenant.quotas),
            )
            .await?;
            println!("created tenant {name}; make it a key with `wasq key create --tenant {name}`");
        }
        TenantCommand::Set { name, settings } => {
            let mut tenant = store
                .tenant(&name)
                .await
                .map_err(CliError::other)?
                .ok_or_else(|| {
                    CliError::usage(anyhow::anyhow!(
                        "no tenant `{name}` (see `wasq tenant list`)"
                    ))
                })?;
            settings.apply(&mut tenant)?;
            let revoked = store
                .update_tenant_revoking(&tenant)
                .await
                .map_err(CliError::other)?
                .ok_or_else(|| {
                    CliError::usage(anyhow::anyhow!(
                        "tenant `{name}` was removed meanwhile (see `wasq tenant list`)"
                    ))
                })?;
            audit(
                &store,
                Some(&name),
                "tenant.set",
                quota_summary(&tenant.quotas),
            )
            .await?;
            if !revoked.is_empty() {
                audit(
                    &store,
                    Some(&name),
                    "module.grants",
                    format!(
                        "revoked ({}): {}",
                        settings.deny_grants.join(","),
                        revoked.join(" ")
                    ),
                )
                .await?;
            }
            println!(
                "{name}: weight {}, {}",
                tenant.weight,
                quota_summary(&tenant.quotas)
            );
            if !revoked.is_empty() {
                println!("grants revoked from modules: {}", revoked.join(", "));
            }
        }
        TenantCommand::List { json } => {
            let tenants = store.tenants().await.map_err(CliError::other)?;
            if json {
                for t in &tenants {
                    println!("{}", serde_json::to_string(t).map_err(CliError::other)?);
                }
            } else if tenants.is_empty() {
                eprintln!("no tenants yet: `wasq tenant create NAME`");
            } else {
                println!("{:<20} {:>6}  quotas", "tenant", "weight");
                for t in &tenants {
                    println!(
                        "{:<20} {:>6}  {}",
                        t.name,
                        t.weight,
                        quota_summary(&t.quotas)
                    );
                }
            }
        }
        TenantCommand::Remove { name } => {
            if !store.remove_tenant(&name).await.map_err(CliError::other)? {
                return Err(CliError::usage(anyhow::anyhow!(
                    "no tenant `{name}` (see `wasq tenant list`)"
                )));
            }
            audit(&store, Some(&name), "tenant.remove", String::new()).await?;
            println!("removed tenant {name}; its keys are revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Manage API keys. A key is shown once, when made; the store keeps only
/// its hash.
#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Make a key for a tenant (or an admin key) and print it once.
    Create {
        /// The tenant the key acts for.
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        tenant: Option<String>,
        /// An admin key: sees every tenant's audit log and cluster hosts,
        /// owns nothing.
        #[arg(long)]
        admin: bool,
        /// What the key is for.
        #[arg(long, default_value = "")]
        label: String,
        /// Print JSON: {"id", "key", "tenant"}.
        #[arg(long)]
        json: bool,
    },
    /// List keys (ids, never secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by its id: it is refused from the next request on.
    Revoke {
        /// The key's id (the 12 hex digits after `wasq_`).
        id: String,
    },
}

pub(crate) async fn key(args: KeyArgs) -> Result<ExitCode, CliError> {
    let store = store(&args.settings).await?;
    match args.command {
        KeyCommand::Create {
            tenant,
            admin: _,
            label,
            json,
        } => {
            if let Some(name) = &tenant
                && store.tenant(name).await.map_err(CliError::other)?.is_none()
            {
                return Err(CliError::usage(anyhow::anyhow!(
                    "no tenant `{name}`: create it with `wasq tenant create {name}`"
                )));
            }
            let key = new_key();
            store
                .create_key(&key.id, tenant.as_deref(), &key.hash, &label)
                .await
                .map_err(CliError::other)?;
            let whom = tenant.clone().unwrap_or_else(|| "admin".into());
            audit(
                &store,
                tenant.as_deref(),
                "key.create",
                format!("{} ({whom})", key.id),
            )
            .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": key.id, "key": key.token, "tenant": tenant})
                );
            } else {
                println!("{}", key.token);
                eprintln!("key {} for {whom}: shown once, keep it secret", key.id);
            }
        }
        KeyCommand::List { tenant } => {
            let keys = store
                .keys(tenant.as_deref())
                .await
                .map_err(CliError::other)?;
            println!("{:<14} {:<20} {:<8} label", "id", "tenant", "state");
            for k in keys {
                println!(
                    "{:<14} {:<20} {:<8} {}",
                    k.id,
                    k.tenant.as_deref().unwrap_or("(admin)"),
                    if k.revoked_at_ms.is_some() {
                        "revoked"
                    } else {
                        "live"
                    },
                    k.label
                );
            }
        }
        KeyCommand::Revoke { id } => {
            let key = store.key(&id).await.map_err(CliError::other)?;
            if !store.revoke_key(&id).await.map_err(CliError::other)? {
                return Err(CliError::usage(anyhow::anyhow!(
                    "no live key `{id}` (see `wasq key list`)"
                )));
            }
            let tenant = key.and_then(|k| k.tenant);
            audit(&store, tenant.as_deref(), "key.revoke", id.clone()).await?;
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Show the audit log: tenants, keys and module uploads, newest first.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    settings: Settings,
    /// Only this tenant's entries.
    #[arg(long)]
    tenant: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn audit_log(args: AuditArgs) -> Result<ExitCode, CliError> {
    let store = store(&args.settings).await?;
    let entries = store
        .audit_log(args.tenant.as_deref(), args.limit)
        .await
        .map_err(CliError::other)?;
    for e in entries {
        if args.json {
            println!("{}", serde_json::to_string(&e).map_err(CliError::other)?);
        } else {
            let at = wasq::schedule::Timestamp::from_millisecond(e.at_ms)
                .map(|t| t.to_string())
                .unwrap_or_default();
            println!(
                "{at:<30} {:<14} {:<16} {:<16} {}",
                e.tenant.as_deref().unwrap_or("-"),
                e.actor,
                e.action,
                e.detail
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
