//! Schedules in the store: add, list, remove, and the claim that makes a
//! due schedule fire exactly once however many clusters run. Claiming
//! moves `next_run` on and writes the run's task as a deferred task in one
//! transaction (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: `FOR UPDATE SKIP
//! LOCKED` plus a check that `next_run` did not move), so a run is neither
//! lost nor doubled. The arithmetic of the next due time lives in
//! [`crate::schedule`]; the caller passes it in.

use crate::BacklogFull;
use crate::backend::{Backend, Columns};
use crate::sql::INSERT_DEFERRED;
use crate::sql::{QUOTAS_PG, QUOTAS_SQLITE};
use crate::{Deferred, Store, StoreError, TaskResult, now_ms, parse_digest};
use wasq_core::Digest;

/// What a new schedule is: a task and when to run it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScheduleSpec {
    /// Unique name.
    pub name: String,
    /// Module name (resolved again at each run, so a new upload under the
    /// name takes effect).
    pub module: String,
    /// The module's digest when the schedule was made (used if the name
    /// is gone).
    pub digest: Digest,
    /// Task name.
    pub task: String,
    /// Input: `{"args":[…],"kwargs":{…}}`.
    pub input: String,
    /// Queue; `None`: the cluster's default.
    pub queue: Option<String>,
    /// Group of its tasks.
    pub group: Option<String>,
    /// Priority of its tasks.
    pub priority: i32,
    /// `once`, `minutes`, `hourly`, … `cron` (see [`crate::schedule`]).
    pub kind: String,
    /// For `minutes`.
    pub minutes: Option<u32>,
    /// For `cron`.
    pub cron: Option<String>,
    /// IANA time zone.
    pub tz: String,
    /// The first run, ms since the epoch.
    pub next_run_ms: i64,
    /// Runs left: -1 forever.
    pub repeats: i64,
    /// Run once per missed time after an outage (`true`), or once for all
    /// of them.
    pub catch_up: bool,
    /// Only clusters of this name run it.
    pub cluster: Option<String>,
    /// The tenant it belongs to: its module is the tenant's, its tasks
    /// run for the tenant (in the tenant's queue, owned by it). Its stored
    /// name is `tenant/name`.
    pub tenant: Option<String>,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Schedule {
    /// Row id.
    pub id: i64,
    /// What it is.
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// The first due time, ms: what wall-clock arithmetic counts from.
    pub anchor_ms: i64,
    /// The last run, ms.
    pub last_run_ms: Option<i64>,
    /// The task id of the last run.
    pub last_task: Option<String>,
    /// Runs so far.
    pub runs: i64,
    /// When it was made, ms.
    pub created_at_ms: i64,
    /// Paused: it does not fire until resumed.
    pub paused: bool,
}

impl Schedule {
    fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.int("id")?,
            spec: ScheduleSpec {
                name: row.text("name")?,
                module: row.text("module")?,
                digest: parse_digest(&row.text("digest")?)?,
                task: row.text("task")?,
                input: row.text("input")?,
                queue: row.opt_text("queue")?,
                group: row.opt_text("grp")?,
                priority: row.int("priority")? as i32,
                kind: row.text("kind")?,
                minutes: row.opt_int("minutes")?.map(|m| m as u32),
                cron: row.opt_text("cron")?,
                tz: row.text("tz")?,
                next_run_ms: row.int("next_run")?,
                repeats: row.int("repeats")?,
                catch_up: row.int("catch_up")? != 0,
                cluster: row.opt_text("cluster")?,
                tenant: row.opt_text("tenant")?,
            },
            anchor_ms: row.int("anchor")?,
            last_run_ms: row.opt_int("last_run")?,
            last_task: row.opt_text("last_task")?,
            runs: row.int("runs")?,
            created_at_ms: row.int("created_at")?,
            paused: row.int("paused")? != 0,
        })
    }

    /// Whether it will run again (paused or not).
    pub fn active(&self) -> bool {
        self.spec.repeats != 0
    }
}

/// What the caller decided for one due run of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleFire {
    /// The next due time; `None`: it is done.
    pub next_run_ms: Option<i64>,
    /// The task to run now (`None`: skip this run, e.g. its task could not
    /// be made).
    pub task: Option<Deferred>,
}

const DUE_SQLITE: &str =
    "SELECT * FROM wasq_schedules WHERE next_run <= $1 AND repeats <> 0 AND paused = 0
    AND (cluster IS NULL OR cluster = $2) ORDER BY next_run LIMIT $3";
const DUE_POSTGRES: &str =
    "SELECT * FROM wasq_schedules WHERE next_run <= $1 AND repeats <> 0 AND paused = 0
    AND (cluster IS NULL OR cluster = $2) ORDER BY next_run LIMIT $3 FOR UPDATE SKIP LOCKED";

