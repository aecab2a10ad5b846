//! The machine a run was measured on, and the versions of every part: what BENCHMARKS.md
//! prints above the tables so that a reader can compare like with like.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) memory_gib: f64,
    pub(crate) kernel: String,
    /// `(part, version)`: rustc, wasq, redis-server, postgres, python and each peer.
    pub(crate) versions: Vec<(String, String)>,
}

impl Machine {
    /// This machine, with the versions of the binaries given.
    pub(crate) fn describe(wasq: &Path, python: Option<&Path>) -> Self {
        let mut versions = vec![
            ("rustc".to_string(), first_line("rustc", &["--version"])),
            (
                "wasq".to_string(),
                first_line(&wasq.display().to_string(), &["--version"]),
            ),
        ];
        if let Some(redis) = std::env::var_os("WASQ_REDIS_SERVER") {
            versions.push((
                "redis-server".into(),
                first_line(&redis.to_string_lossy(), &["--version"]),
            ));
        }
        if let Some(pg_bin) = std::env::var_os("WASQ_PG_BIN") {
            let postgres = Path::new(&pg_bin).join("postgres");
            versions.push((
                "postgres".into(),
                first_line(&postgres.display().to_string(), &["--version"]),
            ));
        }
        if let Some(python) = python {
            versions.push((
                "python".into(),
                first_line(&python.display().to_string(), &["--version"]),
            ));
        }
        Self {
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: memory_gib(),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            versions,
        }
    }

    /// One line: `2 × AMD EPYC …, 24 GiB, Linux 6.18`.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} × {}, {:.0} GiB, Linux {}",
            self.cores, self.cpu, self.memory_gib, self.kernel
        )
    }
}

/// The first line a command prints, or why it printed none.
fn first_line(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(error) => format!("unknown ({program}: {error})"),
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0)
}
