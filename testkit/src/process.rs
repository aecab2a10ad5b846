//! What the three servers share: free ports, log files, signals, waiting for a child with a
//! deadline, finding programs, and who we run as.

use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// How often a starting server is polled.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// How many fresh ports a server is tried on when the one it got was taken in the meantime
/// (another process can bind a port between our probe and the server's bind).
pub(crate) const PORT_ATTEMPTS: usize = 5;

/// A port on 127.0.0.1 that was free a moment ago: bind port 0, read what the kernel chose,
/// release it. Another process may take it before the server binds it; the servers retry on
/// another port when that happens.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot bind a TCP port on 127.0.0.1 (is the loopback interface up?)")?;
    Ok(listener.local_addr()?.port())
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_answers(port: u16) -> bool {
    TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1)).is_ok()
}

/// Creates `dir` (and its parents) and returns it made absolute, so a server that changes its
/// working directory still finds it.
pub(crate) fn prepare_dir(dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))
}

/// The log of a server: a file in its directory that gets the server's stdout and stderr, and
/// whose end goes into error messages.
#[derive(Debug, Clone)]
pub(crate) struct Log {
    pub(crate) path: PathBuf,
}

impl Log {
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        Self {
            path: dir.join(name),
        }
    }

    /// stdout and stderr for a child, appending to the log.
    pub(crate) fn stdio(&self) -> Result<(Stdio, Stdio)> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open the log {}", self.path.display()))?;
        let copy = file.try_clone()?;
        Ok((Stdio::from(file), Stdio::from(copy)))
    }

    /// How long the log is now: what a new start writes comes after this.
    pub(crate) fn len(&self) -> u64 {
        fs::metadata(&self.path).map_or(0, |meta| meta.len())
    }

    /// The whole log, or "" if it cannot be read.
    pub(crate) fn text(&self) -> String {
        self.text_since(0)
    }

    /// The log from byte `offset` on (see [`Log::len`]), or "" if it cannot be read.
    pub(crate) fn text_since(&self, offset: u64) -> String {
        fs::read(&self.path)
            .map(|bytes| {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                String::from_utf8_lossy(&bytes[start..]).into_owned()
            })
            .unwrap_or_default()
    }

    /// The last lines of the log, indented, for an error message.
    pub(crate) fn tail(&self) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(15);
        if lines.is_empty() {
            return format!("(the log {} is empty)", self.path.display());
        }
        let mut out = format!("last lines of {}:", self.path.display());
        for line in &lines[start..] {
            out.push_str("\n    ");
            out.push_str(line);
        }
        out
    }
}

/// Why a server did not start.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The port was taken by the time the server bound it: try another.
    PortTaken(anyhow::Error),
    /// Anything else.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(error: anyhow::Error) -> Self {
        Self::Failed(error)
    }
}

impl From<std::io::Error> for StartError {
    fn from(error: std::io::Error) -> Self {
        Self::Failed(error.into())
    }
}

/// Calls `start` with free ports until it does not report [`StartError::PortTaken`], at most
/// [`PORT_ATTEMPTS`] times.
pub(crate) fn on_a_free_port<T>(mut start: impl FnMut(u16) -> Result<T, StartError>) -> Result<T> {
    let mut last = None;
    for _ in 0..PORT_ATTEMPTS {
        match start(free_port()?) {
            Ok(server) => return Ok(server),
            Err(StartError::PortTaken(error)) => last = Some(error),
            Err(StartError::Failed(error)) => return Err(error),
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow::anyhow!("no free port"))
        .context(format!(
            "{PORT_ATTEMPTS} free ports in a row were taken before the server could bind them: \
             is something grabbing ports on 127.0.0.1? Try again"
        )))
}

