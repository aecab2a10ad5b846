//! `redis://HOST[:PORT][/DB]` and `rediss://…` (TLS): queues in Redis,
//! shared by every process that can reach the server. [`RedisBroker`],
//! whose docs list the keys.
//!
//! # Messages, leases, fencing
//!
//! A message is in exactly one of `ready` and `leased`. Ids grow with
//! every enqueue, so `ready` is in enqueue order; a released message goes
//! back to its head, to be next. (`ready` is a list rather than a sorted
//! set because appending to a list costs a fraction of a sorted-set
//! insert, which the hot path pays per message.) A non-empty `leased` also
//! holds [`SENTINEL`], which keeps it in the encoding where inserts are
//! cheap.
//!
//! The delivery count (absent before the first delivery, negative once
//! released) is also the fencing token of the current delivery:
//! ack ids are `"<id>:<count>"`, and a delivery holds its message while the
//! stored count equals its token. Dequeue increments the count, so an
//! earlier delivery's ack id stops matching; release stores it negated
//! (the next dequeue continues from its magnitude), so the releasing ack
//! id stops holding the message too. A positive count thus means the
//! message is in `leased`, and checking a batch of ack ids is one `HMGET`.
//! Ids come from one counter for all queues and are never reused, so an
//! ack id names one message of one queue, even after
//! [`Broker::delete_queue`].
//!
//! # Scripts and time
//!
//! Every change is one Lua script (`EVALSHA`, reloaded by redis-rs when a
//! restarted server answers `NOSCRIPT`), so each operation is atomic. Lease
//! ends come from the server clock (`TIME` inside the scripts), so hosts
//! with skewed clocks agree on them. Leases run out lazily: an expired
//! entry of `leased` counts as visible ([`Broker::queue_size`]) and the
//! next dequeue takes it, merged with `ready` in id order, with a new
//! count. Until then its old ack id still holds it, as in the SQLite and
//! memory brokers.
//!
//! # Wake-ups
//!
//! Enqueue and release `PUBLISH` the queue name on `P:wake`. The first
//! [`Broker::wait`] of a broker starts a task that subscribes to that
//! channel on a connection of its own (RESP3, so Redis 6 or later) and
//! wakes the local waiters of the queue named; it reconnects with backoff
//! when the connection drops, wakes every waiter after reconnecting (a
//! wake-up may have been missed), and stops when the broker is dropped.
//! While it is not subscribed, `wait` returns early so that callers look
//! again.
//!
//! # Faults
//!
//! Commands go through a [`ConnectionManager`]: one multiplexed connection
//! that all calls share (pipelining concurrent calls), replaced with
//! backoff when it breaks. Connection attempts time out after
//! [`CONNECT_TIMEOUT`] and replies after [`RESPONSE_TIMEOUT`], so a call
//! made while Redis is down fails with [`BrokerError::Unreachable`] within
//! a few seconds instead of hanging. The call that finds the connection
//! broken fails too (it may or may not have run: the caller's retry is at
//! least once); once the server is back, the next calls reconnect. Redis
//! keeps no scripts across a restart: redis-rs loads them again on
//! `NOSCRIPT`.

use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock, Weak};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use ::redis::{
    AsyncConnectionConfig, Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    RedisError, Script, Value,
};
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;

use crate::wake::Wakers;
use crate::{AckId, Broker, BrokerError, BrokerInfo, Delivery, redact};

