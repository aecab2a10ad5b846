//! The monitor: saves finished tasks' results in batches, then
//! acknowledges them. What follows a result is written in the same
//! transaction as deferred tasks (see `wasq-store`'s `workflow.rs`): a retry after
//! its backoff instead of a result, the next link of a chain, a hook with
//! the finished task's record, the release of a unique key. The scheduler
//! hands them to the broker when due.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::Shared;
use crate::jobs::Completion;
use wasq_core::OutcomeKind;
use wasq_core::package::TaskRecord;
use wasq_core::workflow::{AttemptRecord, hook_id, pass_result};
use wasq_store::{Deferred, Followup, Followups, TaskResult, now_ms};

/// Most completions saved in one transaction.
const BATCH: usize = 512;
/// The most of a failed attempt's log kept in its retry record.
const ERROR_KEPT: usize = 1000;

pub(crate) async fn run(shared: Arc<Shared>, mut done: mpsc::UnboundedReceiver<Completion>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = done.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match done.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        flush(&shared, std::mem::take(&mut batch)).await;
    }
}

async fn flush(shared: &Shared, batch: Vec<Completion>) {
    let config = &shared.config;
    let now = now_ms();
    let mut followups = Followups::default();
    let mut acks = Vec::with_capacity(batch.len());
    let mut results = Vec::with_capacity(batch.len());
    for completion in batch {
        acks.push(completion.ack);
        match completion.record {
            None => results.push(completion.result),
            Some(record) => plan(
                shared,
                completion.result,
                &record,
                now,
                &mut results,
                &mut followups,
            ),
        }
    }
    // Save before acknowledging: a crash in between redelivers the tasks,
    // and the store keeps their first result.
    let mut delay = Duration::from_millis(100);
    // Saves are retried for a lease: the lease keeper renews the tasks'
    // leases meanwhile, so another cluster does not run them twice.
    let give_up = tokio::time::Instant::now() + config.retry;
    loop {
        match shared
            .store
            .complete(&results, &followups, config.save_limit)
            .await
        {
            Ok(_) => {
                shared.outages.save.answered();
                break;
            }
            Err(error)
                if (shared.stopping() && delay > Duration::from_secs(2))
                    || tokio::time::Instant::now() >= give_up =>
            {
                // Never acknowledged unsaved: the tasks go back and run
                // again (a cluster that can save takes them).
                tracing::error!(%error, tasks = acks.len(), "cannot save results; handing their tasks back to run again");
                for ack in &acks {
                    crate::jobs::hand_back(shared, ack).await;
                }
                return;
            }
            Err(error) => {
                shared.outages.save.failed(&error);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    if !followups.deferred.is_empty() {
        shared.outbox.notify_one();
    }
    report_failures(shared, &results);
    if tracing::enabled!(tracing::Level::DEBUG) {
        for result in &results {
            tracing::debug_span!("result", task_id = %result.id, outcome = %result.outcome)
                .in_scope(|| {
                    tracing::debug!(task_id = %result.id, outcome = %result.outcome, "result saved");
                });
        }
    }
    // The results are safe; an acknowledgement that cannot be made is
    // retried until the leases really end (a broker restarting), and after
    // that the tasks are redelivered and run again, their first results
    // kept. The tasks stay held meanwhile, so the lease keeper renews their
    // leases whenever the broker answers; marked as being acknowledged, so
    // a renewal that finds one already gone is no lost lease.
    shared.acking().extend(acks.iter().cloned());
    acknowledge_until_the_leases_end(shared, &acks).await;
    {
        // `held` before `acking`: see `lease::really_lost`.
        let mut held = shared.held();
        for ack in &acks {
            held.remove(ack);
        }
    }
    {
        let mut acking = shared.acking();
        for ack in &acks {
            acking.remove(ack);
        }
    }
    shared.done.fetch_add(acks.len() as u64, Ordering::Relaxed);
    shared.room.notify_one();
}

/// Acknowledges `acks`, retrying while the broker cannot be reached until
/// their leases end: a lease lasts `retry` from its last renewal, which
/// came before this acknowledgement began, and the lease keeper renews it
/// while the broker answers, so past `retry` from now none is left. A
/// stopping cluster gives up sooner (its tasks are redelivered).
async fn acknowledge_until_the_leases_end(shared: &Shared, acks: &[crate::Taken]) {
    let mut delay = Duration::from_millis(100);
    let leases_end = tokio::time::Instant::now() + shared.config.retry;
    loop {
        match acknowledge(shared, acks).await {
            Ok(held) => {
                shared.outages.ack.answered();
                let lost = held.iter().filter(|h| !**h).count() as u64;
                if lost > 0 {
                    wasq_core::metrics::count("wasq_leases_lost_total", &[], lost);
                }
                if held.iter().any(|h| !h) {
                    tracing::warn!(
                        lost = held.iter().filter(|h| !**h).count(),
                        "leases were lost before the acknowledgement; the first results stand"
                    );
                }
                break;
            }
            Err(error) => {
                shared.outages.ack.failed(&error);
                let now = tokio::time::Instant::now();
                if now >= leases_end || (shared.stopping() && delay > Duration::from_secs(2)) {
                    tracing::warn!(
                        tasks = acks.len(),
                        "cannot acknowledge before the leases end; the tasks will be redelivered and their first results kept"
                    );
                    break;
                }
                tokio::time::sleep(delay.min(leases_end - now)).await;
                // At most a second apart: acknowledged soon after the
                // broker is back, while the leases last.
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Tells the error reporters of the failures among saved results (a
/// cancelled task is the user's doing, not a failure to report).
fn report_failures(shared: &Shared, results: &[TaskResult]) {
    if shared.reporters.is_empty() {
        return;
    }
    for result in results {
        if result.success || result.outcome == OutcomeKind::Cancelled.as_str() {
            continue;
        }
        let tenant = wasq_core::tenant::queue_tenant(&result.queue);
        for reporter in &shared.reporters {
            reporter.report(result, tenant);
        }
    }
}

/// Acknowledges held deliveries, one call per queue; per delivery,
/// whether its lease was still held.
async fn acknowledge(
    shared: &Shared,
    taken: &[crate::Taken],
) -> Result<Vec<bool>, wasq_brokers::BrokerError> {
    let mut by_queue: Vec<(&str, Vec<wasq_brokers::AckId>)> = Vec::new();
    for (queue, ack) in taken {
        match by_queue.iter_mut().find(|(q, _)| *q == &**queue) {
            Some((_, acks)) => acks.push(ack.clone()),
            None => by_queue.push((queue, vec![ack.clone()])),
        }
    }
    let mut held = Vec::with_capacity(taken.len());
    for (queue, acks) in by_queue {
        held.extend(shared.broker.acknowledge(queue, &acks).await?);
    }
    Ok(held)
}

/// Decides what a finished task with workflow fields leaves: a retry (and
/// no result), or its result plus the chain's next link, its hook and the
/// release of its unique key.
fn plan(
    shared: &Shared,
    result: TaskResult,
    record: &TaskRecord,
    now: i64,
    results: &mut Vec<TaskResult>,
    followups: &mut Followups,
) {
    if let Some(retry) = retry(shared, &result, record, now) {
        followups.deferred.push(Followup {
            parent: None,
            task: retry,
        });
        return;
    }
    if !record.chain.is_empty() {
        if result.success {
            if let Some(next) = next_link(shared, &result, record, now) {
                followups.deferred.push(Followup {
                    parent: Some(result.id.clone()),
                    task: next,
                });
            }
        } else {
            // The chain stops: its later links end cancelled, so nobody
            // waits for them forever.
            results.extend(record.chain.iter().map(|link| TaskResult {
                id: link.id.clone(),
                module: link.module,
                module_name: link.module_name.clone(),
                task: link.task.clone(),
                input: link.input.clone(),
                queue: link.queue.clone(),
                outcome: OutcomeKind::Cancelled.as_str().into(),
                success: false,
                result: None,
                stderr: String::new(),
                error: Some(format!(
                    "chain stopped: task {} ended with {}",
                    result.id, result.outcome
                )),
                fuel: None,
                cpu_us: 0,
                wall_us: 0,
                memory_peak: 0,
                attempts: 0,
                started_at_ms: now,
                stopped_at_ms: now,
                cached_secs: None,
                attempt_log: Vec::new(),
                record: None,
                ..result.clone()
            }));
        }
    }
    if let Some(hook) = &record.hook {
        let input = serde_json::json!({"args": [result.to_json()], "kwargs": {}}).to_string();
        let mut hook_record = TaskRecord::new(
            hook.module,
            &hook.module_name,
            &hook.task,
            input,
            &record.queue,
        );
        hook_record.id = hook_id(&result.id);
        hook_record.priority = record.priority;
        hook_record.group = record.group.clone();
        // A tenant's hook runs as that tenant: its grants, quotas and turn.
        hook_record.tenant = record.tenant.clone();
        if let Some(task) = deferred(shared, &hook_record, now) {
            followups.deferred.push(Followup {
                parent: Some(result.id.clone()),
                task,
            });
        }
    }
    if let Some(key) = &record.unique_key
        && (record.chain.is_empty() || !result.success)
    {
        followups
            .release
            .push((key.clone(), unique_holder(record).to_owned()));
    }
    results.push(result);
}

/// The task id a unique key is held by: a chain's last link, else the
/// task itself.
pub(crate) fn unique_holder(record: &TaskRecord) -> &str {
    record.chain.last().map_or(&record.id, |link| &link.id)
}

/// The next attempt of a failed task, due after its backoff, when its
/// policy retries this outcome and attempts remain.
fn retry(shared: &Shared, result: &TaskResult, record: &TaskRecord, now: i64) -> Option<Deferred> {
    let kind = result.outcome_kind()?;
    if result.success || kind == OutcomeKind::Cancelled || shared.is_cancelled(&record.id) {
        return None;
    }
    let policy = record.retry.as_ref().unwrap_or(&shared.default_retry);
    if !policy.retries(kind, record.attempt) {
        return None;
    }
    let delay = policy.jittered_delay(record.attempt, rand::random::<f64>());
    let due = now + delay.as_millis() as i64;
    let mut error = result
        .error
        .clone()
        .unwrap_or_else(|| result.stderr.trim().to_owned());
    if error.len() > ERROR_KEPT {
        let mut cut = ERROR_KEPT;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
    }
    let mut next = record.clone();
    next.earlier.push(AttemptRecord {
        attempt: record.attempt,
        outcome: result.outcome.clone(),
        error,
        started_at_ms: result.started_at_ms,
        stopped_at_ms: result.stopped_at_ms,
        retry_in_ms: delay.as_millis() as u64,
    });
    next.attempt += 1;
    next.eta_ms = Some(due as u64);
    tracing::debug!(id = %record.id, attempt = next.attempt, ?delay, "retrying a failed task");
    let mut task = deferred(shared, &next, due)?;
    task.id = format!("{}:{}", record.id, next.attempt);
    Some(task)
}

/// The chain's next link as a task, its input given this result when the
/// chain passes results on.
fn next_link(
    shared: &Shared,
    result: &TaskResult,
    record: &TaskRecord,
    now: i64,
) -> Option<Deferred> {
    let (link, rest) = record.chain.split_first()?;
    let input = if record.pass_result {
        pass_result(&link.input, result.result_json())
    } else {
        link.input.clone()
    };
    let mut next = TaskRecord::new(
        link.module,
        &link.module_name,
        &link.task,
        input,
        &link.queue,
    );
    next.id = link.id.clone();
    next.limits = link.limits.clone();
    next.group = record.group.clone();
    next.priority = record.priority;
    next.retry = record.retry.clone();
    next.chain = rest.to_vec();
    next.pass_result = record.pass_result;
    next.unique_key = record.unique_key.clone();
    next.tenant = record.tenant.clone();
    deferred(shared, &next, now)
}

/// A record signed as a deferred task due at `due`.
fn deferred(shared: &Shared, record: &TaskRecord, due: i64) -> Option<Deferred> {
    match shared.codec.encode(record) {
        Ok(package) => Some(Deferred {
            id: record.id.clone(),
            task_id: record.id.clone(),
            queue: record.queue.clone(),
            priority: record.priority,
            due_at_ms: due,
            package,
        }),
        Err(error) => {
            tracing::error!(id = %record.id, %error, "cannot package a follow-up task");
            None
        }
    }
}
