//! The overview: clusters with their workers, tasks queued and in
//! flight, tasks per second, outcomes of the last hour as a chart, and
//! each running task with its elapsed time and fuel budget. It reloads
//! itself every two seconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::State;
use maud::{Markup, html};

use super::page::{self, count, micros, task_link};
use super::{PageResult, Viewer, queues};
use crate::AppState;
use wasq_store::{OutcomeBucket, now_ms};

/// Minutes the chart covers.
const CHART_MINUTES: i64 = 60;
/// Clusters that did not report for this long are gone.
const CLUSTER_SILENCE: Duration = Duration::from_secs(10);

pub(crate) async fn page(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let store = state.client.store();
    let tenant = viewer.tenant();
    let now = now_ms();
    let clusters = store.clusters(CLUSTER_SILENCE).await?;
    let queues = queues::in_scope(&state, &viewer).await?;
    let queued: u64 = queues.iter().map(|q| q.waiting).sum();
    let minute = 60_000;
    let since = (now / minute - (CHART_MINUTES - 1)) * minute;
    let buckets = store.outcome_buckets(tenant, since, minute).await?;
    // An admin's rate comes from the clusters' counters (all tasks); a
    // tenant's from its results of the last minute.
    let per_second = match tenant {
        None => state.throughput.sample(
            std::time::Instant::now(),
            clusters.iter().map(|c| c.done).sum(),
        ),
        Some(_) => {
            let last_minute: u64 = store
                .outcome_buckets(tenant, now - minute, minute)
                .await?
                .iter()
                .map(|b| b.count)
                .sum();
            Some(last_minute as f64 / 60.0)
        }
    };
    let running: Vec<_> = clusters
        .iter()
        .flat_map(|c| c.running.iter().map(move |r| (c, r)))
        .filter(|(_, r)| viewer.sees(r.tenant.as_deref()))
        .collect();
    let in_flight = match tenant {
        None => clusters.iter().map(|c| c.in_flight).sum(),
        Some(_) => running.len() as u64,
    };
    let failed: u64 = buckets
        .iter()
        .filter(|b| b.outcome != "success")
        .map(|b| b.count)
        .sum();
    let content = html! {
        div.tiles {
            (tile("Clusters", count(clusters.len() as u64)))
            (tile("Workers", count(clusters.iter().map(|c| c.workers as u64).sum())))
            (tile("Queued", count(queued)))
            (tile("In flight", count(in_flight)))
            (tile("Tasks / s", per_second.map_or("…".into(), |r| format!("{r:.1}"))))
            (tile("Done", count(clusters.iter().map(|c| c.done).sum())))
            (tile("Failed, 1 h", count(failed)))
        }
        h2 { "Outcomes of kept results, last hour (per minute)" }
        div.chart {
            (page::trusted(chart(&buckets, since, minute)))
            div.legend {
                span { span.swatch.ok {} "success" }
                span { span.swatch.bad {} "failed" }
                span { span.swatch.muted {} "cancelled" }
                span { "Successes beyond " code { "save_limit" } " are pruned; failures are all kept." }
            }
        }
        h2 { "Clusters" }
        @if clusters.is_empty() {
            p.empty { "No cluster has reported in the last 10 seconds. Start one: " code { "wasq cluster" } " (or " code { "wasq serve --workers N" } ")." }
        } @else {
            table {
                thead { tr {
                    th { "Cluster" }
                    @if tenant.is_none() { th { "Host" } th.num { "PID" } }
                    th.num { "Workers" } th.num { "In flight" } th.num { "Done" } th { "Status" } th { "Up since (UTC)" }
                } }
                tbody {
                    @for c in &clusters { tr {
                        td { b { (c.name) } @if !c.label.is_empty() && c.label != c.name { " " span.muted { (c.label) } } }
                        @if tenant.is_none() { td { (c.host) } td.num { (c.pid) } }
                        td.num { (c.workers) }
                        td.num { (count(c.in_flight)) }
                        td.num { (count(c.done)) }
                        td { span class={ "badge " (if c.status == "running" { "ok" } else { "warn" }) } { (c.status) } }
                        td { (page::time(c.started_at_ms)) }
                    } }
                }
            }
        }
        h2 { "Running now" }
        @if running.is_empty() {
            p.empty { "No task is running." }
        } @else {
            table {
                thead { tr {
                    th { "Task" } th { "Module" } th { "Function" }
                    @if tenant.is_none() { th { "Tenant" } }
                    th { "Cluster" } th.num { "Elapsed" } th.num { "Fuel budget" }
                } }
                tbody {
                    @for (c, r) in &running { tr {
                        td { (task_link(&r.id)) }
                        td { (r.module) }
                        td { (r.task) }
                        @if tenant.is_none() { td { (r.tenant.as_deref().unwrap_or("–")) } }
                        td { (c.name) }
                        td.num { (micros((now - r.started_at_ms).max(0) as u64 * 1000)) }
                        td.num { (count(r.fuel_limit)) }
                    } }
                }
            }
        }
    };
    Ok(page::frame(&viewer, "/", "Overview", true, content))
}

