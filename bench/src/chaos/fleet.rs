//! The `wasq cluster` processes of a scenario. Each is started from a configuration file of
//! its own in the scenario's directory (so the environment of `wasq-chaos` cannot change it),
//! with its output appended to `cluster-NAME.log` there; it can be killed with SIGKILL, stopped
//! with SIGTERM (waiting for its graceful stop) and started again with the same settings. A
//! cluster that exits on its own is noted and started again, as a process supervisor would.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

/// How long a cluster may take to stop after SIGTERM before it is killed: its `--grace`
/// (the longest wait for running tasks) and a margin.
const GRACE: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(35);

/// Least time between two starts of a cluster that keeps exiting on its own (say, while its
/// broker is down and it cannot connect).
const RESTART_EVERY: Duration = Duration::from_secs(1);

/// What every cluster of a scenario shares.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) broker: String,
    pub(crate) store: String,
    /// `retry`: the lease.
    pub(crate) lease: Duration,
    pub(crate) workers: usize,
    pub(crate) queue_limit: usize,
    pub(crate) max_attempts: u32,
    /// The compiled-module cache, shared by every scenario of a run.
    pub(crate) cache_dir: PathBuf,
}

/// One cluster of a scenario: its name (the first part of its cluster id) and its secret.
#[derive(Debug, Clone)]
pub(crate) struct ClusterSpec {
    pub(crate) name: String,
    pub(crate) secret: String,
}

#[derive(Debug)]
struct Member {
    spec: ClusterSpec,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    last_start: Option<Instant>,
    /// Whether it should be running: started and neither killed nor stopped since.
    wanted: bool,
}

/// The clusters of a scenario; dropping it kills those still running.
#[derive(Debug)]
pub(crate) struct Fleet {
    wasq: PathBuf,
    dir: PathBuf,
    members: Vec<Member>,
    /// Exits nobody asked for, one line each.
    pub(crate) unexpected_exits: Vec<String>,
    /// Graceful stops that ended with a failure status or had to be killed.
    pub(crate) bad_stops: Vec<String>,
}

impl Fleet {
    /// Writes each cluster's configuration file into `dir`; starts nothing.
    pub(crate) fn new(
        wasq: &Path,
        dir: &Path,
        settings: &Settings,
        specs: &[ClusterSpec],
    ) -> Result<Self> {
        let mut members = Vec::new();
        for spec in specs {
            let config = dir.join(format!("cluster-{}.toml", spec.name));
            std::fs::write(&config, config_text(settings, spec))
                .with_context(|| format!("writing {}", config.display()))?;
            members.push(Member {
                spec: spec.clone(),
                config,
                log: dir.join(format!("cluster-{}.log", spec.name)),
                child: None,
                last_start: None,
                wanted: false,
            });
        }
        Ok(Self {
            wasq: wasq.to_path_buf(),
            dir: dir.to_path_buf(),
            members,
            unexpected_exits: Vec::new(),
            bad_stops: Vec::new(),
        })
    }