/// Sends `signal` (a name such as `TERM`) to process `pid` with the shell's `kill`, which every
/// machine has (std can only send SIGKILL, and this crate has no libc).
pub(crate) fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("sh")
        .args(["-c", "kill -s \"$0\" \"$1\" 2>/dev/null", signal])
        .arg(pid.to_string())
        .status()
        .context("cannot run `sh` to send a signal")?;
    if !status.success() {
        bail!("cannot send SIG{signal} to process {pid} (has it exited?)");
    }
    Ok(())
}

/// Waits up to `timeout` for `child` to exit; `None` if it is still running then.
pub(crate) fn wait_for_exit(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// Stops `child`: sends `signal` (unless it is `None`), waits up to `timeout`, then kills it
/// with SIGKILL and reaps it.
pub(crate) fn stop_child(
    child: &mut Child,
    signal_name: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    if let Some(name) = signal_name {
        // If the signal cannot be sent the process is gone or going; the wait tells.
        let _ = signal(child.id(), name);
        if wait_for_exit(child, timeout)?.is_some() {
            return Ok(());
        }
    }
    let _ = child.kill();
    child
        .wait()
        .with_context(|| format!("cannot wait for process {}", child.id()))?;
    Ok(())
}

/// Whether `path` is a file with an execute bit.
pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The first executable `name` in `PATH`.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// The value of environment variable `var` as a path, if set and not empty.
pub(crate) fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// Whether this process runs with effective user id 0.
pub fn is_root() -> bool {
    // The second field of `Uid:` is the effective uid.
    if let Ok(status) = fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|line| line.starts_with("Uid:"))
        && let Some(euid) = line.split_whitespace().nth(2)
    {
        return euid == "0";
    }
    capture(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// Runs `command` and returns its stdout; fails (naming the command, with the end of its
/// output) unless it exits 0.
pub(crate) fn capture(command: &mut Command) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            last_lines(&output.stdout, &output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The last lines of a command's stdout and stderr, for an error message.
pub(crate) fn last_lines(stdout: &[u8], stderr: &[u8]) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let start = lines.len().saturating_sub(15);
    lines[start..].join("\n    ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_free_and_differ() {
        let a = free_port().unwrap();
        let b = free_port().unwrap();
        assert_ne!(a, 0);
        assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, a)).is_ok());
        // The kernel hands out ephemeral ports in turn; two in a row are different.
        assert_ne!(a, b);
    }

    #[test]
    fn a_taken_port_is_retried_on_another() {
        let mut ports = Vec::new();
        let got = on_a_free_port(|port| {
            ports.push(port);
            if ports.len() < 3 {
                Err(StartError::PortTaken(anyhow::anyhow!("taken")))
            } else {
                Ok(port)
            }
        })
        .unwrap();
        assert_eq!(ports.len(), 3);
        assert_eq!(Some(&got), ports.last());

        let error = on_a_free_port(|_| -> Result<(), _> {
            Err(StartError::PortTaken(anyhow::anyhow!("taken")))
        })
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("5 free ports in a row"),
            "{error:#}"
        );

        let mut calls = 0;
        let error = on_a_free_port(|_| -> Result<(), _> {
            calls += 1;
            Err(StartError::Failed(anyhow::anyhow!("broken")))
        })
        .unwrap_err();
        assert_eq!((calls, format!("{error}")), (1, "broken".to_string()));
    }

    #[test]
    fn programs_are_found_in_path() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("surely-no-such-program-here").is_none());
    }

    #[test]
    fn a_child_is_stopped_by_a_signal() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        stop_child(&mut child, Some("TERM"), Duration::from_secs(10)).unwrap();
        assert!(child.try_wait().unwrap().is_some());
    }

    #[test]
    fn the_log_tail_has_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::new(dir.path(), "x.log");
        assert!(log.tail().contains("is empty"));
        let text: String = (0..40).map(|i| format!("line {i}\n")).collect();
        fs::write(&log.path, text).unwrap();
        let tail = log.tail();
        assert!(
            tail.contains("line 39") && tail.contains("line 25"),
            "{tail}"
        );
        assert!(!tail.contains("line 24"), "{tail}");
    }
}