/// The key prefix when the URL has no `?prefix=`.
const DEFAULT_PREFIX: &str = "wasq";
/// How long one attempt to open a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command may wait for its reply. Hard-coded: the largest
/// calls (a batch of [`BATCH`] messages, a purge) take milliseconds on a
/// healthy server.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`RedisBroker::connect`] may take in all.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);
/// Further attempts of one reconnection, after the first (each call that
/// finds the connection broken starts a new reconnection).
const RECONNECT_RETRIES: usize = 1;
/// Shortest pause between reconnection attempts (it doubles, with jitter).
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);
/// Messages (or ack ids) per script call. Redis's Lua takes at most about
/// 8000 values in one `unpack`, and one call blocks the server while it
/// runs, so big batches are cut into calls of this many.
const BATCH: usize = 1000;
/// Messages per purge script call.
const PURGE_BATCH: u64 = 10_000;
/// Payload bytes per enqueue script call, whatever the count.
const BATCH_BYTES: usize = 16 << 20;
/// Leases longer than this (about 100 years) are cut to it.
const MAX_LEASE_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
/// First pause of the wake-up listener after a failed connection.
const LISTEN_MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause of the wake-up listener between connection attempts.
const LISTEN_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The listener pings its connection this often, to notice one that died
/// without a word (a dropped route, a paused server).
const LISTEN_PING_EVERY: Duration = Duration::from_secs(15);
/// Longest [`Broker::wait`] while the listener is not subscribed (starting,
/// reconnecting, or a server without RESP3): wake-ups may be lost then, so
/// the caller is sent to look again soon.
const UNHEARD_WAIT: Duration = Duration::from_millis(100);
/// A member of every non-empty `leased` set, scored `+inf` (no lease ends
/// then): longer than `zset-max-listpack-value` (64 by default), it keeps
/// the set in its skiplist encoding, where an insert costs O(log n) rather
/// than a scan of the whole compact list. It is not a number, so no
/// message has it as id.
const SENTINEL: &str =
    "~ keeps this sorted set out of the listpack encoding, whose inserts scan the whole set ~";

/// The first lines of every script that needs the time: `now`, the server
/// clock in ms.
macro_rules! lua_now {
    () => {
        include_str!("lua/now.lua")
    };
}

/// Source of [`ENQUEUE`]; also sent whole (`EVAL`) inside the `MULTI` of a
/// big batch, where a missing script could not be reloaded half way.
///
/// KEYS: ready, messages, seq, queues. ARGV: queue, wake channel (empty: do
/// not publish), payloads. Answers how many were added.
const ENQUEUE_LUA: &str = include_str!("lua/enqueue.lua");

/// Appends messages; see [`ENQUEUE_LUA`].
static ENQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(ENQUEUE_LUA));

/// Leases up to `ARGV[1]` messages for `ARGV[2]` ms: the first of `ready` and
/// the expired leases, merged by id. KEYS: ready, leased, messages.
/// `ARGV[3]`: [`SENTINEL`]. Answers a flat array: id, delivery count,
/// payload, …
static DEQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(lua_now!(), include_str!("lua/dequeue.lua"),)));

/// Removes the messages the deliveries `ARGV[2..]` (id, count pairs) hold.
/// KEYS: leased, messages, ready, queues. `ARGV[1]`: the queue. Answers 1
/// or 0 per pair; a message answers once.
static ACKNOWLEDGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/acknowledge.lua")));

/// Extends to `ARGV[1]` ms from now the leases the deliveries `ARGV[2..]` (id,
/// count pairs) hold. KEYS: leased, messages. Answers 1 or 0 per pair.
static RENEW: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(lua_now!(), include_str!("lua/renew.lua"),)));

/// Makes message `ARGV[1]` visible again (first in line) if delivery `ARGV[2]`
/// holds it, and publishes queue `ARGV[4]` on channel `ARGV[3]`. KEYS: ready,
/// leased, messages. Answers 1 or 0.
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/release.lua")));

/// Deletes message `ARGV[1]` whatever its state. KEYS: ready, leased,
/// messages, queues. `ARGV[2]`: the queue. Answers 1 if it existed.
static DELETE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/delete.lua")));

/// Deletes up to `ARGV[2]` visible messages and up to as many expired
/// leases. KEYS: ready, leased, messages, queues. `ARGV[1]`: the queue.
/// Answers `{visible, expired}`, how many of each.
static PURGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(lua_now!(), include_str!("lua/purge.lua"),)));

/// Deletes every message of a queue. KEYS: ready, leased, messages,
/// queues. `ARGV[1]`: the queue.
static DELETE_QUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/delete_queue.lua")));

/// `{visible, leased}`: visible counts expired leases. KEYS: ready, leased.
static SIZES: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(lua_now!(), include_str!("lua/sizes.lua"),)));

/// The keys of one queue (see the table in the [module docs](self)).
struct Keys {
    /// `P:{Q}:ready`.
    ready: String,
    /// `P:{Q}:leased`.
    leased: String,
    /// `P:{Q}:messages`.
    messages: String,
}

/// What a `redis://` URL says, once the parts that are ours are taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    /// The URL for redis-rs: ours without `prefix`.
    redis_url: String,
    /// The key prefix.
    prefix: String,
}

