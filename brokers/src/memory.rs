//! `memory://`: queues in this process's memory, with the same semantics
//! as the persistent brokers (leases, redelivery, fencing tokens). For
//! tests and for setups where producer and consumers share one process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::wake::Wakers;
use crate::{AckId, Broker, BrokerError, BrokerInfo, Delivery};

/// Leases longer than this are cut to it (about 100 years), so that
/// `now + lease` cannot overflow.
const MAX_LEASE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The brokers of `memory://NAME` URLs, by name. They live as long as the
/// process.
static NAMED: LazyLock<Mutex<HashMap<String, Arc<MemoryBroker>>>> = LazyLock::new(Default::default);

/// A broker in this process's memory. Cheap: one mutex over a few maps,
/// never held across an `.await`.
///
/// Ack ids are `"<message id>:<token>"`, the token unique per delivery.
#[derive(Debug, Default)]
pub struct MemoryBroker {
    name: Option<String>,
    state: Mutex<State>,
    wakers: Wakers,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    next_token: u64,
    queues: BTreeMap<String, Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    messages: HashMap<u64, Message>,
    /// Visible messages, by id (= enqueue order).
    ready: BTreeSet<u64>,
    /// Leased messages, by lease end.
    leased: BTreeSet<(Instant, u64)>,
}

#[derive(Debug)]
struct Message {
    payload: Vec<u8>,
    deliveries: u32,
    /// The token of the delivery holding the message. Kept after the lease
    /// ran out until the next delivery (or a release).
    token: Option<u64>,
    /// When the lease ends; `Some` exactly while the id is in `leased`.
    lease_until: Option<Instant>,
}