/// Binds what a schedule runs and when, `module` to `cluster` in the
/// order of the columns, to `$query` (the statements number them alike).
macro_rules! bind_spec {
    ($query:expr, $spec:expr) => {
        $query
            .bind(&$spec.module)
            .bind($spec.digest.to_string())
            .bind(&$spec.task)
            .bind(&$spec.input)
            .bind(&$spec.queue)
            .bind(&$spec.group)
            .bind(i64::from($spec.priority))
            .bind(&$spec.kind)
            .bind($spec.minutes.map(i64::from))
            .bind(&$spec.cron)
            .bind(&$spec.tz)
            .bind($spec.next_run_ms)
            .bind($spec.repeats)
            .bind(i64::from($spec.catch_up))
            .bind(&$spec.cluster)
    };
}

impl Store {
    /// Adds a schedule. A name in use is [`StoreError::Duplicate`].
    pub async fn add_schedule(&self, spec: &ScheduleSpec) -> Result<Schedule, StoreError> {
        let now = now_ms();
        let inserted = with_pool!(self, pool => {
            let query = sqlx::query(
                "INSERT INTO wasq_schedules (name, module, digest, task, input, queue, grp, priority, kind,
                    minutes, cron, tz, anchor, next_run, repeats, catch_up, cluster, created_at, tenant)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16, $17, $18)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&spec.name);
            bind_spec!(query, spec)
            .bind(now)
            .bind(&spec.tenant)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(StoreError::Duplicate(format!(
                "a schedule named `{}` exists; remove it first or pick another name",
                spec.name
            )));
        }
        self.schedule(&spec.name)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("schedule `{}` vanished", spec.name)))
    }

    /// A schedule by name.
    pub async fn schedule(&self, name: &str) -> Result<Option<Schedule>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT * FROM wasq_schedules WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(Schedule::from_row).transpose()
        })
    }

    /// Every schedule, by next run.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT * FROM wasq_schedules ORDER BY repeats = 0, next_run, name")
                .fetch_all(pool)
                .await?;
            rows.iter().map(Schedule::from_row).collect()
        })
    }

    /// A tenant's schedules, by next run.
    pub async fn tenant_schedules(&self, tenant: &str) -> Result<Vec<Schedule>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT * FROM wasq_schedules WHERE tenant = $1 ORDER BY repeats = 0, next_run, name",
            )
            .bind(tenant)
            .fetch_all(pool)
            .await?;
            rows.iter().map(Schedule::from_row).collect()
        })
    }

    /// Replaces what a schedule runs and when (by its name), keeping its
    /// run count, last run and pause; answers the schedule, or `None` if
    /// there is no schedule of that name.
    pub async fn replace_schedule(
        &self,
        spec: &ScheduleSpec,
    ) -> Result<Option<Schedule>, StoreError> {
        let updated = with_pool!(self, pool => {
            let query = sqlx::query(
                "UPDATE wasq_schedules SET module = $2, digest = $3, task = $4, input = $5,
                    queue = $6, grp = $7, priority = $8, kind = $9, minutes = $10, cron = $11,
                    tz = $12, anchor = $13, next_run = $13, repeats = $14, catch_up = $15,
                    cluster = $16
                 WHERE name = $1 AND tenant IS NOT DISTINCT FROM $17",
            )
            .bind(&spec.name);
            bind_spec!(query, spec)
            .bind(&spec.tenant)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if updated == 0 {
            return Ok(None);
        }
        self.schedule(&spec.name).await
    }

    /// Pauses or resumes a schedule; answers whether it exists. A resumed
    /// schedule that missed runs catches up as after an outage.
    pub async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<bool, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query("UPDATE wasq_schedules SET paused = $2 WHERE name = $1")
                .bind(name)
                .bind(i64::from(paused))
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Removes a schedule; answers whether it existed.
    pub async fn remove_schedule(&self, name: &str) -> Result<bool, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query("DELETE FROM wasq_schedules WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// When the next schedule a cluster named `cluster` runs is due (ms).
    pub async fn next_schedule_due(&self, cluster: &str) -> Result<Option<i64>, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT MIN(next_run) FROM wasq_schedules WHERE repeats <> 0 AND paused = 0 AND (cluster IS NULL OR cluster = $1)",
            )
            .bind(cluster)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Fires up to `limit` schedules due by `now` that a cluster named
    /// `cluster` runs: for each, `fire(schedule, digest)` (the digest its
    /// module name points at now) says what runs and when it is due next;
    /// the new `next_run` and the run's deferred task are written in one
    /// transaction, and a schedule another cluster fired meanwhile is
    /// skipped. Answers the task ids started.
    pub async fn fire_due_schedules(
        &self,
        now: i64,
        cluster: &str,
        limit: u32,
        mut fire: impl FnMut(&Schedule, Digest) -> ScheduleFire + Send,
    ) -> Result<Vec<String>, StoreError> {
        let due_sql = match self.backend {
            Backend::Sqlite(_) => DUE_SQLITE,
            Backend::Postgres(_) => DUE_POSTGRES,
        };
        let mut started = Vec::new();
        macro_rules! fire_in {
            ($tx:ident, $quotas_sql:expr) => {{
                let rows = sqlx::query(due_sql)
                    .bind(now)
                    .bind(cluster)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *$tx)
                    .await?;
                let due = rows
                    .iter()
                    .map(Schedule::from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                for schedule in due {
                    let current: Option<String> = match &schedule.spec.tenant {
                        None => sqlx::query_scalar("SELECT digest FROM wasq_module_names WHERE name = $1")
                            .bind(&schedule.spec.module)
                            .fetch_optional(&mut *$tx)
                            .await?,
                        Some(tenant) => sqlx::query_scalar(
                            "SELECT digest FROM wasq_tenant_modules WHERE tenant = $1 AND name = $2",
                        )
                        .bind(tenant)
                        .bind(&schedule.spec.module)
                        .fetch_optional(&mut *$tx)
                        .await?,
                    };
                    let digest = match current {
                        Some(d) => parse_digest(&d)?,
                        None => schedule.spec.digest,
                    };
                    let decision = fire(&schedule, digest);
                    let repeats = match (decision.next_run_ms, schedule.spec.repeats) {
                        (None, _) => 0,
                        (Some(_), r) if r > 0 => r - 1,
                        (Some(_), r) => r,
                    };
                    let moved = sqlx::query(
                        "UPDATE wasq_schedules SET next_run = $1, repeats = $2, last_run = $3,
                            last_task = $4, runs = runs + $5 WHERE id = $6 AND next_run = $7",
                    )
                    .bind(decision.next_run_ms.unwrap_or(schedule.spec.next_run_ms))
                    .bind(repeats)
                    .bind(now)
                    .bind(decision.task.as_ref().map(|t| t.task_id.clone()))
                    .bind(i64::from(decision.task.is_some()))
                    .bind(schedule.id)
                    .bind(schedule.spec.next_run_ms)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected();
                    if moved != 1 {
                        continue;
                    }
                    if let Some(task) = decision.task {
                        // A tenant's run takes a place in its backlog; with
                        // none left it is saved as a failure naming the quota.
                        let refused = match &schedule.spec.tenant {
                            Some(tenant) => {
                                let run = [(task.task_id.clone(), task.queue.clone())];
                                let taken: Result<(), BacklogFull> =
                                    take_in!($tx, $quotas_sql, tenant, &run);
                                taken.err()
                            }
                            None => None,
                        };
                        match refused {
                            None => {
                                sqlx::query(INSERT_DEFERRED)
                                    .bind(&task.id)
                                    .bind(&task.task_id)
                                    .bind(&task.queue)
                                    .bind(i64::from(task.priority))
                                    .bind(task.due_at_ms)
                                    .bind(&task.package)
                                    .execute(&mut *$tx)
                                    .await?;
                            }
                            Some(full) => {
                                tracing::warn!(schedule = %schedule.spec.name, "a run not queued: the tenant's max_queued is reached");
                                insert_result!($tx, &refused_run(&schedule.spec, digest, &task, full));
                            }
                        }
                        if let Some(tenant) = &schedule.spec.tenant {
                            sqlx::query(crate::tenants::OWN_TASK)
                                .bind(&task.task_id)
                                .bind(tenant)
                                .bind(now)
                                .execute(&mut *$tx)
                                .await?;
                        }
                        started.push(task.task_id);
                    }
                }
            }};
        }
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                fire_in!(tx, QUOTAS_SQLITE);
                tx.commit().await?;
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                fire_in!(tx, QUOTAS_PG);
                tx.commit().await?;
            }
        }
        Ok(started)
    }
}

/// The result saved for a schedule's run that was never queued because
/// its tenant's backlog was full: a failure naming the quota, readable as
/// the schedule's last task.
fn refused_run(
    spec: &ScheduleSpec,
    digest: wasq_core::Digest,
    task: &Deferred,
    full: BacklogFull,
) -> TaskResult {
    let now = now_ms();
    TaskResult {
        id: task.task_id.clone(),
        module: digest,
        module_name: spec.module.clone(),
        task: spec.task.clone(),
        input: spec.input.clone(),
        queue: task.queue.clone(),
        group: spec.group.clone(),
        outcome: wasq_core::OutcomeKind::Abandoned.as_str().into(),
        success: false,
        result: None,
        stderr: String::new(),
        error: Some(format!(
            "not queued (schedule `{}`): max_queued: {}",
            spec.name,
            full.message()
        )),
        fuel: None,
        cpu_us: 0,
        wall_us: 0,
        memory_peak: 0,
        attempts: 0,
        enqueued_at_ms: now,
        started_at_ms: now,
        stopped_at_ms: now,
        cluster: String::new(),
        cached_secs: None,
        attempt_log: Vec::new(),
        record: None,
    }
}
