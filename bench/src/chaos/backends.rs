//! The private servers of one scenario, in its own directory: a Redis and/or a PostgreSQL
//! server from `wasq_testkit` that the scenario may stop, kill and restart, a SQLite file, or a
//! SQLite file on a small tmpfs mounted for the scenario (and unmounted after it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use wasq_testkit::{PostgresServer, RedisServer};

/// Where the broker and the store live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Layout {
    /// Redis broker, SQLite store.
    RedisSqlite,
    /// Redis broker, PostgreSQL store.
    RedisPostgres,
    /// PostgreSQL broker and store, one server.
    Postgres,
    /// SQLite broker and store, one file.
    Sqlite,
    /// SQLite broker and store on a tmpfs of this many MiB.
    SqliteTmpfs(u32),
}

impl Layout {
    /// `broker / store`, for the table.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::RedisSqlite => "redis / sqlite",
            Self::RedisPostgres => "redis / postgres",
            Self::Postgres => "postgres / postgres",
            Self::Sqlite => "sqlite / sqlite",
            Self::SqliteTmpfs(_) => "sqlite / sqlite (tmpfs)",
        }
    }
}

/// Why a scenario could not set up its servers.
#[derive(Debug)]
pub(crate) enum SetupError {
    /// The scenario cannot run here (the row says why, and it is not a pass).
    Skipped(String),
    /// Anything else: the scenario fails.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for SetupError {
    fn from(error: anyhow::Error) -> Self {
        Self::Failed(error)
    }
}

/// The running servers of a scenario.
#[derive(Debug)]
pub(crate) struct Backends {
    pub(crate) redis: Option<RedisServer>,
    pub(crate) postgres: Option<PostgresServer>,
    /// The mounted tmpfs, unmounted by [`Backends::teardown`] (or on drop).
    pub(crate) tmpfs: Option<PathBuf>,
    pub(crate) broker: String,
    pub(crate) store: String,
}

impl Backends {
    /// Starts what `layout` needs in `dir`.
    pub(crate) fn start(layout: Layout, dir: &Path) -> Result<Self, SetupError> {
        let sqlite = |dir: &Path| format!("sqlite://{}", dir.join("wasq.db").display());
        let mut backends = Self {
            redis: None,
            postgres: None,
            tmpfs: None,
            broker: String::new(),
            store: String::new(),
        };
        match layout {
            Layout::RedisSqlite | Layout::RedisPostgres => {
                let redis = RedisServer::start(&dir.join("redis")).context("starting Redis")?;
                backends.broker = redis.url();
                backends.redis = Some(redis);
                backends.store = if layout == Layout::RedisPostgres {
                    let postgres = PostgresServer::start(&dir.join("postgres"))
                        .context("starting PostgreSQL")?;
                    let url = postgres.url();
                    backends.postgres = Some(postgres);
                    url
                } else {
                    sqlite(dir)
                };
            }
            Layout::Postgres => {
                let postgres =
                    PostgresServer::start(&dir.join("postgres")).context("starting PostgreSQL")?;
                backends.broker = postgres.url();
                backends.store = postgres.url();
                backends.postgres = Some(postgres);
            }
            Layout::Sqlite => {
                backends.broker = sqlite(dir);
                backends.store = sqlite(dir);
            }
            Layout::SqliteTmpfs(mib) => {
                let disk = dir.join("disk");
                std::fs::create_dir_all(&disk)
                    .with_context(|| format!("creating {}", disk.display()))?;
                mount_tmpfs(&disk, mib)?;
                backends.tmpfs = Some(disk.clone());
                backends.broker = sqlite(&disk);
                backends.store = sqlite(&disk);
            }
        }
        Ok(backends)
    }

    /// The Redis server, which the scenario's layout must have.
    pub(crate) fn redis(&mut self) -> Result<&mut RedisServer> {
        self.redis
            .as_mut()
            .context("this scenario's layout has no Redis server")
    }

    /// The PostgreSQL server, which the scenario's layout must have.
    pub(crate) fn postgres(&mut self) -> Result<&mut PostgresServer> {
        self.postgres
            .as_mut()
            .context("this scenario's layout has no PostgreSQL server")
    }

    /// Starts again whatever a fault left stopped.
    pub(crate) fn ensure_running(&mut self) -> Result<()> {
        if let Some(redis) = &mut self.redis
            && !redis.is_running()
        {
            redis.restart().context("restarting Redis")?;
        }
        if let Some(postgres) = &mut self.postgres
            && !postgres.is_running()
        {
            postgres.restart().context("restarting PostgreSQL")?;
        }
        Ok(())
    }

    /// Stops the servers and unmounts the tmpfs.
    pub(crate) fn teardown(mut self) -> Result<()> {
        if let Some(mut redis) = self.redis.take() {
            redis.stop()?;
        }
        if let Some(mut postgres) = self.postgres.take() {
            postgres.stop()?;
        }
        if let Some(disk) = self.tmpfs.take() {
            unmount(&disk)?;
        }
        Ok(())
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        if let Some(disk) = self.tmpfs.take() {
            let _ = unmount(&disk);
        }
    }
}

/// Mounts a tmpfs of `mib` MiB on `dir`; a refusal is [`SetupError::Skipped`].
fn mount_tmpfs(dir: &Path, mib: u32) -> Result<(), SetupError> {
    let output = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
        .arg(dir)
        .stdin(Stdio::null())
        .output();
    match output {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(SetupError::Skipped(format!(
            "cannot mount a tmpfs (needs root): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(error) => Err(SetupError::Skipped(format!(
            "cannot mount a tmpfs (needs root): cannot run `mount`: {error}"
        ))),
    }
}

/// Unmounts the tmpfs on `dir` (lazily if something still holds a file there).
fn unmount(dir: &Path) -> Result<()> {
    let status = Command::new("umount")
        .arg(dir)
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        return Ok(());
    }
    let status = Command::new("umount").arg("-l").arg(dir).status()?;
    if !status.success() {
        bail!(
            "cannot unmount the tmpfs on {}: unmount it by hand",
            dir.display()
        );
    }
    Ok(())
}
