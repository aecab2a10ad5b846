//! `postgres://USER@HOST:PORT/DB`: queues in one PostgreSQL table
//! (`wasq_queue`), shared by any number of processes on any number of
//! hosts.
//!
//! Every message is a row. A visible row has no `lease_token`; a leased row
//! has the token of the delivery holding it and, in `visible_at`, the time
//! its lease ends. All times come from the database clock
//! (`statement_timestamp()`), never from the client's, so hosts whose clocks
//! disagree still agree on leases. Leases run out lazily, as in the SQLite
//! broker: a leased row whose `visible_at` has passed counts as visible, and
//! the next dequeue takes it with a new token, so the old delivery's ack id
//! (`"<id>:<token>"`) no longer matches anything.
//!
//! Every operation is one statement. A dequeue picks the oldest visible rows
//! with `FOR UPDATE SKIP LOCKED`, so concurrent consumers never wait for
//! each other nor take the same row; acknowledge and renew join the table
//! with the ack ids passed as two arrays (`unnest($1::bigint[],
//! $2::bigint[])`), and enqueue_batch inserts a whole batch from one array.
//! Two partial indexes keep the hot paths short whatever the backlog:
//! `wasq_queue_ready (queue, id) WHERE lease_token IS NULL` gives the oldest
//! visible rows directly, and `wasq_queue_leased (queue, visible_at) WHERE
//! lease_token IS NOT NULL` the expired leases.
//!
//! Enqueue and release send one notification per statement on the channel
//! `wasq_queue`, its payload the queue name (`pg_notify` in the same
//! statement, so it is delivered when the rows are committed, and never one
//! per message: each NOTIFY takes a database-wide lock at commit). The first
//! [`Broker::wait`] starts a task that `LISTEN`s on its own connection and
//! wakes the waiters of the queue named; when that connection drops it
//! reconnects with backoff, and wakes every waiter, since notifications may
//! have been missed meanwhile.

use std::collections::HashSet;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::wake::Wakers;
use crate::{AckId, Broker, BrokerError, BrokerInfo, Delivery, redact};

/// Connections per broker for queue operations (the listener has one more
/// of its own). A consumer holds one only for the duration of a statement,
/// so a few serve many tasks; raise `max_connections` on the server for
/// many brokers rather than this.
const POOL_SIZE: u32 = 8;
/// How long a wait lasts at most while nobody listens for notifications
/// (before the first `LISTEN`, or while the connection is lost).
const UNLISTENED_POLL: Duration = Duration::from_millis(100);
/// How long an operation waits for a connection before failing with
/// [`BrokerError::Unreachable`]: it covers reconnecting after a server
/// restart, and bounds how long a call hangs while the server is down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`PostgresBroker::connect`] waits for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The channel of the notifications, and the name of the table.
const CHANNEL: &str = "wasq_queue";
/// The key of the advisory lock that serialises schema creation: two
/// `CREATE TABLE IF NOT EXISTS` at once can both fail on `pg_type`.
const SCHEMA_LOCK: i64 = 0x7761_7371_5f71_7565; // "wasq_que"
/// Leases longer than this (about 100 years) are cut to it.
const MAX_LEASE_MS: i64 = 100 * 365 * 24 * 3600 * 1000;
/// Most payload bytes in one insert statement: a bigger batch is cut into
/// statements of at most this much (one transaction still).
const CHUNK_BYTES: usize = 16 << 20;
/// Most rows in one insert statement.
const CHUNK_ROWS: usize = 10_000;
/// NOTIFY payloads must be shorter than this many bytes; a longer queue
/// name is sent as an empty payload, which wakes every queue.
const NOTIFY_MAX: usize = 8000;
/// Backoff of the listener between reconnection attempts.
const RELISTEN_MIN: Duration = Duration::from_millis(50);
/// Longest backoff of the listener.
const RELISTEN_MAX: Duration = Duration::from_secs(2);

/// The schema, applied by the first broker to find no table (under
/// [`SCHEMA_LOCK`]). Queue names compare bytewise (`COLLATE "C"`), so
/// [`Broker::queues`] sorts as the other brokers do. Payloads are stored
/// without compression: packages are already compressed.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS wasq_queue (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue TEXT COLLATE "C" NOT NULL,
    payload BYTEA NOT NULL,
    visible_at TIMESTAMPTZ NOT NULL,
    lease_token BIGINT,
    deliveries INTEGER NOT NULL DEFAULT 0,
    enqueued_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE wasq_queue ALTER COLUMN payload SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS wasq_queue_ready ON wasq_queue (queue, id) WHERE lease_token IS NULL;
CREATE INDEX IF NOT EXISTS wasq_queue_leased ON wasq_queue (queue, visible_at) WHERE lease_token IS NOT NULL;
"#;

