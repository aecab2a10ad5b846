//! CPU-time metering of a future: thread CPU time summed over its polls.
//!
//! A task's future may be polled on different tokio threads and interleaved
//! with other tasks; measuring thread CPU time around each poll charges each
//! task exactly for the time it ran, whichever thread ran it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};

fn thread_cpu_now() -> Duration {
    let ts = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Wraps a future and adds up the thread CPU time spent inside its polls.
/// When `enabled` is false it costs nothing and reports zero.
#[derive(Debug)]
pub(crate) struct CpuMetered<F> {
    inner: Pin<Box<F>>,
    enabled: bool,
    spent: Duration,
}

impl<F: Future> CpuMetered<F> {
    pub(crate) fn new(inner: F, enabled: bool) -> Self {
        Self {
            inner: Box::pin(inner),
            enabled,
            spent: Duration::ZERO,
        }
    }
}

impl<F: Future> Future for CpuMetered<F> {
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let start = this.enabled.then(thread_cpu_now);
        let poll = this.inner.as_mut().poll(cx);
        if let Some(start) = start {
            this.spent += thread_cpu_now().saturating_sub(start);
        }
        poll.map(|out| (out, this.spent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_the_time_spent_in_polls() {
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
            true,
        )
        .await;
        assert_ne!(sum, 0);
        assert!(busy > Duration::ZERO);
        assert!(
            busy <= wall.elapsed(),
            "{busy:?} of CPU in {:?}",
            wall.elapsed()
        );

        let (_, off) = CpuMetered::new(async {}, false).await;
        assert_eq!(off, Duration::ZERO);
    }
}
