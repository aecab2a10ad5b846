//! The faults a scenario injects, one at a time at random moments: kill -9 of a cluster,
//! rolling SIGTERM restarts, broker and store restarts and outages, `pg_terminate_backend`, a
//! full disk. Each is blocking (the servers and processes are driven synchronously) and keeps
//! supervising the clusters while it waits, so a cluster that exits during an outage is noted
//! and started again.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::backends::Backends;
use crate::fleet::{self, Fleet};
use crate::rng::Rng;

/// One kind of fault; the bounds are milliseconds, drawn per fault.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) enum Fault {
    /// No fault injected: the setup itself is the test (a long task, a wrong secret).
    None,
    /// SIGKILL one of the clusters at random, start it again after `down`.
    KillCluster { down: (u64, u64) },
    /// SIGTERM each cluster in turn and start its replacement, as a deployment does.
    RollingRestart,
    /// Stop Redis (SIGTERM, or SIGKILL with `kill`), keep it down for `down`, start it again.
    RedisRestart { kill: bool, down: (u64, u64) },
    /// Stop PostgreSQL (fast shutdown, or an immediate one, as after a crash, with `crash`),
    /// keep it down for `down`, start it again.
    PostgresRestart { crash: bool, down: (u64, u64) },
    /// `pg_terminate_backend` of every connection to the `wasq` database.
    TerminateBackends,
    /// Fill the tmpfs the SQLite files are on, keep it full for `hold`, delete the filler.
    FullDisk { hold: (u64, u64) },
}

impl Fault {
    /// What one fault is, for the table.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::KillCluster { .. } => "kill -9 a cluster",
            Self::RollingRestart => "SIGTERM restart",
            Self::RedisRestart { kill: false, .. } => "Redis SIGTERM restart",
            Self::RedisRestart { kill: true, .. } => "Redis SIGKILL restart",
            Self::PostgresRestart { crash: false, .. } => "PostgreSQL fast restart",
            Self::PostgresRestart { crash: true, .. } => "PostgreSQL crash restart",
            Self::TerminateBackends => "pg_terminate_backend all",
            Self::FullDisk { .. } => "disk full",
        }
    }
}

/// What a fault needs to reach.
#[derive(Debug)]
pub(crate) struct Stage<'a> {
    pub(crate) fleet: &'a mut Fleet,
    pub(crate) backends: &'a mut Backends,
    pub(crate) rng: &'a mut Rng,
    /// Lines for the scenario's notes.
    pub(crate) notes: &'a mut Vec<String>,
}

impl Stage<'_> {
    /// Waits `duration` while supervising the clusters.
    pub(crate) fn hold(&mut self, duration: Duration) -> Result<()> {
        let until = Instant::now() + duration;
        loop {
            self.fleet.supervise()?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    /// Injects one `fault`; answers how many fault events that was (a rolling restart is one
    /// per cluster).
    pub(crate) fn inject(&mut self, fault: Fault) -> Result<u32> {
        match fault {
            Fault::None => Ok(0),
            Fault::KillCluster { down } => {
                let victim = self.rng.below(self.fleet.len());
                self.fleet.kill(victim)?;
                let down = self.rng.millis(down);
                self.hold(down)?;
                self.fleet.start(victim)?;
                Ok(1)
            }
            Fault::RollingRestart => {
                for index in 0..self.fleet.len() {
                    self.fleet.stop(index)?;
                    self.fleet.start(index)?;
                    let pause = self.rng.millis((200, 800));
                    self.hold(pause)?;
                }
                Ok(self.fleet.len() as u32)
            }
            Fault::RedisRestart { kill, down } => {
                let redis = self.backends.redis()?;
                if kill {
                    redis.kill()?;
                } else {
                    let pid = redis.pid().context("Redis is not running")?;
                    fleet::signal(pid, "TERM")?;
                    wait_until(Duration::from_secs(30), || !redis.is_running())
                        .context("Redis did not stop within 30 s of SIGTERM")?;
                }
                let down = self.rng.millis(down);
                self.hold(down)?;
                self.backends.redis()?.restart()?;
                Ok(1)
            }
            Fault::PostgresRestart { crash, down } => {
                let postgres = self.backends.postgres()?;
                if crash {
                    postgres.kill()?;
                } else {
                    postgres.stop()?;
                }
                let down = self.rng.millis(down);
                self.hold(down)?;
                self.backends.postgres()?.restart()?;
                Ok(1)
            }
            Fault::TerminateBackends => {
                let rows = self.backends.postgres()?.query(
                    "wasq",
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = 'wasq' AND pid <> pg_backend_pid() \
                     AND backend_type = 'client backend') AS killed",
                )?;
                let killed = rows
                    .first()
                    .and_then(|row| row.first().cloned().flatten())
                    .unwrap_or_default();
                self.notes
                    .push(format!("pg_terminate_backend ended {killed} connections"));
                Ok(1)
            }
            Fault::FullDisk { hold } => {
                let disk = self
                    .backends
                    .tmpfs
                    .clone()
                    .context("this scenario's layout has no tmpfs")?;
                let filler = disk.join("filler");
                let filled = fill(&filler)?;
                self.notes.push(format!(
                    "disk filled with {:.1} MiB",
                    filled as f64 / 1048576.0
                ));
                let hold = self.rng.millis(hold);
                let held = self.hold(hold);
                std::fs::remove_file(&filler)
                    .with_context(|| format!("removing {}", filler.display()))?;
                held?;
                Ok(1)
            }
        }
    }
}

/// Writes zeros to `path` until the disk is full; answers how many bytes went in.
fn fill(path: &Path) -> Result<u64> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let chunk = vec![0_u8; 64 << 10];
    let mut written = 0_u64;
    loop {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    // What is left of a block after the last full chunk.
    for _ in 0..64 {
        match file.write(&chunk[..1024]) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = file.flush();
    Ok(written)
}

/// Polls `done` every 20 ms for up to `timeout`.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            bail!("timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
