//! The two databases behind the store: opening each (with its connection
//! settings and migrations), the statements that differ between them, and
//! [`Columns`], reading a row of either the same way.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Postgres, Row, Sqlite, Transaction};

use wasq_core::time::now_ms;

use crate::error::{StoreError, unreachable};
use crate::schema;

/// How long a store operation waits for a connection (a server that is
/// down answers within this).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening a PostgreSQL store waits for the server to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections per process to a PostgreSQL store.
const POSTGRES_POOL: u32 = 8;
/// Lock key that serialises migrations of a PostgreSQL store between
/// processes ("wasq" in ASCII).
const MIGRATION_LOCK: i64 = 0x7761_7371;

/// A store's database.
#[derive(Debug, Clone)]
pub(super) enum Backend {
    /// One SQLite file.
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

impl Backend {
    /// Opens the database `url` names and migrates it.
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return sqlite(url, path).await;
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return postgres(url).await;
        }
        Err(StoreError::BadUrl(wasq_brokers::redact(url)))
    }
}

async fn sqlite(url: &str, path: &str) -> Result<Backend, StoreError> {
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() {
        return Err(StoreError::BadUrl(url.to_owned()));
    }
    if let Some(parent) = std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        wasq_brokers::private::create_private_dir(parent)
            .map_err(|e| unreachable(url, format!("cannot create {}: {e}", parent.display())))?;
    }
    // The store holds results, keys and grant values: 0600 before SQLite
    // opens it (its -wal and -shm take its mode), whatever the umask.
    let db = std::path::Path::new(path);
    let in_memory = path == ":memory:" || url.contains("mode=memory");
    if !in_memory {
        wasq_brokers::private::create_private_file(db)
            .map_err(|e| unreachable(url, format!("cannot create {path}: {e}")))?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|e| unreachable(url, e))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    // Another process may be initialising the same new file (switching it
    // to WAL, migrating); the busy timeout does not cover that step, so
    // setup is retried for a few seconds.
    let mut attempt = 0;
    loop {
        match sqlite_setup(options.clone()).await {
            Ok(pool) => {
                if !in_memory && let Err(error) = wasq_brokers::private::tighten_sqlite_files(db) {
                    tracing::warn!(%error, "cannot make the store's files private");
                }
                return Ok(Backend::Sqlite(pool));
            }
            Err(e) if is_busy(&e) && attempt < 50 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(unreachable(url, e)),
        }
    }
}

async fn sqlite_setup(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let pool = wasq_brokers::sqlite_pool::discard_unfinished_transactions(SqlitePoolOptions::new())
        .max_connections(4)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    migrate_sqlite(&mut tx).await?;
    tx.commit().await?;
    Ok(pool)
}

/// SQLITE_BUSY: another connection holds the lock.
fn is_busy(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("5"))
}

async fn postgres(url: &str) -> Result<Backend, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Unreachable {
        url: wasq_brokers::redact(url),
        reason: format!("cannot read the URL: {e}"),
    })?;
    // One plain connection first: the pool would retry a refused
    // connection until its acquire timeout, and a store that is down
    // should be named at once.
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| unreachable(url, format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| unreachable(url, e))?;
    let _ = probe.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(POSTGRES_POOL)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A pooled connection may have died with a server restart; check
        // before use rather than fail the operation.
        .test_before_acquire(true)
        .connect_with(options)
        .await
        .map_err(|e| unreachable(url, e))?;
    let mut tx = pool.begin().await.map_err(|e| unreachable(url, e))?;
    migrate_postgres(&mut tx).await?;
    tx.commit().await?;
    Ok(Backend::Postgres(pool))
}

/// Applies the migrations of `$migrations` not yet applied, in
/// transaction `$tx`: the same steps on both databases, compiled once per
/// transaction type.
macro_rules! apply_migrations {
    ($tx:expr, $migrations:expr) => {{
        let tx = $tx;
        sqlx::query(schema::MIGRATIONS_TABLE)
            .execute(&mut **tx)
            .await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM wasq_store_migrations")
                .fetch_one(&mut **tx)
                .await?;
        for (version, sql) in $migrations {
            if done.is_some_and(|d| d >= *version) {
                continue;
            }
            // The migrations are constants of this crate, not input.
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut **tx)
                .await?;
            sqlx::query("INSERT INTO wasq_store_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now_ms())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }};
}

/// Applies the SQLite migrations not yet applied, inside `BEGIN IMMEDIATE`
/// (so two processes never migrate at once).
async fn migrate_sqlite(tx: &mut Transaction<'_, Sqlite>) -> Result<(), sqlx::Error> {
    apply_migrations!(tx, schema::SQLITE)
}

/// Applies the PostgreSQL migrations not yet applied, under an advisory
/// lock (concurrent `CREATE TABLE`s race in PostgreSQL).
async fn migrate_postgres(tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut **tx)
        .await?;
    apply_migrations!(tx, schema::POSTGRES)
}

/// One result (SQLite: a prepared statement per row is cheap in-process).
pub(super) const INSERT_RESULT: &str = "
INSERT INTO wasq_results (id, module, module_name, task, input, queue, grp, outcome,
    success, result, stderr, error, fuel, cpu_us, wall_us, memory_peak, attempts, enqueued_at,
    started_at, stopped_at, cluster, attempt_log, record)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
    $22, $23)
ON CONFLICT (id) DO NOTHING";

/// A batch of results in one statement, one array per column; answers the
/// ids actually inserted (PostgreSQL).
pub(super) const INSERT_RESULTS_PG: &str = "
INSERT INTO wasq_results (id, module, module_name, task, input, queue, grp, outcome,
    success, result, stderr, error, fuel, cpu_us, wall_us, memory_peak, attempts, enqueued_at,
    started_at, stopped_at, cluster, attempt_log, record)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::bigint[], $10::bytea[], $11::text[], $12::text[], $13::bigint[],
    $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[],
    $20::bigint[], $21::text[], $22::text[], $23::bytea[])
ON CONFLICT (id) DO NOTHING
RETURNING id";

/// Reads the columns of a row of either database the same way (the store
/// keeps integers as 64-bit in both).
pub(super) trait Columns {
    /// A `TEXT NOT NULL` column.
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// A nullable `TEXT` column.
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// An integer column.
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    /// A nullable integer column.
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A nullable bytes column.
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

macro_rules! columns {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
                self.try_get(column)
            }
        }
    };
}

columns!(SqliteRow);
columns!(PgRow);
