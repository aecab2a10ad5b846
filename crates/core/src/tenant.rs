//! Tenants: who owns modules, tasks and results in a shared service, what
//! each may use ([`Quotas`]), what a module may reach beyond the sandbox's
//! default of nothing ([`Grants`]), and API keys (made here, stored as a
//! hash, compared in constant time).
//!
//! A tenant's tasks travel in a queue of their own, [`tenant_queue`], so a
//! cluster can serve tenants in turn: one tenant's backlog never sits in
//! front of another's tasks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The longest tenant name.
pub const MAX_TENANT_NAME: usize = 32;

/// Checks a tenant name: 1 to 32 of `a-z`, `0-9` and `-`, starting with a
/// letter or digit (it becomes part of queue names, which SQS limits).
pub fn check_tenant_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TENANT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tenant name `{name}`: use 1 to {MAX_TENANT_NAME} lower-case letters, digits and `-`"
        ))
    }
}

/// Checks a name people choose (a module, a queue, a group, a schedule):
/// 1 to 64 of letters, digits, `-`, `_` and `.`.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{}`: use 1 to 64 letters, digits, `-`, `_` and `.`",
            name.escape_debug()
        ))
    }
}

/// The broker queue that carries `tenant`'s tasks for `queue`.
pub fn tenant_queue(queue: &str, tenant: &str) -> String {
    format!("{queue}__t_{tenant}")
}

/// The tenant whose queue `queue` is, if it is a tenant's.
pub fn queue_tenant(queue: &str) -> Option<&str> {
    queue.rsplit_once("__t_").map(|(_, tenant)| tenant)
}

/// What a tenant may use. `None` is no limit (within the cluster's own
/// limits).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Tasks of the tenant running at once, per cluster. Unset: the
    /// cluster's `tenant_max_running` (its workers − 1 by default).
    pub max_running: Option<u64>,
    /// Tasks of the tenant waiting for their results, all queues
    /// together: queued, deferred (`delay_secs`, a retry's backoff) and
    /// running. Taken atomically when a task is queued (API, batch,
    /// schedule, resubmit), given back when its result is saved.
    pub max_queued: Option<u64>,
    /// Fuel the tenant's tasks may burn per fuel window (a minute unless
    /// the cluster's `fuel_window` says otherwise); over it, its tasks
    /// wait for the next window.
    pub fuel_per_minute: Option<u64>,
    /// Largest fuel budget of one task.
    pub max_fuel: Option<u64>,
    /// Largest linear memory of one task, bytes.
    pub max_memory: Option<u64>,
    /// Longest wall-clock limit of one task, ms.
    pub max_timeout_ms: Option<u64>,
    /// Largest module, bytes.
    pub max_module_size: Option<u64>,
    /// Most modules (names) the tenant may hold.
    pub max_modules: Option<u64>,
    /// Bytes a task's scratch directory may hold; at most the cluster's
    /// `scratch_bytes`, which is also the default.
    pub scratch_bytes: Option<u64>,
    /// Entries a task's scratch directory may hold; at most the cluster's
    /// `scratch_entries`.
    pub scratch_entries: Option<u64>,
    /// How deep a task's scratch directory may nest; at most the cluster's
    /// `scratch_depth`.
    pub scratch_depth: Option<u64>,
    /// Grants the tenant may give its modules (`env`, `scratch`): none
    /// unless an admin allows them.
    pub allow_grants: Vec<String>,
}

impl Quotas {
    /// The names of the quota fields, as error messages and flags use them.
    pub const NAMES: [&'static str; 11] = [
        "max_running",
        "max_queued",
        "fuel_per_minute",
        "max_fuel",
        "max_memory",
        "max_timeout_ms",
        "max_module_size",
        "max_modules",
        "scratch_bytes",
        "scratch_entries",
        "scratch_depth",
    ];

    /// Sets quota `name` to `value`.
    pub fn set(&mut self, name: &str, value: u64) -> Result<(), String> {
        let slot = match name {
            "max_running" => &mut self.max_running,
            "max_queued" => &mut self.max_queued,
            "fuel_per_minute" => &mut self.fuel_per_minute,
            "max_fuel" => &mut self.max_fuel,
            "max_memory" => &mut self.max_memory,
            "max_timeout_ms" => &mut self.max_timeout_ms,
            "max_module_size" => &mut self.max_module_size,
            "max_modules" => &mut self.max_modules,
            "scratch_bytes" => &mut self.scratch_bytes,
            "scratch_entries" => &mut self.scratch_entries,
            "scratch_depth" => &mut self.scratch_depth,
            _ => {
                return Err(format!(
                    "unknown quota `{name}`; quotas are {}",
                    Self::NAMES.join(", ")
                ));
            }
        };
        *slot = Some(value);
        Ok(())
    }

