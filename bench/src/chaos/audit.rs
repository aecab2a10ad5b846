//! After the faults: waiting, with a bound, for the queue to drain, and the audit of what the
//! store and the broker hold: every enqueued id with exactly one successful result, nothing
//! left queued or in flight, and the re-runs counted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;
use wasq::Client;
use wasq::store::ResultFilter;

use crate::fleet::Fleet;

/// Longest wait for one look at the store or the broker: a server that is down makes the
/// clients retry, and the look just counts as unknown.
const LOOK_TIMEOUT: Duration = Duration::from_secs(3);

/// Results saved and messages still in the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    pub(crate) results: u64,
    /// Visible plus leased messages of every queue.
    pub(crate) in_broker: u64,
}

/// The counts now, or `None` when the store or the broker did not answer.
pub(crate) async fn progress(client: &Client) -> Option<Progress> {
    let look = async {
        let (successes, failures) = client.store().result_totals().await.ok()?;
        let in_broker = in_broker(client).await.ok()?;
        Some(Progress {
            results: successes + failures,
            in_broker,
        })
    };
    tokio::time::timeout(LOOK_TIMEOUT, look)
        .await
        .ok()
        .flatten()
}

/// Visible and leased messages of every queue the broker knows, and of `default`.
async fn in_broker(client: &Client) -> Result<u64> {
    let broker = client.broker();
    let mut queues = broker.queues().await?;
    if !queues.iter().any(|queue| queue == "default") {
        queues.push("default".into());
    }
    let mut total = 0;
    for queue in &queues {
        total += broker.queue_size(queue).await? + broker.lock_size(queue).await?;
    }
    Ok(total)
}

/// How the wait for the drain ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Drain {
    /// Every task has a result and the broker is empty.
    Done,
    /// Nothing moved for the stall window and the broker is empty: what is missing will not
    /// come.
    Stalled,
    /// The bound passed.
    TimedOut,
}

/// Waits until `tasks` results are saved and the broker is empty, at most `bound`; gives up
/// earlier when the broker is empty and no result came for `stall`. Keeps the clusters
/// supervised meanwhile.
pub(crate) async fn wait_for_drain(
    client: &Client,
    fleet: &mut Fleet,
    tasks: u64,
    bound: Duration,
    stall: Duration,
) -> Result<Drain> {
    let deadline = Instant::now() + bound;
    let mut last: Option<(Progress, Instant)> = None;
    loop {
        fleet.supervise()?;
        if let Some(now) = progress(client).await {
            if now.results >= tasks && now.in_broker == 0 {
                return Ok(Drain::Done);
            }
            match last {
                Some((before, since)) if before == now => {
                    if now.in_broker == 0 && since.elapsed() >= stall {
                        return Ok(Drain::Stalled);
                    }
                }
                _ => last = Some((now, Instant::now())),
            }
        }
        if Instant::now() >= deadline {
            return Ok(Drain::TimedOut);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the audit found.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Audit {
    /// Enqueued ids without a result.
    pub(crate) lost: u64,
    /// Results beyond one per enqueued id, and results of ids never enqueued.
    pub(crate) duplicated: u64,
    /// Results with outcome `abandoned`.
    pub(crate) abandoned: u64,
    /// Other results that are not a success.
    pub(crate) failed: u64,
    /// Messages left in the broker, visible or leased.
    pub(crate) left: u64,
    /// Results with attempts > 1.
    pub(crate) reruns: u64,
    /// Attempts beyond the first, summed.
    pub(crate) extra_attempts: u64,
    /// Results saved by a cluster other than the one expected.
    pub(crate) foreign: u64,
    /// Up to three example lines of what went wrong, for the notes.
    pub(crate) examples: Vec<String>,
}

impl Audit {
    /// Whether the scenario passes on these counts.
    pub(crate) fn clean(&self, reruns_allowed: bool) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.abandoned == 0
            && self.failed == 0
            && self.left == 0
            && self.foreign == 0
            && (reruns_allowed || self.reruns == 0)
    }

    /// What is wrong, `3 lost, 2 abandoned`; empty when nothing is.
    pub(crate) fn problems(&self, reruns_allowed: bool) -> String {
        let mut parts = Vec::new();
        for (count, what) in [
            (self.lost, "lost"),
            (self.duplicated, "duplicated"),
            (self.abandoned, "abandoned"),
            (self.failed, "failed"),
            (self.left, "left in the broker"),
            (self.foreign, "run by the wrong cluster"),
        ] {
            if count > 0 {
                parts.push(format!("{count} {what}"));
            }
        }
        if !reruns_allowed && self.reruns > 0 {
            parts.push(format!("{} run more than once", self.reruns));
        }
        parts.join(", ")
    }
}

/// Audits the results of `ids` and the broker; `cluster`, when given, is the name every
/// result's cluster must have.
pub(crate) async fn audit(client: &Client, ids: &[String], cluster: Option<&str>) -> Result<Audit> {
    let results = retried(|| async {
        let filter = ResultFilter {
            limit: u32::try_from(ids.len() * 2 + 100).unwrap_or(u32::MAX),
            ..ResultFilter::default()
        };
        Ok(client.store().search_results(&filter).await?)
    })
    .await
    .context("reading the results")?;
    let left = retried(|| in_broker(client))
        .await
        .context("counting what is left in the broker")?;
    let mut audit = Audit {
        left,
        ..Audit::default()
    };
    let mut by_id: HashMap<&str, Vec<&wasq::store::TaskResult>> = HashMap::new();
    for result in &results {
        by_id.entry(result.id.as_str()).or_default().push(result);
    }
    for id in ids {
        let Some(found) = by_id.remove(id.as_str()) else {
            audit.lost += 1;
            example(&mut audit, format!("{id}: no result"));
            continue;
        };
        audit.duplicated += found.len() as u64 - 1;
        for result in found {
            if result.outcome == "abandoned" {
                audit.abandoned += 1;
                let error = result.error.clone().unwrap_or_default();
                example(&mut audit, format!("{id}: abandoned: {error}"));
            } else if !result.success {
                audit.failed += 1;
                let error = result.error.clone().unwrap_or_default();
                example(&mut audit, format!("{id}: {}: {error}", result.outcome));
            }
            if result.attempts > 1 {
                audit.reruns += 1;
                audit.extra_attempts += u64::from(result.attempts - 1);
            }
            if let Some(name) = cluster
                && !result.cluster.starts_with(&format!("{name}/"))
            {
                audit.foreign += 1;
                example(&mut audit, format!("{id}: run by {}", result.cluster));
            }
        }
    }
    // Results of ids never enqueued.
    audit.duplicated += by_id.values().map(|found| found.len() as u64).sum::<u64>();
    Ok(audit)
}

/// Keeps `line` as one of the first three examples of what went wrong.
fn example(audit: &mut Audit, line: String) {
    if audit.examples.len() < 3 {
        audit.examples.push(line);
    }
}

/// `look`, tried up to five times a second apart (a server may still be recovering).
async fn retried<T, F, Fut>(mut look: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match tokio::time::timeout(Duration::from_secs(10), look()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) if attempt >= 5 => return Err(error),
            Err(_) if attempt >= 5 => anyhow::bail!("no answer within 10 s, five times"),
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}
