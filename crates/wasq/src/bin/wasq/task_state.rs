//! What `wasq result` says of a task that has no result yet: queued,
//! running, pruned or unknown, with what to do next.

use std::time::Duration;

use wasq::store::TaskState;

/// The line `wasq result` prints for a task without a result (`None` for
/// a finished one): queued (and when it is due), running, finished with
/// its result pruned, or unknown. `waited` is how long `--wait` waited.
pub(crate) fn state_line(id: &str, state: &TaskState, waited: Option<Duration>) -> Option<String> {
    let within = waited
        .map(|d| format!(" after waiting {}", wasq::units::format_duration(d)))
        .unwrap_or_default();
    Some(match state {
        TaskState::Finished(_) => return None,
        TaskState::Pruned(t) => format!(
            "task {id} ended with {} at {}, but its result was pruned: save_limit keeps only the newest successes of each queue (raise save_limit to keep more)",
            t.outcome,
            utc(t.stopped_at_ms)
        ),
        TaskState::Running {
            cluster,
            started_at_ms,
        } => {
            let on = if cluster.is_empty() {
                String::new()
            } else {
                format!(" on cluster {cluster}")
            };
            format!(
                "task {id} is still running{within} (since {}{on}); wait for it with `wasq result {id} --wait`",
                utc(*started_at_ms)
            )
        }
        TaskState::Queued {
            due_at_ms: Some(due),
        } => format!(
            "task {id} is queued{within}, due at {}; wait for it with `wasq result {id} --wait`",
            utc(*due)
        ),
        TaskState::Queued { due_at_ms: None } => format!(
            "task {id} is queued{within}, waiting for a worker; is a cluster running? (`wasq cluster`; then `wasq result {id} --wait`)"
        ),
        TaskState::Unknown => format!(
            "task {id} has not finished{within}, and there is no record of it: it is still queued, or was never enqueued (check the id; is a cluster running? `wasq cluster`, then `wasq result {id} --wait`)"
        ),
    })
}

/// A time as `2026-12-02 04:30:00 UTC`.
pub(crate) fn utc(ms: i64) -> String {
    wasq::schedule::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| format!("{ms} ms"))
}
