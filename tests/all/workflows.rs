//! Workflows through the `wasq` binary on the embedded default: retries
//! with backoff and `wasq failed`, chains, hooks, map and groups, unique
//! keys, priorities, ETAs, cancel (queued and running), schedules that
//! fire once across two clusters, and bad schedule input.

use std::path::Path;
use std::time::Duration;

use wasq_tests::{ClusterProcess, eventually, wasm, wasq_in};

/// A temp dir with basics.wasm uploaded as `basics`.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let basics = wasm("basics");
    let run = wasq_in(
        dir.path(),
        &[
            "module",
            "upload",
            basics.to_str().unwrap(),
            "--name",
            "basics",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    dir
}

fn json_of(dir: &Path, args: &[&str]) -> serde_json::Value {
    let run = wasq_in(dir, args);
    assert_eq!(run.code, 0, "{args:?}: {run:?}");
    run.json()
}

fn enqueue(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["enqueue"];
    all.extend_from_slice(args);
    all.push("--json");
    json_of(dir, &all)["id"].as_str().unwrap().to_owned()
}

fn result(dir: &Path, id: &str) -> serde_json::Value {
    let run = wasq_in(dir, &["result", id, "--wait", "--timeout", "60s", "--json"]);
    assert!(!run.stdout.is_empty(), "no result for {id}: {run:?}");
    run.json()
}

#[test]
fn a_flaky_task_succeeds_on_its_third_attempt_with_growing_backoff() {
    let dir = setup();
    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "2"], &[]);
    let run = wasq_in(
        dir.path(),
        &[
            "enqueue",
            "basics",
            "flaky",
            "--kwargs",
            r#"{"succeed_on": 3}"#,
            "--max-attempts",
            "3",
            "--backoff",
            "300ms",
            "--backoff-factor",
            "2",
            "--jitter",
            "0",
            "--wait",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let result = run.json();
    assert_eq!(result["outcome"], "success");
    assert_eq!(result["result"], 3, "the guest saw its attempt number");
    assert_eq!(result["attempts"], 3);
    let log = result["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2, "{result}");
    let delays: Vec<u64> = log
        .iter()
        .map(|a| a["retry_in_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, [300, 600], "backoff doubles");
    assert!(log.iter().all(|a| a["outcome"] == "guest_error"));
    assert!(
        log[0]["error"]
            .as_str()
            .unwrap()
            .contains("attempt 1 of 3 fails"),
        "{log:?}"
    );
    // No attempt started before its backoff was over.
    let second_started = log[1]["started_at_ms"].as_i64().unwrap();
    let first_stopped = log[0]["stopped_at_ms"].as_i64().unwrap();
    assert!(second_started - first_stopped >= 300, "{log:?}");
    let third_started = result["started_at_ms"].as_i64().unwrap();
    assert!(
        third_started - log[1]["stopped_at_ms"].as_i64().unwrap() >= 600,
        "{result}"
    );
    // Only one result: the failed attempts are in the log, not failures.
    let failed = json_of(dir.path(), &["failed", "list", "--json"]);
    assert_eq!(failed.as_array().unwrap().len(), 0, "{failed}");
}

#[test]
fn attempts_run_out_into_failures_and_resubmit_brings_a_task_back() {
    let dir = setup();
    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "2"], &[]);
    let run = wasq_in(
        dir.path(),
        &[
            "enqueue",
            "basics",
            "flaky",
            "--args",
            "[5]",
            "--max-attempts",
            "2",
            "--backoff",
            "100ms",
            "--wait",
            "--json",
        ],
    );
    assert_eq!(run.code, 1, "a guest error: {run:?}");
    let failed = run.json();
    assert_eq!(failed["outcome"], "guest_error");
    assert_eq!(failed["attempts"], 2);
    let id = failed["id"].as_str().unwrap();
    let list = json_of(dir.path(), &["failed", "list", "--json"]);
    assert_eq!(list[0]["id"], id, "{list}");
    let table = wasq_in(dir.path(), &["failed", "list"]);
    assert!(table.stdout.starts_with("ID"), "{table:?}");
    assert!(table.stdout.contains(id), "{table:?}");

    let run = wasq_in(dir.path(), &["failed", "resubmit", id]);
    assert_eq!(run.code, 0, "{run:?}");
    let new_id = run.stdout.trim().to_owned();
    assert_ne!(new_id, id);
    let again = result(dir.path(), &new_id);
    assert_eq!(again["task"], "flaky");
    assert_eq!(again["attempts"], 2, "fresh attempts, the same policy");
    let list = json_of(dir.path(), &["failed", "list", "--json"]);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [new_id.as_str()], "the old failure is gone");

    let run = wasq_in(
        dir.path(),
        &["failed", "resubmit", "0123456789abcdef0123456789abcdef"],
    );
    assert_eq!(run.code, 1);
    assert!(run.one_line_error().contains("no failed task"), "{run:?}");
}

#[test]
fn a_four_task_chain_runs_in_order_passing_results() {
    let dir = setup();
    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "4"], &[]);
    let chain = dir.path().join("chain.json");
    std::fs::write(
        &chain,
        r#"{"pass_result": true, "tasks": [
            {"module": "basics", "task": "add", "args": [1, 2]},
            {"module": "basics", "task": "add", "args": [10]},
            {"module": "basics", "task": "add", "args": [100]},
            {"module": "basics", "task": "add", "args": [1000]}]}"#,
    )
    .unwrap();
    let run = wasq_in(
        dir.path(),
        &["chain", chain.to_str().unwrap(), "--wait", "--json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let results = run.json();
    let values: Vec<i64> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_i64().unwrap())
        .collect();
    assert_eq!(values, [3, 13, 113, 1113]);
    for pair in results.as_array().unwrap().windows(2) {
        assert!(
            pair[1]["started_at_ms"].as_i64() >= pair[0]["stopped_at_ms"].as_i64(),
            "each link starts after the one before ended: {pair:?}"
        );
    }

    // Without passing results each task keeps its own arguments; a failed
    // link stops the chain and the rest end cancelled.
    std::fs::write(
        &chain,
        r#"[{"module": "basics", "task": "add", "args": [1, 2]},
            {"module": "basics", "task": "fail"},
            {"module": "basics", "task": "add", "args": [3, 4]}]"#,
    )
    .unwrap();
    let run = wasq_in(
        dir.path(),
        &["chain", chain.to_str().unwrap(), "--wait", "--json"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let outcomes: Vec<String> = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["success", "guest_error", "cancelled"]);

    let run = wasq_in(
        dir.path(),
        &[
            "chain",
            chain.to_str().unwrap().replace("chain", "nope").as_str(),
        ],
    );
    assert_eq!(run.code, 2);
    run.one_line_error();
    std::fs::write(&chain, "{not json").unwrap();
    let run = wasq_in(dir.path(), &["chain", chain.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.one_line_error().contains("not a chain"), "{run:?}");
}

#[test]
fn a_hook_receives_the_finished_tasks_record() {
    let dir = setup();
    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "2"], &[]);
    let id = enqueue(
        dir.path(),
        &["basics", "fib", "--args", "[10]", "--hook", "basics:record"],
    );
    assert_eq!(result(dir.path(), &id)["result"], 55);
    let hook = result(dir.path(), &wasq::workflow::hook_id(&id));
    assert_eq!(hook["task"], "record");
    assert_eq!(hook["outcome"], "success", "{hook}");
    assert_eq!(hook["result"]["seen"], id.as_str());
    assert_eq!(hook["result"]["outcome"], "success");
    assert_eq!(hook["result"]["result"], 55);

    let run = wasq_in(
        dir.path(),
        &["enqueue", "basics", "fib", "--hook", "basics"],
    );
    assert_eq!(run.code, 2);
    assert!(run.one_line_error().contains("--hook"), "{run:?}");
}