/// Inserts the payloads `$2` into queue `$1`, in order, and notifies `$3`
/// if `$4`.
const ENQUEUE: &str = "
WITH added AS (
    INSERT INTO wasq_queue (queue, payload, visible_at, enqueued_at)
    SELECT $1, p.payload, statement_timestamp(), statement_timestamp()
    FROM unnest($2::bytea[]) WITH ORDINALITY AS p (payload, n)
    ORDER BY p.n
)
SELECT pg_notify('wasq_queue', $3) WHERE $4";

/// Leases up to `$2` visible rows of queue `$1`, oldest first, with token
/// `$3` for `$4` ms. Rows locked by a concurrent dequeue are skipped, not
/// waited for. Each branch locks what it picks, so up to `2 × $2` rows are
/// locked for the length of the statement and `$2` taken.
///
/// `ORDER BY id + 0` makes the planner find the expired leases through
/// `wasq_queue_leased` and sort those few, rather than walk the primary
/// key in id order, through the whole table when none has expired.
const DEQUEUE: &str = "
WITH ready AS (
    SELECT id FROM wasq_queue
    WHERE queue = $1 AND lease_token IS NULL
    ORDER BY id LIMIT $2
    FOR UPDATE SKIP LOCKED
), expired AS (
    SELECT id FROM wasq_queue
    WHERE queue = $1 AND lease_token IS NOT NULL AND visible_at <= statement_timestamp()
    ORDER BY id + 0 LIMIT $2
    FOR UPDATE SKIP LOCKED
), taken AS (
    SELECT id FROM ready UNION ALL SELECT id FROM expired
    ORDER BY id LIMIT $2
)
UPDATE wasq_queue AS q
SET lease_token = $3,
    visible_at = statement_timestamp() + $4::bigint * interval '1 millisecond',
    deliveries = LEAST(q.deliveries, 2147483646) + 1
FROM taken
WHERE q.id = taken.id
RETURNING q.id, q.payload, q.deliveries";

/// Deletes the rows of queue `$3` held by the deliveries `($1[i], $2[i])`.
/// The conditions are on the row itself, so a row a concurrent dequeue
/// takes meanwhile is checked again once it is free, and kept.
const ACKNOWLEDGE: &str = "
DELETE FROM wasq_queue AS q
USING unnest($1::bigint[], $2::bigint[]) AS a (id, token)
WHERE q.id = a.id AND q.lease_token = a.token AND q.queue = $3
RETURNING q.id, q.lease_token";

/// Extends to `$4` ms from now the leases of the rows of queue `$3` held
/// by the deliveries `($1[i], $2[i])`.
const RENEW: &str = "
UPDATE wasq_queue AS q
SET visible_at = statement_timestamp() + $4::bigint * interval '1 millisecond'
FROM unnest($1::bigint[], $2::bigint[]) AS a (id, token)
WHERE q.id = a.id AND q.lease_token = a.token AND q.queue = $3
RETURNING q.id, q.lease_token";

/// Makes row `$1` of queue `$3` visible if delivery `$2` holds it, and
/// then notifies `$4`. One row per row released.
const RELEASE: &str = "
WITH released AS (
    UPDATE wasq_queue SET lease_token = NULL, visible_at = statement_timestamp()
    WHERE id = $1 AND lease_token = $2 AND queue = $3
    RETURNING id
)
SELECT pg_notify('wasq_queue', $4) FROM released";

/// Deletes the visible rows of queue `$1`: found through the two partial
/// indexes, and checked again on the row itself, so that a row a
/// concurrent dequeue leases meanwhile is kept.
const PURGE: &str = "
DELETE FROM wasq_queue
WHERE id IN (
    SELECT id FROM wasq_queue WHERE queue = $1 AND lease_token IS NULL
    UNION ALL
    SELECT id FROM wasq_queue
    WHERE queue = $1 AND lease_token IS NOT NULL AND visible_at <= statement_timestamp()
) AND queue = $1 AND (lease_token IS NULL OR visible_at <= statement_timestamp())";

/// Deletes every row of queue `$1`, through the two partial indexes.
const DELETE_QUEUE: &str = "
DELETE FROM wasq_queue WHERE id IN (
    SELECT id FROM wasq_queue WHERE queue = $1 AND lease_token IS NULL
    UNION ALL
    SELECT id FROM wasq_queue WHERE queue = $1 AND lease_token IS NOT NULL
)";

const QUEUE_SIZE: &str = "
SELECT (SELECT count(*) FROM wasq_queue WHERE queue = $1 AND lease_token IS NULL)
     + (SELECT count(*) FROM wasq_queue
        WHERE queue = $1 AND lease_token IS NOT NULL AND visible_at <= statement_timestamp())";

const LOCK_SIZE: &str = "
SELECT count(*) FROM wasq_queue
WHERE queue = $1 AND lease_token IS NOT NULL AND visible_at > statement_timestamp()";

