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
        "local t = redis.call('TIME')\n\
         local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}

/// Source of [`ENQUEUE`]; also sent whole (`EVAL`) inside the `MULTI` of a
/// big batch, where a missing script could not be reloaded half way.
///
/// KEYS: ready, messages, seq, queues. ARGV: queue, wake channel (empty: do
/// not publish), payloads. Answers how many were added.
const ENQUEUE_LUA: &str = "
local n = #ARGV - 2
if n <= 0 then return 0 end
local first = redis.call('INCRBY', KEYS[3], n) - n
local ids, hset = {}, {}
for i = 1, n do
  local id = string.format('%d', first + i)
  ids[i] = id
  hset[2 * i - 1] = id
  hset[2 * i] = ARGV[i + 2]
end
redis.call('RPUSH', KEYS[1], unpack(ids))
redis.call('HSET', KEYS[2], unpack(hset))
redis.call('SADD', KEYS[4], ARGV[1])
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[1]) end
return n
";

/// Appends messages; see [`ENQUEUE_LUA`].
static ENQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(ENQUEUE_LUA));

/// Leases up to `ARGV[1]` messages for `ARGV[2]` ms: the first of `ready` and
/// the expired leases, merged by id. KEYS: ready, leased, messages.
/// `ARGV[3]`: [`SENTINEL`]. Answers a flat array: id, delivery count,
/// payload, …
static DEQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        lua_now!(),
        "
local max = tonumber(ARGV[1])
local lease_end = string.format('%d', now + tonumber(ARGV[2]))
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, max)
local ids = redis.call('LRANGE', KEYS[1], 0, max - 1)
local from_ready = #ids
if #expired > 0 then
  local ready = ids
  table.sort(expired, function(a, b) return tonumber(a) < tonumber(b) end)
  ids, from_ready = {}, 0
  local i, j = 1, 1
  while #ids < max and (i <= #ready or j <= #expired) do
    if j > #expired or (i <= #ready and tonumber(ready[i]) < tonumber(expired[j])) then
      ids[#ids + 1] = ready[i]
      i = i + 1
      from_ready = from_ready + 1
    else
      ids[#ids + 1] = expired[j]
      j = j + 1
    end
  end
end
if #ids == 0 then return {} end
if from_ready > 0 then redis.call('LTRIM', KEYS[1], from_ready, -1) end
local fields = {}
for k = 1, #ids do
  fields[2 * k - 1] = ids[k]
  fields[2 * k] = ids[k] .. ':n'
end
local got = redis.call('HMGET', KEYS[3], unpack(fields))
local zadd, hset, out, lost = {'+inf', ARGV[3]}, {}, {}, {}
for k = 1, #ids do
  local id, payload = ids[k], got[2 * k - 1]
  if payload then
    local count = math.abs(tonumber(got[2 * k]) or 0) + 1
    zadd[#zadd + 1] = lease_end
    zadd[#zadd + 1] = id
    hset[#hset + 1] = fields[2 * k]
    hset[#hset + 1] = string.format('%d', count)
    out[#out + 1] = id
    out[#out + 1] = count
    out[#out + 1] = payload
  else
    lost[#lost + 1] = id
  end
end
if #lost > 0 then redis.call('ZREM', KEYS[2], unpack(lost)) end
if #hset > 0 then
  redis.call('ZADD', KEYS[2], unpack(zadd))
  redis.call('HSET', KEYS[3], unpack(hset))
end
return out
"
    ))
});

/// Removes the messages the deliveries `ARGV[2..]` (id, count pairs) hold.
/// KEYS: leased, messages, ready, queues. `ARGV[1]`: the queue. Answers 1
/// or 0 per pair; a message answers once.
static ACKNOWLEDGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "
local n = (#ARGV - 1) / 2
local fields = {}
for k = 1, n do fields[k] = ARGV[2 * k] .. ':n' end
local counts = redis.call('HMGET', KEYS[2], unpack(fields))
local out, gone, hdel, seen = {}, {}, {}, {}
for k = 1, n do
  local id = ARGV[2 * k]
  out[k] = 0
  if counts[k] == ARGV[2 * k + 1] and not seen[id] then
    seen[id] = true
    gone[#gone + 1] = id
    hdel[#hdel + 1] = id
    hdel[#hdel + 1] = fields[k]
    out[k] = 1
  end
end
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('HDEL', KEYS[2], unpack(hdel))
  if redis.call('ZCOUNT', KEYS[1], '-inf', '(inf') == 0 and redis.call('LLEN', KEYS[3]) == 0 then
    redis.call('DEL', KEYS[1])
    redis.call('SREM', KEYS[4], ARGV[1])
  end
end
return out
",
    )
});

/// Extends to `ARGV[1]` ms from now the leases the deliveries `ARGV[2..]` (id,
/// count pairs) hold. KEYS: leased, messages. Answers 1 or 0 per pair.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        lua_now!(),
        "
local lease_end = string.format('%d', now + tonumber(ARGV[1]))
local n = (#ARGV - 1) / 2
local fields = {}
for k = 1, n do fields[k] = ARGV[2 * k] .. ':n' end
local counts = redis.call('HMGET', KEYS[2], unpack(fields))
local out, zadd = {}, {}
for k = 1, n do
  out[k] = 0
  if counts[k] == ARGV[2 * k + 1] then
    zadd[#zadd + 1] = lease_end
    zadd[#zadd + 1] = ARGV[2 * k]
    out[k] = 1
  end
end
if #zadd > 0 then redis.call('ZADD', KEYS[1], unpack(zadd)) end
return out
"
    ))
});

/// Makes message `ARGV[1]` visible again (first in line) if delivery `ARGV[2]`
/// holds it, and publishes queue `ARGV[4]` on channel `ARGV[3]`. KEYS: ready,
/// leased, messages. Answers 1 or 0.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "
local field = ARGV[1] .. ':n'
if redis.call('HGET', KEYS[3], field) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[3], field, '-' .. ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
",
    )
});

/// Deletes message `ARGV[1]` whatever its state. KEYS: ready, leased,
/// messages, queues. `ARGV[2]`: the queue. Answers 1 if it existed.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "
local existed = redis.call('HDEL', KEYS[3], ARGV[1])
if existed == 1 then
  redis.call('HDEL', KEYS[3], ARGV[1] .. ':n')
  if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then
    redis.call('LREM', KEYS[1], 1, ARGV[1])
  end
  if redis.call('LLEN', KEYS[1]) == 0 and redis.call('ZCOUNT', KEYS[2], '-inf', '(inf') == 0 then
    redis.call('DEL', KEYS[2])
    redis.call('SREM', KEYS[4], ARGV[2])
  end
end
return existed
",
    )
});

