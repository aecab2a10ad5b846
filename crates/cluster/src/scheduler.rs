//! The scheduler: fires due schedules (each due run once, however many
//! clusters run: the claim is a store transaction) and hands deferred
//! tasks to the broker once due: ETAs (`--at`, `--in`), retries after
//! their backoff, chain links and hooks. It sleeps until the next due time
//! (at most [`MAX_SLEEP`], so schedules added by other processes are seen
//! within a second) or until the monitor writes follow-ups.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::Shared;
use wasq_core::package::TaskRecord;
use wasq_store::schedule::{Frequency, Recurrence, Timestamp};
use wasq_store::{Deferred, Schedule, ScheduleFire, StoreError, now_ms};

/// The longest sleep between two looks at the store.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// The shortest: something due but claimed by another cluster is not
/// polled in a busy loop.
const MIN_SLEEP: Duration = Duration::from_millis(20);
/// Deferred tasks moved per claim.
const CLAIM: u32 = 500;
/// How long a claim of deferred tasks keeps other clusters off them.
const CLAIM_LEASE_MS: i64 = 30_000;
/// Schedules fired per transaction.
const FIRE: u32 = 100;

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    loop {
        if shared.stopping() {
            return;
        }
        let mut more = false;
        let step = async {
            if shared.config.scheduler {
                more |= fire_schedules(&shared).await? as u32 == FIRE;
            }
            more |= move_due(&shared).await? == CLAIM as usize;
            Ok::<_, StoreError>(())
        };
        // Warned of once per outage (see `outage`).
        match step.await {
            Ok(()) => shared.outages.schedule_store.answered(),
            Err(error) => shared.outages.schedule_store.failed(&error),
        }
        if more {
            continue;
        }
        let pause = next_pause(&shared).await;
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shared.outbox.notified() => {}
            _ = crate::stopped(&mut stop) => return,
        }
    }
}

/// How long to sleep: until the next due time, within bounds.
async fn next_pause(shared: &Shared) -> Duration {
    let store = &shared.store;
    let deferred = store.next_deferred_due().await.ok().flatten();
    let schedule = if shared.config.scheduler {
        store
            .next_schedule_due(&shared.config.name)
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    match deferred.into_iter().chain(schedule).min() {
        Some(due) => {
            Duration::from_millis((due - now_ms()).max(0) as u64).clamp(MIN_SLEEP, MAX_SLEEP)
        }
        None => MAX_SLEEP,
    }
}

/// Fires the schedules due now; answers how many were looked at.
async fn fire_schedules(shared: &Shared) -> Result<usize, StoreError> {
    let now = now_ms();
    let mut looked = 0;
    let started = shared
        .store
        .fire_due_schedules(now, &shared.config.name, FIRE, |schedule, digest| {
            looked += 1;
            decide(shared, schedule, digest, now)
        })
        .await?;
    if !started.is_empty() {
        tracing::debug!(runs = started.len(), "schedules fired");
    }
    Ok(looked)
}

/// The run of a due schedule and its next due time.
fn decide(
    shared: &Shared,
    schedule: &Schedule,
    digest: wasq_core::Digest,
    now: i64,
) -> ScheduleFire {
    let spec = &schedule.spec;
    let next = match next_run(schedule, now) {
        Ok(next) => next,
        Err(error) => {
            tracing::error!(schedule = %spec.name, %error, "cannot compute the next run; the schedule stops");
            return ScheduleFire {
                next_run_ms: None,
                task: None,
            };
        }
    };
    let next_run_ms = if spec.repeats == 1 { None } else { next };
    let mut queue = spec.queue.as_deref().unwrap_or(shared.queue()).to_owned();
    if let Some(tenant) = &spec.tenant {
        queue = wasq_core::tenant::tenant_queue(&queue, tenant);
    }
    let queue = queue.as_str();
    let mut record = TaskRecord::new(digest, &spec.module, &spec.task, spec.input.clone(), queue);
    record.group = spec.group.clone();
    record.tenant = spec.tenant.clone();
    record.priority = spec.priority;
    let task = match shared.codec.encode(&record) {
        Ok(package) => Some(Deferred {
            id: record.id.clone(),
            task_id: record.id,
            queue: queue.to_owned(),
            priority: spec.priority,
            due_at_ms: now,
            package,
        }),
        Err(error) => {
            tracing::error!(schedule = %spec.name, %error, "cannot package the scheduled task");
            None
        }
    };
    ScheduleFire { next_run_ms, task }
}

/// When a schedule is due after the run due now: the following due time
/// (catch-up, one run per missed time), or the first one after now.
fn next_run(schedule: &Schedule, now: i64) -> Result<Option<i64>, String> {
    let spec = &schedule.spec;
    let frequency = Frequency::parse(&spec.kind, spec.minutes, spec.cron.as_deref())
        .map_err(|e| e.to_string())?;
    let anchor = Timestamp::from_millisecond(schedule.anchor_ms).map_err(|e| e.to_string())?;
    let recurrence = Recurrence::new(frequency, &spec.tz, anchor).map_err(|e| e.to_string())?;
    let from = if spec.catch_up {
        spec.next_run_ms
    } else {
        spec.next_run_ms.max(now)
    };
    let from = Timestamp::from_millisecond(from).map_err(|e| e.to_string())?;
    Ok(recurrence.next_after(from).map(|t| t.as_millisecond()))
}

/// Deferred tasks of one queue and priority: their row ids and packages.
type Batch = (Vec<String>, Vec<Vec<u8>>);

/// Hands due deferred tasks to the broker; answers how many were claimed.
async fn move_due(shared: &Shared) -> Result<usize, StoreError> {
    let claimed = shared
        .store
        .claim_due(now_ms(), CLAIM, CLAIM_LEASE_MS)
        .await?;
    let count = claimed.len();
    if count == 0 {
        return Ok(0);
    }
    // One batch per queue and priority, in due order within each.
    let mut batches: BTreeMap<(String, i32), Batch> = BTreeMap::new();
    for task in claimed {
        let batch = batches.entry((task.queue, task.priority)).or_default();
        batch.0.push(task.id);
        batch.1.push(task.package);
    }
    let mut moved = Vec::with_capacity(count);
    for ((queue, priority), (ids, packages)) in batches {
        match shared
            .broker
            .enqueue_priority(&queue, priority, packages)
            .await
        {
            Ok(()) => {
                shared.outages.schedule_broker.answered();
                moved.extend(ids);
            }
            Err(error) => shared.outages.schedule_broker.failed(&error),
        }
    }
    shared.store.remove_deferred(&moved).await?;
    Ok(count)
}