impl MemoryBroker {
    /// A new, empty broker of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// The broker called `name` in this process, created empty on first
    /// use: every call with the same name returns the same broker.
    pub fn named(name: &str) -> Arc<Self> {
        let mut named = NAMED.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(named.entry(name.to_owned()).or_insert_with(|| {
            tracing::debug!(name, "new named memory broker");
            Arc::new(Self {
                name: Some(name.to_owned()),
                ..Self::default()
            })
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements: a panic elsewhere
        // while holding the lock leaves nothing half done worth refusing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// The queue, after putting back the messages whose lease ran out.
    fn queue(&mut self, queue: &str, now: Instant) -> Option<&mut Queue> {
        let q = self.queues.get_mut(queue)?;
        q.expire(now);
        Some(q)
    }

    /// Forgets `queue` if it has no message left.
    fn prune(&mut self, queue: &str) {
        if self
            .queues
            .get(queue)
            .is_some_and(|q| q.messages.is_empty())
        {
            self.queues.remove(queue);
        }
    }
}

impl Queue {
    fn expire(&mut self, now: Instant) {
        while let Some(&(until, id)) = self.leased.first() {
            if until > now {
                break;
            }
            self.leased.pop_first();
            if let Some(message) = self.messages.get_mut(&id) {
                message.lease_until = None;
            }
            self.ready.insert(id);
        }
    }

    /// The message if the delivery `ack_id` holds it.
    fn held(&self, ack_id: &AckId) -> Option<u64> {
        let (id, token) = ack_id.parts::<u64, u64>()?;
        let message = self.messages.get(&id)?;
        (message.token == Some(token)).then_some(id)
    }

    /// Takes message `id` out of `ready` or `leased`, whichever has it.
    fn unindex(&mut self, id: u64) {
        if let Some(message) = self.messages.get_mut(&id) {
            match message.lease_until.take() {
                Some(until) => self.leased.remove(&(until, id)),
                None => self.ready.remove(&id),
            };
        }
    }

    fn remove(&mut self, id: u64) -> bool {
        self.unindex(id);
        self.messages.remove(&id).is_some()
    }
}

impl Broker for MemoryBroker {
    async fn enqueue(&self, queue: &str, payload: Vec<u8>) -> Result<(), BrokerError> {
        self.enqueue_batch(queue, vec![payload]).await
    }

    async fn enqueue_batch(&self, queue: &str, payloads: Vec<Vec<u8>>) -> Result<(), BrokerError> {
        if payloads.is_empty() {
            return Ok(());
        }
        let mut state = self.state();
        let mut next_id = state.next_id;
        let q = state.queues.entry(queue.to_owned()).or_default();
        for payload in payloads {
            next_id += 1;
            q.messages.insert(
                next_id,
                Message {
                    payload,
                    deliveries: 0,
                    token: None,
                    lease_until: None,
                },
            );
            q.ready.insert(next_id);
        }
        state.next_id = next_id;
        drop(state);
        self.wakers.wake(queue);
        Ok(())
    }

    async fn wait(&self, queue: &str, timeout: Duration) {
        self.wakers.wait(queue, timeout).await;
    }

    async fn dequeue(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let now = Instant::now();
        let until = now.checked_add(lease.min(MAX_LEASE)).unwrap_or(now);
        let mut state = self.state();
        let mut next_token = state.next_token;
        let Some(q) = state.queue(queue, now) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(max.min(q.ready.len()));
        while out.len() < max {
            let Some(id) = q.ready.pop_first() else { break };
            let Some(message) = q.messages.get_mut(&id) else {
                continue;
            };
            next_token += 1;
            message.token = Some(next_token);
            message.deliveries = message.deliveries.saturating_add(1);
            message.lease_until = Some(until);
            q.leased.insert((until, id));
            out.push(Delivery {
                ack_id: AckId::new(id, next_token),
                payload: message.payload.clone(),
                deliveries: message.deliveries,
            });
        }
        state.next_token = next_token;
        Ok(out)
    }

    async fn acknowledge(&self, queue: &str, ack_ids: &[AckId]) -> Result<Vec<bool>, BrokerError> {
        let mut state = self.state();
        let Some(q) = state.queues.get_mut(queue) else {
            return Ok(vec![false; ack_ids.len()]);
        };
        let held = ack_ids
            .iter()
            .map(|ack_id| q.held(ack_id).is_some_and(|id| q.remove(id)))
            .collect();
        state.prune(queue);
        Ok(held)
    }

    async fn renew(
        &self,
        queue: &str,
        ack_ids: &[AckId],
        lease: Duration,
    ) -> Result<Vec<bool>, BrokerError> {
        let now = Instant::now();
        let until = now.checked_add(lease.min(MAX_LEASE)).unwrap_or(now);
        let mut state = self.state();
        let Some(q) = state.queues.get_mut(queue) else {
            return Ok(vec![false; ack_ids.len()]);
        };
        Ok(ack_ids
            .iter()
            .map(|ack_id| {
                let Some(id) = q.held(ack_id) else {
                    return false;
                };
                q.unindex(id);
                if let Some(message) = q.messages.get_mut(&id) {
                    message.lease_until = Some(until);
                    q.leased.insert((until, id));
                }
                true
            })
            .collect())
    }

    async fn release(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        let mut state = self.state();
        let Some(q) = state.queues.get_mut(queue) else {
            return Ok(false);
        };
        let Some(id) = q.held(ack_id) else {
            return Ok(false);
        };
        q.unindex(id);
        if let Some(message) = q.messages.get_mut(&id) {
            message.token = None;
        }
        q.ready.insert(id);
        drop(state);
        self.wakers.wake(queue);
        Ok(true)
    }

    async fn delete(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        let mut state = self.state();
        let Some(q) = state.queues.get_mut(queue) else {
            return Ok(false);
        };
        let Some((id, _)) = ack_id.parts::<u64, u64>() else {
            return Ok(false);
        };
        let existed = q.remove(id);
        state.prune(queue);
        Ok(existed)
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64, BrokerError> {
        let mut state = self.state();
        let Some(q) = state.queue(queue, Instant::now()) else {
            return Ok(0);
        };
        let ready = std::mem::take(&mut q.ready);
        for id in &ready {
            q.messages.remove(id);
        }
        state.prune(queue);
        Ok(ready.len() as u64)
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BrokerError> {
        self.state().queues.remove(queue);
        Ok(())
    }

    async fn queue_size(&self, queue: &str) -> Result<u64, BrokerError> {
        let mut state = self.state();
        Ok(state
            .queue(queue, Instant::now())
            .map_or(0, |q| q.ready.len() as u64))
    }

    async fn lock_size(&self, queue: &str) -> Result<u64, BrokerError> {
        let mut state = self.state();
        Ok(state
            .queue(queue, Instant::now())
            .map_or(0, |q| q.leased.len() as u64))
    }

    async fn queues(&self) -> Result<Vec<String>, BrokerError> {
        Ok(self.state().queues.keys().cloned().collect())
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        Ok(())
    }

    fn info(&self) -> BrokerInfo {
        BrokerInfo {
            kind: "memory",
            location: format!("memory://{}", self.name.as_deref().unwrap_or_default()),
            priorities: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn expired_leases_come_back_in_enqueue_order() {
        let broker = MemoryBroker::new();
        broker
            .enqueue_batch("q", vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()])
            .await
            .unwrap();
        let first = broker.dequeue("q", 2, Duration::ZERO).await.unwrap();
        assert_eq!(first.len(), 2);
        // Leases of zero run out at once: the next dequeue sees a, b, c again.
        let again = broker.dequeue("q", 10, LONG).await.unwrap();
        let payloads: Vec<_> = again.iter().map(|d| d.payload.as_slice()).collect();
        assert_eq!(payloads, [b"a", b"b", b"c"]);
        assert_eq!(
            again.iter().map(|d| d.deliveries).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(
            broker
                .acknowledge("q", std::slice::from_ref(&first[0].ack_id))
                .await
                .unwrap(),
            [false]
        );
        assert_eq!(broker.lock_size("q").await.unwrap(), 3);
    }

    #[tokio::test]
    async fn expired_but_not_redelivered_is_still_held() {
        let broker = MemoryBroker::new();
        broker.enqueue("q", b"a".to_vec()).await.unwrap();
        let d = broker
            .dequeue("q", 1, Duration::ZERO)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(broker.queue_size("q").await.unwrap(), 1);
        assert_eq!(
            broker
                .renew("q", std::slice::from_ref(&d.ack_id), LONG)
                .await
                .unwrap(),
            [true]
        );
        assert_eq!(broker.queue_size("q").await.unwrap(), 0);
        assert_eq!(broker.lock_size("q").await.unwrap(), 1);
        assert_eq!(broker.acknowledge("q", &[d.ack_id]).await.unwrap(), [true]);
        assert!(broker.queues().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn foreign_ack_ids_hold_nothing() {
        let broker = MemoryBroker::new();
        broker.enqueue("q", b"a".to_vec()).await.unwrap();
        for bad in ["", "x", "1", "1:", ":1", "1:2:3", "99:1"] {
            let bad = AckId(bad.into());
            assert_eq!(
                broker
                    .acknowledge("q", std::slice::from_ref(&bad))
                    .await
                    .unwrap(),
                [false]
            );
            assert!(!broker.release("q", &bad).await.unwrap());
            assert!(!broker.delete("q", &bad).await.unwrap());
        }
        assert_eq!(broker.queue_size("q").await.unwrap(), 1);
    }

    #[test]
    fn named_brokers_are_shared_and_private_ones_are_not() {
        let a = MemoryBroker::named("memory-unit-shared");
        let b = MemoryBroker::named("memory-unit-shared");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &MemoryBroker::named("memory-unit-other")));
        assert_eq!(Broker::info(&*a).location, "memory://memory-unit-shared");
        assert_eq!(Broker::info(&MemoryBroker::new()).location, "memory://");
    }
}