/// Deletes up to `ARGV[2]` visible messages and up to as many expired
/// leases. KEYS: ready, leased, messages, queues. `ARGV[1]`: the queue.
/// Answers `{visible, expired}`, how many of each.
static PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        lua_now!(),
        "
local limit = tonumber(ARGV[2])
local function drop(ids, leased)
  for i = 1, #ids, 500 do
    local j = math.min(i + 499, #ids)
    local fields = {}
    for k = i, j do
      fields[#fields + 1] = ids[k]
      fields[#fields + 1] = ids[k] .. ':n'
    end
    redis.call('HDEL', KEYS[3], unpack(fields))
    if leased then redis.call('ZREM', KEYS[2], unpack(ids, i, j)) end
  end
end
local ready = redis.call('LRANGE', KEYS[1], 0, limit - 1)
if #ready > 0 then redis.call('LTRIM', KEYS[1], #ready, -1) end
drop(ready, false)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
drop(expired, true)
if redis.call('LLEN', KEYS[1]) == 0 and redis.call('ZCOUNT', KEYS[2], '-inf', '(inf') == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[4], ARGV[1])
end
return {#ready, #expired}
"
    ))
});

/// Deletes every message of a queue. KEYS: ready, leased, messages,
/// queues. `ARGV[1]`: the queue.
static DELETE_QUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return 0
",
    )
});

/// `{visible, leased}`: visible counts expired leases. KEYS: ready, leased.
static SIZES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        lua_now!(),
        "
local expired = redis.call('ZCOUNT', KEYS[2], '-inf', now)
local leased = redis.call('ZCOUNT', KEYS[2], '(' .. string.format('%d', now), '(inf')
return {redis.call('LLEN', KEYS[1]) + expired, leased}
"
    ))
});

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
mod tests {
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    use super::*;

    /// A lease that does not run out during a test.
    const LONG: Duration = Duration::from_secs(600);
    /// How long something that should happen may take before a test fails.
    const DEADLINE: Duration = Duration::from_secs(30);