/// The distinct queue names, sorted, by skipping through each partial
/// index from one name to the next (one index probe per queue rather than
/// a read of every row).
const QUEUES: &str = "
WITH RECURSIVE ready (queue) AS (
    (SELECT queue FROM wasq_queue WHERE lease_token IS NULL ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT w.queue FROM wasq_queue AS w
            WHERE w.lease_token IS NULL AND w.queue > ready.queue
            ORDER BY w.queue LIMIT 1)
    FROM ready WHERE ready.queue IS NOT NULL
), leased (queue) AS (
    (SELECT queue FROM wasq_queue WHERE lease_token IS NOT NULL ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT w.queue FROM wasq_queue AS w
            WHERE w.lease_token IS NOT NULL AND w.queue > leased.queue
            ORDER BY w.queue LIMIT 1)
    FROM leased WHERE leased.queue IS NOT NULL
)
SELECT queue FROM ready WHERE queue IS NOT NULL
UNION
SELECT queue FROM leased WHERE queue IS NOT NULL
ORDER BY 1";

/// A broker in a PostgreSQL database. Cheap to clone: clones share one
/// connection pool and one listener.
///
/// Holds up to 8 connections for queue operations, opened as needed and
/// checked before reuse (so that connections a server restart broke are
/// replaced, not reported), and, once [`Broker::wait`] has been called, one
/// more that `LISTEN`s for new messages.
#[derive(Debug, Clone)]
pub struct PostgresBroker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    /// The listener's pool: one connection, held while listening.
    listen_pool: PgPool,
    /// The URL, password hidden.
    location: String,
    shared: Arc<Shared>,
    /// The listener task, started by the first `wait`.
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self
            .listener
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// What the listener task and the waiters share.
#[derive(Debug)]
struct Shared {
    wakers: Wakers,
    /// The queues `wait` has been called for: notifications of other
    /// queues are dropped, so that a process does not keep a waker for
    /// every queue of the database.
    waited: Mutex<HashSet<String>>,
    /// Whether the listener is listening. Sent on every change, and again
    /// on every reconnection: either wakes the waiters.
    listening: watch::Sender<bool>,
}

impl Shared {
    /// A notification for `queue` (empty: every queue) arrived.
    fn notified(&self, queue: &str) {
        if queue.is_empty() {
            self.wakers.wake_all();
        } else if self
            .waited
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(queue)
        {
            self.wakers.wake(queue);
        }
    }

    /// Notifications may have been missed: wakes every waiter.
    fn lost(&self, listening: bool) {
        self.listening.send_replace(listening);
        self.wakers.wake_all();
    }
}

impl PostgresBroker {
    /// Connects to the database of `url` (`postgres://` or `postgresql://`,
    /// with the parameters libpq and sqlx know, e.g. `sslmode=require`)
    /// and creates the table `wasq_queue` and its indexes if the database
    /// has none.
    ///
    /// # Errors
    ///
    /// [`BrokerError::BadUrl`] when the URL cannot be read,
    /// [`BrokerError::Unreachable`] when the server does not answer within
    /// 5 s or refuses the connection, and [`BrokerError::Backend`] when the
    /// schema cannot be created; each names the URL, password hidden.
    pub async fn connect(url: &str) -> Result<Self, BrokerError> {
        let location = redact(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| BrokerError::BadUrl {
            url: location.clone(),
            reason: e.to_string(),
        })?;
        let options = match options.get_application_name() {
            Some(_) => options,
            None => options.application_name("wasq"),
        };
        // One connection of its own first: its error says why (refused,
        // password, no such database) where the pool would only time out.
        let unreachable = |why: String| {
            BrokerError::Unreachable(format!("cannot connect to `{location}`: {why}"))
        };
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        create_schema(&mut conn).await.map_err(|e| {
            BrokerError::Backend(format!(
                "cannot create the table `wasq_queue` in `{location}`: {e}"
            ))
        })?;
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "closing the setup connection");
        }
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .connect_lazy_with(options.clone());
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options);
        tracing::debug!(url = %location, "PostgreSQL broker open");
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                listen_pool,
                location,
                shared: Arc::new(Shared {
                    wakers: Wakers::default(),
                    waited: Mutex::default(),
                    listening: watch::Sender::new(false),
                }),
                listener: Mutex::new(None),
            }),
        })
    }

    /// Closes the connections. Further operations fail with
    /// [`BrokerError::Unreachable`].
    pub async fn close(&self) {
        if let Some(task) = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        self.inner.listen_pool.close().await;
        self.inner.pool.close().await;
    }

    /// Maps a sqlx error to a broker error naming the broker.
    fn error(&self, e: sqlx::Error) -> BrokerError {
        let unreachable = match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => true,
            // Class 08: connection exceptions; 57P0x: the server is
            // shutting down, starting up, or the database was dropped.
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
            _ => false,
        };
        let message = format!("PostgreSQL `{}`: {e}", self.inner.location);
        if unreachable {
            BrokerError::Unreachable(message)
        } else {
            BrokerError::Backend(message)
        }
    }

    /// The listener's state, after starting the listener task if it is not
    /// running (first call, or its runtime has gone).
    fn listener(&self) -> watch::Receiver<bool> {
        let mut task = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if task.as_ref().is_none_or(JoinHandle::is_finished) {
            self.inner.shared.listening.send_replace(false);
            *task = Some(tokio::spawn(listen(
                Arc::clone(&self.inner.shared),
                self.inner.listen_pool.clone(),
                self.inner.location.clone(),
            )));
        }
        self.inner.shared.listening.subscribe()
    }

    /// Runs `sql` (acknowledge or renew) for the held deliveries among
    /// `ack_ids`, and answers per ack id whether its row came back.
    async fn held_statement(
        &self,
        sql: &'static str,
        queue: &str,
        ack_ids: &[AckId],
        lease_ms: Option<i64>,
    ) -> Result<Vec<bool>, BrokerError> {
        let pairs: Vec<Option<(i64, i64)>> = ack_ids.iter().map(AckId::parts).collect();
        let (ids, tokens): (Vec<i64>, Vec<i64>) = pairs.iter().flatten().copied().unzip();
        if ids.is_empty() {
            return Ok(vec![false; ack_ids.len()]);
        }
        let mut query = sqlx::query_as::<Postgres, (i64, i64)>(sql)
            .bind(ids)
            .bind(tokens)
            .bind(queue);
        if let Some(lease_ms) = lease_ms {
            query = query.bind(lease_ms);
        }
        let rows = query
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))?;
        let mut done: HashSet<(i64, i64)> = rows.into_iter().collect();
        // Each row answers once, should an ack id come twice.
        Ok(pairs
            .iter()
            .map(|pair| pair.is_some_and(|pair| done.remove(&pair)))
            .collect())
    }
}

