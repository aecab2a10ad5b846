//! Configuration: `wasq.toml`, overridden by `WASQ_*` environment variables,
//! overridden by flags. Names follow Django Q2's `Q_CLUSTER` where the
//! meaning is the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use wasq_core::units::{parse_duration, parse_size};

/// Where an embedded setup keeps everything by default.
pub const DEFAULT_DIR: &str = ".wasq";
/// The file, beside an embedded SQLite broker's database, that holds the
/// secret wasq generated for it (0600).
const SECRET_FILE: &str = "secret";

/// The most `scratch_depth` may be: the scratch watcher holds a directory
/// descriptor per level of each task's directory.
const MAX_SCRATCH_DEPTH: u32 = 256;

/// The settings of a cluster and of the commands that talk to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Cluster name, shown by `wasq info` and part of each cluster
    /// process's id. Clusters of any names share the tasks of one queue
    /// (they must share the secret). Default: `wasq`.
    pub name: String,
    /// A label for this process in `wasq info`. Default: the host name.
    pub label: Option<String>,
    /// Tasks run at once by one cluster (concurrency, not processes).
    /// Default: 4 per CPU.
    pub workers: usize,
    /// Default wall-clock limit per task, and the most a tenant's task
    /// gets whatever it or its tenant's `max_timeout_ms` asks (untenanted
    /// tasks may ask for more). Default: 30 s.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Lease: a task taken but not acknowledged within this time is handed
    /// out again. Running tasks renew their lease, so this bounds how long
    /// a crashed cluster's tasks wait, not how long a task may run.
    /// Default: 60 s.
    #[serde(deserialize_with = "duration")]
    pub retry: Duration,
    /// Runs of one task that started and never ended (each took its
    /// cluster down, or lost its lease) before it is recorded as
    /// `abandoned` without running again — deliveries that never started
    /// do not count — and
    /// the attempts of a failing task when `ack_failures` is off.
    /// Default: 5.
    pub max_attempts: u32,
    /// Failed tasks are final (default `true`). When `false`, a task that
    /// fails with an outcome in `retry_on` runs again after a backoff, up
    /// to `max_attempts` attempts. Tasks and modules can set their own
    /// attempts (`wasq enqueue --max-attempts`, `wasq module retry`).
    pub ack_failures: bool,
    /// Delay before the second attempt of a failed task; it grows by
    /// `backoff_factor` per attempt up to `backoff_max`. Default: 1 s.
    #[serde(deserialize_with = "duration")]
    pub backoff: Duration,
    /// Growth of the retry delay per attempt. Default: 2.
    pub backoff_factor: f64,
    /// Longest retry delay. Default: 5 min.
    #[serde(deserialize_with = "duration")]
    pub backoff_max: Duration,
    /// Share of each retry delay taken off at random (0 to 1), so retries
    /// spread out. Default: 0.25.
    pub jitter: f64,
    /// Outcomes that are retried: `guest_error`, `trap`, `timeout`,
    /// `fuel_exhausted`, `memory_limit`, `output_limit`. Default: guest
    /// errors, traps and timeouts.
    pub retry_on: Vec<wasq_core::OutcomeKind>,
    /// Run schedules in this cluster (default `true`). Each due run
    /// starts once however many clusters run schedules.
    pub scheduler: bool,
    /// zstd-compress large task packages. Default: `false`.
    pub compress: bool,
    /// Successful results kept per queue (oldest dropped first; each
    /// tenant's tasks have queues of their own); failures are always kept.
    /// 0 keeps all, -1 keeps none. Default: 250.
    pub save_limit: i64,
    /// Tasks a cluster holds (running or waiting for a worker). Default:
    /// 32 per worker.
    pub queue_limit: Option<usize>,
    /// Tasks taken from the broker per request. Default: 100.
    pub bulk: usize,
    /// How long the pusher waits on an empty queue before asking again.
    /// Brokers that are told of new tasks (Redis, PostgreSQL, memory) end
    /// the wait as soon as one arrives, SQS long-polls (rounded up to whole
    /// seconds), SQLite ends it when its file is written (inotify, on Linux)
    /// and sleeps it elsewhere. It also bounds how long a stop waits for
    /// the pusher. Default: 50 ms.
    #[serde(deserialize_with = "duration")]
    pub poll: Duration,
    /// The secret packages are signed with. Default: none. The embedded
    /// SQLite broker then uses one wasq generates once in a private file
    /// beside its database (`.wasq/secret`, 0600); the server brokers
    /// (Redis, PostgreSQL, SQS) refuse to start without one.
    pub secret: String,
    /// Broker URL. Default: `sqlite://.wasq/wasq.db`.
    pub broker: String,
    /// Store URL (results, modules, cluster status). Default: the same
    /// SQLite file as the broker.
    pub store: String,
    /// Default queue. Default: `default`.
    pub queue: String,
    /// Result cache URL (`redis://…`): results of tasks enqueued with a
    /// cache time (`--cached`) are kept there, expiring, instead of in the
    /// store — Django Q2's `cached`. Default: none.
    pub cache: Option<String>,
    /// Count fuel (engine-wide). Default: `true`.
    pub fuel: bool,
    /// Default fuel budget per task, and the most a tenant's task gets
    /// (as `timeout`). Default: one trillion.
    pub max_fuel: u64,
    /// Default memory limit per task, and the most a tenant's task gets
    /// (as `timeout`). Default: 128 MiB.
    #[serde(deserialize_with = "size")]
    pub memory: u64,
    /// Compiled-module cache. Default: `.wasq/modules`.
    pub cache_dir: Option<PathBuf>,
    /// Longest a module's compile may take; it runs in a worker process
    /// killed at this time. Default: 60 s.
    #[serde(deserialize_with = "duration")]
    pub compile_timeout: Duration,
    /// Address space a module's compile may use (the worker process's
    /// limit). Default: 4 GiB.
    #[serde(deserialize_with = "size")]
    pub compile_memory: u64,
    /// The window a tenant's `fuel_per_minute` quota counts over. Default:
    /// 1 min (shorter in tests).
    #[serde(deserialize_with = "duration")]
    pub fuel_window: Duration,
    /// Tasks one tenant may run at once on this cluster when its
    /// `max_running` quota is unset (the quota, set per tenant, overrides
    /// it either way). Tasks cannot be preempted, so this is what keeps a
    /// worker free for other tenants while one tenant's long tasks run:
    /// with the default, one tenant never holds every worker. The cluster
    /// also takes no more of a tenant's tasks from the broker than this
    /// plus a few. Untenanted tasks are not limited. Default: `workers`
    /// − 1 (at least 1).
    pub tenant_max_running: Option<usize>,
    /// Where granted per-task scratch directories are made: each cluster
    /// makes a private root of its own there, `wasq-scratch-<random>`
    /// (mode 0700, made fresh so a link planted there is never followed),
    /// holds a lock in it while it runs, and at start removes the roots
    /// its user's dead clusters left. Default: the system's temporary
    /// directory.
    pub scratch_dir: Option<PathBuf>,
    /// Bytes a task's scratch directory may hold, and the most a tenant's
    /// `scratch_bytes` quota may give. Over it the task is stopped with
    /// outcome `scratch_limit`. Enforced by a watcher that walks the
    /// directory every 25 ms, so a fast writer can get past it by what it
    /// writes in that time; the disk holding `scratch_dir` must have room
    /// for `workers` times this and that margin. Default: 64 MiB.
    #[serde(deserialize_with = "size")]
    pub scratch_bytes: u64,
    /// Files, directories and links a task's scratch directory may hold
    /// (and the most a tenant's `scratch_entries` may give). Each walk of
    /// the watcher stats up to this many entries. Default: 10,000.
    pub scratch_entries: u64,
    /// How deep directories may nest in a task's scratch directory (and
    /// the most a tenant's `scratch_depth` may give). The watcher holds a
    /// descriptor per level, so it is at most 256. Default: 32.
    pub scratch_depth: u32,
    /// Report failed tasks to Sentry at this DSN
    /// (`https://KEY@HOST/PROJECT`). Default: none.
    pub sentry_dsn: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let db = format!("sqlite://{DEFAULT_DIR}/wasq.db");
        Self {
            name: "wasq".into(),
            label: None,
            workers: cpus * 4,
            timeout: Duration::from_secs(30),
            retry: Duration::from_secs(60),
            max_attempts: 5,
            ack_failures: true,
            backoff: Duration::from_secs(1),
            backoff_factor: 2.0,
            backoff_max: Duration::from_secs(300),
            jitter: 0.25,
            retry_on: wasq_core::workflow::RetryPolicy::default().retry_on,
            scheduler: true,
            compress: false,
            save_limit: 250,
            queue_limit: None,
            bulk: 100,
            poll: Duration::from_millis(50),
            secret: String::new(),
            broker: db.clone(),
            store: db,
            queue: "default".into(),
            cache: None,
            fuel: true,
            max_fuel: 1_000_000_000_000,
            memory: 128 << 20,
            cache_dir: None,
            compile_timeout: Duration::from_secs(60),
            compile_memory: 4 << 30,
            fuel_window: Duration::from_secs(60),
            tenant_max_running: None,
            scratch_dir: None,
            scratch_bytes: 64 << 20,
            scratch_entries: 10_000,
            scratch_depth: 32,
            sentry_dsn: None,
        }
    }
}

