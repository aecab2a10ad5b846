//! `sqlite://PATH`: queues in one SQLite file (table `wasq_queue`), shared
//! by the processes of one machine — a cluster and the commands that
//! enqueue tasks.
//!
//! Every message is a row. A visible row has no `lease_token`; a leased row
//! has the token of the delivery holding it and, in `visible_at`, the unix
//! time (ms) its lease ends. Leases run out lazily: a leased row whose
//! `visible_at` has passed counts as visible, and the next dequeue takes it
//! with a new token, so the old delivery's ack id (`"<id>:<token>"`) no
//! longer matches anything. Each operation is one statement, or one
//! `BEGIN IMMEDIATE` transaction, so concurrent processes never take the
//! same row; writers queue on SQLite's lock (`busy_timeout`) instead of
//! failing.
//!
//! Two partial indexes keep the hot paths short whatever the backlog:
//! `wasq_queue_ready_priority (queue, priority DESC, id) WHERE lease_token
//! IS NULL` gives the visible rows of the highest priority, oldest first,
//! directly, and `wasq_queue_leased (queue, visible_at)
//! WHERE lease_token IS NOT NULL` the expired leases.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite};

use crate::file_watch::FileWatch;
use crate::{AckId, Broker, BrokerError, BrokerInfo, Delivery};

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections per process. SQLite has one writer at a time anyway.
const POOL_SIZE: u32 = 4;
/// Setup attempts (100 ms apart) while another process initialises the file.
const SETUP_RETRIES: u32 = 50;

/// SQLITE_BUSY: another connection holds the lock.
fn is_busy(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("5"))
}

/// The table, created on open if missing.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS wasq_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    payload BLOB NOT NULL,
    visible_at INTEGER NOT NULL,
    lease_token INTEGER,
    deliveries INTEGER NOT NULL DEFAULT 0,
    enqueued_at INTEGER NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0
);
";

/// Files made before priorities lack the column.
const ADD_PRIORITY: &str = "ALTER TABLE wasq_queue ADD COLUMN priority INTEGER NOT NULL DEFAULT 0";

/// The indexes, after the table has every column; idempotent. The ready
/// index replaces the one without priority of older files.
const INDEXES: &str = "
DROP INDEX IF EXISTS wasq_queue_ready;
CREATE INDEX IF NOT EXISTS wasq_queue_ready_priority ON wasq_queue (queue, priority DESC, id) WHERE lease_token IS NULL;
CREATE INDEX IF NOT EXISTS wasq_queue_leased ON wasq_queue (queue, visible_at) WHERE lease_token IS NOT NULL;
";

/// Leases up to ?5 visible rows of queue ?3 (oldest first) with token ?1
/// until ?2; ?4 is now. One statement: SQLite runs it under the write lock.
const DEQUEUE: &str = "
UPDATE wasq_queue SET lease_token = ?1, visible_at = ?2, deliveries = deliveries + 1
WHERE id IN (
    SELECT id FROM (
        SELECT id, priority FROM (
            SELECT id, priority FROM wasq_queue WHERE queue = ?3 AND lease_token IS NULL
            ORDER BY priority DESC, id LIMIT ?5
        )
        UNION ALL
        SELECT id, priority FROM (
            SELECT id, priority FROM wasq_queue
            WHERE queue = ?3 AND lease_token IS NOT NULL AND visible_at <= ?4
            ORDER BY id LIMIT ?5
        )
    )
    ORDER BY priority DESC, id LIMIT ?5
)
RETURNING id, payload, deliveries, priority";

/// The rows of queue ?2 held by the deliveries of ?1, a JSON array of
/// `[id, token]` pairs. `CROSS JOIN` keeps the pairs as the outer loop and
/// `NOT INDEXED` leaves the rowid as the only way into `wasq_queue`: one
/// primary-key lookup per pair, whatever the planner guesses.
const HELD: &str = "
    SELECT q.id FROM json_each(?1) AS a
    CROSS JOIN wasq_queue AS q NOT INDEXED
    ON q.id = a.value ->> 0 AND q.lease_token = a.value ->> 1
    WHERE q.queue = ?2";

static ACKNOWLEDGE: LazyLock<String> = LazyLock::new(|| {
    format!("DELETE FROM wasq_queue WHERE id IN ({HELD}) RETURNING id, lease_token")
});