/// Creates the table and its indexes unless the table exists.
async fn create_schema(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let exists = "SELECT to_regclass('wasq_queue') IS NOT NULL";
    if sqlx::query_scalar::<_, bool>(exists)
        .fetch_one(&mut *conn)
        .await?
    {
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    // Another process may have created it while this one waited.
    if !sqlx::query_scalar::<_, bool>(exists)
        .fetch_one(&mut *tx)
        .await?
    {
        sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
        tracing::info!("created the table wasq_queue");
    }
    tx.commit().await
}

/// The listener task: `LISTEN`s on [`CHANNEL`] and wakes the waiters of the
/// queues notified, reconnecting with backoff whenever the connection is
/// lost. Runs until aborted (when the broker is dropped).
async fn listen(shared: Arc<Shared>, pool: PgPool, location: String) {
    let mut backoff = RELISTEN_MIN;
    let mut lost = false;
    loop {
        match subscribe(&pool).await {
            Ok(mut listener) => {
                if lost {
                    tracing::info!(broker = %location, "listening for new messages again");
                }
                backoff = RELISTEN_MIN;
                shared.lost(true);
                let error = loop {
                    match listener.try_recv().await {
                        Ok(Some(notification)) => shared.notified(notification.payload()),
                        Ok(None) => break "connection lost".to_owned(),
                        Err(e) => break e.to_string(),
                    }
                };
                tracing::warn!(broker = %location, error, "stopped listening for new messages; reconnecting");
                lost = true;
            }
            Err(e) => {
                tracing::debug!(broker = %location, error = %e, "cannot listen for new messages yet")
            }
        }
        shared.lost(false);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RELISTEN_MAX);
    }
}

/// A listener on [`CHANNEL`] that reports a lost connection rather than
/// reconnecting by itself, so that the waiters learn of it at once.
async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// The payload that wakes `queue`'s waiters.
fn notify_payload(queue: &str) -> &str {
    if queue.len() < NOTIFY_MAX { queue } else { "" }
}

/// `lease` in ms, as the statements take it.
fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).map_or(MAX_LEASE_MS, |ms| ms.min(MAX_LEASE_MS))
}