    /// Whether the tenant may give its modules grant `kind`.
    pub fn allows(&self, kind: &str) -> bool {
        self.allow_grants.iter().any(|g| g == kind)
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Its name.
    pub name: String,
    /// Its share in the cluster's round robin (1 or more).
    pub weight: u32,
    /// What it may use.
    pub quotas: Quotas,
    /// Created, ms since the epoch.
    pub created_at_ms: i64,
}

/// What a module may reach beyond the sandbox's default of nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grants {
    /// Environment variables the module sees.
    pub env: BTreeMap<String, String>,
    /// A fresh, empty directory per task at `/scratch`, removed when the
    /// task ends.
    pub scratch: bool,
}

impl Grants {
    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty() && !self.scratch
    }

    /// The kinds granted (`env`, `scratch`).
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        if !self.env.is_empty() {
            kinds.push("env");
        }
        if self.scratch {
            kinds.push("scratch");
        }
        kinds
    }

    /// Checks variable names and sizes.
    pub fn check(&self) -> Result<(), String> {
        if self.env.len() > 64 {
            return Err("env: at most 64 variables".into());
        }
        for (name, value) in &self.env {
            let ok = !name.is_empty()
                && name.len() <= 128
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !ok {
                return Err(format!(
                    "env: `{}` is not a variable name (letters, digits and `_`)",
                    name.escape_debug()
                ));
            }
            if value.len() > 4096 || value.contains('\0') {
                return Err(format!(
                    "env: the value of {name} is over 4096 bytes or holds a NUL"
                ));
            }
        }
        Ok(())
    }
}

/// The prefix of every API key.
const KEY_PREFIX: &str = "wasq";

/// A new API key: the token to hand out once (`wasq_ID_SECRET`), its id
/// (public, for revoking) and the hash to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The whole token, shown once.
    pub token: String,
    /// Its id.
    pub id: String,
    /// The SHA-256 of its secret, hex.
    pub hash: String,
}

/// Makes a key: a 12-hex-digit id and a 256-bit secret.
pub fn new_key() -> NewKey {
    use rand::Rng as _;
    let mut rng = rand::rng();
    let id: [u8; 6] = rng.random();
    let secret: [u8; 32] = rng.random();
    let (id, secret) = (hex::encode(id), hex::encode(secret));
    NewKey {
        token: format!("{KEY_PREFIX}_{id}_{secret}"),
        hash: hash_secret(&secret),
        id,
    }
}

/// Splits a token into its id and secret; `None` if it is not shaped like
/// a key.
pub fn parse_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(KEY_PREFIX)?.strip_prefix('_')?;
    let (id, secret) = rest.split_once('_')?;
    let hexy = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexy(id, 12) && hexy(secret, 64)).then_some((id, secret))
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` matches `stored_hash`, in time that does not depend on
/// where they differ.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    let hash = hash_secret(secret);
    hash.len() == stored_hash.len() && bool::from(hash.as_bytes().ct_eq(stored_hash.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_only_their_secret_matches() {
        let key = new_key();
        let (id, secret) = parse_key(&key.token).expect("a key parses");
        assert_eq!(id, key.id);
        assert!(secret_matches(secret, &key.hash));
        let other = new_key();
        let (_, other_secret) = parse_key(&other.token).expect("a key parses");
        assert!(!secret_matches(other_secret, &key.hash));
        assert!(parse_key("wasq_abc_def").is_none());
        assert!(parse_key("Bearer x").is_none());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_tenant_name("acme-2").is_ok());
        assert!(check_tenant_name("Acme").is_err());
        assert!(check_tenant_name("").is_err());
        assert!(check_tenant_name("-x").is_err());
        assert!(check_name("module", "fib.v2").is_ok());
        assert!(check_name("module", "a/b").is_err());
        assert_eq!(tenant_queue("default", "acme"), "default__t_acme");
    }

    #[test]
    fn quotas_are_set_by_name() {
        let mut quotas = Quotas::default();
        quotas.set("max_queued", 5).expect("a quota");
        assert_eq!(quotas.max_queued, Some(5));
        assert!(
            quotas
                .set("max_bananas", 1)
                .unwrap_err()
                .contains("max_running")
        );
    }

    #[test]
    fn grants_check_variable_names() {
        let mut grants = Grants::default();
        assert!(grants.is_empty());
        grants.env.insert("API_URL".into(), "x".into());
        assert!(grants.check().is_ok());
        grants.env.insert("1BAD".into(), "x".into());
        assert!(grants.check().is_err());
    }
}