    /// The Redis server `cargo xtask test` started.
    fn server_url() -> String {
        match std::env::var("WASQ_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => panic!(
                "WASQ_TEST_REDIS_URL is not set: run the tests with `cargo xtask test`, which starts Redis and sets it"
            ),
        }
    }

    /// A name no other test uses, on this server.
    fn unique(tag: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        format!(
            "{tag}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// `url` with `?prefix=PREFIX` added.
    fn with_prefix(url: &str, prefix: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}prefix={prefix}")
    }

    /// A broker on the test server with a prefix of its own.
    async fn broker() -> RedisBroker {
        RedisBroker::connect(&with_prefix(&server_url(), &unique("unit")))
            .await
            .unwrap()
    }

    /// Waits until `check` answers true, failing after [`DEADLINE`].
    async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
        let start = Instant::now();
        while !check().await {
            assert!(
                start.elapsed() < DEADLINE,
                "not within {DEADLINE:?}: {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the broker's wake-up listener is subscribed.
    async fn listening(broker: &RedisBroker) {
        broker.wait("unit-warm-up", Duration::ZERO).await;
        eventually("the listener subscribes", || async {
            *broker.shared.listening.borrow()
        })
        .await;
    }

    fn payloads(deliveries: &[Delivery]) -> Vec<Vec<u8>> {
        deliveries.iter().map(|d| d.payload.clone()).collect()
    }

    #[test]
    fn urls_give_prefix_and_redis_url() {
        let cases = [
            ("redis://localhost", "redis://localhost", "wasq"),
            (
                "redis://:pw@cache:6380/2?prefix=team-a.jobs:v1",
                "redis://:pw@cache:6380/2",
                "team-a.jobs:v1",
            ),
            (
                "redis://h?protocol=resp3&prefix=p",
                "redis://h?protocol=resp3",
                "p",
            ),
            (
                "rediss://h:6380/?prefix=p#insecure",
                "rediss://h:6380/#insecure",
                "p",
            ),
            ("REDIS://h?", "REDIS://h", "wasq"),
        ];
        for (url, redis_url, prefix) in cases {
            let settings = parse_url(url).unwrap();
            assert_eq!(settings.redis_url, redis_url, "{url}");
            assert_eq!(settings.prefix, prefix, "{url}");
        }
    }

    #[test]
    fn bad_urls_say_why() {
        let cases = [
            ("localhost:6379", "expected redis://"),
            ("http://h", "not a Redis scheme"),
            ("redis://h?prefix=", "empty"),
            ("redis://h?prefix=a&prefix=b", "twice"),
            ("redis://h?prefix=a{b}", "'{'"),
            ("redis://h?prefix=a b", "' '"),
            ("redis://:hunter2@h?prefx=a", "unknown option `prefx`"),
            ("redis://h?db=2", "unknown option `db`"),
        ];
        for (url, reason) in cases {
            let e = parse_url(url).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, BrokerError::BadUrl { .. }), "{url}: {e:?}");
            assert!(text.contains(reason), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[tokio::test]
    async fn urls_redis_cannot_read_are_bad() {
        for url in [
            "redis://:hunter2@h:notaport",
            "redis://:hunter2@h/notadb",
            "redis://h?protocol=9",
            "redis://",
        ] {
            let e = RedisBroker::connect(url).await.unwrap_err();
            assert!(matches!(e, BrokerError::BadUrl { .. }), "{url}: {e:?}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_fails_fast_with_one_line() {
        let url = "redis://:hunter2@127.0.0.1:1/0";
        let e = tokio::time::timeout(DEADLINE, RedisBroker::connect(url))
            .await
            .expect("connect hung")
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, BrokerError::Unreachable(_)), "{e:?}");
        assert!(text.contains("redis://:***@127.0.0.1:1/0"), "{text}");
        assert!(!text.contains("hunter2") && !text.contains('\n'), "{text}");
    }

    #[tokio::test]
    async fn tls_to_a_server_without_it_fails() {
        // Accepts connections and answers with plain text, not TLS.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                let Ok(mut stream) = stream else { return };
                let _ = std::io::Write::write_all(&mut stream, b"-ERR not TLS\r\n");
            }
        });
        let url = format!("rediss://127.0.0.1:{port}");
        let e = tokio::time::timeout(DEADLINE, RedisBroker::connect(&url))
            .await
            .expect("connect hung")
            .unwrap_err();
        assert!(matches!(e, BrokerError::Unreachable(_)), "{e:?}");
        assert!(e.to_string().contains(&url), "{e}");
    }

    #[test]
    fn batches_are_cut_by_count_and_bytes() {
        let sizes = |payloads: &[Vec<u8>]| -> Vec<usize> {
            chunks(payloads).iter().map(|c| c.len()).collect()
        };
        assert!(chunks(&[]).is_empty());
        assert_eq!(sizes(&vec![vec![0]; 1]), [1]);
        assert_eq!(sizes(&vec![vec![0]; BATCH]), [BATCH]);
        assert_eq!(sizes(&vec![vec![0]; 2 * BATCH + 1]), [BATCH, BATCH, 1]);
        let big = vec![vec![0; BATCH_BYTES / 2 + 1]; 3];
        assert_eq!(sizes(&big), [1, 1, 1]);
        let huge = vec![vec![0], vec![0; BATCH_BYTES + 1], vec![0]];
        assert_eq!(sizes(&huge), [1, 1, 1]);
    }

    #[test]
    fn odd_dequeue_replies_are_errors() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(parse_deliveries(Value::Array(Vec::new())).unwrap(), []);
        let good = parse_deliveries(Value::Array(vec![bulk("7"), Value::Int(2), bulk("x")]));
        assert_eq!(
            good.unwrap(),
            [Delivery {
                ack_id: AckId::new(7, 2),
                payload: b"x".to_vec(),
                deliveries: 2
            }]
        );
        for bad in [
            Value::Int(1),
            Value::Array(vec![bulk("7"), Value::Int(2)]),
            Value::Array(vec![bulk("x"), Value::Int(2), bulk("x")]),
            Value::Array(vec![bulk("7"), Value::Int(-2), bulk("x")]),
            Value::Array(vec![bulk("7"), Value::Int(2), Value::Nil]),
        ] {
            assert!(parse_deliveries(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prefixes_keep_setups_apart() {
        let (a, b) = (broker().await, broker().await);
        a.enqueue("q", b"a".to_vec()).await.unwrap();
        assert_eq!(a.queues().await.unwrap(), ["q"]);
        assert!(b.queues().await.unwrap().is_empty());
        assert_eq!(b.queue_size("q").await.unwrap(), 0);
        assert!(b.dequeue("q", 10, LONG).await.unwrap().is_empty());
        assert_eq!(payloads(&a.dequeue("q", 10, LONG).await.unwrap()), [b"a"]);
        assert_eq!(a.info().kind, "redis");
        assert!(a.info().location.contains("prefix=unit-"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_lease_is_still_held_until_taken_again() {
        let b = broker().await;
        b.enqueue("q", b"a".to_vec()).await.unwrap();
        let d = b.dequeue("q", 1, Duration::ZERO).await.unwrap().remove(0);
        assert_eq!(
            (
                b.queue_size("q").await.unwrap(),
                b.lock_size("q").await.unwrap()
            ),
            (1, 0)
        );
        assert_eq!(
            b.renew("q", std::slice::from_ref(&d.ack_id), LONG)
                .await
                .unwrap(),
            [true]
        );
        assert_eq!(
            (
                b.queue_size("q").await.unwrap(),
                b.lock_size("q").await.unwrap()
            ),
            (0, 1)
        );
        // Twice the same ack id: the message answers once.
        assert_eq!(
            b.acknowledge("q", &[d.ack_id.clone(), d.ack_id])
                .await
                .unwrap(),
            [true, false]
        );
        assert!(b.queues().await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_queue_leaves_no_key_behind() {
        let b = broker().await;
        let keys = b.keys("q");
        let left = || async {
            let n: u64 = ::redis::cmd("EXISTS")
                .arg(&keys.ready)
                .arg(&keys.leased)
                .arg(&keys.messages)
                .query_async(&mut b.conn())
                .await
                .unwrap();
            n
        };
        let b = &b;
        let taken = |n: usize| async move { b.dequeue("q", n, LONG).await.unwrap() };
        // Emptied by acknowledge, by delete, by purge.
        b.enqueue_batch("q", vec![b"a".to_vec(); 300])
            .await
            .unwrap();
        let all = taken(300).await;
        let acks: Vec<AckId> = all.iter().map(|d| d.ack_id.clone()).collect();
        assert!(b.acknowledge("q", &acks).await.unwrap().iter().all(|&h| h));
        assert_eq!(left().await, 0);
        b.enqueue_batch("q", vec![b"a".to_vec(); 2]).await.unwrap();
        let two = taken(2).await;
        assert!(b.release("q", &two[0].ack_id).await.unwrap());
        assert!(b.delete("q", &two[0].ack_id).await.unwrap());
        assert!(b.delete("q", &two[1].ack_id).await.unwrap());
        assert_eq!(left().await, 0);
        b.enqueue_batch("q", vec![b"a".to_vec(); 2]).await.unwrap();
        let one = b.dequeue("q", 1, Duration::ZERO).await.unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(b.purge_queue("q").await.unwrap(), 2);
        assert_eq!(left().await, 0);
        assert!(b.queues().await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn purging_more_than_a_call_takes() {
        let b = broker().await;
        let n = usize::try_from(PURGE_BATCH).unwrap() + 5;
        b.enqueue_batch("q", vec![b"v".to_vec(); n]).await.unwrap();
        // Expired leases count as visible.
        let expired = b.dequeue("q", n, Duration::ZERO).await.unwrap();
        assert_eq!(expired.len(), n);
        b.enqueue_batch("q", vec![b"v".to_vec(); n]).await.unwrap();
        // One of the expired ones is taken again, and held.
        let held = b.dequeue("q", 1, LONG).await.unwrap();
        assert_eq!(held.len(), 1);
        b.enqueue("q", b"w".to_vec()).await.unwrap();
        assert_eq!(b.purge_queue("q").await.unwrap(), 2 * n as u64);
        assert_eq!(
            (
                b.queue_size("q").await.unwrap(),
                b.lock_size("q").await.unwrap()
            ),
            (0, 1)
        );
        assert_eq!(
            b.acknowledge("q", &[held[0].ack_id.clone()]).await.unwrap(),
            [true]
        );
        assert!(b.queues().await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn big_batches_keep_their_order() {
        let b = broker().await;
        let n = 2 * BATCH + 500;
        let sent: Vec<Vec<u8>> = (0..n).map(|i| i.to_string().into_bytes()).collect();
        // Several script calls in one transaction.
        b.enqueue_batch("q", sent.clone()).await.unwrap();
        b.enqueue("q", b"last".to_vec()).await.unwrap();
        assert_eq!(b.queue_size("q").await.unwrap(), n as u64 + 1);
        // More than one script call's worth in one dequeue.
        let got = b.dequeue("q", n, LONG).await.unwrap();
        assert_eq!(payloads(&got), sent);
        let acks: Vec<AckId> = got.iter().map(|d| d.ack_id.clone()).collect();
        let held = b.acknowledge("q", &acks).await.unwrap();
        assert!(held.iter().all(|&h| h));
        assert_eq!(
            payloads(&b.dequeue("q", usize::MAX, LONG).await.unwrap()),
            [b"last"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scripts_are_loaded_again_when_the_server_forgot_them() {
        let b = broker().await;
        b.enqueue("q", b"a".to_vec()).await.unwrap();
        let _: () = ::redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut b.conn())
            .await
            .unwrap();
        b.enqueue("q", b"b".to_vec()).await.unwrap();
        let got = b.dequeue("q", 10, LONG).await.unwrap();
        assert_eq!(payloads(&got), [b"a", b"b"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn enqueue_and_release_wake_other_processes() {
        let url = with_prefix(&server_url(), &unique("wake"));
        let consumer = Arc::new(RedisBroker::connect(&url).await.unwrap());
        let producer = RedisBroker::connect(&url).await.unwrap();
        listening(&consumer).await;
        let waiter = |queue: &'static str| {
            let consumer = Arc::clone(&consumer);
            tokio::spawn(async move {
                // Far longer than the test may take: only a wake-up ends it.
                consumer.wait(queue, DEADLINE * 10).await;
            })
        };

        let woken = waiter("q");
        tokio::time::sleep(Duration::from_millis(50)).await;
        producer.enqueue("q", b"x".to_vec()).await.unwrap();
        tokio::time::timeout(DEADLINE, woken)
            .await
            .expect("the enqueue did not wake the waiter")
            .unwrap();

        let d = producer.dequeue("q", 1, LONG).await.unwrap().remove(0);
        let woken = waiter("q");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(producer.release("q", &d.ack_id).await.unwrap());
        tokio::time::timeout(DEADLINE, woken)
            .await
            .expect("the release did not wake the waiter")
            .unwrap();

        // A wake-up nobody waited for is kept for the next wait.
        producer.enqueue("kept", b"y".to_vec()).await.unwrap();
        tokio::time::timeout(DEADLINE, consumer.wait("kept", DEADLINE * 10))
            .await
            .expect("the wake-up was not kept");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_broker_stops_its_listener() {
        let prefix = unique("drop");
        let url = with_prefix(&server_url(), &prefix);
        let observer = RedisBroker::connect(&url).await.unwrap();
        let subscribers = || async {
            let (_, n): (String, u64) = ::redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(format!("{prefix}:wake"))
                .query_async(&mut observer.conn())
                .await
                .unwrap();
            n
        };
        let b = RedisBroker::connect(&url).await.unwrap();
        assert_eq!(subscribers().await, 0, "no listener before the first wait");
        listening(&b).await;
        assert_eq!(subscribers().await, 1);
        drop(b);
        eventually("the listener unsubscribes", || async {
            subscribers().await == 0
        })
        .await;
    }

    /// A `redis-server` of the test's own, on `port`, without persistence.
    fn start_server(port: u16, dir: &Path) -> Child {
        let program = std::env::var("WASQ_TEST_REDIS_SERVER").unwrap_or("redis-server".into());
        Command::new(&program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `{program}` ({e}): this test restarts a Redis server of its own; install redis-server or set WASQ_TEST_REDIS_SERVER to its path (`cargo xtask test` provides one)"
                )
            })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restarted_server_is_used_again() {
        // Like the other server tests, this one runs under `cargo xtask test`.
        let _ = server_url();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("redis://127.0.0.1:{port}");
        let mut server = start_server(port, dir.path());
        let started = Instant::now();
        let b = loop {
            match RedisBroker::connect(&url).await {
                Ok(b) => break b,
                Err(e) => assert!(started.elapsed() < DEADLINE, "server not up: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        b.enqueue("q", b"before".to_vec()).await.unwrap();
        listening(&b).await;
        let waiting = {
            // A waiter from before the crash is sent to look again.
            let url = url.clone();
            tokio::spawn(async move {
                let b = RedisBroker::connect(&url).await.unwrap();
                listening(&b).await;
                b.wait("idle", DEADLINE * 10).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;

        server.kill().unwrap();
        server.wait().unwrap();
        let e = tokio::time::timeout(DEADLINE, b.queue_size("q"))
            .await
            .expect("a call to a dead server hung");
        assert!(matches!(e, Err(BrokerError::Unreachable(_))), "{e:?}");
        for _ in 0..3 {
            let e = tokio::time::timeout(DEADLINE, b.enqueue("q", b"lost".to_vec()))
                .await
                .expect("a call to a dead server hung");
            assert!(e.is_err(), "{e:?}");
        }
        tokio::time::timeout(DEADLINE, b.wait("q", DEADLINE * 10))
            .await
            .expect("a wait hung while the server was down");
        tokio::time::timeout(DEADLINE, waiting)
            .await
            .expect("a waiter was not woken when the connection dropped")
            .unwrap();

        let mut server = start_server(port, dir.path());
        eventually("the broker reconnects", || async { b.ping().await.is_ok() }).await;
        // The new server knows no scripts: they are loaded again.
        b.enqueue("q", b"after".to_vec()).await.unwrap();
        b.enqueue_batch("q", vec![b"batch".to_vec(); 2 * BATCH])
            .await
            .unwrap();
        let got = b.dequeue("q", 1, LONG).await.unwrap();
        assert_eq!(payloads(&got), [b"after"]);
        assert_eq!(
            b.acknowledge("q", &[got[0].ack_id.clone()]).await.unwrap(),
            [true]
        );
        // And wake-ups flow again.
        listening(&b).await;
        let consumer = Arc::new(b);
        let woken = {
            let consumer = Arc::clone(&consumer);
            tokio::spawn(async move { consumer.wait("fresh", DEADLINE * 10).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        consumer.enqueue("fresh", b"x".to_vec()).await.unwrap();
        tokio::time::timeout(DEADLINE, woken)
            .await
            .expect("no wake-up after the restart")
            .unwrap();
        server.kill().unwrap();
        server.wait().unwrap();
    }
}
