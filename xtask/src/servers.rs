//! The servers the tests talk to: Redis, PostgreSQL and moto (a local SQS endpoint), from
//! `wasq-testkit`. [`ensure`] installs what is missing (apt-get, pip into `target/test-venv`);
//! [`TestServers::start`] starts one of each on free loopback ports in
//! `$TMPDIR/wasq-test-servers-<pid>`, and [`TestServers::env`] is what the test processes get.
//! Dropping the [`TestServers`] stops them and removes their directory, also when a step fails.
//!
//! Ctrl-C reaches the servers too (they are in our process group): Redis and PostgreSQL shut
//! down, moto exits. The directory such a run leaves behind is removed by the next one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use wasq_testkit::{MotoServer, PostgresServer, RedisServer};

/// The prefix of the servers' directories in the temporary directory; the pid of the xtask that
/// made one follows it.
const DIR_PREFIX: &str = "wasq-test-servers-";

/// Where the server binaries are, once installed.
#[derive(Debug)]
pub(crate) struct Binaries {
    redis_server: PathBuf,
    pg_bin: PathBuf,
    moto_server: PathBuf,
    schemathesis: PathBuf,
    tmux: PathBuf,
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// Finds the three servers and the tools the tests drive (schemathesis, tmux, Chromium), installing
/// the missing ones (one line printed per install).
pub(crate) fn ensure(root: &Path) -> Result<Binaries> {
    let (chromium, chromedriver) = wasq_testkit::ensure_chromium()?;
    Ok(Binaries {
        redis_server: wasq_testkit::ensure_redis()?,
        pg_bin: wasq_testkit::ensure_postgres()?,
        moto_server: wasq_testkit::ensure_moto(&root.join("target/test-venv"))?,
        schemathesis: schemathesis(root)?,
        tmux: wasq_testkit::ensure_tmux()?,
        chromium,
        chromedriver,
    })
}

/// schemathesis (pinned in tests/requirements.txt), installed with pip into
/// target/schemathesis-venv when missing.
fn schemathesis(root: &Path) -> Result<PathBuf> {
    let python = wasq_testkit::ensure_venv_requirements(
        &root.join("target/schemathesis-venv"),
        &root.join("tests/requirements.txt"),
        "the service tests run schemathesis against `wasq serve`",
    )?;
    Ok(python.with_file_name("schemathesis"))
}

/// One running server of each kind. Fields drop in order: the servers, then their directory.
#[derive(Debug)]
pub(crate) struct TestServers {
    redis: RedisServer,
    postgres: PostgresServer,
    moto: MotoServer,
    binaries: Binaries,
    dir: DirGuard,
}

impl TestServers {
    /// Starts the three at once (PostgreSQL's initdb and moto's imports take the longest) and
    /// prints one line for each.
    pub(crate) fn start(binaries: Binaries) -> Result<Self> {
        sweep_stale_dirs();
        let dir = DirGuard::create()?;
        println!("==> start the test servers (in {})", dir.0.display());
        let started = Instant::now();
        let (redis, postgres, moto) = std::thread::scope(|scope| {
            let redis = scope.spawn(|| {
                timed(|| RedisServer::start_with(&binaries.redis_server, &dir.0.join("redis")))
            });
            let postgres = scope.spawn(|| {
                timed(|| PostgresServer::start_with(&binaries.pg_bin, &dir.0.join("postgres")))
            });
            let moto = scope.spawn(|| {
                timed(|| MotoServer::start_with(&binaries.moto_server, &dir.0.join("moto")))
            });
            (joined(redis), joined(postgres), joined(moto))
        });
        // On an error the servers that did start are dropped, which stops them.
        let (redis, redis_took) = redis.context("starting Redis")?;
        let (postgres, postgres_took) = postgres.context("starting PostgreSQL")?;
        let (moto, moto_took) = moto.context("starting moto (the SQS endpoint)")?;
        for (name, url, took) in [
            ("redis", redis.url(), redis_took),
            ("postgres", postgres.url(), postgres_took),
            ("sqs (moto)", moto.endpoint(), moto_took),
        ] {
            println!("    {name:<11} {url:<40} up in {:.1}s", took.as_secs_f64());
        }
        println!(
            "    test servers: done in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Ok(Self {
            redis,
            postgres,
            moto,
            binaries,
            dir,
        })
    }