/// State shared with the wake-up listener task.
#[derive(Debug, Default)]
struct Shared {
    /// The local waiters, per queue.
    wakers: Wakers,
    /// Whether the listener is subscribed (wake-ups reach us) right now.
    listening: watch::Sender<bool>,
}

/// Queues in one Redis server (6 or later), shared by every process that
/// reaches it: leases in sorted sets, every change one Lua script (so each
/// operation is atomic), wake-ups over pub/sub. Opened by
/// [`RedisBroker::connect`], or [`connect`](crate::connect) with a
/// `redis://` or `rediss://` URL.
///
/// # Keys
///
/// Every key starts with a prefix `P` (`wasq`, or `?prefix=NAME` in the
/// URL), so that several setups can share one database. The keys of queue
/// `Q` carry the hash tag `{Q}`:
///
/// | key                | type   | holds                                          |
/// |--------------------|--------|------------------------------------------------|
/// | `P:{Q}:ready`      | LIST   | visible message ids, oldest first              |
/// | `P:{Q}:leased`     | ZSET   | leased ids by lease end (ms), and a sentinel   |
/// | `P:{Q}:messages`   | HASH   | `<id>` → payload, `<id>:n` → delivery count    |
/// | `P:seq`            | STRING | the last id given out, in any queue            |
/// | `P:queues`         | SET    | names of the queues that have messages         |
///
/// and `P:wake` is the pub/sub channel of wake-ups. A queue with no message
/// has no key. The scripts touch `P:seq` and `P:queues` too, whatever the
/// queue, so the broker works with one server (with or without replicas),
/// not with Redis Cluster.
///
/// Lease ends are the server's clock, so hosts with skewed clocks agree on
/// them. Enqueued messages outlive a server restart only as far as its
/// persistence (AOF, snapshots) keeps them, and the server must not evict
/// keys (`maxmemory-policy noeviction`, the default): an evicted key loses
/// messages.
pub struct RedisBroker {
    /// Commands: one multiplexed connection, reconnected when it breaks.
    conn: ConnectionManager,
    /// The server, spoken to in RESP3, for the wake-up listener.
    listen_client: Client,
    /// The key prefix.
    prefix: String,
    /// `P:queues`.
    queues_key: String,
    /// `P:seq`.
    seq_key: String,
    /// `P:wake`.
    channel: String,
    /// The URL, without secrets.
    location: String,
    /// Waiters and the listener's state.
    shared: Arc<Shared>,
    /// The listener task, once the first wait started it.
    listener: OnceLock<AbortHandle>,
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroker")
            .field("location", &self.location)
            .field("prefix", &self.prefix)
            .field("listening", &*self.shared.listening.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.get() {
            listener.abort();
        }
    }
}

impl RedisBroker {
    /// Connects to the Redis server of `url`:
    /// `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://…` for TLS
    /// (`#insecure` at the end skips certificate checks). Query options:
    ///
    /// - `prefix=NAME`: the first part of every key (default `wasq`), so
    ///   that several setups can share one database. Letters, digits and
    ///   `_-.:` only.
    /// - `protocol=resp3`: speak RESP3 on the command connection (the
    ///   wake-up listener always does).
    ///
    /// # Errors
    ///
    /// [`BrokerError::BadUrl`] for a URL that cannot be read, and
    /// [`BrokerError::Unreachable`] when the server does not answer within
    /// about 5 s (or refuses the credentials).
    pub async fn connect(url: &str) -> Result<Self, BrokerError> {
        let settings = parse_url(url)?;
        let location = redact(url);
        let info = settings
            .redis_url
            .as_str()
            .into_connection_info()
            .map_err(|e| bad_url(url, one_line(&e)))?;
        let listen_info = info.clone().set_redis_settings(
            info.redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3),
        );
        let client = Client::open(info).map_err(|e| bad_url(url, one_line(&e)))?;
        let listen_client = Client::open(listen_info).map_err(|e| bad_url(url, one_line(&e)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let conn = match tokio::time::timeout(
            CONNECT_DEADLINE,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(BrokerError::Unreachable(format!(
                    "cannot connect to Redis at {location}: {}",
                    one_line(&e)
                )));
            }
            Err(_) => {
                return Err(BrokerError::Unreachable(format!(
                    "cannot connect to Redis at {location}: no answer within {CONNECT_DEADLINE:?}"
                )));
            }
        };
        tracing::debug!(location, prefix = settings.prefix, "Redis broker connected");
        let prefix = settings.prefix;
        Ok(Self {
            conn,
            listen_client,
            queues_key: format!("{prefix}:queues"),
            seq_key: format!("{prefix}:seq"),
            channel: format!("{prefix}:wake"),
            prefix,
            location,
            shared: Arc::default(),
            listener: OnceLock::new(),
        })
    }