static RENEW: LazyLock<String> = LazyLock::new(|| {
    format!("UPDATE wasq_queue SET visible_at = ?3 WHERE id IN ({HELD}) RETURNING id, lease_token")
});

/// Sizes of the multi-row inserts of enqueue_batch, largest first: a batch
/// is cut into these, so only this many statements are ever prepared.
const INSERT_SIZES: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];

/// `INSERT` statements of `INSERT_SIZES` rows: queue ?1, now ?2, payloads
/// from ?3.
static INSERTS: LazyLock<Vec<(usize, Arc<str>)>> = LazyLock::new(|| {
    INSERT_SIZES
        .iter()
        .map(|&rows| {
            let mut sql = String::from("INSERT INTO wasq_queue (queue, payload, visible_at, deliveries, enqueued_at) VALUES ");
            for row in 0..rows {
                let sep = if row == 0 { "" } else { ", " };
                let _ = write!(sql, "{sep}(?1, ?{}, ?2, 0, ?2)", row + 3);
            }
            (rows, Arc::from(sql))
        })
        .collect()
});

/// A broker in one SQLite file. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct SqliteBroker {
    pool: SqlitePool,
    path: PathBuf,
    /// Writes to the file by any process (Linux); `None`: [`Broker::wait`]
    /// sleeps its timeout.
    watch: Option<Arc<FileWatch>>,
}

impl SqliteBroker {
    /// Opens the broker in the SQLite file at `path`, creating the file
    /// and its parent directories if missing, and the table if the file
    /// has none.
    ///
    /// # Errors
    ///
    /// [`BrokerError::Unreachable`], naming the path and the reason, when
    /// the file cannot be created or opened.
    /// Opens the pool and creates the schema.
    async fn setup(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
        let pool = crate::sqlite_pool::discard_unfinished_transactions(SqlitePoolOptions::new())
            .max_connections(POOL_SIZE)
            .acquire_timeout(BUSY_TIMEOUT * 3)
            .connect_with(options)
            .await?;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
        let has_priority: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_table_info('wasq_queue') WHERE name = 'priority'",
        )
        .fetch_one(&mut *tx)
        .await?;
        if has_priority == 0 {
            sqlx::raw_sql(ADD_PRIORITY).execute(&mut *tx).await?;
        }
        sqlx::raw_sql(INDEXES).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(pool)
    }

    pub async fn open(path: impl AsRef<Path>) -> Result<Self, BrokerError> {
        let path = path.as_ref();
        let shown = path.display();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::private::create_private_dir(parent).map_err(|e| {
                BrokerError::Unreachable(format!(
                    "cannot create the directory `{}` of the SQLite broker: {e}",
                    parent.display()
                ))
            })?;
        }
        // SQLite only says "unable to open database file"; the OS says why.
        // Made 0600 before SQLite opens it, so its -wal and -shm are too.
        crate::private::create_private_file(path).map_err(|e| {
            BrokerError::Unreachable(format!("cannot open the SQLite broker `{shown}`: {e}"))
        })?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);
        let unreachable = |e: sqlx::Error| {
            BrokerError::Unreachable(format!("cannot open the SQLite broker `{shown}`: {e}"))
        };
        // Two processes opening a new file at once (a cluster and an
        // `enqueue`) can find it locked while the other switches it to WAL
        // and creates the schema; the busy timeout does not cover that step,
        // so setup is retried for a few seconds.
        let mut attempt = 0;
        let pool = loop {
            match Self::setup(options.clone()).await {
                Ok(pool) => break pool,
                Err(e) if is_busy(&e) && attempt < SETUP_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(unreachable(e)),
            }
        };
        if let Err(error) = crate::private::tighten_sqlite_files(path) {
            tracing::warn!(%error, "cannot make the SQLite broker's files private");
        }
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        tracing::debug!(path = %path.display(), "SQLite broker open");
        let watch = FileWatch::new(&path).map(Arc::new);
        if watch.is_none() {
            tracing::debug!("no inotify watch on the SQLite broker: waits poll");
        }
        Ok(Self { pool, path, watch })
    }

    /// Closes the connections (checkpointing the write-ahead log). Further
    /// operations fail with [`BrokerError::Unreachable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The `RETURNING id, lease_token` rows of `sql` run with the held
    /// deliveries among `ack_ids`, turned into one answer per ack id.
    async fn held_statement(
        &self,
        sql: &str,
        queue: &str,
        ack_ids: &[AckId],
        lease_until: Option<i64>,
    ) -> Result<Vec<bool>, BrokerError> {
        let pairs: Vec<Option<(i64, i64)>> = ack_ids.iter().map(AckId::parts).collect();
        let mut json = String::from("[");
        for (id, token) in pairs.iter().flatten() {
            let sep = if json.len() == 1 { "" } else { "," };
            let _ = write!(json, "{sep}[{id},{token}]");
        }
        json.push(']');
        if json.len() == 2 {
            return Ok(vec![false; ack_ids.len()]);
        }
        let mut query = sqlx::query_as::<Sqlite, (i64, i64)>(AssertSqlSafe(sql))
            .bind(json)
            .bind(queue);
        if let Some(until) = lease_until {
            query = query.bind(until);
        }
        let mut done = query.fetch_all(&self.pool).await.map_err(backend)?;
        Ok(pairs
            .iter()
            .map(|pair| {
                let Some(pair) = pair else { return false };
                // Each row answers once, should an ack id come twice.
                match done.iter().position(|row| row == pair) {
                    Some(at) => {
                        done.swap_remove(at);
                        true
                    }
                    None => false,
                }
            })
            .collect())
    }
}

