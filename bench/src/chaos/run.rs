//! One scenario from start to audit: fresh private servers and a fresh directory, the module
//! uploaded, the tasks enqueued, the clusters started, the faults injected at random moments,
//! the drain waited for, every cluster stopped gracefully, then the audit. A failed scenario
//! keeps its directory (servers' and clusters' logs) and says where it is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use wasq::{Client, Config, TaskRequest};

use crate::audit::{self, Drain};
use crate::backends::{Backends, SetupError};
use crate::faults::{Fault, Stage};
use crate::fleet::{ClusterSpec, Fleet, Settings};
use crate::rng::Rng;
use crate::scenarios::Scenario;
use crate::table::{Row, Status};

/// What every scenario of a run shares.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) wasq: PathBuf,
    /// The run's directory; each scenario gets one inside.
    pub(crate) root: PathBuf,
    pub(crate) module: Vec<u8>,
    pub(crate) seed: u64,
    pub(crate) quick: bool,
}

/// The name of the cluster with the wrong secret.
const WRONG: &str = "wrong";

impl Run {
    /// Runs `scenario` and answers its row; never fails (a failure is the row's status).
    pub(crate) async fn scenario(&self, scenario: &Scenario) -> Row {
        let started = Instant::now();
        let dir = self.root.join(scenario.name);
        let mut row = Row::new(scenario);
        let outcome = match std::fs::create_dir_all(&dir) {
            Ok(()) => self.attempt(scenario, &dir, &mut row).await,
            Err(error) => Err(SetupError::Failed(error.into())),
        };
        row.seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) if scenario.faults > 0 && row.faults == 0 => {
                // Not a silent pass: a scenario whose fault never struck tested nothing.
                let mut problems = row.audit.problems(scenario.reruns_allowed);
                if !problems.is_empty() {
                    problems.push_str("; ");
                }
                problems.push_str("no fault was injected: the work ended first");
                row.status = Status::Fail(problems);
            }
            Ok(()) => {
                let problems = row.audit.problems(scenario.reruns_allowed);
                row.status = if row.audit.clean(scenario.reruns_allowed) {
                    Status::Pass
                } else {
                    Status::Fail(problems)
                };
            }
            Err(SetupError::Skipped(why)) => row.status = Status::Skipped(why),
            Err(SetupError::Failed(error)) => row.status = Status::Fail(format!("{error:#}")),
        }
        if matches!(row.status, Status::Pass | Status::Skipped(_)) {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            row.dir = Some(dir.display().to_string());
        }
        row
    }

    async fn attempt(
        &self,
        scenario: &Scenario,
        dir: &Path,
        row: &mut Row,
    ) -> Result<(), SetupError> {
        let mut rng = Rng::for_scenario(self.seed, scenario.name);
        let mut backends = tokio::task::block_in_place(|| Backends::start(scenario.layout, dir))?;
        let secret = format!("chaos-{}", wasq::package::new_task_id());
        let config = Config {
            broker: backends.broker.clone(),
            store: backends.store.clone(),
            secret: secret.clone(),
            save_limit: 0,
            ..Config::default()
        };
        let client = Client::connect(&config)
            .await
            .context("connecting to the scenario's broker and store")?;
        client
            .upload(&self.module, Some("basics"))
            .await
            .context("uploading basics.wasm")?;
        let mut specs: Vec<ClusterSpec> = (0..scenario.clusters)
            .map(|i| ClusterSpec {
                name: char::from(b'a' + i as u8).to_string(),
                secret: secret.clone(),
            })
            .collect();
        if scenario.wrong_secret {
            specs.push(ClusterSpec {
                name: WRONG.into(),
                secret: format!("not-{secret}"),
            });
        }
        let settings = Settings {
            broker: backends.broker.clone(),
            store: backends.store.clone(),
            lease: scenario.lease,
            workers: scenario.workers,
            queue_limit: scenario.workers * 4,
            max_attempts: 5,
            cache_dir: self.root.join("module-cache"),
        };
        let mut fleet = Fleet::new(&self.wasq, dir, &settings, &specs)?;
        let ids = enqueue(&client, scenario, &mut rng).await?;
        fleet.start_all()?;
        let mut notes = Vec::new();
        self.inject_faults(
            scenario,
            &client,
            &mut fleet,
            &mut backends,
            &mut rng,
            row,
            &mut notes,
        )
        .await?;
        // Whatever a fault left down is started again before the drain.
        tokio::task::block_in_place(|| backends.ensure_running())?;
        fleet.supervise()?;
        let bound = if self.quick {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(150)
        };
        let stall = scenario.lease * 3 + Duration::from_secs(10);
        let drain =
            audit::wait_for_drain(&client, &mut fleet, ids.len() as u64, bound, stall).await?;
        match drain {
            Drain::Done => {}
            Drain::Stalled => notes.push(format!(
                "the broker was empty and no result came for {}s: the missing tasks are gone",
                stall.as_secs()
            )),
            Drain::TimedOut => notes.push(format!(
                "the queue had not drained after {}s",
                bound.as_secs()
            )),
        }
        tokio::task::block_in_place(|| fleet.stop_all())?;
        let expected = scenario.wrong_secret.then_some("a");
        row.audit = audit::audit(&client, &ids, expected).await?;
        notes.extend(row.audit.examples.iter().cloned());
        notes.extend(fleet.unexpected_exits.iter().cloned());
        notes.extend(fleet.bad_stops.iter().cloned());
        row.notes = dedup_counted(notes);
        drop(client);
        drop(fleet);
        tokio::task::block_in_place(|| backends.teardown())?;
        Ok(())
    }

    /// Injects the scenario's faults at random moments while there is work left.
    #[allow(clippy::too_many_arguments)]
    async fn inject_faults(
        &self,
        scenario: &Scenario,
        client: &Client,
        fleet: &mut Fleet,
        backends: &mut Backends,
        rng: &mut Rng,
        row: &mut Row,
        notes: &mut Vec<String>,
    ) -> Result<()> {
        if matches!(scenario.fault, Fault::None) {
            return Ok(());
        }
        for _ in 0..scenario.faults {
            let gap = rng.millis(scenario.gap_ms);
            let until = Instant::now() + gap;
            while Instant::now() < until {
                fleet.supervise()?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Some(now) = audit::progress(client).await
                && now.results >= scenario.tasks as u64
            {
                notes.push("the work ended before every planned fault".into());
                break;
            }
            let mut stage = Stage {
                fleet: &mut *fleet,
                backends: &mut *backends,
                rng: &mut *rng,
                notes: &mut *notes,
            };
            let injected = tokio::task::block_in_place(|| stage.inject(scenario.fault))
                .with_context(|| format!("injecting {}", scenario.fault.label()))?;
            row.faults += injected;
        }
        Ok(())
    }
}

