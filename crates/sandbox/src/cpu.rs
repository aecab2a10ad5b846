//! CPU-time metering of a future: time summed over its polls.
//!
//! A task's future may be polled on different tokio threads and interleaved
//! with other tasks; measuring around each poll charges each task for the
//! time it ran, whichever thread ran it. Everything inside a poll is the
//! task's own work (wasm and its host calls run synchronously on the fiber),
//! so the monotonic clock (a vDSO read, ~20 ns) gives the task's CPU time
//! unless the OS preempts the worker thread mid-poll; the thread CPU clock
//! is exact but is a real system call (~0.5–1 µs in a VM), twice per poll.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustix::time::{ClockId, clock_gettime};

fn thread_cpu_now() -> Duration {
    let ts = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// How a task's CPU time is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuMetering {
    /// Not measured; reported as zero.
    Off,
    /// Monotonic-clock time inside the task's polls (default): nearly free,
    /// and equal to CPU time while worker threads are not preempted.
    #[default]
    PollTime,
    /// Thread CPU time around each poll: exact even on an oversubscribed
    /// machine, at two system calls per poll (about 15% of a no-op task).
    ThreadClock,
}

/// Wraps a future and adds up the time spent inside its polls.
#[derive(Debug)]
pub(crate) struct CpuMetered<F> {
    inner: Pin<Box<F>>,
    metering: CpuMetering,
    spent: Duration,
}

impl<F: Future> CpuMetered<F> {
    pub(crate) fn new(inner: F, metering: CpuMetering) -> Self {
        Self {
            inner: Box::pin(inner),
            metering,
            spent: Duration::ZERO,
        }
    }
}

impl<F: Future> Future for CpuMetered<F> {
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let poll = match this.metering {
            CpuMetering::Off => this.inner.as_mut().poll(cx),
            CpuMetering::PollTime => {
                let start = Instant::now();
                let poll = this.inner.as_mut().poll(cx);
                this.spent += start.elapsed();
                poll
            }
            CpuMetering::ThreadClock => {
                let start = thread_cpu_now();
                let poll = this.inner.as_mut().poll(cx);
                this.spent += thread_cpu_now().saturating_sub(start);
                poll
            }
        };
        poll.map(|out| (out, this.spent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_the_time_spent_in_polls() {
        for metering in [CpuMetering::PollTime, CpuMetering::ThreadClock] {
            counts_busy_time(metering).await;
        }
        let (_, off) = CpuMetered::new(async {}, CpuMetering::Off).await;
        assert_eq!(off, Duration::ZERO);
    }

    async fn counts_busy_time(metering: CpuMetering) {
        let wall = std::time::Instant::now();
        let (sum, busy) = CpuMetered::new(
            async {
                let mut x = 0u64;
                for i in 0..20_000_000u64 {
                    x = std::hint::black_box(x.wrapping_add(i));
                }
                tokio::task::yield_now().await;
                x
            },
            metering,
        )
        .await;
        assert_ne!(sum, 0);
        assert!(busy > Duration::ZERO, "{metering:?}");
        assert!(
            busy <= wall.elapsed(),
            "{metering:?}: {busy:?} in {:?}",
            wall.elapsed()
        );
    }
}
