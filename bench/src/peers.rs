//! The Python task queues, each run by `bench/peers/peer.py` in the benchmark's virtual
//! environment: one process per system and workload, which starts the peer's own workers,
//! enqueues, counts results in the peer's own result store, and prints one JSON [`Run`].

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::process::Command;

use crate::report::Run;
use crate::wasq_runs::{Sizes, log_tail};

/// A Python queue, as peer.py names it, and how tables name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) id: &'static str,
    pub(crate) label: &'static str,
}

pub(crate) const PEERS: [Peer; 4] = [
    Peer {
        id: "djq-redis",
        label: "Django Q2 · Redis",
    },
    Peer {
        id: "djq-orm",
        label: "Django Q2 · ORM (SQLite)",
    },
    Peer {
        id: "celery",
        label: "Celery · Redis",
    },
    Peer {
        id: "rq",
        label: "RQ · Redis",
    },
];

/// What every peer run needs.
#[derive(Debug)]
pub(crate) struct PeerEnv {
    /// The venv's python, with the peers installed.
    pub(crate) python: PathBuf,
    /// `bench/peers`.
    pub(crate) dir: PathBuf,
    /// The markdown document.
    pub(crate) doc: PathBuf,
    pub(crate) redis_url: Option<String>,
    pub(crate) workdir: PathBuf,
    pub(crate) timeout: Duration,
}

/// Runs one workload of one peer; a failure is recorded in the returned [`Run`].
pub(crate) async fn run(env: &PeerEnv, peer: Peer, workload: &str, n: usize, sizes: &Sizes) -> Run {
    let mut run = match run_peer(env, peer, workload, n, sizes).await {
        Ok(run) => run,
        Err(error) => Run::failed(
            peer.id,
            peer.label,
            workload,
            format!("{error:#}").replace('\n', " "),
        ),
    };
    peer.label.clone_into(&mut run.label);
    run.settle();
    run
}

async fn run_peer(
    env: &PeerEnv,
    peer: Peer,
    workload: &str,
    n: usize,
    sizes: &Sizes,
) -> Result<Run> {
    let redis = env
        .redis_url
        .as_deref()
        .context("no Redis server (pass --redis-url)")?;
    let workdir = env.workdir.join(format!("run-{n}"));
    std::fs::create_dir_all(&workdir)?;
    let log = workdir.join("peer.log");
    let stderr = std::fs::File::create(&log)?;
    let mut command = Command::new(&env.python);
    command
        .arg(env.dir.join("peer.py"))
        .args(["--system", peer.id, "--workload", workload])
        .args(["--tasks", &sizes.tasks.to_string()])
        .args(["--workers", &sizes.workers.to_string()])
        .args(["--samples", &sizes.samples.to_string()])
        .args(["--queued", &sizes.queued.to_string()])
        .args(["--timeout", &env.timeout.as_secs().to_string()])
        .args(["--redis-url", redis])
        .arg("--workdir")
        .arg(&workdir)
        .arg("--doc")
        .arg(&env.doc)
        .current_dir(&env.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", env.python.display()))?;
    // peer.py has its own timeout for the tasks; this one is for peer.py itself.
    let limit = env.timeout + Duration::from_secs(120);
    let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(output) => output?,
        Err(_) => bail!(
            "peer.py did not finish within {limit:?}; its log is {}",
            log.display()
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
    else {
        bail!(
            "peer.py printed no result ({}): {}",
            output.status,
            log_tail(&log).unwrap_or_default()
        );
    };
    let mut run: Run = serde_json::from_str(line)
        .with_context(|| format!("peer.py printed a result that is not a run: {line:.200}"))?;
    if !output.status.success() && run.error.is_none() {
        run.error = Some(format!(
            "peer.py exited with {}: {}",
            output.status,
            log_tail(&log).unwrap_or_default()
        ));
    }
    Ok(run)
}
