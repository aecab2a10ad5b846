//! The scratch watcher: while a task with a scratch directory runs, a
//! blocking thread walks the directory every [`SCAN_INTERVAL`] (a bounded,
//! fd-relative walk, see `crate::scratch::measure`) and stops the task when
//! it is over a quota. WASI has no hook on writes, so watching is the only
//! way to enforce them.

use std::os::fd::{AsFd as _, OwnedFd};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::scratch::measure;
use crate::{CancelToken, ScratchLimits, ScratchQuota};

/// How often the watcher walks the directory. Hard-coded: shorter wastes
/// CPU on walks, longer lets a fast writer further past its quota. A walk
/// that takes long (a directory near its entry quota) waits twice its own
/// time instead, so watching never costs more than a third of a core.
const SCAN_INTERVAL: Duration = Duration::from_millis(25);

/// A running watcher. [`finish`](Self::finish) it when the task ends.
#[derive(Debug)]
pub(crate) struct Watcher {
    /// Dropped to tell the thread the task ended.
    ended: Option<mpsc::Sender<()>>,
    thread: tokio::task::JoinHandle<Option<ScratchQuota>>,
}

impl Watcher {
    /// Starts watching `dir` against `limits`; cancels `stop` when a quota
    /// is exceeded.
    pub(crate) fn start(
        dir: &Path,
        limits: ScratchLimits,
        stop: CancelToken,
    ) -> std::io::Result<Self> {
        // The directory is ours (made by the caller in its private root):
        // its path is trusted; below it nothing is.
        let root: OwnedFd = std::fs::File::open(dir)?.into();
        let (ended, told) = mpsc::channel();
        let thread = tokio::task::spawn_blocking(move || watch(&root, &limits, &stop, &told));
        Ok(Self {
            ended: Some(ended),
            thread,
        })
    }

    /// Ends the watch: one last walk (a task may end before the first),
    /// then the quota the task went over, if any.
    pub(crate) async fn finish(mut self) -> Option<ScratchQuota> {
        self.ended.take();
        self.thread.await.ok().flatten()
    }
}

fn watch(
    root: &OwnedFd,
    limits: &ScratchLimits,
    stop: &CancelToken,
    ended: &mpsc::Receiver<()>,
) -> Option<ScratchQuota> {
    loop {
        let started = Instant::now();
        match measure::over(root.as_fd(), limits) {
            Ok(Some(quota)) => {
                tracing::debug!(quota = quota.as_str(), "scratch quota exceeded; stopping");
                stop.cancel();
                return Some(quota);
            }
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, "cannot walk a scratch directory"),
        }
        let wait = SCAN_INTERVAL.max(started.elapsed() * 2);
        match ended.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return measure::over(root.as_fd(), limits).ok().flatten(),
        }
    }
}
