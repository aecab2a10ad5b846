//! Tenants' quotas hold on every path, and fairness is decided at
//! dispatch, black box through `wasq serve`: `max_queued` counts deferred
//! tasks and every queue, races of concurrent batches never overshoot it,
//! schedules and resubmits take a place too; `fuel_per_minute` is charged
//! while tasks run; a tenant's timeout is capped by the cluster's; one
//! tenant's long tasks never keep another's task from starting.

use std::time::Duration;

use serde_json::{Value, json};

use crate::service::Service;

fn quota_of(body: &Value) -> &str {
    body["error"]["quota"].as_str().unwrap_or_default()
}

/// Polls `check` every 50 ms, up to `tries` times.
async fn poll<T>(tries: u32, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..tries {
        if let Some(found) = check().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn max_queued_counts_deferred_tasks_and_every_queue() {
    // No cluster: nothing runs, nothing frees a place.
    let service = Service::start(&[], &[]);
    let key = service.tenant("alpha", &["--quota", "max_queued=3"]);
    assert_eq!(service.upload(&key, "basics", "basics").await.0, 201);
    let task = |extra: Value| {
        let mut task = json!({"module": "basics", "task": "noop"});
        if let (Some(task), Some(extra)) = (task.as_object_mut(), extra.as_object()) {
            task.extend(extra.clone());
        }
        task
    };
    service
        .enqueue(&key, task(json!({"delay_secs": 3600})))
        .await;
    service.enqueue(&key, task(json!({"queue": "other"}))).await;
    service.enqueue(&key, task(json!({"queue": "third"}))).await;
    for extra in [
        json!({}),
        json!({"queue": "fourth"}),
        json!({"delay_secs": 60}),
    ] {
        let (status, body) = service.post(&key, "/v1/tasks", task(extra)).await;
        assert_eq!((status, quota_of(&body)), (429, "max_queued"), "{body}");
    }
    let (status, body) = service
        .post(
            &key,
            "/v1/tasks/batch",
            json!({"tasks": [task(json!({"queue": "fifth"}))]}),
        )
        .await;
    assert_eq!((status, quota_of(&body)), (429, "max_queued"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_batches_take_exactly_the_places_left() {
    const QUOTA: usize = 25;
    const FIRST: usize = 15;
    let service = Service::start(&[], &[]);
    let key = service.tenant("alpha", &["--quota", &format!("max_queued={QUOTA}")]);
    assert_eq!(service.upload(&key, "basics", "basics").await.0, 201);
    let task = json!({"module": "basics", "task": "noop"});
    let tasks: Vec<Value> = (0..FIRST).map(|_| task.clone()).collect();
    let (status, body) = service
        .post(&key, "/v1/tasks/batch", json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{body}");
    // 20 requests at once for the last 10 places, each in another queue.
    let mut racing = tokio::task::JoinSet::new();
    for i in 0..20 {
        let request = reqwest::Client::new()
            .post(format!("{}/v1/tasks/batch", service.url))
            .bearer_auth(&key)
            .json(
                &json!({"tasks": [{"module": "basics", "task": "noop", "queue": format!("q{i}")}]}),
            );
        racing.spawn(async move {
            let response = request.send().await.expect("a response");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("JSON"))
        });
    }
    let answers = racing.join_all().await;
    let accepted = answers.iter().filter(|(status, _)| *status == 201).count();
    for (status, body) in &answers {
        assert!(
            *status == 201 || (*status == 429 && quota_of(body) == "max_queued"),
            "{status}: {body}"
        );
    }
    assert_eq!(accepted, QUOTA - FIRST, "{answers:?}");
    let (_, queues) = service.get(&key, "/v1/queues").await;
    let queued: u64 = queues
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q["size"].as_u64())
        .sum();
    assert_eq!(queued as usize, QUOTA, "{queues}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedules_run_over_max_queued_is_a_failure_naming_it() {
    let service = Service::start(&["--workers", "1"], &[]);
    let key = service.tenant("alpha", &["--quota", "max_queued=1"]);
    assert_eq!(service.upload(&key, "basics", "basics").await.0, 201);
    // The one place, held by a task due in an hour.
    service
        .enqueue(
            &key,
            json!({"module": "basics", "task": "noop", "delay_secs": 3600}),
        )
        .await;
    let (status, body) = service
        .post(
            &key,
            "/v1/schedules",
            json!({"name": "tick", "module": "basics", "task": "noop", "kind": "once"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let task = poll(600, "the schedule to fire", async || {
        let (_, schedule) = service.get(&key, "/v1/schedules/tick").await;
        schedule["last_task"].as_str().map(str::to_owned)
    })
    .await;
    let result = service.result(&key, &task).await;
    assert_eq!(result["success"], false, "{result}");
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("max_queued")),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resubmit_over_max_queued_is_refused_and_the_failure_kept() {
    let service = Service::start(&["--workers", "1"], &[]);
    let key = service.tenant("alpha", &["--quota", "max_queued=2"]);
    assert_eq!(service.upload(&key, "basics", "basics").await.0, 201);
    let failed = service
        .enqueue(&key, json!({"module": "basics", "task": "fail"}))
        .await;
    let result = service.result(&key, &failed).await;
    assert_eq!(result["success"], false, "{result}");
    for _ in 0..2 {
        service
            .enqueue(
                &key,
                json!({"module": "basics", "task": "noop", "delay_secs": 3600}),
            )
            .await;
    }
    let run = service.wasq(&["failed", "resubmit", &failed]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.one_line_error().contains("max_queued"), "{run:?}");
    // Refused, not lost: the failure is still there to resubmit later.
    let (status, task) = service.get(&key, &format!("/v1/tasks/{failed}")).await;
    assert_eq!(
        (status, &task["status"]),
        (200, &json!("finished")),
        "{task}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fuel_is_charged_while_long_tasks_run() {
    const WINDOW_MS: i64 = 2000;
    const TASK_FUEL: u64 = 300_000_000;
    let service = Service::start(&["--workers", "4"], &[("WASQ_FUEL_WINDOW", "2s")]);
    let key = service.tenant(
        "alpha",
        &[
            "--quota",
            &format!("max_fuel={TASK_FUEL}"),
            "--quota",
            &format!("fuel_per_minute={}", 2 * TASK_FUEL),
        ],
    );
    assert_eq!(service.upload(&key, "basics", "basics").await.0, 201);
    // Each burns its whole budget: spin ends only at its fuel limit.
    let tasks: Vec<Value> = (0..8)
        .map(|_| json!({"module": "basics", "task": "spin", "group": "spin"}))
        .collect();
    let (status, body) = service
        .post(&key, "/v1/tasks/batch", json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{body}");
    let results = poll(1200, "the spinning tasks", async || {
        let results = service.group(&key, "spin").await;
        (results.len() == 8).then_some(results)
    })
    .await;
    let mut per_window = std::collections::BTreeMap::<i64, u64>::new();
    for result in &results {
        assert_eq!(result["outcome"], "fuel_exhausted", "{result}");
        let stopped = result["stopped_at_ms"].as_i64().expect("a time");
        *per_window.entry(stopped.div_euclid(WINDOW_MS)).or_default() +=
            result["fuel"].as_u64().expect("fuel");
    }
    let budget = 2 * TASK_FUEL;
    for (window, used) in &per_window {
        assert!(
            *used <= budget + TASK_FUEL,
            "window {window}: {used} fuel burnt, budget {budget} + one task's {TASK_FUEL}: {per_window:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_timeout_is_capped_by_the_clusters() {
    let service = Service::start(&["--workers", "1"], &[("WASQ_TIMEOUT", "2s")]);
    let key = service.tenant("alpha", &[]);
    assert_eq!(service.upload(&key, "basics", "basics").await.0, 201);
    let id = service
        .enqueue(
            &key,
            json!({"module": "basics", "task": "sleep", "args": [10000], "timeout_ms": 10000}),
        )
        .await;
    let result = service.result(&key, &id).await;
    assert_eq!(result["outcome"], "timeout", "{result}");
    let wall = result["wall_us"].as_u64().expect("a wall time");
    assert!(
        wall < 10_000_000,
        "ran {wall} µs: past the cluster's timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_long_tasks_never_keep_anothers_task_from_starting() {
    const LONG: usize = 8;
    let service = Service::start(&["--workers", "4"], &[]);
    let big = service.tenant("big", &[]);
    let small = service.tenant("small", &[]);
    assert_eq!(service.upload(&big, "basics", "basics").await.0, 201);
    assert_eq!(service.upload(&small, "basics", "basics").await.0, 201);
    let tasks: Vec<Value> = (0..LONG)
        .map(|_| json!({"module": "basics", "task": "sleep", "args": [1500], "group": "long"}))
        .collect();
    let (status, body) = service
        .post(&big, "/v1/tasks/batch", json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = service
        .enqueue(&small, json!({"module": "basics", "task": "noop"}))
        .await;
    let result = service.result(&small, &id).await;
    assert_eq!(result["success"], true, "{result}");
    // The big tenant still had tasks to run when the small one's was done.
    let done_then = service.group(&big, "long").await.len();
    assert!(done_then < LONG, "all {LONG} long tasks ran first");
    let started = result["started_at_ms"].as_i64().expect("a time");
    let long = poll(1200, "the long tasks", async || {
        let results = service.group(&big, "long").await;
        (results.len() == LONG).then_some(results)
    })
    .await;
    let after = long
        .iter()
        .filter(|r| r["started_at_ms"].as_i64().is_some_and(|t| t > started))
        .count();
    // With 4 workers and one held for others, at most 3 long tasks can
    // have started before it; the rest started after.
    assert!(
        after >= LONG - 3,
        "{after} of {LONG} long tasks started after the small tenant's task"
    );
}
