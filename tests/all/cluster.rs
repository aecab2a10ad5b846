//! The task queue on its embedded default, black box: `wasq cluster`,
//! `wasq module`, `wasq enqueue`, `wasq result`, `wasq info` in a
//! temporary directory, with crashes, tampered packages and long tasks.

use std::time::Duration;

use serde_json::json;
use wasq::{Client, Config, TaskRequest};
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
    assert!(run.stdout.starts_with("basics  sha256:"), "{run:?}");
    dir
}

/// A library client on the directory's embedded setup.
async fn client(dir: &std::path::Path, secret: Option<&str>) -> Client {
    let db = format!("sqlite://{}", dir.join(".wasq/wasq.db").display());
    let mut config = Config {
        broker: db.clone(),
        store: db,
        ..Config::default()
    };
    if let Some(secret) = secret {
        config.secret = secret.into();
    }
    Client::connect(&config).await.unwrap()
}

async fn wait_all(
    client: &Client,
    ids: &[String],
    limit: Duration,
) -> Vec<wasq::store::TaskResult> {
    let mut results = Vec::new();
    for id in ids {
        let result = client.wait(id, limit).await.unwrap();
        results.push(result.unwrap_or_else(|| panic!("no result for {id}")));
    }
    results
}

#[test]
fn enqueue_and_wait_for_results() {
    let dir = setup();
    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "4"], &[]);
    let run = wasq_in(
        dir.path(),
        &["enqueue", "basics", "fib", "--args", "[20]", "--wait"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.trim(), "6765");

    // A runaway task becomes a timeout failure…
    let run = wasq_in(
        dir.path(),
        &[
            "enqueue",
            "basics",
            "spin",
            "--task-timeout",
            "1s",
            "--wait",
            "--json",
        ],
    );
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(run.json()["outcome"], "timeout");
    // …and the cluster answers the next task at once.
    let run = wasq_in(
        dir.path(),
        &[
            "enqueue",
            "basics",
            "add",
            "--args",
            "[1, 2]",
            "--wait",
            "--timeout",
            "10s",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.trim(), "3");

    // The result is there by id, and `info` sees the cluster and the counts.
    let id = wasq_in(
        dir.path(),
        &["enqueue", "basics", "hello", "--args", r#"["Ada"]"#],
    )
    .stdout;
    let run = wasq_in(dir.path(), &["result", id.trim(), "--wait", "--json"]);
    assert_eq!(run.json()["result"], "Hello, Ada!");
    let info = wasq_in(dir.path(), &["info", "--json"]).json();
    assert_eq!(info["clusters"].as_array().unwrap().len(), 1, "{info}");
    assert_eq!(info["failures"], 1, "{info}");
    assert_eq!(info["successes"], 3, "{info}");
    assert_eq!(info["outcomes"]["timeout"], 1, "{info}");
}

#[test]
fn a_path_to_a_wasm_file_is_uploaded_on_the_fly() {
    let dir = tempfile::tempdir().unwrap();
    let _cluster = ClusterProcess::start(dir.path(), &[], &[]);
    let basics = wasm("basics");
    let run = wasq_in(
        dir.path(),
        &[
            "enqueue",
            basics.to_str().unwrap(),
            "add",
            "--args",
            "[20, 22]",
            "--wait",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.trim(), "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_enqueued_before_a_cluster_runs_are_done_when_it_starts() {
    let dir = setup();
    let client = client(dir.path(), None).await;
    let requests: Vec<_> = (0..50)
        .map(|i| TaskRequest::new("basics", "add").args(json!([i, 1])))
        .collect();
    let ids = client.enqueue_many(&requests).await.unwrap();
    let size = wasq_in(dir.path(), &["queue", "size", "--json"]).json();
    assert_eq!(size["queued"], 50);
    let _cluster = ClusterProcess::start(dir.path(), &[], &[]);
    let results = wait_all(&client, &ids, Duration::from_secs(60)).await;
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.result_json(), json!(i + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cluster_loses_nothing_and_duplicates_nothing() {
    let dir = setup();
    let client = client(dir.path(), None).await;
    let requests: Vec<_> = (0..2000)
        .map(|_| TaskRequest::new("basics", "sleep").args(json!([20])))
        .collect();
    let ids = client.enqueue_many(&requests).await.unwrap();
    // A short lease, so the killed cluster's tasks come back quickly; keep
    // every result (the default keeps the last 250 successes).
    let env = [("WASQ_RETRY", "\"1s\""), ("WASQ_SAVE_LIMIT", "0")];
    let mut first = ClusterProcess::start(dir.path(), &["--workers", "16"], &env);
    let store = client.store().clone();
    eventually(Duration::from_secs(60), "the first results", || {
        let counts = futures_lite_block(store.counts());
        (counts.successes() >= 200).then_some(())
    });
    first.kill9();
    let done_before = client.store().counts().await.unwrap().successes();
    assert!(
        done_before < 2000,
        "the cluster finished before it was killed"
    );

    let _second = ClusterProcess::start(dir.path(), &["--workers", "16"], &env);
    let results = wait_all(&client, &ids, Duration::from_secs(120)).await;
    assert_eq!(results.len(), 2000);
    assert!(results.iter().all(|r| r.success), "every task succeeded");
    let counts = client.store().counts().await.unwrap();
    assert_eq!(counts.successes(), 2000, "exactly one result row per task");
    assert_eq!(counts.failures(), 0);
    let queued = client.broker().queue_size("default").await.unwrap();
    let held = client.broker().lock_size("default").await.unwrap();
    assert_eq!((queued, held), (0, 0), "nothing left in the broker");
}

/// Blocks on a store future from a sync closure inside the test runtime.
fn futures_lite_block<F: std::future::Future<Output = Result<T, E>>, T, E: std::fmt::Debug>(
    f: F,
) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_foreign_packages_are_refused_and_kept() {
    let dir = setup();
    let client = client(dir.path(), None).await;
    let _cluster = ClusterProcess::start(dir.path(), &[], &[]);

    let (_, queue, mut bytes) = client
        .package(&TaskRequest::new("basics", "add").args(json!([1, 1])))
        .await
        .unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 0x55;
    client.broker().enqueue(&queue, bytes).await.unwrap();

    // Signed with another secret: refused the same way.
    let stranger = self::client(dir.path(), Some("not-the-cluster-secret")).await;
    let foreign = stranger
        .enqueue(&TaskRequest::new("basics", "add").args(json!([2, 2])))
        .await
        .unwrap();

    // A good task after them still runs.
    let good = client
        .enqueue(&TaskRequest::new("basics", "add").args(json!([3, 3])))
        .await
        .unwrap();
    let result = client
        .wait(&good, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.result_json(), 6);

    // The only cluster refused both (for 20 s): they leave the broker for
    // the failed packages, kept with their bytes, the foreign one with its
    // task id.
    let dead = eventually(Duration::from_secs(90), "two failed packages", || {
        let dead = futures_lite_block(client.store().dead_letters(10));
        (dead.len() == 2).then_some(dead)
    });
    for d in &dead {
        assert!(d.reason.contains("bad signature"), "{d:?}");
        assert!(!d.verified, "{d:?}");
    }
    assert!(
        dead.iter()
            .any(|d| d.task_id.as_deref() == Some(foreign.as_str())),
        "{dead:?}"
    );
    assert!(
        client.result(&foreign).await.unwrap().is_none(),
        "a foreign task never runs"
    );
    assert_eq!(client.broker().queue_size(&queue).await.unwrap(), 0);
    let info = wasq_in(dir.path(), &["info", "--json"]).json();
    assert_eq!(info["rejected"], 2, "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_longer_than_three_leases_runs_once() {
    let dir = setup();
    let client = client(dir.path(), None).await;
    // A 2 s lease renewed every ~0.7 s: room for a loaded CI machine.
    let env = [("WASQ_RETRY", "\"2s\""), ("WASQ_TIMEOUT", "\"30s\"")];
    // Two clusters compete: without lease renewal the second would take the
    // task while the first still runs it.
    let _a = ClusterProcess::start(dir.path(), &[], &env);
    let _b = ClusterProcess::start(dir.path(), &[], &env);
    let id = client
        .enqueue(&TaskRequest::new("basics", "sleep").args(json!([7000])))
        .await
        .unwrap();
    let result = client
        .wait(&id, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(result.success, "{result:?}");
    assert_eq!(result.attempts, 1, "delivered once");
    // Give a duplicate delivery time to show up, then check nothing ran twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let info = wasq_in(dir.path(), &["info", "--json"]).json();
    let done: u64 = info["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["done"].as_u64().unwrap())
        .sum();
    assert_eq!(done, 1, "{info}");
}

#[test]
fn bad_input_gets_one_line_and_a_non_zero_exit() {
    let dir = setup();
    let cases: [(&[&str], &str); 6] = [
        (
            &["enqueue", "nosuchmodule", "fib"],
            "unknown module `nosuchmodule`",
        ),
        (
            &["enqueue", "basics", "fib", "--args", "[1"],
            "--args is not valid JSON",
        ),
        (&["enqueue", "basics", "fib", "--args", "1"], "JSON array"),
        (
            &["enqueue", "basics", "fib", "--broker", "carrier-pigeon://x"],
            "carrier-pigeon",
        ),
        (
            &["info", "--store", "sqlite:///proc/nope/x.db"],
            "unreachable",
        ),
        (&["module", "remove", "nosuch"], "no module named `nosuch`"),
    ];
    for (args, expect) in cases {
        let run = wasq_in(dir.path(), args);
        assert_ne!(run.code, 0, "{args:?}: {run:?}");
        let line = run.one_line_error();
        assert!(line.contains(expect), "{args:?}: {line}");
    }
    let run = wasq_in(dir.path(), &["result", "0123456789abcdef"]);
    assert_ne!(run.code, 0);
    assert!(run.one_line_error().contains("no record of it"), "{run:?}");
    // Nothing queued was lost or added by the failed commands.
    let size = wasq_in(dir.path(), &["queue", "size", "--json"]).json();
    assert_eq!(size["queued"], 0);
}

#[test]
fn sigterm_stops_gracefully() {
    let dir = setup();
    let mut cluster = ClusterProcess::start(dir.path(), &[], &[]);
    let run = wasq_in(
        dir.path(),
        &["enqueue", "basics", "add", "--args", "[1, 1]", "--wait"],
    );
    assert_eq!(run.stdout.trim(), "2", "{run:?}");
    assert_eq!(cluster.terminate(), Some(0));
    let info = wasq_in(dir.path(), &["info", "--json"]).json();
    assert!(
        info["clusters"].as_array().unwrap().is_empty(),
        "a stopped cluster leaves: {info}"
    );
}
