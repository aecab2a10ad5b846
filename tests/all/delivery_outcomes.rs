//! Outcomes and answers that tell the truth: every non-zero exit
//! (126 and more too) is a `guest_error` with its code, through `wasq
//! run` and a cluster; a failed task keeps what it printed to stdout; and
//! `wasq result` and `GET /v1/tasks/{id}` tell apart unknown, queued (with
//! its due time when deferred), running, finished, and finished with its
//! result pruned by `save_limit`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use wasq_tests::{ClusterProcess, Run, dir_with_module, eventually, run_wasq, wasq_in};

use crate::service::Service;

/// A command module that writes `partial output\n` to stdout, then calls
/// `proc_exit(code)`.
fn exit_wat(code: i32) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "partial output\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 15))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const {code}))))"#
    )
}

fn exit_module(dir: &Path, code: i32) -> PathBuf {
    wasq_tests::wat_file(dir, &format!("exit{code}.wasm"), &exit_wat(code))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn any_non_zero_exit_is_a_guest_error_with_its_code() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for code in [1, 125, 126, 200, 255, 256, -1] {
        let module = exit_module(dir.path(), code);
        let run = run_wasq(&["run", path_str(&module), "run", "--json"]);
        assert_eq!(run.code, 1, "exit({code}): {run:?}");
        let report = run.json();
        assert_eq!(report["outcome"], "guest_error", "exit({code}): {report}");
        assert_eq!(report["exit_code"], code, "{report}");
        // No trap message, no wasmtime backtrace.
        assert!(report["error"].is_null(), "exit({code}): {report}");
        assert!(report["result"].is_null(), "{report}");
        assert_eq!(report["stdout"], "partial output\n", "{report}");

        let run = run_wasq(&["run", path_str(&module), "run"]);
        assert_eq!(run.code, 1, "{run:?}");
        let line = run.one_line_error();
        assert!(line.contains(&format!("exit code {code}")), "{run:?}");
        assert!(
            !line.contains("trap") && !line.contains("backtrace"),
            "{run:?}"
        );
    }
    // 0 is a success.
    let module = exit_module(dir.path(), 0);
    let run = run_wasq(&["run", path_str(&module), "run", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["outcome"], "success");
    assert_eq!(run.json()["result"], "partial output\n");
}

/// `wasq result ID --json` in `dir`.
fn result_json(dir: &Path, id: &str) -> (Run, Value) {
    let run = wasq_in(dir, &["result", id, "--json"]);
    let json = run.json();
    (run, json)
}

/// Enqueues `args` in `dir` and returns the new task's id.
fn enqueue(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["enqueue"];
    all.extend_from_slice(args);
    let run = wasq_in(dir, &all);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout.trim().to_owned()
}

#[test]
fn a_cluster_reports_exit_200_as_a_guest_error_and_keeps_the_failures_stdout() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "2"], &[]);
    for code in [200, 255] {
        let module = exit_module(dir.path(), code);
        let run = wasq_in(
            dir.path(),
            &["enqueue", path_str(&module), "run", "--wait", "--json"],
        );
        assert_eq!(run.code, 1, "{run:?}");
        let result = run.json();
        assert_eq!(result["outcome"], "guest_error", "{result}");
        assert_eq!(result["state"], "finished", "{result}");
        // Not a trap: no trap message, no wasmtime backtrace.
        assert!(result["error"].is_null(), "{result}");
        // What it printed is kept, as its stdout, not as a result.
        assert!(result["result"].is_null(), "{result}");
        assert_eq!(result["stdout"], "partial output\n", "{result}");

        let id = result["id"].as_str().expect("an id");
        let (_, again) = result_json(dir.path(), id);
        assert_eq!(again["stdout"], "partial output\n", "{again}");
    }
}