/// Enqueues the scenario's tasks (`sleep` for a random time each) in batches; their ids.
async fn enqueue(client: &Client, scenario: &Scenario, rng: &mut Rng) -> Result<Vec<String>> {
    let requests: Vec<TaskRequest> = (0..scenario.tasks)
        .map(|_| {
            TaskRequest::new("basics", "sleep")
                .args(serde_json::json!([rng.range(scenario.task_ms)]))
        })
        .collect();
    let mut ids = Vec::with_capacity(requests.len());
    for batch in requests.chunks(100) {
        ids.extend(
            client
                .enqueue_many(batch)
                .await
                .context("enqueueing the tasks")?,
        );
    }
    Ok(ids)
}

/// The notes with repeated lines folded into one, `(×3)`, and lines that differ only in one
/// number into one with the numbers listed: `ended 12, 9, 11 connections`.
fn dedup_counted(notes: Vec<String>) -> Vec<String> {
    // (prefix, suffix) → the numbers, or the whole line → its count.
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    for note in notes {
        let (prefix, number, suffix) = split_number(&note);
        // A line without a number folds only with the same line; one with a number, with
        // lines that differ only in that number.
        let numbered = number.is_some();
        match out.iter_mut().find(|(p, s, numbers)| {
            *p == prefix
                && *s == suffix
                && numbers.first().is_some_and(|n| !n.is_empty()) == numbered
        }) {
            Some((_, _, numbers)) => numbers.push(number.unwrap_or_default()),
            None => out.push((prefix, suffix, vec![number.unwrap_or_default()])),
        }
    }
    out.into_iter()
        .map(|(prefix, suffix, numbers)| {
            let shown: Vec<&String> = numbers.iter().filter(|n| !n.is_empty()).collect();
            if shown.is_empty() {
                match numbers.len() {
                    1 => format!("{prefix}{suffix}"),
                    n => format!("{prefix}{suffix} (×{n})"),
                }
            } else {
                let list: Vec<&str> = shown.iter().map(|n| n.as_str()).collect();
                format!("{prefix}{}{suffix}", list.join(", "))
            }
        })
        .collect()
}

/// A line split around its first number, `("ended ", Some("12"), " connections")`; a line
/// without one is `(line, None, "")`.
fn split_number(line: &str) -> (String, Option<String>, String) {
    let Some(start) = line.find(|c: char| c.is_ascii_digit()) else {
        return (line.to_owned(), None, String::new());
    };
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    (
        line[..start].to_owned(),
        Some(rest[..end].to_owned()),
        rest[end..].to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_fold_repeats_and_numbers() {
        let notes = vec![
            "cluster a exited".to_string(),
            "ended 12 connections".into(),
            "cluster a exited".into(),
            "ended 9 connections".into(),
            "alone".into(),
        ];
        assert_eq!(
            dedup_counted(notes),
            vec!["cluster a exited (×2)", "ended 12, 9 connections", "alone"]
        );
    }
}