    /// How many clusters.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Starts cluster `index` (if it is not running).
    pub(crate) fn start(&mut self, index: usize) -> Result<()> {
        let wasq = self.wasq.clone();
        let dir = self.dir.clone();
        let Some(member) = self.members.get_mut(index) else {
            return Ok(());
        };
        if member.child.is_some() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .with_context(|| format!("opening {}", member.log.display()))?;
        let mut command = Command::new(&wasq);
        command
            .arg("cluster")
            .arg("--config")
            .arg(&member.config)
            .args(["--grace", &format!("{}s", GRACE.as_secs())])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Only the configuration file speaks: no WASQ_* variable of ours overrides it.
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("WASQ_") {
                command.env_remove(var);
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", wasq.display()))?;
        member.child = Some(child);
        member.last_start = Some(Instant::now());
        member.wanted = true;
        Ok(())
    }

    /// Starts every cluster.
    pub(crate) fn start_all(&mut self) -> Result<()> {
        (0..self.len()).try_for_each(|index| self.start(index))
    }

    /// Kills cluster `index` with SIGKILL, as a crash or the OOM killer would.
    pub(crate) fn kill(&mut self, index: usize) -> Result<()> {
        let Some(member) = self.members.get_mut(index) else {
            return Ok(());
        };
        member.wanted = false;
        if let Some(mut child) = member.child.take() {
            let _ = child.kill();
            child.wait().context("waiting for a killed cluster")?;
        }
        Ok(())
    }

    /// Stops cluster `index` with SIGTERM and waits for it (SIGKILL after [`STOP_TIMEOUT`]).
    /// A failure status or a kill is noted in [`Fleet::bad_stops`].
    pub(crate) fn stop(&mut self, index: usize) -> Result<()> {
        if let Some(child) = self.members.get_mut(index).and_then(|m| m.child.as_mut())
            && child.try_wait()?.is_none()
        {
            let _ = signal(child.id(), "TERM");
        }
        self.stop_signalled(index)
    }

    /// Stops every cluster, all at once: SIGTERM to each, then the waits.
    pub(crate) fn stop_all(&mut self) -> Result<()> {
        for member in &mut self.members {
            if let Some(child) = &mut member.child
                && child.try_wait()?.is_none()
            {
                let _ = signal(child.id(), "TERM");
            }
        }
        (0..self.len()).try_for_each(|index| self.stop_signalled(index))
    }

    /// [`Fleet::stop`] of a cluster SIGTERM was already sent to.
    fn stop_signalled(&mut self, index: usize) -> Result<()> {
        let Some(member) = self.members.get_mut(index) else {
            return Ok(());
        };
        member.wanted = false;
        let Some(mut child) = member.child.take() else {
            return Ok(());
        };
        let name = member.spec.name.clone();
        match wait_for_exit(&mut child, STOP_TIMEOUT)? {
            Some(status) if status.success() => {}
            Some(status) => self.bad_stops.push(format!(
                "cluster {name} stopped by SIGTERM exited with {status}"
            )),
            None => {
                let _ = child.kill();
                child.wait()?;
                self.bad_stops.push(format!(
                    "cluster {name} did not stop within {}s of SIGTERM and was killed",
                    STOP_TIMEOUT.as_secs()
                ));
            }
        }
        Ok(())
    }

    /// Notes the clusters that exited on their own and starts them again (at most once a
    /// second each).
    pub(crate) fn supervise(&mut self) -> Result<()> {
        for index in 0..self.len() {
            let member = &mut self.members[index];
            let exited = match &mut member.child {
                Some(child) => child.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                member.child = None;
                let line = format!("cluster {} exited on its own ({status})", member.spec.name);
                self.unexpected_exits.push(line);
            }
            let member = &self.members[index];
            let due = member
                .last_start
                .is_none_or(|at| at.elapsed() >= RESTART_EVERY);
            if member.child.is_none() && member.wanted && due {
                self.start(index)?;
            }
        }
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A cluster's `wasq.toml`: every setting the scenario cares about, the rest default.
fn config_text(settings: &Settings, spec: &ClusterSpec) -> String {
    let quoted = |text: &str| toml_string(text);
    format!(
        "name = {}\nsecret = {}\nbroker = {}\nstore = {}\nworkers = {}\nqueue_limit = {}\n\
         retry = \"{}ms\"\nmax_attempts = {}\nsave_limit = 0\ncache_dir = {}\n",
        quoted(&spec.name),
        quoted(&spec.secret),
        quoted(&settings.broker),
        quoted(&settings.store),
        settings.workers,
        settings.queue_limit,
        settings.lease.as_millis(),
        settings.max_attempts,
        quoted(&settings.cache_dir.display().to_string()),
    )
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// Sends `signal` (`TERM`) to `pid` with the shell's `kill` (std sends only SIGKILL).
pub(crate) fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .context("running `kill`")?;
    if !status.success() {
        anyhow::bail!("cannot send SIG{signal} to process {pid} (has it exited?)");
    }
    Ok(())
}

/// Waits up to `timeout` for `child` to exit.
fn wait_for_exit(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_is_read_by_wasq_with_every_setting() {
        let settings = Settings {
            broker: "redis://127.0.0.1:1".into(),
            store: "sqlite:///tmp/a \"b\"/wasq.db".into(),
            lease: Duration::from_millis(2500),
            workers: 3,
            queue_limit: 16,
            max_attempts: 5,
            cache_dir: PathBuf::from("/tmp/cache"),
        };
        let spec = ClusterSpec {
            name: "a".into(),
            secret: "s3cret".into(),
        };
        let path =
            std::env::temp_dir().join(format!("wasq-chaos-config-{}.toml", std::process::id()));
        std::fs::write(&path, config_text(&settings, &spec)).expect("written");
        let config = wasq::Config::load(Some(&path), std::iter::empty()).expect("a valid config");
        let _ = std::fs::remove_file(&path);
        assert_eq!(config.store, settings.store);
        assert_eq!(config.retry, settings.lease);
        assert_eq!((config.workers, config.queue_limit), (3, Some(16)));
        assert_eq!((config.save_limit, config.secret.as_str()), (0, "s3cret"));
    }
}
