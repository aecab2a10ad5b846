//! What the dashboard reads: results searched by id, module, task, group
//! and outcome (for everyone, or for one tenant), tenants' tasks still
//! waiting for a result, outcomes counted per time bucket for the
//! overview chart, and every tenant's modules.

use crate::backend::Columns;
use crate::tenants::OWN_TASK;
use crate::{Store, StoreError, TaskResult, TenantModule, parse_digest};

/// Which results to list. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultFilter {
    /// Only this tenant's tasks.
    pub tenant: Option<String>,
    /// A task id, or the start of one.
    pub id: Option<String>,
    /// Module name.
    pub module: Option<String>,
    /// Task name.
    pub task: Option<String>,
    /// Group, as stored (a tenant's is `tenant/NAME`).
    pub group: Option<String>,
    /// `success`, `failed` (every outcome but success), or one outcome.
    pub outcome: Option<String>,
    /// Only results that finished before this, ms (the next page).
    pub before_ms: Option<i64>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// A tenant's task that has no result yet (queued, running, or waiting
/// for a retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingTask {
    /// Task id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// Enqueued, ms since the epoch.
    pub enqueued_at_ms: i64,
}

/// Results of one outcome that finished in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeBucket {
    /// The bucket's start, ms since the epoch.
    pub start_ms: i64,
    /// The outcome.
    pub outcome: String,
    /// How many.
    pub count: u64,
}

/// One bound value of a query built from a filter.
enum Bound {
    Text(String),
    Int(i64),
}

/// The `WHERE` clause of a filter and its values, `$1` onwards.
fn where_clause(filter: &ResultFilter) -> (String, Vec<Bound>) {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    let mut add = |condition: &str, value: Bound| {
        values.push(value);
        conditions.push(condition.replace('?', &format!("${}", values.len())));
    };
    if let Some(tenant) = &filter.tenant {
        add(
            "id IN (SELECT id FROM wasq_tenant_tasks WHERE tenant = ?)",
            Bound::Text(tenant.clone()),
        );
    }
    if let Some(id) = &filter.id {
        // A prefix match on an id (ids are hex and dashes: no wildcards).
        let prefix: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        add("id LIKE ?", Bound::Text(format!("{prefix}%")));
    }
    if let Some(module) = &filter.module {
        add("module_name = ?", Bound::Text(module.clone()));
    }
    if let Some(task) = &filter.task {
        add("task = ?", Bound::Text(task.clone()));
    }
    if let Some(group) = &filter.group {
        add("grp = ?", Bound::Text(group.clone()));
    }
    match filter.outcome.as_deref() {
        None => {}
        Some("success") => add("success = ?", Bound::Int(1)),
        Some("failed") => add("success = ?", Bound::Int(0)),
        Some(outcome) => add("outcome = ?", Bound::Text(outcome.to_owned())),
    }
    if let Some(before) = filter.before_ms {
        add("stopped_at < ?", Bound::Int(before));
    }
    let clause = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    (clause, values)
}

/// Binds `$values` to `$query` in order.
macro_rules! bind_all {
    ($query:expr, $values:expr) => {{
        let mut query = $query;
        for value in $values {
            query = match value {
                Bound::Text(text) => query.bind(text.clone()),
                Bound::Int(int) => query.bind(*int),
            };
        }
        query
    }};
}