    /// The environment of the test processes: where the shared servers are, and the binaries
    /// for tests that start private servers of their own.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let path = |p: &Path| p.display().to_string();
        vec![
            ("WASQ_TEST_REDIS_URL", self.redis.url()),
            ("WASQ_TEST_POSTGRES_URL", self.postgres.url()),
            ("WASQ_TEST_SQS_ENDPOINT", self.moto.endpoint()),
            (
                wasq_testkit::REDIS_SERVER_VAR,
                path(&self.binaries.redis_server),
            ),
            // The name the Redis broker's restart test reads.
            ("WASQ_TEST_REDIS_SERVER", path(&self.binaries.redis_server)),
            (wasq_testkit::PG_BIN_VAR, path(&self.binaries.pg_bin)),
            (
                wasq_testkit::MOTO_SERVER_VAR,
                path(&self.binaries.moto_server),
            ),
            ("WASQ_TEST_SCHEMATHESIS", path(&self.binaries.schemathesis)),
            ("WASQ_TEST_TMUX", path(&self.binaries.tmux)),
            ("WASQ_TEST_CHROMIUM", path(&self.binaries.chromium)),
            ("WASQ_TEST_CHROMEDRIVER", path(&self.binaries.chromedriver)),
        ]
    }

    /// Where their data and logs are.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// An error naming the first server that is no longer running, with where its log is.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        let dead = if !self.redis.is_running() {
            Some(("Redis", self.redis.log_path()))
        } else if !self.postgres.is_running() {
            Some(("PostgreSQL", self.postgres.log_path()))
        } else if !self.moto.is_running() {
            Some(("moto", self.moto.log_path()))
        } else {
            None
        };
        let Some((name, log)) = dead else {
            return Ok(());
        };
        // The log goes with the directory: keep its end in the message.
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        bail!(
            "the test server {name} exited; the end of its log:\n    {}",
            lines[lines.len().saturating_sub(15)..].join("\n    ")
        )
    }

    /// Stops the three (gracefully: their shutdown errors are reported) and removes their
    /// directory.
    pub(crate) fn stop(mut self) -> Result<()> {
        let started = Instant::now();
        let results = [
            self.redis.stop().context("stopping Redis"),
            self.postgres.stop().context("stopping PostgreSQL"),
            self.moto.stop().context("stopping moto"),
        ];
        drop(self);
        results.into_iter().collect::<Result<Vec<()>>>()?;
        println!(
            "    test servers stopped in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// `cargo xtask servers`: starts the servers, prints the `export` lines for a shell, and keeps
/// them until Enter or Ctrl-C (or until one of them dies).
pub(crate) fn serve(root: &Path) -> Result<()> {
    let mut servers = TestServers::start(ensure(root)?)?;
    let mut exports = String::new();
    for (var, value) in servers.env() {
        let _ = writeln!(exports, "export {var}={}", shell_quoted(&value));
    }
    println!(
        "\nPaste into a shell to run the tests by hand:\n\n{exports}\n\
         cargo nextest run --workspace --release\n\n\
         Their data and logs are in {}. Press Enter or Ctrl-C to stop them.",
        servers.dir().display()
    );

    // A line on stdin stops the servers cleanly; at end of input only Ctrl-C does.
    let (enter, pressed) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            let _ = enter.send(());
        }
    });
    loop {
        match pressed.recv_timeout(Duration::from_millis(500)) {
            Ok(()) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        servers.check_running()?;
    }
    servers.stop()
}

/// `value` in single quotes unless it is plain.
fn shell_quoted(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/:.@_-+=,".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

fn timed<T>(start: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let started = Instant::now();
    start().map(|server| (server, started.elapsed()))
}

fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    handle
        .join()
        .map_err(|_| anyhow!("the thread starting a server panicked"))?
}

/// The servers' directory, removed when dropped.
#[derive(Debug)]
struct DirGuard(PathBuf);

impl DirGuard {
    fn create() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
        // One with our pid is from an earlier process that had it.
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove the stale {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the directories of earlier runs whose xtask is gone (Ctrl-C, a kill): their servers
/// went with it.
fn sweep_stale_dirs() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_a_shell_when_needed() {
        assert_eq!(
            shell_quoted("postgres://wasq@127.0.0.1:5432/wasq"),
            "postgres://wasq@127.0.0.1:5432/wasq"
        );
        assert_eq!(shell_quoted("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(shell_quoted(""), "''");
    }
}