    /// The keys of `queue`.
    fn keys(&self, queue: &str) -> Keys {
        let base = format!("{}:{{{queue}}}:", self.prefix);
        Keys {
            ready: format!("{base}ready"),
            leased: format!("{base}leased"),
            messages: format!("{base}messages"),
        }
    }

    /// A handle on the command connection (cheap: shared).
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Maps a Redis error to ours, naming the server.
    fn error(&self, e: &RedisError) -> BrokerError {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            BrokerError::Unreachable(format!("Redis at {}: {}", self.location, one_line(e)))
        } else {
            BrokerError::Backend(format!("Redis at {}: {}", self.location, one_line(e)))
        }
    }

    /// Runs `script` (acknowledge or renew) over the parseable ack ids of
    /// `ack_ids`, [`BATCH`] a call, with `head` as the first arguments;
    /// answers per ack id.
    async fn held_script(
        &self,
        script: &Script,
        keys: &[&str],
        head: &str,
        ack_ids: &[AckId],
    ) -> Result<Vec<bool>, BrokerError> {
        let mut held = vec![false; ack_ids.len()];
        let parsed: Vec<(usize, u64, u64)> = ack_ids
            .iter()
            .enumerate()
            .filter_map(|(at, ack)| ack.parts::<u64, u64>().map(|(id, count)| (at, id, count)))
            .collect();
        let mut conn = self.conn();
        for chunk in parsed.chunks(BATCH) {
            let mut call = script.prepare_invoke();
            for key in keys {
                call.key(*key);
            }
            call.arg(head);
            for (_, id, count) in chunk {
                call.arg(*id).arg(*count);
            }
            let answers: Vec<i64> = call
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.error(&e))?;
            if answers.len() != chunk.len() {
                return Err(BrokerError::Backend(format!(
                    "Redis at {}: {} answers for {} ack ids",
                    self.location,
                    answers.len(),
                    chunk.len()
                )));
            }
            for ((at, _, _), answer) in chunk.iter().zip(answers) {
                held[*at] = answer != 0;
            }
        }
        Ok(held)
    }

    /// Appends `payloads` to `queue` in one script call, which publishes
    /// the wake-up.
    async fn enqueue_call(&self, queue: &str, payloads: &[Vec<u8>]) -> Result<(), BrokerError> {
        let keys = self.keys(queue);
        let _: i64 = ENQUEUE
            .key(&keys.ready)
            .key(&keys.messages)
            .key(&self.seq_key)
            .key(&self.queues_key)
            .arg(queue)
            .arg(&self.channel)
            .arg(payloads)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(())
    }

    /// `(visible, leased)` of `queue`.
    async fn sizes(&self, queue: &str) -> Result<(u64, u64), BrokerError> {
        let keys = self.keys(queue);
        let (visible, leased): (u64, u64) = SIZES
            .key(&keys.ready)
            .key(&keys.leased)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        Ok((visible, leased))
    }

    /// Starts the wake-up listener unless it runs.
    fn start_listener(&self) {
        self.listener.get_or_init(|| {
            let task = listen(
                Arc::downgrade(&self.shared),
                self.listen_client.clone(),
                self.channel.clone(),
                self.location.clone(),
            );
            tokio::spawn(task).abort_handle()
        });
    }
}

impl Broker for RedisBroker {
    async fn enqueue(&self, queue: &str, payload: Vec<u8>) -> Result<(), BrokerError> {
        self.enqueue_call(queue, std::slice::from_ref(&payload))
            .await
    }

