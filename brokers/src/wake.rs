//! [`Wakers`]: per-queue wake-ups for the brokers that learn of new
//! messages as they arrive (the memory broker directly, Redis through
//! pub/sub, PostgreSQL through `LISTEN`), behind [`Broker::wait`].
//!
//! [`Broker::wait`]: crate::Broker::wait

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// One [`Notify`] per queue name, made on first use.
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakers {
    fn notify(&self, queue: &str) -> Arc<Notify> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        match queues.get(queue) {
            Some(notify) => notify.clone(),
            None => {
                let notify = Arc::new(Notify::new());
                queues.insert(queue.to_owned(), notify.clone());
                notify
            }
        }
    }

    /// Something arrived in `queue`: wakes every waiter, and keeps one
    /// wake-up for the next [`wait`](Wakers::wait) if nobody was waiting.
    pub(crate) fn wake(&self, queue: &str) {
        let notify = self.notify(queue);
        notify.notify_waiters();
        notify.notify_one();
    }

    /// Wakes every queue (after a lost connection, when wake-ups may have
    /// been missed).
    #[cfg_attr(
        not(any(feature = "redis", feature = "postgres")),
        expect(dead_code, reason = "used by the Redis and PostgreSQL brokers")
    )]
    pub(crate) fn wake_all(&self) {
        let queues: Vec<Arc<Notify>> = self
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for notify in queues {
            notify.notify_waiters();
            notify.notify_one();
        }
    }

    /// Waits for a wake-up of `queue`, at most `timeout`.
    pub(crate) async fn wait(&self, queue: &str, timeout: Duration) {
        let notify = self.notify(queue);
        let _ = tokio::time::timeout(timeout, notify.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Far longer than a wake-up takes: a wait that lasts it timed out.
    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_wake_before_the_wait_is_kept() {
        let wakers = Wakers::default();
        wakers.wake("q");
        let started = tokio::time::Instant::now();
        wakers.wait("q", LONG).await;
        assert!(started.elapsed() < LONG / 2, "the kept wake-up was lost");
        // Used up: the next wait runs to its timeout.
        let started = tokio::time::Instant::now();
        wakers.wait("q", Duration::from_millis(200)).await;
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn every_waiter_wakes_and_queues_are_separate() {
        let wakers = Arc::new(Wakers::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let wakers = wakers.clone();
                tokio::spawn(async move {
                    let started = tokio::time::Instant::now();
                    wakers.wait("a", LONG).await;
                    started.elapsed()
                })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        wakers.wake("b");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "a wake-up of another queue woke a waiter"
        );
        wakers.wake("a");
        for waiter in waiters {
            let waited = waiter.await.unwrap();
            assert!(waited < LONG / 2, "a waiter was not woken: {waited:?}");
        }
    }
}