#[test]
fn map_returns_results_in_input_order_and_group_counts_them() {
    let dir = setup();
    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "4"], &[]);
    let lines = dir.path().join("pairs.jsonl");
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&format!("[{i}, {}]\n", i * 100));
    }
    text.push_str("\n{\"args\": [1], \"kwargs\": {\"b\": 2}}\n");
    std::fs::write(&lines, text).unwrap();
    let run = wasq_in(
        dir.path(),
        &[
            "map",
            "basics",
            "add",
            "--args-file",
            lines.to_str().unwrap(),
            "--group",
            "sums",
            "--wait",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let values: Vec<i64> = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_i64().unwrap())
        .collect();
    let mut expected: Vec<i64> = (0..20).map(|i| i + i * 100).collect();
    expected.push(3);
    assert_eq!(values, expected);

    let group = json_of(dir.path(), &["group", "sums", "--json"]);
    assert_eq!(group["count"], 21);
    assert_eq!(group["outcomes"]["success"], 21);
    let table = wasq_in(dir.path(), &["group", "sums"]);
    assert!(
        table
            .stdout
            .starts_with("group sums: 21 results (21 success)"),
        "{table:?}"
    );

    std::fs::write(&lines, "[1, 2]\n{oops\n").unwrap();
    let run = wasq_in(
        dir.path(),
        &[
            "map",
            "basics",
            "add",
            "--args-file",
            lines.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 2);
    assert!(run.one_line_error().contains("line 2: bad JSON"), "{run:?}");
}

#[test]
fn a_unique_key_drops_equal_tasks_while_one_is_queued_or_running() {
    let dir = setup();
    let first = enqueue(
        dir.path(),
        &[
            "basics",
            "add",
            "--args",
            "[1, 1]",
            "--unique-key",
            "sync:42",
        ],
    );
    let run = wasq_in(
        dir.path(),
        &[
            "enqueue",
            "basics",
            "add",
            "--args",
            "[2, 2]",
            "--unique-key",
            "sync:42",
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let line = run.one_line_error();
    assert!(line.contains("skipped") && line.contains(&first), "{line}");
    // Another key is fine.
    enqueue(
        dir.path(),
        &[
            "basics",
            "add",
            "--args",
            "[3, 3]",
            "--unique-key",
            "sync:43",
        ],
    );
    let queued = json_of(dir.path(), &["queue", "size", "--json"]);
    assert_eq!(
        queued["queued"], 2,
        "the duplicate was not enqueued: {queued}"
    );

    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "2"], &[]);
    assert_eq!(result(dir.path(), &first)["result"], 2);
    // Finished: the key is free again.
    let again = eventually(Duration::from_secs(10), "the key to be released", || {
        let run = wasq_in(
            dir.path(),
            &[
                "enqueue",
                "basics",
                "add",
                "--args",
                "[5, 5]",
                "--unique-key",
                "sync:42",
                "--json",
            ],
        );
        (run.code == 0).then(|| run.json()["id"].as_str().unwrap().to_owned())
    });
    assert_eq!(result(dir.path(), &again)["result"], 10);
}

#[test]
fn higher_priorities_run_first() {
    let dir = setup();
    let mut low = Vec::new();
    let mut high = Vec::new();
    for i in 0..5 {
        low.push(enqueue(
            dir.path(),
            &["basics", "add", "--args", &format!("[{i}, 0]")],
        ));
        high.push(enqueue(
            dir.path(),
            &[
                "basics",
                "add",
                "--args",
                &format!("[{i}, 1000]"),
                "--priority",
                "10",
            ],
        ));
    }
    let urgent = enqueue(
        dir.path(),
        &["basics", "add", "--args", "[0, 0]", "--priority", "1000"],
    );
    let run = wasq_in(
        dir.path(),
        &["enqueue", "basics", "add", "--priority", "5000"],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.one_line_error()
            .contains("priority: 5000 is out of range"),
        "{run:?}"
    );

    let _cluster = ClusterProcess::start(
        dir.path(),
        &["--workers", "1"],
        &[("WASQ_QUEUE_LIMIT", "1")],
    );
    let started = |id: &str| result(dir.path(), id)["started_at_ms"].as_i64().unwrap();
    let urgent_at = started(&urgent);
    let last_high = high.iter().map(|id| started(id)).max().unwrap();
    let first_low = low.iter().map(|id| started(id)).min().unwrap();
    assert!(
        high.iter().all(|id| started(id) >= urgent_at),
        "1000 before 10"
    );
    assert!(
        last_high <= first_low,
        "every priority-10 task started before the priority-0 ones"
    );
}

#[test]
fn a_task_with_an_eta_does_not_run_before_it() {
    let dir = setup();
    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "2"], &[]);
    // The ETA is taken when `wasq enqueue` parses `--in`, which is after
    // this instant and may be a few ms before the record's enqueue time.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let id = enqueue(
        dir.path(),
        &["basics", "add", "--args", "[2, 3]", "--in", "2s"],
    );
    let done = result(dir.path(), &id);
    assert_eq!(done["result"], 5);
    let waited = done["started_at_ms"].as_i64().unwrap() - before;
    assert!(
        waited >= 2000,
        "started {waited} ms after the command began"
    );

    let run = wasq_in(
        dir.path(),
        &["enqueue", "basics", "add", "--at", "yesterday-ish"],
    );
    assert_eq!(run.code, 2);
    assert!(run.one_line_error().contains("--at: time:"), "{run:?}");
}