    async fn enqueue_batch(&self, queue: &str, payloads: Vec<Vec<u8>>) -> Result<(), BrokerError> {
        let chunks = chunks(&payloads);
        if chunks.len() <= 1 {
            if payloads.is_empty() {
                return Ok(());
            }
            return self.enqueue_call(queue, &payloads).await;
        }
        // Several calls in one round trip and one `MULTI`/`EXEC`: in order,
        // no other client's command in between, and nothing added if the
        // connection drops before `EXEC`. `EVAL` with the source, as a
        // `NOSCRIPT` inside `MULTI` would fail that call alone. Only the
        // last call publishes.
        let keys = self.keys(queue);
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        let last = chunks.len() - 1;
        for (at, chunk) in chunks.into_iter().enumerate() {
            let channel = if at == last {
                self.channel.as_str()
            } else {
                ""
            };
            pipe.cmd("EVAL")
                .arg(ENQUEUE_LUA)
                .arg(4)
                .arg(&keys.ready)
                .arg(&keys.messages)
                .arg(&self.seq_key)
                .arg(&self.queues_key)
                .arg(queue)
                .arg(channel)
                .arg(chunk)
                .ignore();
        }
        pipe.exec_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        tracing::trace!(queue, count = payloads.len(), "enqueued");
        Ok(())
    }

    async fn wait(&self, queue: &str, timeout: Duration) {
        self.start_listener();
        let mut listening = self.shared.listening.subscribe();
        if *listening.borrow_and_update() {
            self.shared.wakers.wait(queue, timeout).await;
        } else {
            // Wake-ups published now are lost: return once the listener
            // is subscribed (the caller then looks again), or soon.
            let _ = tokio::time::timeout(
                timeout.min(UNHEARD_WAIT),
                listening.wait_for(|listening| *listening),
            )
            .await;
        }
    }

    async fn dequeue(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let keys = self.keys(queue);
        let lease_ms = u64::try_from(lease.as_millis())
            .unwrap_or(u64::MAX)
            .min(MAX_LEASE_MS);
        let mut conn = self.conn();
        let mut out = Vec::new();
        while out.len() < max {
            let want = (max - out.len()).min(BATCH);
            let reply: Value = DEQUEUE
                .key(&keys.ready)
                .key(&keys.leased)
                .key(&keys.messages)
                .arg(want)
                .arg(lease_ms)
                .arg(SENTINEL)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.error(&e))?;
            let got = parse_deliveries(reply).map_err(|reason| {
                BrokerError::Backend(format!(
                    "Redis at {}: unexpected dequeue reply: {reason}",
                    self.location
                ))
            })?;
            let short = got.len() < want;
            out.extend(got);
            if short {
                break;
            }
        }
        Ok(out)
    }

    async fn acknowledge(&self, queue: &str, ack_ids: &[AckId]) -> Result<Vec<bool>, BrokerError> {
        let keys = self.keys(queue);
        self.held_script(
            &ACKNOWLEDGE,
            &[&keys.leased, &keys.messages, &keys.ready, &self.queues_key],
            queue,
            ack_ids,
        )
        .await
    }

    async fn renew(
        &self,
        queue: &str,
        ack_ids: &[AckId],
        lease: Duration,
    ) -> Result<Vec<bool>, BrokerError> {
        let keys = self.keys(queue);
        let lease_ms = u64::try_from(lease.as_millis())
            .unwrap_or(u64::MAX)
            .min(MAX_LEASE_MS);
        self.held_script(
            &RENEW,
            &[&keys.leased, &keys.messages],
            &lease_ms.to_string(),
            ack_ids,
        )
        .await
    }

    async fn release(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        let Some((id, count)) = ack_id.parts::<u64, u64>() else {
            return Ok(false);
        };
        let keys = self.keys(queue);
        let released: i64 = RELEASE
            .key(&keys.ready)
            .key(&keys.leased)
            .key(&keys.messages)
            .arg(id)
            .arg(count)
            .arg(&self.channel)
            .arg(queue)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(released != 0)
    }

    async fn delete(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        let Some((id, _)) = ack_id.parts::<u64, u64>() else {
            return Ok(false);
        };
        let keys = self.keys(queue);
        let existed: i64 = DELETE
            .key(&keys.ready)
            .key(&keys.leased)
            .key(&keys.messages)
            .key(&self.queues_key)
            .arg(id)
            .arg(queue)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(existed != 0)
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64, BrokerError> {
        let keys = self.keys(queue);
        let mut conn = self.conn();
        let mut purged = 0;
        // A call at a time, so that a long queue does not block the server
        // (nor run past the reply timeout) in one script.
        loop {
            let (visible, expired): (u64, u64) = PURGE
                .key(&keys.ready)
                .key(&keys.leased)
                .key(&keys.messages)
                .key(&self.queues_key)
                .arg(queue)
                .arg(PURGE_BATCH)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.error(&e))?;
            purged += visible + expired;
            if visible < PURGE_BATCH && expired < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BrokerError> {
        let keys = self.keys(queue);
        let _: i64 = DELETE_QUEUE
            .key(&keys.ready)
            .key(&keys.leased)
            .key(&keys.messages)
            .key(&self.queues_key)
            .arg(queue)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(())
    }

    async fn queue_size(&self, queue: &str) -> Result<u64, BrokerError> {
        Ok(self.sizes(queue).await?.0)
    }

    async fn lock_size(&self, queue: &str) -> Result<u64, BrokerError> {
        Ok(self.sizes(queue).await?.1)
    }

    async fn queues(&self) -> Result<Vec<String>, BrokerError> {
        let mut queues: Vec<String> = ::redis::cmd("SMEMBERS")
            .arg(&self.queues_key)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        queues.sort_unstable();
        Ok(queues)
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        ::redis::cmd("PING")
            .exec_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))
    }

    fn info(&self) -> BrokerInfo {
        BrokerInfo {
            kind: "redis",
            location: self.location.clone(),
            priorities: false,
        }
    }
}