fn tile(label: &str, value: String) -> Markup {
    html! { div.tile data-tile=(label) { div.label { (label) } div.value { (value) } } }
}

/// Stacked bars, one per bucket from `since`: successes at the bottom,
/// failures above, cancellations on top. Only numbers go into the SVG.
fn chart(buckets: &[OutcomeBucket], since: i64, bucket_ms: i64) -> String {
    const WIDTH: f64 = 960.0;
    const HEIGHT: f64 = 150.0;
    let slots = CHART_MINUTES as usize;
    let mut stacks: BTreeMap<usize, [u64; 3]> = BTreeMap::new();
    for b in buckets {
        let slot = ((b.start_ms - since) / bucket_ms).clamp(0, CHART_MINUTES - 1) as usize;
        let layer = match b.outcome.as_str() {
            "success" => 0,
            "cancelled" => 2,
            _ => 1,
        };
        stacks.entry(slot).or_default()[layer] += b.count;
    }
    let peak = stacks
        .values()
        .map(|s| s.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let slot_width = WIDTH / slots as f64;
    let mut svg = format!(
        r##"<svg viewBox="0 0 {WIDTH} {}" preserveAspectRatio="none" role="img" aria-label="outcomes per minute"><line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" stroke="#e3e6ea"/>"##,
        HEIGHT + 18.0
    );
    for (slot, stack) in &stacks {
        let x = *slot as f64 * slot_width + 1.0;
        let mut top = HEIGHT;
        for (layer, colour) in stack.iter().zip(["#2e8b57", "#c9453e", "#aab2bb"]) {
            if *layer == 0 {
                continue;
            }
            let height = (*layer as f64 / peak as f64 * (HEIGHT - 8.0)).max(1.0);
            top -= height;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{height:.1}" fill="{colour}"><title>{layer}</title></rect>"#,
                slot_width - 2.0
            );
        }
    }
    let _ = write!(
        svg,
        r##"<text x="0" y="{}" font-size="11" fill="#6a737d">−60 min</text><text x="{WIDTH}" y="{}" font-size="11" fill="#6a737d" text-anchor="end">now · peak {peak}/min</text></svg>"##,
        HEIGHT + 15.0,
        HEIGHT + 15.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_stacks_outcomes_per_minute() {
        let bucket = |start_ms, outcome: &str, count| OutcomeBucket {
            start_ms,
            outcome: outcome.into(),
            count,
        };
        let svg = chart(
            &[
                bucket(0, "success", 4),
                bucket(0, "trap", 2),
                bucket(60_000, "cancelled", 1),
            ],
            0,
            60_000,
        );
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("peak 6/min"));
        assert!(svg.contains(r##"fill="#c9453e"><title>2</title>"##));
    }
}