#[test]
fn wasq_result_tells_unknown_queued_running_finished_and_pruned_apart() {
    let dir = dir_with_module("basics");
    let dir = dir.path();

    // Unknown: an id never enqueued.
    let never = "0123456789abcdef0123456789abcdef";
    let run = wasq_in(dir, &["result", never]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.one_line_error().contains("no record of it"), "{run:?}");
    let (run, json) = result_json(dir, never);
    assert_eq!(
        (run.code, &json["state"]),
        (1, &json!("unknown")),
        "{run:?}"
    );

    // Queued with an ETA: due in an hour.
    let later = enqueue(dir, &["basics", "add", "--args", "[1, 2]", "--in", "1h"]);
    let (run, json) = result_json(dir, &later);
    assert_eq!((run.code, &json["state"]), (1, &json!("queued")), "{run:?}");
    let due = json["due_at_ms"].as_i64().expect("a due time");
    let in_an_hour = wasq::store::now_ms() + 3_600_000;
    assert!((in_an_hour - 120_000..=in_an_hour).contains(&due), "{json}");
    let run = wasq_in(dir, &["result", &later]);
    let line = run.one_line_error();
    assert!(
        line.contains("is queued") && line.contains("due at"),
        "{run:?}"
    );

    // In the broker, no cluster: the store has no record, and says so.
    let plain = enqueue(dir, &["basics", "add", "--args", "[2, 3]"]);
    let run = wasq_in(dir, &["result", &plain]);
    assert!(
        run.one_line_error()
            .contains("still queued, or was never enqueued"),
        "{run:?}"
    );

    // Its timeout long enough that the sleeper still runs when looked at.
    let cluster = ClusterProcess::start(
        dir,
        &["--workers", "2"],
        &[("WASQ_SAVE_LIMIT", "1"), ("WASQ_TIMEOUT", "600s")],
    );

    // Running: a cluster's heartbeat lists it.
    let sleeper = enqueue(
        dir,
        &[
            "basics",
            "sleep",
            "--args",
            "[500000]",
            "--task-timeout",
            "600s",
        ],
    );
    let json = eventually(Duration::from_secs(30), "the task to run", || {
        let (_, json) = result_json(dir, &sleeper);
        (json["state"] == "running").then_some(json)
    });
    assert!(json["started_at_ms"].as_i64().is_some(), "{json}");
    assert!(json["cluster"].as_str().is_some(), "{json}");
    let run = wasq_in(dir, &["result", &sleeper]);
    assert!(run.one_line_error().contains("is still running"), "{run:?}");

    // Finished, then pruned: save_limit 1 keeps the newest success.
    let run = wasq_in(dir, &["result", &plain, "--wait", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["state"], "finished");
    assert_eq!(run.json()["result"], 5);
    let newer = enqueue(dir, &["basics", "add", "--args", "[3, 4]"]);
    let run = wasq_in(dir, &["result", &newer, "--wait"]);
    assert_eq!((run.code, run.stdout.trim()), (0, "7"), "{run:?}");
    let (run, json) = result_json(dir, &plain);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(json["state"], "pruned", "{json}");
    assert_eq!(json["outcome"], "success", "{json}");
    assert!(json["stopped_at_ms"].as_i64().is_some(), "{json}");
    assert!(json["pruned_at_ms"].as_i64().is_some(), "{json}");
    let run = wasq_in(dir, &["result", &plain]);
    let line = run.one_line_error();
    assert!(
        line.contains("pruned") && line.contains("save_limit"),
        "{run:?}"
    );
    // --wait ends at once for a pruned result.
    let run = wasq_in(
        dir,
        &["result", &plain, "--wait", "--timeout", "60s", "--json"],
    );
    assert_eq!(run.json()["state"], "pruned", "{run:?}");
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_tells_unknown_queued_running_finished_and_pruned_apart() {
    // Long enough a sleep that it still runs when looked at.
    // Four workers: a tenant's share is all but one, so the sleeper
    // leaves room for the others.
    let service = Service::start(
        &["--workers", "4"],
        &[("WASQ_SAVE_LIMIT", "1"), ("WASQ_TIMEOUT", "600s")],
    );
    let key = service.tenant("acme", &[]);
    let (status, body) = service.upload(&key, "basics", "basics").await;
    assert_eq!(status, 201, "{body}");

    // Unknown: 404.
    let (status, body) = service
        .get(&key, "/v1/tasks/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(status, 404, "{body}");

    // Queued with a delay: its due time.
    let later = service
        .enqueue(
            &key,
            json!({"module": "basics", "task": "add", "args": [1, 2], "delay_secs": 3600}),
        )
        .await;
    let (status, task) = service.get(&key, &format!("/v1/tasks/{later}")).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(
        (&task["state"], &task["status"]),
        (&json!("queued"), &json!("pending")),
        "{task}"
    );
    let due = task["due_at_ms"].as_i64().expect("a due time");
    let in_an_hour = wasq::store::now_ms() + 3_600_000;
    assert!((in_an_hour - 120_000..=in_an_hour).contains(&due), "{task}");

    // Running.
    let sleeper = service
        .enqueue(
            &key,
            json!({"module": "basics", "task": "sleep", "args": [500000], "timeout_ms": 600000}),
        )
        .await;
    let path = format!("/v1/tasks/{sleeper}");
    let mut seen = Vec::new();
    for _ in 0..300 {
        let (_, task) = service.get(&key, &path).await;
        if task["state"] == "running" {
            break;
        }
        seen.push(task);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, task) = service.get(&key, &path).await;
    assert_eq!(task["state"], "running", "{task}; before: {seen:?}");
    assert!(task["started_at_ms"].as_i64().is_some(), "{task}");

    // The command line through the server says the same.
    let server = service.url.clone();
    let remote = |id: &str, json: bool| {
        let mut args = vec![
            "result",
            "--server",
            server.as_str(),
            "--key",
            key.as_str(),
            id,
        ];
        if json {
            args.push("--json");
        }
        service.wasq(&args)
    };
    let run = remote(&sleeper, true);
    assert_eq!(
        (run.code, &run.json()["state"]),
        (1, &json!("running")),
        "{run:?}"
    );

    // Finished, then pruned by save_limit 1.
    let first = service
        .enqueue(
            &key,
            json!({"module": "basics", "task": "add", "args": [2, 3]}),
        )
        .await;
    let result = service.result(&key, &first).await;
    assert_eq!(result["value"], 5, "{result}");
    let (_, task) = service.get(&key, &format!("/v1/tasks/{first}")).await;
    assert_eq!(task["state"], "finished", "{task}");
    let second = service
        .enqueue(
            &key,
            json!({"module": "basics", "task": "add", "args": [3, 4]}),
        )
        .await;
    assert_eq!(service.result(&key, &second).await["value"], 7);
    let (status, task) = service
        .get(&key, &format!("/v1/tasks/{first}?wait=5"))
        .await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(
        (&task["state"], &task["status"]),
        (&json!("pruned"), &json!("finished")),
        "{task}"
    );
    assert_eq!(task["pruned"]["outcome"], "success", "{task}");
    assert!(task["result"].is_null(), "{task}");

    let run = remote(&first, false);
    assert!(run.one_line_error().contains("pruned"), "{run:?}");
    let run = remote(&later, false);
    assert!(run.one_line_error().contains("due at"), "{run:?}");

    // A failure keeps its stdout, not as a value.
    let bytes = wat::parse_str(exit_wat(200)).expect("valid WAT");
    let (status, body) = service
        .send(
            reqwest::Client::new()
                .put(format!("{}/v1/modules/exiter", service.url))
                .body(bytes),
            &key,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let failed = service
        .enqueue(&key, json!({"module": "exiter", "task": "run"}))
        .await;
    let result = service.result(&key, &failed).await;
    assert_eq!(result["outcome"], "guest_error", "{result}");
    assert_eq!(result["stdout"], "partial output\n", "{result}");
    assert!(result["value"].is_null(), "{result}");
}
