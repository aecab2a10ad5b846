//! Packages no cluster would run: each refusal of a package (a signature
//! that does not verify, bytes that do not decode, a claim its tenant does
//! not own) is recorded by the digest of its bytes, with the clusters that
//! refused it. While other clusters may still take it, the package goes
//! back to the broker; once it is buried (refused long enough, or by every
//! cluster) its bytes move here and leave the broker. `wasq failed list`
//! shows them, `wasq failed resubmit` re-signs and queues them again,
//! `wasq failed remove` deletes them. Nothing a cluster refused is deleted
//! unseen.

use crate::backend::{Backend, Columns};
use crate::{Store, StoreError, now_ms};

/// Most clusters remembered per package (the rest are counted only).
const MOST_REFUSERS: usize = 32;
/// Records of packages refused but not buried are forgotten after this
/// long without a refusal (someone ran them, or they were deleted).
const FORGET_REFUSED_MS: i64 = 24 * 60 * 60 * 1000;

/// One cluster's refusal of a package.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The SHA-256 of the package's bytes (hex): the same package keeps
    /// it across deliveries and brokers' ids.
    pub digest: String,
    /// The broker queue it came from.
    pub queue: String,
    /// The broker's id of the delivery.
    pub broker_id: String,
    /// The task id the package claims, when its bytes could be read.
    pub task_id: Option<String>,
    /// Whether its signature verified (it was refused for what it claims).
    pub verified: bool,
    /// Why it was refused.
    pub reason: String,
    /// The refusing cluster.
    pub cluster: String,
    /// The package's size in bytes.
    pub size: u64,
}

/// A package's record of refusals; buried once `dead_at_ms` is set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// The SHA-256 of the package's bytes (hex).
    pub digest: String,
    /// The broker queue it came from.
    pub queue: String,
    /// The broker's id of the last delivery refused.
    pub broker_id: String,
    /// The task id the package claims (unverified unless `verified`).
    pub task_id: Option<String>,
    /// Whether its signature verified.
    pub verified: bool,
    /// Why it was last refused.
    pub reason: String,
    /// The cluster that last refused it.
    pub cluster: String,
    /// Clusters that refused it (at most 32).
    pub refusers: Vec<String>,
    /// Refusals in all.
    pub refusals: u64,
    /// First refusal, ms since the epoch.
    pub first_at_ms: i64,
    /// Last refusal, ms since the epoch.
    pub last_at_ms: i64,
    /// When it left the broker for the store; `None` while it is handed
    /// back for other clusters.
    pub dead_at_ms: Option<i64>,
    /// Its size in bytes.
    pub size: u64,
}

impl DeadLetter {
    fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        let refusers = row.text("refusers")?;
        Ok(Self {
            digest: row.text("digest")?,
            queue: row.text("queue")?,
            broker_id: row.text("broker_id")?,
            task_id: row.opt_text("task_id")?,
            verified: row.int("verified")? != 0,
            reason: row.text("reason")?,
            cluster: row.text("cluster")?,
            refusers: refusers.split_whitespace().map(str::to_owned).collect(),
            refusals: row.int("refusals")?.max(0) as u64,
            first_at_ms: row.int("first_at")?,
            last_at_ms: row.int("last_at")?,
            dead_at_ms: row.opt_int("dead_at")?,
            size: row.int("size")?.max(0) as u64,
        })
    }
}

const COLUMNS: &str = "digest, queue, broker_id, task_id, verified, reason, cluster, refusers, \
    refusals, first_at, last_at, dead_at, size";

/// Adds a refusal to a package's record, or starts one.
const UPSERT: &str = "
INSERT INTO wasq_dead_letters (digest, queue, broker_id, task_id, verified, reason, cluster,
    refusers, refusals, first_at, last_at, dead_at, size, package)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1, $8, $8, NULL, $9, NULL)
ON CONFLICT (digest) DO UPDATE SET queue = excluded.queue, broker_id = excluded.broker_id,
    reason = excluded.reason, cluster = excluded.cluster,
    refusals = wasq_dead_letters.refusals + 1, last_at = excluded.last_at";