/// A configuration that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file or a variable has a bad value.
    #[error("bad configuration in {origin}: {message}")]
    Invalid {
        /// The file or variable.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

const KEYS: [&str; 36] = [
    "name",
    "label",
    "workers",
    "timeout",
    "retry",
    "max_attempts",
    "ack_failures",
    "backoff",
    "backoff_factor",
    "backoff_max",
    "jitter",
    "retry_on",
    "scheduler",
    "compress",
    "save_limit",
    "queue_limit",
    "bulk",
    "poll",
    "secret",
    "broker",
    "store",
    "queue",
    "cache",
    "fuel",
    "max_fuel",
    "memory",
    "cache_dir",
    "compile_timeout",
    "compile_memory",
    "fuel_window",
    "tenant_max_running",
    "scratch_dir",
    "scratch_bytes",
    "scratch_entries",
    "scratch_depth",
    "sentry_dsn",
];

impl Config {
    /// Reads `file` (if given; else `./wasq.toml` if present), then the
    /// `WASQ_*` variables of `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let default_file = Path::new("wasq.toml");
        let (path, origin) = match file {
            Some(path) => (Some(path), path.display().to_string()),
            None if default_file.exists() => (Some(default_file), "wasq.toml".to_owned()),
            None => (None, "defaults".to_owned()),
        };
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Invalid {
                    origin: origin.clone(),
                    message: e.to_string().replace('\n', " "),
                })?
            }
            None => toml::Table::new(),
        };
        let mut origin = origin;
        for (var, value) in env {
            let Some(key) = var.strip_prefix("WASQ_").map(str::to_ascii_lowercase) else {
                continue;
            };
            if !KEYS.contains(&key.as_str()) {
                continue;
            }
            // `WASQ_WORKERS=8` is a number, `WASQ_NAME=prod` a string.
            let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(value));
            table.insert(key, parsed);
            origin = format!("{origin} and WASQ_* variables");
        }
        let config: Config =
            table
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    origin,
                    message: e.to_string().replace('\n', " "),
                })?;
        config.validate()
    }

    fn validate(self) -> Result<Self, ConfigError> {
        let bad = |message: &str| ConfigError::Invalid {
            origin: "configuration".into(),
            message: message.into(),
        };
        if self.workers == 0 {
            return Err(bad("workers must be at least 1"));
        }
        if self.bulk == 0 {
            return Err(bad("bulk must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(bad("max_attempts must be at least 1"));
        }
        if self.retry < Duration::from_millis(100) {
            return Err(bad("retry (the lease) must be at least 100ms"));
        }
        if self.fuel_window < Duration::from_secs(1) {
            return Err(bad("fuel_window must be at least 1s"));
        }
        if !(1..=MAX_SCRATCH_DEPTH).contains(&self.scratch_depth) {
            return Err(bad("scratch_depth must be 1 to 256"));
        }
        self.retry_policy().validate().map_err(|e| bad(&e))?;
        Ok(self)
    }

    /// How this cluster retries failed tasks that bring no policy of their
    /// own: not at all with `ack_failures` on, else up to `max_attempts`.
    pub fn retry_policy(&self) -> wasq_core::workflow::RetryPolicy {
        wasq_core::workflow::RetryPolicy {
            max_attempts: if self.ack_failures {
                1
            } else {
                self.max_attempts
            },
            backoff_ms: self.backoff.as_millis() as u64,
            factor: self.backoff_factor,
            backoff_max_ms: self.backoff_max.as_millis() as u64,
            jitter: self.jitter,
            retry_on: self.retry_on.clone(),
        }
    }

    /// The secret to sign and verify packages with: `secret` if set; else,
    /// for the embedded SQLite broker, the one kept beside its database
    /// (generated on first use, mode 0600); for the in-memory broker, a
    /// random one of this process. A server broker without `secret` is an
    /// error: anyone who can write to it could otherwise forge tasks.
    pub fn signing_secret(&self) -> Result<String, ConfigError> {
        if !self.secret.is_empty() {
            return Ok(self.secret.clone());
        }
        if self.broker.starts_with("memory:") {
            return Ok(process_secret().to_owned());
        }
        if let Some(path) = self.broker.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path.contains(":memory:") {
                return Ok(process_secret().to_owned());
            }
            let file = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join(SECRET_FILE);
            return crate::secret_file::read_or_create(&file)
                .map_err(|source| ConfigError::Read { path: file, source });
        }
        Err(ConfigError::Invalid {
            origin: "configuration".into(),
            message: format!(
                "no secret is set for the broker {}: set WASQ_SECRET (or `secret` in wasq.toml), \
                 for example WASQ_SECRET=$(openssl rand -hex 32), to the same value on every \
                 machine that shares it",
                wasq_brokers::redact(&self.broker)
            ),
        })
    }

    /// [`signing_secret`](Self::signing_secret), or, when that fails (which
    /// is logged), a random secret of this process: packages then verify
    /// only within it, which is safe, never forgeable.
    pub fn secret_or_random(&self) -> String {
        self.signing_secret().unwrap_or_else(|error| {
            tracing::error!(%error, "signing packages with a random secret of this process");
            process_secret().to_owned()
        })
    }

    /// Tasks one tenant may run at once when its `max_running` quota is
    /// unset: `tenant_max_running`, else `workers` − 1 (at least 1).
    pub fn tenant_max_running(&self) -> usize {
        self.tenant_max_running
            .unwrap_or(self.workers.saturating_sub(1))
            .max(1)
    }

    /// Tasks a cluster holds at once.
    pub fn queue_limit(&self) -> usize {
        self.queue_limit.unwrap_or(self.workers * 32).max(1)
    }

    /// The compiled-module cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| Path::new(DEFAULT_DIR).join("modules"))
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bytes(b) => Ok(b),
        Raw::Text(t) => parse_size(&t).map_err(serde::de::Error::custom),
    }
}

