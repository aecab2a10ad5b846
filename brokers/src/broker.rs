//! The [`Broker`] trait, and [`DynBroker`], its object-safe twin for
//! brokers picked by URL at run time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::{AckId, BrokerError, BrokerInfo, Delivery};

/// A boxed future, as the methods of [`DynBroker`] return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A broker chosen at run time, e.g. by [`connect`](crate::connect).
pub type SharedBroker = Arc<dyn DynBroker>;

/// A queue service: moves opaque payloads from producers to consumers,
/// at least once, with leases.
///
/// A message dequeued is *leased* (held) by that delivery, identified by
/// its [`AckId`]. If the lease runs out before the message is
/// acknowledged, the message becomes visible again; the next dequeue hands
/// it out with a new ack id and its delivery count incremented, and from
/// then on the old ack id holds nothing: acknowledge, fail, renew and
/// release with it answer `false` and change nothing.
///
/// Between the end of a lease and the next delivery the message counts as
/// visible; whether the old ack id still holds it then is up to the broker
/// (the memory and SQLite brokers say yes: an acknowledge just after expiry
/// succeeds if nobody took the message meanwhile). Callers should renew in
/// time rather than rely on either.
pub trait Broker: Send + Sync + 'static {
    /// Appends a message to `queue` (created on first use).
    fn enqueue(
        &self,
        queue: &str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Appends several messages, in order, in one transaction where the
    /// broker has them. The default enqueues one at a time.
    fn enqueue_batch(
        &self,
        queue: &str,
        payloads: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send {
        async move {
            for payload in payloads {
                self.enqueue(queue, payload).await?;
            }
            Ok(())
        }
    }

    /// Appends messages that share one `priority` (within
    /// [`MIN_PRIORITY`](crate::MIN_PRIORITY)..=[`MAX_PRIORITY`](crate::MAX_PRIORITY);
    /// 0 is the default), in order. A broker that can order by priority
    /// ([`BrokerInfo::priorities`]) hands out visible messages of a higher
    /// priority before lower ones, and in enqueue order within a priority.
    /// The default ignores the priority and calls
    /// [`enqueue_batch`](Broker::enqueue_batch).
    fn enqueue_priority(
        &self,
        queue: &str,
        priority: i32,
        payloads: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send {
        async move {
            crate::check_priority(priority)?;
            self.enqueue_batch(queue, payloads).await
        }
    }

    /// Takes up to `max` visible messages, oldest first (enqueue order),
    /// each leased for `lease`. Never waits for messages: an empty queue
    /// gives an empty vector.
    fn dequeue(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, BrokerError>> + Send;

    /// Resolves when a message may have arrived in `queue`, or after
    /// `timeout`, whichever is first. Brokers that can be told (Redis
    /// pub/sub, PostgreSQL `LISTEN`, the memory broker) wake at once when
    /// something is enqueued, from any process; a wake-up that nobody was
    /// waiting for is kept for the next call, so one enqueued between a
    /// caller's empty dequeue and its wait is not missed. A spurious
    /// wake-up is allowed. Cancel-safe. The default sleeps `timeout`.
    fn wait(&self, queue: &str, timeout: Duration) -> impl Future<Output = ()> + Send {
        let _ = queue;
        tokio::time::sleep(timeout)
    }

    /// Like [`dequeue`](Broker::dequeue), but when nothing is visible it
    /// waits up to `wait` for a message (long polling) and takes what came.
    /// An empty vector means nothing arrived in time. Not cancel-safe:
    /// dropping it mid-way may leave messages leased until their lease
    /// runs out. The default is dequeue, [`wait`](Broker::wait), dequeue.
    fn dequeue_wait(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, BrokerError>> + Send {
        async move {
            let first = self.dequeue(queue, max, lease).await?;
            if !first.is_empty() || wait.is_zero() {
                return Ok(first);
            }
            self.wait(queue, wait).await;
            self.dequeue(queue, max, lease).await
        }
    }

    /// Removes the messages of these deliveries. Answers, per ack id in
    /// order, whether the delivery still held its message; `false` (lease
    /// lost and the message delivered again, or the message gone) means
    /// the caller's work on it is stale, and nothing was removed for it.
    fn acknowledge(
        &self,
        queue: &str,
        ack_ids: &[AckId],
    ) -> impl Future<Output = Result<Vec<bool>, BrokerError>> + Send;

    /// Like [`acknowledge`](Broker::acknowledge), for a task that failed
    /// for good: a broker with a dead-letter queue may move it there. The
    /// default acknowledges.
    fn fail(
        &self,
        queue: &str,
        ack_id: &AckId,
    ) -> impl Future<Output = Result<bool, BrokerError>> + Send {
        async move {
            let held = self
                .acknowledge(queue, std::slice::from_ref(ack_id))
                .await?;
            Ok(held.first().copied().unwrap_or(false))
        }
    }

    /// Extends to `lease` from now the leases of the messages these
    /// deliveries still hold. Answers, per ack id, whether it is held.
    fn renew(
        &self,
        queue: &str,
        ack_ids: &[AckId],
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<bool>, BrokerError>> + Send;

    /// Makes a held message visible again at once (a stopping cluster
    /// hands back work it did not start). The delivery count stays as
    /// dequeue left it. Answers whether the delivery held the message.
    fn release(
        &self,
        queue: &str,
        ack_id: &AckId,
    ) -> impl Future<Output = Result<bool, BrokerError>> + Send;

    /// Deletes the message of this ack id whatever its state: held by this
    /// delivery, by a later one, or visible. Answers whether it existed.
    fn delete(
        &self,
        queue: &str,
        ack_id: &AckId,
    ) -> impl Future<Output = Result<bool, BrokerError>> + Send;

    /// Deletes the visible (not leased) messages of `queue`; answers how
    /// many.
    fn purge_queue(&self, queue: &str) -> impl Future<Output = Result<u64, BrokerError>> + Send;

    /// Deletes every message of `queue`, leased or not.
    fn delete_queue(&self, queue: &str) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Visible messages waiting in `queue` (not leased).
    fn queue_size(&self, queue: &str) -> impl Future<Output = Result<u64, BrokerError>> + Send;

    /// Messages of `queue` currently leased (in flight).
    fn lock_size(&self, queue: &str) -> impl Future<Output = Result<u64, BrokerError>> + Send;

    /// Names of the queues that have messages, sorted.
    fn queues(&self) -> impl Future<Output = Result<Vec<String>, BrokerError>> + Send;

    /// Checks that the broker answers.
    fn ping(&self) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// What and where this broker is.
    fn info(&self) -> BrokerInfo;
}

/// [`Broker`] with boxed futures, so that it can be a trait object
/// ([`SharedBroker`]). Implemented for every [`Broker`]; the methods mean
/// the same.
pub trait DynBroker: Send + Sync {
    /// See [`Broker::enqueue`].
    fn enqueue<'a>(
        &'a self,
        queue: &'a str,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;
    /// See [`Broker::enqueue_batch`].
    fn enqueue_batch<'a>(
        &'a self,
        queue: &'a str,
        payloads: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;
    /// See [`Broker::enqueue_priority`].
    fn enqueue_priority<'a>(
        &'a self,
        queue: &'a str,
        priority: i32,
        payloads: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;
    /// See [`Broker::dequeue`].
    fn dequeue<'a>(
        &'a self,
        queue: &'a str,
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, BrokerError>>;
    /// See [`Broker::wait`].
    fn wait<'a>(&'a self, queue: &'a str, timeout: Duration) -> BoxFuture<'a, ()>;
    /// See [`Broker::dequeue_wait`].
    fn dequeue_wait<'a>(
        &'a self,
        queue: &'a str,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, BrokerError>>;
    /// See [`Broker::acknowledge`].
    fn acknowledge<'a>(
        &'a self,
        queue: &'a str,
        ack_ids: &'a [AckId],
    ) -> BoxFuture<'a, Result<Vec<bool>, BrokerError>>;
    /// See [`Broker::fail`].
    fn fail<'a>(
        &'a self,
        queue: &'a str,
        ack_id: &'a AckId,
    ) -> BoxFuture<'a, Result<bool, BrokerError>>;
    /// See [`Broker::renew`].
    fn renew<'a>(
        &'a self,
        queue: &'a str,
        ack_ids: &'a [AckId],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<bool>, BrokerError>>;
    /// See [`Broker::release`].
    fn release<'a>(
        &'a self,
        queue: &'a str,
        ack_id: &'a AckId,
    ) -> BoxFuture<'a, Result<bool, BrokerError>>;
    /// See [`Broker::delete`].
    fn delete<'a>(
        &'a self,
        queue: &'a str,
        ack_id: &'a AckId,
    ) -> BoxFuture<'a, Result<bool, BrokerError>>;
    /// See [`Broker::purge_queue`].
    fn purge_queue<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, BrokerError>>;
    /// See [`Broker::delete_queue`].
    fn delete_queue<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<(), BrokerError>>;
    /// See [`Broker::queue_size`].
    fn queue_size<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, BrokerError>>;
    /// See [`Broker::lock_size`].
    fn lock_size<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, BrokerError>>;
    /// See [`Broker::queues`].
    fn queues(&self) -> BoxFuture<'_, Result<Vec<String>, BrokerError>>;
    /// See [`Broker::ping`].
    fn ping(&self) -> BoxFuture<'_, Result<(), BrokerError>>;
    /// See [`Broker::info`].
    fn info(&self) -> BrokerInfo;
}

impl<B: Broker> DynBroker for B {
    fn enqueue<'a>(
        &'a self,
        queue: &'a str,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(Broker::enqueue(self, queue, payload))
    }

    fn enqueue_batch<'a>(
        &'a self,
        queue: &'a str,
        payloads: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(Broker::enqueue_batch(self, queue, payloads))
    }

    fn enqueue_priority<'a>(
        &'a self,
        queue: &'a str,
        priority: i32,
        payloads: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(Broker::enqueue_priority(self, queue, priority, payloads))
    }

    fn dequeue<'a>(
        &'a self,
        queue: &'a str,
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, BrokerError>> {
        Box::pin(Broker::dequeue(self, queue, max, lease))
    }

    fn wait<'a>(&'a self, queue: &'a str, timeout: Duration) -> BoxFuture<'a, ()> {
        Box::pin(Broker::wait(self, queue, timeout))
    }

    fn dequeue_wait<'a>(
        &'a self,
        queue: &'a str,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, BrokerError>> {
        Box::pin(Broker::dequeue_wait(self, queue, max, lease, wait))
    }

    fn acknowledge<'a>(
        &'a self,
        queue: &'a str,
        ack_ids: &'a [AckId],
    ) -> BoxFuture<'a, Result<Vec<bool>, BrokerError>> {
        Box::pin(Broker::acknowledge(self, queue, ack_ids))
    }

    fn fail<'a>(
        &'a self,
        queue: &'a str,
        ack_id: &'a AckId,
    ) -> BoxFuture<'a, Result<bool, BrokerError>> {
        Box::pin(Broker::fail(self, queue, ack_id))
    }

    fn renew<'a>(
        &'a self,
        queue: &'a str,
        ack_ids: &'a [AckId],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<bool>, BrokerError>> {
        Box::pin(Broker::renew(self, queue, ack_ids, lease))
    }

    fn release<'a>(
        &'a self,
        queue: &'a str,
        ack_id: &'a AckId,
    ) -> BoxFuture<'a, Result<bool, BrokerError>> {
        Box::pin(Broker::release(self, queue, ack_id))
    }

    fn delete<'a>(
        &'a self,
        queue: &'a str,
        ack_id: &'a AckId,
    ) -> BoxFuture<'a, Result<bool, BrokerError>> {
        Box::pin(Broker::delete(self, queue, ack_id))
    }

    fn purge_queue<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, BrokerError>> {
        Box::pin(Broker::purge_queue(self, queue))
    }

    fn delete_queue<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(Broker::delete_queue(self, queue))
    }

    fn queue_size<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, BrokerError>> {
        Box::pin(Broker::queue_size(self, queue))
    }

    fn lock_size<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, BrokerError>> {
        Box::pin(Broker::lock_size(self, queue))
    }

    fn queues(&self) -> BoxFuture<'_, Result<Vec<String>, BrokerError>> {
        Box::pin(Broker::queues(self))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(Broker::ping(self))
    }

    fn info(&self) -> BrokerInfo {
        Broker::info(self)
    }
}