#[test]
fn cancel_a_queued_task_and_a_running_one() {
    let dir = setup();
    // Queued: no cluster runs yet.
    let queued = enqueue(dir.path(), &["basics", "add", "--args", "[1, 2]"]);
    let run = wasq_in(dir.path(), &["cancel", &queued]);
    assert_eq!(run.code, 0, "{run:?}");
    let deferred = enqueue(
        dir.path(),
        &["basics", "add", "--args", "[1, 2]", "--in", "1h"],
    );
    assert_eq!(wasq_in(dir.path(), &["cancel", &deferred]).code, 0);
    let deferred_result = result(dir.path(), &deferred);
    assert_eq!(
        deferred_result["outcome"], "cancelled",
        "a deferred task ends at once"
    );

    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "1"], &[]);
    let run = wasq_in(
        dir.path(),
        &["result", &queued, "--wait", "--timeout", "30s", "--json"],
    );
    assert_eq!(run.code, 9, "cancelled: {run:?}");
    let cancelled = run.json();
    assert_eq!(cancelled["outcome"], "cancelled");
    assert_eq!(cancelled["duration_us"], 0, "it never ran");

    // Running: a task that sleeps a minute is stopped.
    let running = enqueue(
        dir.path(),
        &[
            "basics",
            "sleep",
            "--args",
            "[60000]",
            "--task-timeout",
            "120s",
        ],
    );
    eventually(Duration::from_secs(20), "the task to run", || {
        let info = json_of(dir.path(), &["info", "--json"]);
        (info["clusters"][0]["in_flight"] == 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(wasq_in(dir.path(), &["cancel", &running]).code, 0);
    let stopped = result(dir.path(), &running);
    assert_eq!(stopped["outcome"], "cancelled", "{stopped}");
    assert!(
        stopped["duration_us"].as_u64().unwrap() < 30_000_000,
        "{stopped}"
    );
    // The worker is free again.
    let next = enqueue(dir.path(), &["basics", "add", "--args", "[4, 4]"]);
    assert_eq!(result(dir.path(), &next)["result"], 8);

    // Finished tasks and bad ids get one line.
    let run = wasq_in(dir.path(), &["cancel", &next]);
    assert_eq!(run.code, 1);
    assert!(
        run.one_line_error().contains("already finished (success)"),
        "{run:?}"
    );
    let run = wasq_in(dir.path(), &["cancel", "nope"]);
    assert_eq!(run.code, 2);
    assert!(run.one_line_error().contains("task id:"), "{run:?}");
}

#[test]
fn a_minutely_schedule_fires_three_times_across_two_clusters() {
    let dir = setup();
    let now = wasq::schedule::Timestamp::now().as_millisecond();
    let start = wasq::schedule::Timestamp::from_millisecond(now + 3000)
        .unwrap()
        .to_string();
    let run = wasq_in(
        dir.path(),
        &[
            "schedule",
            "add",
            "tick",
            "basics",
            "add",
            "--args",
            "[20, 22]",
            "--every",
            "minutes",
            "--minutes",
            "1",
            "--repeats",
            "3",
            "--next-run",
            &start,
            "--group",
            "ticks",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .starts_with("added schedule tick: minutes every 1 min"),
        "{run:?}"
    );
    let _a = ClusterProcess::start(dir.path(), &["--workers", "2", "--name", "alpha"], &[]);
    let _b = ClusterProcess::start(dir.path(), &["--workers", "2", "--name", "beta"], &[]);
    let schedule = eventually(Duration::from_secs(200), "three runs", || {
        let list = json_of(dir.path(), &["schedule", "list", "--json"]);
        (list[0]["runs"] == 3).then(|| list[0].clone())
    });
    assert_eq!(schedule["active"], false, "{schedule}");
    let group = eventually(Duration::from_secs(30), "three results", || {
        let group = json_of(dir.path(), &["group", "ticks", "--json"]);
        (group["count"] == 3).then_some(group)
    });
    assert_eq!(group["outcomes"]["success"], 3);
    // No fourth run, from either cluster.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        json_of(dir.path(), &["group", "ticks", "--json"])["count"],
        3
    );
    let table = wasq_in(dir.path(), &["schedule", "list"]);
    assert!(table.stdout.contains("done"), "{table:?}");
}

#[test]
fn a_per_second_cron_fires_once_per_second_across_two_clusters() {
    let dir = setup();
    let run = wasq_in(
        dir.path(),
        &[
            "schedule",
            "add",
            "sec",
            "basics",
            "add",
            "--args",
            "[1, 1]",
            "--every",
            "cron",
            "--cron",
            "* * * * * *",
            "--repeats",
            "5",
            "--group",
            "secs",
            "--tz",
            "Europe/Amsterdam",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let _a = ClusterProcess::start(dir.path(), &["--workers", "2", "--name", "alpha"], &[]);
    let _b = ClusterProcess::start(dir.path(), &["--workers", "2", "--name", "beta"], &[]);
    eventually(Duration::from_secs(60), "five results", || {
        let group = json_of(dir.path(), &["group", "secs", "--json"]);
        (group["count"] == 5).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        json_of(dir.path(), &["group", "secs", "--json"])["count"],
        5,
        "not ten"
    );
}

#[test]
fn bad_schedule_input_names_the_field() {
    let dir = setup();
    let add = |extra: &[&str]| {
        let mut args = vec!["schedule", "add", "s", "basics", "add"];
        args.extend_from_slice(extra);
        wasq_in(dir.path(), &args)
    };
    let run = add(&["--every", "cron", "--cron", "61 * * * *"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.one_line_error(),
        "error: cron: minute field `61` is out of range 0-59"
    );
    let run = add(&["--every", "daily", "--tz", "Mars/Olympus"]);
    assert_eq!(run.code, 2);
    assert!(
        run.one_line_error()
            .starts_with("error: tz: unknown time zone `Mars/Olympus`"),
        "{run:?}"
    );
    let run = add(&["--every", "daily", "--repeats", "-5"]);
    assert_eq!(run.code, 2);
    assert!(
        run.one_line_error()
            .starts_with("error: repeats: must be -1"),
        "{run:?}"
    );
    let run = add(&["--every", "fortnightly"]);
    assert_eq!(run.code, 2);
    assert!(
        run.one_line_error()
            .starts_with("error: kind: unknown schedule type"),
        "{run:?}"
    );
    let run = add(&["--every", "minutes"]);
    assert_eq!(run.code, 2);
    assert!(
        run.one_line_error().starts_with("error: minutes:"),
        "{run:?}"
    );
    // Nothing was stored; a good one is, once.
    assert_eq!(
        json_of(dir.path(), &["schedule", "list", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(add(&["--every", "daily"]).code, 0);
    let run = add(&["--every", "daily"]);
    assert_eq!(run.code, 1);
    assert!(
        run.one_line_error().contains("a schedule named `s` exists"),
        "{run:?}"
    );
    // Paused and resumed by name; a name that is not there is an error.
    let run = wasq_in(dir.path(), &["schedule", "pause", "s"]);
    assert_eq!(run.code, 0, "{run:?}");
    let listed = json_of(dir.path(), &["schedule", "list", "--json"]);
    assert_eq!(listed[0]["paused"], true, "{listed}");
    let run = wasq_in(dir.path(), &["schedule", "list"]);
    assert!(run.stdout.contains("paused"), "{run:?}");
    let run = wasq_in(dir.path(), &["schedule", "resume", "s"]);
    assert_eq!(run.code, 0, "{run:?}");
    let listed = json_of(dir.path(), &["schedule", "list", "--json"]);
    assert_eq!(listed[0]["paused"], false, "{listed}");
    let run = wasq_in(dir.path(), &["schedule", "pause", "nope"]);
    assert_eq!(run.code, 1);
    assert!(run.one_line_error().contains("no schedule named `nope`"));
    let run = wasq_in(dir.path(), &["schedule", "remove", "s"]);
    assert_eq!(run.code, 0);
    let run = wasq_in(dir.path(), &["schedule", "remove", "s"]);
    assert_eq!(run.code, 1);
    run.one_line_error();
}