/// `payloads` cut into runs of at most [`BATCH`] messages and about
/// [`BATCH_BYTES`] bytes (a bigger message gets a run of its own).
fn chunks(payloads: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (at, payload) in payloads.iter().enumerate() {
        if at > start && (at - start == BATCH || bytes + payload.len() > BATCH_BYTES) {
            out.push(&payloads[start..at]);
            (start, bytes) = (at, 0);
        }
        bytes += payload.len();
    }
    if start < payloads.len() {
        out.push(&payloads[start..]);
    }
    out
}

/// The deliveries of a dequeue reply: a flat array of id, delivery count,
/// payload.
fn parse_deliveries(reply: Value) -> Result<Vec<Delivery>, String> {
    let items = match reply {
        Value::Array(items) => items,
        Value::Nil => return Ok(Vec::new()),
        other => return Err(format!("not an array: {other:?}")),
    };
    if items.len() % 3 != 0 {
        return Err(format!("{} items, not triples", items.len()));
    }
    let mut out = Vec::with_capacity(items.len() / 3);
    let mut items = items.into_iter();
    while let (Some(id), Some(count), Some(payload)) = (items.next(), items.next(), items.next()) {
        let id = match id {
            Value::BulkString(id) => String::from_utf8(id)
                .ok()
                .and_then(|id| id.parse::<u64>().ok())
                .ok_or("an id that is not a number")?,
            other => return Err(format!("id {other:?}")),
        };
        let count = match count {
            Value::Int(count) => u32::try_from(count).map_err(|_| format!("count {count}"))?,
            other => return Err(format!("delivery count {other:?}")),
        };
        let payload = match payload {
            Value::BulkString(payload) => payload,
            other => return Err(format!("payload {other:?}")),
        };
        out.push(Delivery {
            ack_id: AckId::new(id, count),
            payload,
            deliveries: count,
        });
    }
    Ok(out)
}

/// The wake-up listener: subscribes to `channel` and wakes the waiters of
/// the queues published there, reconnecting with backoff, until the broker
/// (`shared`) is gone.
async fn listen(shared: Weak<Shared>, client: Client, channel: String, location: String) {
    let mut backoff = LISTEN_MIN_BACKOFF;
    let mut failures = 0_u32;
    loop {
        let (conn, lost) = match tokio::time::timeout(
            CONNECT_TIMEOUT + RESPONSE_TIMEOUT,
            subscribe(&shared, &client, &channel),
        )
        .await
        {
            Ok(Ok(subscribed)) => subscribed,
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => one_line(&e),
                    _ => "no answer".to_owned(),
                };
                failures += 1;
                if failures == 1 {
                    tracing::warn!(
                        location,
                        reason,
                        "Redis wake-up listener cannot subscribe; waiters poll until it can"
                    );
                } else {
                    tracing::debug!(
                        location,
                        reason,
                        failures,
                        "Redis wake-up listener retrying"
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(LISTEN_MAX_BACKOFF);
                continue;
            }
        };
        let Some(strong) = shared.upgrade() else {
            return;
        };
        if failures > 0 {
            tracing::info!(location, "Redis wake-up listener subscribed again");
        }
        (backoff, failures) = (LISTEN_MIN_BACKOFF, 0);
        strong.listening.send_replace(true);
        // Whatever was published while we were not listening is lost.
        strong.wakers.wake_all();
        drop(strong);
        pump(conn, &lost).await;
        let Some(strong) = shared.upgrade() else {
            return;
        };
        strong.listening.send_replace(false);
        // Waiters would not hear of what comes meanwhile: send them to look.
        strong.wakers.wake_all();
        tracing::debug!(location, "Redis wake-up listener lost its connection");
    }
}