impl Broker for SqliteBroker {
    async fn enqueue(&self, queue: &str, payload: Vec<u8>) -> Result<(), BrokerError> {
        let now = now_ms();
        let Some((_, sql)) = INSERTS.last() else {
            return Err(BrokerError::Backend("no insert statement".into()));
        };
        sqlx::query(AssertSqlSafe(Arc::clone(sql)))
            .bind(queue)
            .bind(now)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn enqueue_batch(
        &self,
        queue: &str,
        mut payloads: Vec<Vec<u8>>,
    ) -> Result<(), BrokerError> {
        if payloads.len() <= 1 {
            return match payloads.pop() {
                Some(payload) => Broker::enqueue(self, queue, payload).await,
                None => Ok(()),
            };
        }
        let now = now_ms();
        let count = payloads.len();
        let mut payloads = payloads.into_iter();
        let mut left = count;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        for (rows, sql) in INSERTS.iter() {
            while left >= *rows {
                let mut query = sqlx::query(AssertSqlSafe(Arc::clone(sql)))
                    .bind(queue)
                    .bind(now);
                for payload in payloads.by_ref().take(*rows) {
                    query = query.bind(payload);
                }
                query.execute(&mut *tx).await.map_err(backend)?;
                left -= rows;
            }
        }
        tx.commit().await.map_err(backend)?;
        tracing::trace!(queue, count, "enqueued");
        Ok(())
    }

    async fn enqueue_priority(
        &self,
        queue: &str,
        priority: i32,
        payloads: Vec<Vec<u8>>,
    ) -> Result<(), BrokerError> {
        crate::check_priority(priority)?;
        if priority == 0 {
            return Broker::enqueue_batch(self, queue, payloads).await;
        }
        let now = now_ms();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        for payload in payloads {
            sqlx::query(
                "INSERT INTO wasq_queue (queue, payload, visible_at, deliveries, enqueued_at, priority)
                 VALUES (?1, ?2, ?3, 0, ?3, ?4)",
            )
            .bind(queue)
            .bind(payload)
            .bind(now)
            .bind(i64::from(priority))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
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
        let now = now_ms();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        // 63 random bits: a token no earlier delivery of any row had.
        let token = i64::try_from(rand::random::<u64>() >> 1).unwrap_or(i64::MAX);
        let mut rows: Vec<(i64, Vec<u8>, i64, i64)> = sqlx::query_as(DEQUEUE)
            .bind(token)
            .bind(until)
            .bind(queue)
            .bind(now)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.sort_unstable_by_key(|row| (std::cmp::Reverse(row.3), row.0));
        Ok(rows
            .into_iter()
            .map(|(id, payload, deliveries, _)| Delivery {
                ack_id: AckId::new(id, token),
                payload,
                deliveries: u32::try_from(deliveries).unwrap_or(u32::MAX),
            })
            .collect())
    }

    async fn acknowledge(&self, queue: &str, ack_ids: &[AckId]) -> Result<Vec<bool>, BrokerError> {
        self.held_statement(&ACKNOWLEDGE, queue, ack_ids, None)
            .await
    }

    async fn renew(
        &self,
        queue: &str,
        ack_ids: &[AckId],
        lease: Duration,
    ) -> Result<Vec<bool>, BrokerError> {
        let until = now_ms().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        self.held_statement(&RENEW, queue, ack_ids, Some(until))
            .await
    }

    async fn release(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        let Some((id, token)) = ack_id.parts::<i64, i64>() else {
            return Ok(false);
        };
        let done = sqlx::query(
            "UPDATE wasq_queue SET lease_token = NULL, visible_at = ?4 WHERE id = ?1 AND lease_token = ?2 AND queue = ?3",
        )
        .bind(id)
        .bind(token)
        .bind(queue)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        let Some((id, _)) = ack_id.parts::<i64, i64>() else {
            return Ok(false);
        };
        let done = sqlx::query("DELETE FROM wasq_queue WHERE id = ?1 AND queue = ?2")
            .bind(id)
            .bind(queue)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64, BrokerError> {
        let done = sqlx::query(
            "DELETE FROM wasq_queue WHERE id IN (
                SELECT id FROM wasq_queue WHERE queue = ?1 AND lease_token IS NULL
                UNION ALL
                SELECT id FROM wasq_queue WHERE queue = ?1 AND lease_token IS NOT NULL AND visible_at <= ?2
            )",
        )
        .bind(queue)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BrokerError> {
        sqlx::query(
            "DELETE FROM wasq_queue WHERE id IN (
                SELECT id FROM wasq_queue WHERE queue = ?1 AND lease_token IS NULL
                UNION ALL
                SELECT id FROM wasq_queue WHERE queue = ?1 AND lease_token IS NOT NULL
            )",
        )
        .bind(queue)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn queue_size(&self, queue: &str) -> Result<u64, BrokerError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM wasq_queue WHERE queue = ?1 AND lease_token IS NULL)
                  + (SELECT COUNT(*) FROM wasq_queue WHERE queue = ?1 AND lease_token IS NOT NULL AND visible_at <= ?2)",
        )
        .bind(queue)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn lock_size(&self, queue: &str) -> Result<u64, BrokerError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM wasq_queue WHERE queue = ?1 AND lease_token IS NOT NULL AND visible_at > ?2",
        )
        .bind(queue)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn queues(&self) -> Result<Vec<String>, BrokerError> {
        sqlx::query_scalar(
            "SELECT queue FROM wasq_queue WHERE lease_token IS NULL
             UNION
             SELECT queue FROM wasq_queue WHERE lease_token IS NOT NULL
             ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Until the file is written by any process (an enqueue, but also
    /// results or a heartbeat: waking early is allowed), at most `timeout`.
    async fn wait(&self, queue: &str, timeout: Duration) {
        let _ = queue;
        match &self.watch {
            Some(watch) => {
                let _ = tokio::time::timeout(timeout, watch.changed()).await;
            }
            None => tokio::time::sleep(timeout).await,
        }
    }

    fn info(&self) -> BrokerInfo {
        BrokerInfo {
            kind: "sqlite",
            location: self.path.display().to_string(),
            priorities: true,
        }
    }
}

/// Unix time in ms.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn backend(e: sqlx::Error) -> BrokerError {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_) => BrokerError::Unreachable(format!("SQLite: {e}")),
        e => BrokerError::Backend(format!("SQLite: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn broker() -> (tempfile::TempDir, SqliteBroker) {
        let dir = tempfile::tempdir().unwrap();
        let broker = SqliteBroker::open(dir.path().join("a/b/q.db"))
            .await
            .unwrap();
        (dir, broker)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wait_ends_when_another_connection_enqueues() {
        let (dir, consumer) = broker().await;
        let producer = SqliteBroker::open(dir.path().join("a/b/q.db"))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let waiting = tokio::spawn(async move {
            consumer
                .dequeue_wait("q", 10, Duration::from_secs(60), Duration::from_secs(60))
                .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        producer.enqueue("q", b"hello".to_vec()).await.unwrap();
        let taken = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("the wait ended with the enqueue, not its 60 s timeout")
            .unwrap()
            .unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].payload, b"hello");
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[tokio::test]
    async fn hot_paths_use_the_indexes() {
        let (_dir, broker) = broker().await;
        // Without ANALYZE, as in real use, on a table with both kinds of rows.
        broker
            .enqueue_batch("q", vec![vec![0; 64]; 3000])
            .await
            .unwrap();
        broker
            .enqueue_batch("other", vec![vec![0; 64]; 3000])
            .await
            .unwrap();
        broker
            .dequeue("q", 1000, Duration::from_secs(60))
            .await
            .unwrap();
        broker.dequeue("other", 1000, Duration::ZERO).await.unwrap();
        let plan = |sql: &str| {
            let sql = format!("EXPLAIN QUERY PLAN {sql}");
            let pool = broker.pool.clone();
            async move {
                let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind("[[1,2]]")
                    .bind("q")
                    .bind(0)
                    .bind(0)
                    .bind(1)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
            }
        };
        let dequeue = plan(DEQUEUE).await;
        assert!(
            dequeue.contains("SEARCH wasq_queue USING INDEX wasq_queue_ready_priority (queue=?)"),
            "{dequeue}"
        );
        assert!(
            dequeue.contains(
                "SEARCH wasq_queue USING INDEX wasq_queue_leased (queue=? AND visible_at<?)"
            ),
            "{dequeue}"
        );
        assert!(!dequeue.contains("SCAN wasq_queue"), "{dequeue}");
        for sql in [ACKNOWLEDGE.as_str(), RENEW.as_str()] {
            let held = plan(sql).await;
            assert!(held.contains("SCAN a VIRTUAL TABLE"), "{held}");
            assert!(
                held.contains("SEARCH q USING INTEGER PRIMARY KEY (rowid=?)"),
                "{held}"
            );
            assert!(
                !held.contains("SCAN q") && !held.contains("USING INDEX"),
                "{held}"
            );
        }
    }

    #[tokio::test]
    async fn batches_of_every_size_keep_their_order() {
        let (_dir, broker) = broker().await;
        for n in [2_usize, 3, 255, 256, 257, 700] {
            let queue = format!("q{n}");
            let payloads: Vec<Vec<u8>> = (0..n).map(|i| i.to_string().into_bytes()).collect();
            broker
                .enqueue_batch(&queue, payloads.clone())
                .await
                .unwrap();
            let got = broker
                .dequeue(&queue, n + 10, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(
                got.into_iter().map(|d| d.payload).collect::<Vec<_>>(),
                payloads
            );
        }
    }

    #[tokio::test]
    async fn reopening_keeps_the_messages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let first = SqliteBroker::open(&path).await.unwrap();
        first.enqueue("q", b"kept".to_vec()).await.unwrap();
        first.close().await;
        assert!(matches!(
            first.queue_size("q").await,
            Err(BrokerError::Unreachable(_))
        ));
        let second = SqliteBroker::open(&path).await.unwrap();
        let got = second
            .dequeue("q", 5, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, b"kept");
        assert_eq!(
            second.info().location,
            std::path::absolute(&path).unwrap().display().to_string()
        );
    }

    #[tokio::test]
    async fn an_expired_lease_is_still_held_until_taken_again() {
        let (_dir, broker) = broker().await;
        broker.enqueue("q", b"a".to_vec()).await.unwrap();
        let d = broker
            .dequeue("q", 1, Duration::ZERO)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(broker.queue_size("q").await.unwrap(), 1);
        assert_eq!(broker.lock_size("q").await.unwrap(), 0);
        assert_eq!(
            broker
                .renew(
                    "q",
                    std::slice::from_ref(&d.ack_id),
                    Duration::from_secs(60)
                )
                .await
                .unwrap(),
            [true]
        );
        assert_eq!(broker.lock_size("q").await.unwrap(), 1);
        // Twice the same ack id: the row answers once.
        assert_eq!(
            broker
                .acknowledge("q", &[d.ack_id.clone(), d.ack_id])
                .await
                .unwrap(),
            [true, false]
        );
    }
}