/// A random secret of this process, for brokers no other process can reach.
fn process_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(crate::secret_file::random_secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_embedded_sqlite() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.broker, "sqlite://.wasq/wasq.db");
        assert_eq!(c.store, c.broker);
        assert_eq!(c.queue_limit(), c.workers * 32);
        assert_eq!(c.scratch_bytes, 64 << 20);
        let c = Config::load(None, env(&[("WASQ_SCRATCH_BYTES", "1MiB")])).unwrap();
        assert_eq!(c.scratch_bytes, 1 << 20);
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wasq.toml");
        std::fs::write(
            &path,
            "workers = 3\ntimeout = \"2s\"\nmemory = \"32MiB\"\nname = \"file\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            env(&[("WASQ_NAME", "env"), ("WASQ_RETRY", "90"), ("HOME", "/x")]),
        )
        .unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.memory, 32 << 20);
        assert_eq!(c.name, "env");
        assert_eq!(c.retry, Duration::from_secs(90));
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::load(None, env(&[("WASQ_WORKERS", "many")])).unwrap_err();
        assert!(err.to_string().contains("workers"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wasq.toml");
        std::fs::write(&path, "wokers = 3\n").unwrap();
        let err = Config::load(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("wokers"), "{err}");
        let err = Config::load(None, env(&[("WASQ_WORKERS", "0")])).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        let err = Config::load(None, env(&[("WASQ_SCRATCH_DEPTH", "100000")])).unwrap_err();
        assert!(err.to_string().contains("scratch_depth"), "{err}");
    }
}