impl Store {
    /// Records a refusal; answers the package's record after it.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be written.
    pub async fn record_refusal(&self, refusal: &Refusal) -> Result<DeadLetter, StoreError> {
        let now = now_ms();
        let select = format!("SELECT {COLUMNS} FROM wasq_dead_letters WHERE digest = $1");
        macro_rules! record {
            ($tx:ident) => {{
                sqlx::query("DELETE FROM wasq_dead_letters WHERE dead_at IS NULL AND last_at < $1")
                    .bind(now - FORGET_REFUSED_MS)
                    .execute(&mut *$tx)
                    .await?;
                sqlx::query(UPSERT)
                    .bind(&refusal.digest)
                    .bind(&refusal.queue)
                    .bind(&refusal.broker_id)
                    .bind(&refusal.task_id)
                    .bind(i64::from(refusal.verified))
                    .bind(&refusal.reason)
                    .bind(&refusal.cluster)
                    .bind(now)
                    .bind(refusal.size as i64)
                    .execute(&mut *$tx)
                    .await?;
                let row = sqlx::query(sqlx::AssertSqlSafe(select.as_str()))
                    .bind(&refusal.digest)
                    .fetch_one(&mut *$tx)
                    .await?;
                let mut record = DeadLetter::from_row(&row)?;
                if !record.refusers.contains(&refusal.cluster)
                    && record.refusers.len() < MOST_REFUSERS
                {
                    record.refusers.push(refusal.cluster.clone());
                    sqlx::query("UPDATE wasq_dead_letters SET refusers = $1 WHERE digest = $2")
                        .bind(record.refusers.join(" "))
                        .bind(&refusal.digest)
                        .execute(&mut *$tx)
                        .await?;
                }
                $tx.commit().await?;
                Ok(record)
            }};
        }
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                record!(tx)
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // Two clusters refusing the same package at once take turns.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(&refusal.digest)
                    .execute(&mut *tx)
                    .await?;
                record!(tx)
            }
        }
    }

    /// Buries a refused package: keeps its bytes, marks it dead. The
    /// caller then removes it from the broker.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be written (then the package
    /// must stay in the broker).
    pub async fn bury(&self, digest: &str, package: &[u8]) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE wasq_dead_letters SET dead_at = $1, package = $2 WHERE digest = $3",
            )
            .bind(now_ms())
            .bind(package)
            .bind(digest)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Buried packages, newest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be read.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM wasq_dead_letters WHERE dead_at IS NOT NULL \
             ORDER BY dead_at DESC, digest LIMIT $1"
        );
        with_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.iter().map(DeadLetter::from_row).collect()
        })
    }

    /// A buried package and its bytes, by digest (or a unique prefix of
    /// at least 8 hex digits).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be read, or the prefix names
    /// more than one package.
    pub async fn dead_letter(
        &self,
        digest: &str,
    ) -> Result<Option<(DeadLetter, Vec<u8>)>, StoreError> {
        let pattern = format!("{}%", digest.replace(['%', '_'], ""));
        let sql = format!(
            "SELECT {COLUMNS}, package FROM wasq_dead_letters \
             WHERE dead_at IS NOT NULL AND digest LIKE $1 LIMIT 2"
        );
        with_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&pattern)
                .fetch_all(pool)
                .await?;
            match rows.as_slice() {
                [] => Ok(None),
                [row] => Ok(Some((
                    DeadLetter::from_row(row)?,
                    row.opt_bytes("package")?.unwrap_or_default(),
                ))),
                _ => Err(StoreError::Duplicate(format!(
                    "`{digest}` names more than one failed package: give more of its digest"
                ))),
            }
        })
    }

    /// Deletes a buried package; answers whether it was there.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be written.
    pub async fn remove_dead_letter(&self, digest: &str) -> Result<bool, StoreError> {
        let done = with_pool!(self, pool => {
            sqlx::query("DELETE FROM wasq_dead_letters WHERE digest = $1 AND dead_at IS NOT NULL")
                .bind(digest)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }
}