/// `payloads` cut into statements of at most [`CHUNK_ROWS`] rows and
/// [`CHUNK_BYTES`] bytes (one row at least), without copying them.
fn chunks(payloads: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for payload in payloads {
        if !chunk.is_empty() && (chunk.len() == CHUNK_ROWS || bytes + payload.len() > CHUNK_BYTES) {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += payload.len();
        chunk.push(payload);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

impl Broker for PostgresBroker {
    async fn enqueue(&self, queue: &str, payload: Vec<u8>) -> Result<(), BrokerError> {
        self.enqueue_batch(queue, vec![payload]).await
    }

    async fn enqueue_batch(&self, queue: &str, payloads: Vec<Vec<u8>>) -> Result<(), BrokerError> {
        let count = payloads.len();
        let mut chunks = chunks(payloads);
        let notify = notify_payload(queue);
        if chunks.len() <= 1 {
            let Some(chunk) = chunks.pop() else {
                return Ok(());
            };
            sqlx::query(ENQUEUE)
                .bind(queue)
                .bind(chunk)
                .bind(notify)
                .bind(true)
                .execute(&self.inner.pool)
                .await
                .map_err(|e| self.error(e))?;
        } else {
            let last = chunks.len() - 1;
            let mut tx = self.inner.pool.begin().await.map_err(|e| self.error(e))?;
            for (i, chunk) in chunks.into_iter().enumerate() {
                sqlx::query(ENQUEUE)
                    .bind(queue)
                    .bind(chunk)
                    .bind(notify)
                    .bind(i == last)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.error(e))?;
            }
            tx.commit().await.map_err(|e| self.error(e))?;
        }
        tracing::trace!(queue, count, "enqueued");
        Ok(())
    }

    async fn dequeue(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // 63 random bits: a token no earlier delivery of any row had.
        let token = i64::try_from(rand::random::<u64>() >> 1).unwrap_or(i64::MAX);
        let mut rows: Vec<(i64, Vec<u8>, i32)> = sqlx::query_as(DEQUEUE)
            .bind(queue)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(token)
            .bind(lease_ms(lease))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))?;
        rows.sort_unstable_by_key(|row| row.0);
        Ok(rows
            .into_iter()
            .map(|(id, payload, deliveries)| Delivery {
                ack_id: AckId::new(id, token),
                payload,
                deliveries: u32::try_from(deliveries).unwrap_or(0),
            })
            .collect())
    }

    async fn wait(&self, queue: &str, timeout: Duration) {
        let mut listening = self.listener();
        let first = self
            .inner
            .shared
            .waited
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(queue.to_owned());
        if !*listening.borrow_and_update() {
            // Not listening (yet, or since the connection dropped): wait for
            // the listener a little, then let the caller look again, since
            // whatever arrived meanwhile went unnoticed; during an outage
            // callers poll rather than sleep through their whole timeout.
            let _ =
                tokio::time::timeout(timeout.min(UNLISTENED_POLL), listening.wait_for(|on| *on))
                    .await;
            return;
        }
        if first {
            // Notifications of this queue were dropped until now.
            return;
        }
        // Whichever comes first: a notification of the queue, the timeout,
        // or a change of the listener (a lost connection may have lost
        // notifications).
        let mut woken = pin!(self.inner.shared.wakers.wait(queue, timeout));
        let mut changed = pin!(listening.changed());
        let mut sender_gone = false;
        poll_fn(|cx| {
            if woken.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            if !sender_gone {
                match changed.as_mut().poll(cx) {
                    Poll::Ready(Ok(())) => return Poll::Ready(()),
                    Poll::Ready(Err(_)) => sender_gone = true,
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await;
    }

    async fn acknowledge(&self, queue: &str, ack_ids: &[AckId]) -> Result<Vec<bool>, BrokerError> {
        self.held_statement(ACKNOWLEDGE, queue, ack_ids, None).await
    }

    async fn renew(
        &self,
        queue: &str,
        ack_ids: &[AckId],
        lease: Duration,
    ) -> Result<Vec<bool>, BrokerError> {
        self.held_statement(RENEW, queue, ack_ids, Some(lease_ms(lease)))
            .await
    }

    async fn release(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        let Some((id, token)) = ack_id.parts::<i64, i64>() else {
            return Ok(false);
        };
        let rows = sqlx::query(RELEASE)
            .bind(id)
            .bind(token)
            .bind(queue)
            .bind(notify_payload(queue))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(!rows.is_empty())
    }

    async fn delete(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        let Some((id, _)) = ack_id.parts::<i64, i64>() else {
            return Ok(false);
        };
        let done = sqlx::query("DELETE FROM wasq_queue WHERE id = $1 AND queue = $2")
            .bind(id)
            .bind(queue)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64, BrokerError> {
        let done = sqlx::query(PURGE)
            .bind(queue)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(done.rows_affected())
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BrokerError> {
        sqlx::query(DELETE_QUEUE)
            .bind(queue)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn queue_size(&self, queue: &str) -> Result<u64, BrokerError> {
        let n: i64 = sqlx::query_scalar(QUEUE_SIZE)
            .bind(queue)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn lock_size(&self, queue: &str) -> Result<u64, BrokerError> {
        let n: i64 = sqlx::query_scalar(LOCK_SIZE)
            .bind(queue)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn queues(&self) -> Result<Vec<String>, BrokerError> {
        sqlx::query_scalar(QUEUES)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    fn info(&self) -> BrokerInfo {
        BrokerInfo {
            kind: "postgres",
            location: self.inner.location.clone(),
            priorities: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Instant;

    use sqlx::AssertSqlSafe;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// How long something that should happen may take before a test fails.
    const DEADLINE: Duration = Duration::from_secs(30);
    /// A lease that does not run out during a test.
    const LONG: Duration = Duration::from_secs(600);

    /// The server `cargo xtask test` started.
    fn server_url() -> String {
        match std::env::var("WASQ_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => panic!(
                "WASQ_TEST_POSTGRES_URL is not set: run the tests with `cargo xtask test`, which starts PostgreSQL and sets it"
            ),
        }
    }

    /// A name no other test uses, in this process or another.
    fn unique(tag: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!(
            "{tag}-{}-{}-{}",
            std::process::id(),
            rand::random::<u32>(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn broker() -> PostgresBroker {
        PostgresBroker::connect(&server_url()).await.unwrap()
    }

    /// Makes `broker` listen, with `queue` among the queues it wakes, so
    /// that a `wait` from now on sleeps until notified.
    async fn listening(broker: &PostgresBroker, queue: &str) {
        broker.wait(queue, Duration::ZERO).await;
        tokio::time::timeout(DEADLINE, broker.listener().wait_for(|on| *on))
            .await
            .expect("the broker did not start listening")
            .unwrap();
    }

    /// Waits until `check` answers true, failing the test after [`DEADLINE`].
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

    #[tokio::test]
    async fn an_unreachable_server_fails_fast_with_one_line() {
        let url = "postgres://wasq:hunter2@127.0.0.1:1/wasq";
        let error = tokio::time::timeout(DEADLINE, PostgresBroker::connect(url))
            .await
            .expect("connect hung instead of failing")
            .expect_err("connected to port 1");
        assert!(matches!(error, BrokerError::Unreachable(_)), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("`postgres://wasq:***@127.0.0.1:1/wasq`"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        // The same through `connect`.
        let error = crate::connect("postgresql://wasq@127.0.0.1:1/wasq")
            .await
            .err()
            .expect("connected to port 1");
        assert!(matches!(error, BrokerError::Unreachable(_)), "{error:?}");
    }

    #[tokio::test]
    async fn bad_urls_say_what_is_wrong() {
        for url in [
            "postgres://wasq:hunter2@db:port/wasq",
            "postgres://wasq:hunter2@db/wasq?sslmode=sometimes",
            "postgres://wasq:hunter2@[::1/wasq",
        ] {
            let error = PostgresBroker::connect(url).await.expect_err(url);
            let BrokerError::BadUrl { url: shown, reason } = &error else {
                panic!("{url}: {error:?}");
            };
            assert!(shown.contains("wasq:***@"), "{shown}");
            assert!(!reason.is_empty());
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn batches_are_cut_by_rows_and_bytes() {
        let sizes = |chunks: Vec<Vec<Vec<u8>>>| chunks.iter().map(Vec::len).collect::<Vec<_>>();
        assert!(chunks(Vec::new()).is_empty());
        assert_eq!(sizes(chunks(vec![Vec::new(); 3])), [3]);
        assert_eq!(
            sizes(chunks(vec![Vec::new(); 2 * CHUNK_ROWS + 1])),
            [CHUNK_ROWS, CHUNK_ROWS, 1]
        );
        let big = CHUNK_BYTES / 2 + 1;
        assert_eq!(sizes(chunks(vec![vec![0; big]; 3])), [1, 1, 1]);
        assert_eq!(
            sizes(chunks(vec![vec![0; CHUNK_BYTES * 2], vec![0]])),
            [1, 1]
        );
        assert_eq!(notify_payload("q"), "q");
        assert_eq!(notify_payload(&"q".repeat(NOTIFY_MAX)), "");
        assert_eq!(lease_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(lease_ms(Duration::MAX), MAX_LEASE_MS);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_notification_wakes_a_waiter_of_another_broker() {
        let (a, b) = (broker().await, broker().await);
        let q = unique("wake");
        listening(&a, &q).await;

        // An enqueue from the other broker wakes a wait far shorter than
        // its timeout.
        let waiter = {
            let (a, q) = (a.clone(), q.clone());
            tokio::spawn(async move { a.wait(&q, LONG).await })
        };
        b.enqueue_batch(&q, vec![b"1".to_vec(), b"2".to_vec()])
            .await
            .unwrap();
        tokio::time::timeout(DEADLINE, waiter)
            .await
            .expect("the enqueue did not wake the waiter")
            .unwrap();
        let got = a.dequeue(&q, 10, LONG).await.unwrap();
        assert_eq!(got.len(), 2);

        // So does a release.
        let waiter = {
            let (a, q) = (a.clone(), q.clone());
            tokio::spawn(async move { a.wait(&q, LONG).await })
        };
        assert!(b.release(&q, &got[0].ack_id).await.unwrap());
        tokio::time::timeout(DEADLINE, waiter)
            .await
            .expect("the release did not wake the waiter")
            .unwrap();
        assert_eq!(b.delete_queue(&q).await.unwrap(), ());
    }

    /// A schema of its own on the test server, and the server's URL with
    /// that schema first on the search path: brokers of that URL start
    /// without a table.
    struct Scratch {
        admin: PostgresBroker,
        schema: String,
        url: String,
    }

    impl Scratch {
        async fn new(tag: &str) -> Self {
            let admin = broker().await;
            let schema = unique(tag).replace('-', "_");
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
                .execute(&admin.inner.pool)
                .await
                .unwrap();
            let url = server_url();
            let sep = if url.contains('?') { '&' } else { '?' };
            let url = format!("{url}{sep}options[search_path]={schema}");
            Self { admin, schema, url }
        }

        async fn drop_schema(self) {
            let drop = format!("DROP SCHEMA \"{}\" CASCADE", self.schema);
            sqlx::raw_sql(AssertSqlSafe(drop))
                .execute(&self.admin.inner.pool)
                .await
                .unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn brokers_connecting_at_once_create_the_table_once() {
        let scratch = Scratch::new("wasq_race").await;
        let brokers: Vec<_> = (0..8)
            .map(|_| {
                let url = scratch.url.clone();
                tokio::spawn(async move { PostgresBroker::connect(&url).await })
            })
            .collect();
        let mut connected = Vec::new();
        for broker in brokers {
            connected.push(broker.await.unwrap().unwrap());
        }
        let q = unique("race");
        connected[0].enqueue(&q, b"x".to_vec()).await.unwrap();
        assert_eq!(connected[7].queue_size(&q).await.unwrap(), 1);
        assert_eq!(
            scratch.admin.queue_size(&q).await.unwrap(),
            0,
            "another table"
        );
        scratch.drop_schema().await;
    }

    #[tokio::test]
    async fn big_batches_keep_their_order() {
        let broker = broker().await;
        let q = unique("big-batch");
        let many: Vec<Vec<u8>> = (0..CHUNK_ROWS + 5)
            .map(|i| i.to_string().into_bytes())
            .collect();
        broker.enqueue_batch(&q, many.clone()).await.unwrap();
        let heavy: Vec<Vec<u8>> = (0..3_u8).map(|i| vec![i; CHUNK_BYTES / 2 + 1]).collect();
        broker.enqueue_batch(&q, heavy.clone()).await.unwrap();
        let got = broker.dequeue(&q, CHUNK_ROWS + 100, LONG).await.unwrap();
        let want: Vec<Vec<u8>> = many.into_iter().chain(heavy).collect();
        assert!(
            got.iter().map(|d| &d.payload).eq(want.iter()),
            "out of order or lost"
        );
        broker.delete_queue(&q).await.unwrap();
    }

    #[tokio::test]
    async fn hot_paths_use_the_indexes() {
        // A table of its own: 50 queues of 200 messages, some leased, some
        // of those leases expired.
        let scratch = Scratch::new("wasq_plans").await;
        let broker = PostgresBroker::connect(&scratch.url).await.unwrap();
        let mut conn = broker.inner.pool.acquire().await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO wasq_queue (queue, payload, visible_at, lease_token, enqueued_at)
             SELECT 'q' || (i % 50), '\\x00', now() + (i % 7 - 3) * interval '1 hour',
                    CASE WHEN i % 3 = 0 THEN i END, now()
             FROM generate_series(1, 10000) AS i;
             ANALYZE wasq_queue;
             SET plan_cache_mode = force_generic_plan",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        for (sql, types, params, index) in [
            (
                DEQUEUE,
                "text, bigint, bigint, bigint",
                "'q1', 10, 1, 1",
                "wasq_queue_ready",
            ),
            (
                DEQUEUE,
                "text, bigint, bigint, bigint",
                "'q1', 10, 1, 1",
                "wasq_queue_leased",
            ),
            (
                ACKNOWLEDGE,
                "bigint[], bigint[], text",
                "'{1}', '{1}', 'q1'",
                "wasq_queue_pkey",
            ),
            (
                RENEW,
                "bigint[], bigint[], text, bigint",
                "'{1}', '{1}', 'q1', 1",
                "wasq_queue_pkey",
            ),
            (QUEUE_SIZE, "text", "'q1'", "wasq_queue_leased"),
            (LOCK_SIZE, "text", "'q1'", "wasq_queue_leased"),
        ] {
            // The plan a prepared statement ends up with, for any queue.
            let prepare = format!("PREPARE wasq_plan({types}) AS {sql}");
            sqlx::raw_sql(AssertSqlSafe(prepare))
                .execute(&mut *conn)
                .await
                .unwrap();
            let explain = format!("EXPLAIN EXECUTE wasq_plan({params})");
            let lines: Vec<String> = sqlx::query_scalar(AssertSqlSafe(explain))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            let plan = lines.join("\n");
            assert!(plan.contains(index), "{sql}\n{plan}");
            assert!(!plan.contains("Seq Scan"), "{sql}\n{plan}");
            sqlx::raw_sql("DEALLOCATE wasq_plan")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        drop(conn);
        broker.close().await;
        scratch.drop_schema().await;
    }

    /// A TCP proxy in front of the server that can drop every connection
    /// and refuse new ones, as a server restart or a network cut would.
    struct Proxy {
        port: u16,
        up: Arc<AtomicBool>,
        connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
        accept: JoinHandle<()>,
    }

    impl Proxy {
        async fn start(upstream: (String, u16)) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let up = Arc::new(AtomicBool::new(true));
            let connections = Arc::new(Mutex::new(Vec::new()));
            let accept = tokio::spawn({
                let (up, connections) = (up.clone(), connections.clone());
                async move {
                    while let Ok((mut inbound, _)) = listener.accept().await {
                        if !up.load(Ordering::SeqCst) {
                            continue; // dropped: closed at once
                        }
                        let upstream = upstream.clone();
                        let task = tokio::spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                            }
                        });
                        connections.lock().unwrap().push(task);
                    }
                }
            });
            Self {
                port,
                up,
                connections,
                accept,
            }
        }

        fn down(&self) {
            self.up.store(false, Ordering::SeqCst);
            for task in self.connections.lock().unwrap().drain(..) {
                task.abort();
            }
        }

        fn up(&self) {
            self.up.store(true, Ordering::SeqCst);
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.down();
            self.accept.abort();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_server_fails_calls_fast_and_is_found_again() {
        let url = server_url();
        let options = PgConnectOptions::from_str(&url).unwrap();
        let proxy = Proxy::start((options.get_host().to_owned(), options.get_port())).await;
        // The same URL, through the proxy.
        let (scheme, rest) = url.split_once("://").unwrap();
        let at = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(at);
        let user = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"));
        let proxied = format!(
            "{scheme}://{}127.0.0.1:{}{tail}",
            user.unwrap_or_default(),
            proxy.port
        );
        let other = broker().await;
        let broker = PostgresBroker::connect(&proxied).await.unwrap();
        let q = unique("lost");
        broker.enqueue(&q, b"before".to_vec()).await.unwrap();
        listening(&broker, &q).await;

        // Down: a waiter wakes (notifications may be lost), and calls fail
        // rather than hang.
        let waiter = {
            let (broker, q) = (broker.clone(), q.clone());
            tokio::spawn(async move { broker.wait(&q, LONG).await })
        };
        proxy.down();
        tokio::time::timeout(DEADLINE, waiter)
            .await
            .expect("losing the listener did not wake the waiter")
            .unwrap();
        let error = tokio::time::timeout(DEADLINE, broker.queue_size(&q))
            .await
            .expect("a call hung while the server was away")
            .expect_err("a call succeeded while the server was away");
        assert!(
            matches!(error, BrokerError::Unreachable(_) | BrokerError::Backend(_)),
            "{error:?}"
        );
        assert!(
            tokio::time::timeout(DEADLINE, broker.enqueue(&q, b"lost".to_vec()))
                .await
                .expect("a call hung while the server was away")
                .is_err()
        );

        // Up again: calls succeed, and the listener listens again.
        proxy.up();
        eventually("calls succeed again", || async {
            broker.queue_size(&q).await.is_ok()
        })
        .await;
        assert_eq!(broker.queue_size(&q).await.unwrap(), 1);
        listening(&broker, &q).await;
        let waiter = {
            let (broker, q) = (broker.clone(), q.clone());
            tokio::spawn(async move { broker.wait(&q, LONG).await })
        };
        other.enqueue(&q, b"after".to_vec()).await.unwrap();
        tokio::time::timeout(DEADLINE, waiter)
            .await
            .expect("the listener did not listen again")
            .unwrap();
        let got = broker.dequeue(&q, 10, LONG).await.unwrap();
        assert_eq!(
            got.into_iter().map(|d| d.payload).collect::<Vec<_>>(),
            [b"before".to_vec(), b"after".to_vec()]
        );
        broker.delete_queue(&q).await.unwrap();
    }

    #[tokio::test]
    async fn dropping_the_broker_stops_the_listener() {
        let broker = broker().await;
        let q = unique("drop");
        listening(&broker, &q).await;
        let mut state = broker.listener();
        drop(broker);
        // The task held the only other sender handle: it ends with it.
        tokio::time::timeout(DEADLINE, async { while state.changed().await.is_ok() {} })
            .await
            .expect("the listener outlived its broker");
    }
}