/// A RESP3 connection subscribed to `channel`, whose messages wake the
/// waiters of `shared` (from the connection's own task, at once), and what
/// it notifies when it drops.
async fn subscribe(
    shared: &Weak<Shared>,
    client: &Client,
    channel: &str,
) -> Result<(MultiplexedConnection, Arc<Notify>), RedisError> {
    let lost = Arc::new(Notify::new());
    let on_push = {
        let shared = shared.clone();
        let lost = Arc::clone(&lost);
        move |push: PushInfo| -> Result<(), ()> {
            let Some(shared) = shared.upgrade() else {
                return Err(());
            };
            match push.kind {
                PushKind::Message => {
                    if let Some(Value::BulkString(queue)) = push.data.get(1) {
                        shared.wakers.wake(&String::from_utf8_lossy(queue));
                    }
                }
                PushKind::Disconnection => lost.notify_one(),
                _ => {}
            }
            Ok(())
        }
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_push_sender(on_push);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    conn.subscribe(channel).await?;
    Ok((conn, lost))
}

/// Keeps `conn` until it drops (`lost`) or stops answering pings.
async fn pump(mut conn: MultiplexedConnection, lost: &Notify) {
    loop {
        if tokio::time::timeout(LISTEN_PING_EVERY, lost.notified())
            .await
            .is_ok()
        {
            return;
        }
        if let Err(e) = ::redis::cmd("PING").exec_async(&mut conn).await {
            tracing::debug!(error = one_line(&e), "Redis wake-up listener ping failed");
            return;
        }
    }
}

/// Splits `url` into what redis-rs reads and our own options.
fn parse_url(url: &str) -> Result<Settings, BrokerError> {
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(bad_url(
            url,
            "expected redis://HOST or rediss://HOST".into(),
        ));
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "redis" | "rediss") {
        return Err(bad_url(
            url,
            format!("`{scheme}` is not a Redis scheme: use redis:// or rediss://"),
        ));
    }
    let (rest, fragment) = match url.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (url, None),
    };
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, query),
        None => (rest, ""),
    };
    let mut prefix = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "prefix" => {
                if prefix.is_some() {
                    return Err(bad_url(url, "`prefix` is given twice".into()));
                }
                if value.is_empty() {
                    return Err(bad_url(url, "`prefix` is empty".into()));
                }
                if let Some(bad) = value
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
                {
                    return Err(bad_url(
                        url,
                        format!(
                            "the prefix cannot contain {bad:?}: use letters, digits and `_-.:`"
                        ),
                    ));
                }
                prefix = Some(value.to_owned());
            }
            "protocol" => kept.push(pair),
            other => {
                return Err(bad_url(
                    url,
                    format!("unknown option `{other}`: the options are `prefix` and `protocol`"),
                ));
            }
        }
    }
    let mut redis_url = base.to_owned();
    if !kept.is_empty() {
        redis_url.push('?');
        redis_url.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        redis_url.push('#');
        redis_url.push_str(fragment);
    }
    Ok(Settings {
        redis_url,
        prefix: prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
    })
}

/// [`BrokerError::BadUrl`] for `url`, its password hidden.
fn bad_url(url: &str, reason: String) -> BrokerError {
    BrokerError::BadUrl {
        url: redact(url),
        reason,
    }
}

/// A Redis error on one line.
fn one_line(e: &RedisError) -> String {
    e.to_string().replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests;
