//! The pool settings every SQLite pool of wasq shares (the broker's and the
//! store's): a connection that comes back from a failed transaction is
//! closed instead of being handed out again.
//!
//! When SQLite ends a transaction by itself (a full disk, `SQLITE_FULL`,
//! rolls it back), the `ROLLBACK` that sqlx sends when the transaction is
//! dropped fails, and sqlx still counts the connection as inside a
//! transaction. Handed out again, its next `BEGIN IMMEDIATE` fails
//! ("attempted to call begin_with at non-zero transaction depth") and its
//! next plain `begin` becomes a savepoint whose "commit" commits nothing:
//! results that seem saved are lost when the connection closes.

use sqlx::Connection as _;
use sqlx::sqlite::SqlitePoolOptions;

/// `options` with the after-release check: a connection still counted as
/// inside a transaction, once its queued rollback has run, is closed.
pub fn discard_unfinished_transactions(options: SqlitePoolOptions) -> SqlitePoolOptions {
    options.after_release(|conn, _meta| {
        Box::pin(async move {
            // The ping runs after the rollback a dropped transaction
            // queued, so the depth read next is the settled one.
            conn.ping().await?;
            if conn.is_in_transaction() {
                tracing::warn!("closing a SQLite connection left inside a failed transaction");
                return Ok(false);
            }
            Ok(true)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::discard_unfinished_transactions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    /// A transaction that SQLite ends by itself (a full database) must not
    /// leave its connection counted as inside a transaction: the next
    /// `BEGIN IMMEDIATE` works, and what it commits is there for a
    /// connection of another pool.
    #[tokio::test]
    async fn a_connection_whose_transaction_the_disk_ended_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A database of at most 40 pages: full after a few blobs.
            .pragma("max_page_count", "40");
        let pool = discard_unfinished_transactions(SqlitePoolOptions::new())
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
            .execute(&pool)
            .await
            .unwrap();
        let mut full = false;
        for _ in 0..5 {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            let mut failed = false;
            for _ in 0..200 {
                if sqlx::query("INSERT INTO t (data) VALUES (zeroblob(4000))")
                    .execute(&mut *tx)
                    .await
                    .is_err()
                {
                    failed = true;
                    break;
                }
            }
            full |= failed;
            drop(tx);
            // Whatever SQLite did with the transaction, the pool's next one
            // must begin and commit for real.
            let mut tx = pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .expect("a new transaction after a failed one");
            sqlx::query("DELETE FROM t")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("INSERT INTO t (id) VALUES (1)")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        assert!(
            full,
            "the database never filled up: the test proves nothing"
        );
        let other = SqlitePoolOptions::new()
            .connect_with(options.pragma("max_page_count", "100000"))
            .await
            .unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE id = 1")
            .fetch_one(&other)
            .await
            .unwrap();
        assert_eq!(
            rows, 1,
            "the committed row is visible to another connection"
        );
    }
}