impl Store {
    /// Results matching `filter`, newest first.
    pub async fn search_results(
        &self,
        filter: &ResultFilter,
    ) -> Result<Vec<TaskResult>, StoreError> {
        let (clause, values) = where_clause(filter);
        let sql = format!(
            "SELECT * FROM wasq_results{clause} ORDER BY stopped_at DESC, id LIMIT {}",
            filter.limit.max(1)
        );
        with_pool!(self, pool => {
            let query = bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql)), &values);
            let rows = query.fetch_all(pool).await?;
            rows.iter().map(TaskResult::from_row).collect()
        })
    }

    /// Tasks of `tenant` (or of every tenant) that have no result yet
    /// (nor a tombstone of one pruned), newest first. Tasks enqueued without a tenant are not tracked
    /// before they finish, so they are not here.
    pub async fn waiting_tasks(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WaitingTask>, StoreError> {
        let rows: Vec<(String, String, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT t.id, t.tenant, t.at FROM wasq_tenant_tasks t
                 WHERE ($1 = '' OR t.tenant = $1)
                   AND NOT EXISTS (SELECT 1 FROM wasq_results r WHERE r.id = t.id)
                   AND NOT EXISTS (SELECT 1 FROM wasq_pruned p WHERE p.task_id = t.id)
                 ORDER BY t.at DESC, t.id LIMIT $2",
            )
            .bind(tenant.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, tenant, enqueued_at_ms)| WaitingTask {
                id,
                tenant,
                enqueued_at_ms,
            })
            .collect())
    }

    /// Results that finished since `since_ms`, counted per outcome and per
    /// bucket of `bucket_ms`, for `tenant` or everyone.
    pub async fn outcome_buckets(
        &self,
        tenant: Option<&str>,
        since_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<OutcomeBucket>, StoreError> {
        let bucket_ms = bucket_ms.max(1);
        let rows: Vec<(i64, String, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT (stopped_at / $1) * $1 AS bucket, outcome, COUNT(*) FROM wasq_results
                 WHERE stopped_at >= $2
                   AND ($3 = '' OR id IN (SELECT id FROM wasq_tenant_tasks WHERE tenant = $3))
                 GROUP BY bucket, outcome ORDER BY bucket, outcome",
            )
            .bind(bucket_ms)
            .bind(since_ms)
            .bind(tenant.unwrap_or(""))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(start_ms, outcome, count)| OutcomeBucket {
                start_ms,
                outcome,
                count: count.max(0) as u64,
            })
            .collect())
    }

    /// Every tenant's modules: `(tenant, module)`, by tenant and name.
    pub async fn all_tenant_modules(&self) -> Result<Vec<(String, TenantModule)>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT tenant, name, digest, size, grants, uploaded_at FROM wasq_tenant_modules
                 ORDER BY tenant, name",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.text("tenant")?,
                        TenantModule {
                            name: row.text("name")?,
                            digest: parse_digest(&row.text("digest")?)?,
                            size: row.int("size")? as u64,
                            grants: serde_json::from_str(&row.text("grants")?).map_err(|e| {
                                StoreError::Corrupt(format!("grants of a tenant module: {e}"))
                            })?,
                            uploaded_at_ms: row.int("uploaded_at")?,
                        },
                    ))
                })
                .collect()
        })
    }

    /// Moves a task's ownership to a new id (a failure resubmitted):
    /// the new id belongs to the old one's tenant, and the old id to
    /// nobody. Answers the tenant, if the old id had one.
    pub async fn hand_on_task(
        &self,
        old_id: &str,
        new_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let tenant: Option<String> =
                sqlx::query_scalar("DELETE FROM wasq_tenant_tasks WHERE id = $1 RETURNING tenant")
                    .bind(old_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(tenant) = &tenant {
                sqlx::query(OWN_TASK)
                    .bind(new_id)
                    .bind(tenant)
                    .bind(crate::now_ms())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            tenant
        }))
    }

    /// Forgets who owned a task (its result was deleted).
    pub async fn disown_task(&self, id: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM wasq_tenant_tasks WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_numbers_its_values_in_order() {
        let filter = ResultFilter {
            tenant: Some("a".into()),
            id: Some("ab%_'c".into()),
            outcome: Some("failed".into()),
            before_ms: Some(7),
            limit: 10,
            ..ResultFilter::default()
        };
        let (clause, values) = where_clause(&filter);
        assert_eq!(
            clause,
            " WHERE id IN (SELECT id FROM wasq_tenant_tasks WHERE tenant = $1) AND id LIKE $2 \
             AND success = $3 AND stopped_at < $4"
        );
        assert!(matches!(&values[1], Bound::Text(t) if t == "abc%"));
        assert!(matches!(values[3], Bound::Int(7)));
        assert_eq!(where_clause(&ResultFilter::default()).0, "");
    }
}
