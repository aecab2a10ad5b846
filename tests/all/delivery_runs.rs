//! Attempts count runs, not deliveries, and nothing is deleted that no
//! cluster ran: tasks taken by consumers that died before starting them,
//! or handed back by clusters that stopped, are never given up; a run
//! that took its cluster down counts; a cluster with the wrong secret
//! leaves tasks to a right one, and alone keeps them as failed packages
//! that `wasq failed resubmit --package` queues again.

use std::time::Duration;

use serde_json::json;
use wasq::{Client, Config, TaskRequest};
use wasq_tests::{ClusterProcess, eventually, wasm, wasq_env};

/// The secret the tests' enqueuers and right clusters share.
const SECRET: &str = "delivery-runs-test-secret";

/// A setup in a temp dir: its broker (the embedded SQLite file unless
/// given), its store, the env for `wasq` processes, and basics.wasm
/// uploaded as `basics`.
struct Setup {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    config: Config,
}

impl Setup {
    fn new(broker: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join(".wasq/wasq.db").display());
        let queue = format!("runs-{}", &wasq::package::new_task_id()[..8]);
        let broker = broker.unwrap_or_else(|| db.clone());
        let env = vec![
            ("WASQ_BROKER".to_owned(), broker.clone()),
            ("WASQ_STORE".to_owned(), db.clone()),
            ("WASQ_QUEUE".to_owned(), queue.clone()),
            ("WASQ_SECRET".to_owned(), SECRET.to_owned()),
        ];
        let config = Config {
            broker,
            store: db,
            queue,
            secret: SECRET.into(),
            ..Config::default()
        };
        let setup = Self { dir, env, config };
        let basics = wasm("basics");
        let run = setup.wasq(
            &[
                "module",
                "upload",
                basics.to_str().unwrap(),
                "--name",
                "basics",
            ],
            &[],
        );
        assert_eq!(run.code, 0, "{run:?}");
        setup
    }

    fn env_with<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend_from_slice(extra);
        env
    }

    fn wasq(&self, args: &[&str], extra: &[(&str, &str)]) -> wasq_tests::Run {
        wasq_env(self.dir.path(), args, &self.env_with(extra))
    }

    fn cluster(&self, args: &[&str], extra: &[(&str, &str)]) -> ClusterProcess {
        ClusterProcess::start(self.dir.path(), args, &self.env_with(extra))
    }

    async fn client(&self) -> Client {
        Client::connect(&self.config).await.unwrap()
    }
}

fn block<F: std::future::Future<Output = Result<T, E>>, T, E: std::fmt::Debug>(f: F) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f)).unwrap()
}

async fn enqueue(client: &Client, task: &str, args: serde_json::Value, n: usize) -> Vec<String> {
    let requests: Vec<TaskRequest> = (0..n)
        .map(|_| TaskRequest::new("basics", task).args(args.clone()))
        .collect();
    client.enqueue_many(&requests).await.unwrap()
}

async fn results(client: &Client, ids: &[String]) -> Vec<wasq::store::TaskResult> {
    let mut all = Vec::new();
    for id in ids {
        let result = client.wait(id, Duration::from_secs(90)).await.unwrap();
        all.push(result.unwrap_or_else(|| panic!("no result for {id}")));
    }
    all
}

/// Consumers that take tasks and die before running them (as a killed
/// cluster's prefetched tasks) raise the broker's delivery count, which
/// used to end the tasks `abandoned` without a single run.
async fn dead_consumers_do_not_use_up_attempts(setup: Setup) {
    let client = setup.client().await;
    let ids = enqueue(&client, "add", json!([2, 3]), 5).await;
    let queue = setup.config.queue.clone();
    for _ in 0..3 {
        let taken = client
            .broker()
            .dequeue(&queue, 10, Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(taken.len(), 5, "the consumer takes every task");
        // Dies without a word: the leases run out, the tasks come back.
        eventually(Duration::from_secs(20), "the leases to run out", || {
            (block(client.broker().queue_size(&queue)) == 5).then_some(())
        });
    }
    let _cluster = setup.cluster(&[], &[("WASQ_MAX_ATTEMPTS", "2")]);
    for result in results(&client, &ids).await {
        assert!(result.success, "{result:?}");
        assert_eq!(result.result_json(), 5);
        assert_eq!(result.attempts, 1, "one run: {result:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_consumers_do_not_use_up_attempts_on_sqlite() {
    dead_consumers_do_not_use_up_attempts(Setup::new(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_consumers_do_not_use_up_attempts_on_redis() {
    let redis = wasq_tests::server_url("WASQ_TEST_REDIS_URL");
    dead_consumers_do_not_use_up_attempts(Setup::new(Some(redis))).await;
}

/// Graceful stops (SIGTERM, as deployments restart workers) hand back
/// the tasks a cluster prefetched and did not start: no attempt is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stops_do_not_use_up_attempts() {
    let setup = Setup::new(None);
    let client = setup.client().await;
    let ids = enqueue(&client, "sleep", json!([300]), 6).await;
    let args = ["--workers", "1"];
    let env = [("WASQ_MAX_ATTEMPTS", "2"), ("WASQ_QUEUE_LIMIT", "10")];
    for _ in 0..2 {
        let mut cluster = setup.cluster(&args, &env);
        // Stopped while it holds tasks it has not started.
        eventually(Duration::from_secs(30), "tasks prefetched", || {
            let held = block(client.broker().lock_size(&setup.config.queue));
            (held >= 2).then_some(())
        });
        assert_eq!(cluster.terminate(), Some(0));
    }
    let _cluster = setup.cluster(&args, &env);
    for result in results(&client, &ids).await {
        assert!(result.success, "{result:?}");
        assert_eq!(result.attempts, 1, "one run each: {result:?}");
    }
}

/// A run that takes its cluster down with it counts: after
/// `max_attempts` such runs the task is given up, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_that_never_end_are_given_up_after_max_attempts() {
    let setup = Setup::new(None);
    let client = setup.client().await;
    let id = enqueue(&client, "sleep", json!([60_000]), 1)
        .await
        .remove(0);
    let env = [
        ("WASQ_MAX_ATTEMPTS", "2"),
        ("WASQ_RETRY", "1s"),
        ("WASQ_TIMEOUT", "120s"),
    ];
    for run in 1..=2 {
        let mut cluster = setup.cluster(&[], &env);
        eventually(Duration::from_secs(30), "the run to start", || {
            (block(client.store().runs_started(&id, 1)) == run).then_some(())
        });
        cluster.kill9();
    }
    let _cluster = setup.cluster(&[], &env);
    let result = client
        .wait(&id, Duration::from_secs(60))
        .await
        .unwrap()
        .expect("a result");
    assert_eq!(result.outcome, "abandoned", "{result:?}");
    assert_eq!(result.attempts, 2, "{result:?}");
    let error = result.error.unwrap_or_default();
    assert!(error.contains("2 runs"), "{error}");
}

/// Beside a right cluster, one with the wrong secret destroys nothing:
/// every task ends with one result, from the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_the_wrong_secret_leaves_tasks_to_a_right_one() {
    let setup = Setup::new(None);
    let client = setup.client().await;
    let _right = setup.cluster(&["--name", "right"], &[]);
    eventually(
        Duration::from_secs(30),
        "the right cluster's heartbeat",
        || {
            let clusters = block(client.store().clusters(Duration::from_secs(10)));
            (!clusters.is_empty()).then_some(())
        },
    );
    let _wrong = setup.cluster(&["--name", "wrong"], &[("WASQ_SECRET", "not-the-secret")]);
    eventually(Duration::from_secs(30), "both heartbeats", || {
        let clusters = block(client.store().clusters(Duration::from_secs(10)));
        (clusters.len() == 2).then_some(())
    });
    let ids = enqueue(&client, "add", json!([20, 22]), 40).await;
    for result in results(&client, &ids).await {
        assert!(result.success, "{result:?}");
        assert!(result.cluster.starts_with("right/"), "{result:?}");
    }
    assert!(block(client.store().dead_letters(10)).is_empty());
}

/// Alone, a cluster with the wrong secret keeps what it cannot verify as
/// failed packages (bytes, task id, reason) instead of deleting them; once
/// a right cluster runs, `wasq failed resubmit --package` queues them
/// again under their own ids, and `wasq failed remove --package` deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_no_cluster_can_verify_are_kept_and_can_be_resubmitted() {
    let setup = Setup::new(None);
    let client = setup.client().await;
    let ids = enqueue(&client, "add", json!([1, 2]), 3).await;
    let mut wrong = setup.cluster(&[], &[("WASQ_SECRET", "not-the-secret")]);
    // Buried once it has been refused for 20 s by every live cluster.
    let dead = eventually(Duration::from_secs(90), "three failed packages", || {
        let dead = block(client.store().dead_letters(10));
        (dead.len() == 3).then_some(dead)
    });
    assert_eq!(wrong.terminate(), Some(0));
    assert_eq!(block(client.broker().queue_size(&setup.config.queue)), 0);
    let listed = setup.wasq(&["failed", "list"], &[]);
    assert_eq!(listed.code, 0, "{listed:?}");
    for id in &ids {
        assert!(
            listed.stdout.contains(id.as_str()),
            "{id} not listed: {listed:?}"
        );
        assert!(client.result(id).await.unwrap().is_none(), "it never ran");
    }
    let json = setup
        .wasq(&["failed", "list", "--packages", "--json"], &[])
        .json();
    assert_eq!(json.as_array().map(Vec::len), Some(3), "{json}");
    assert!(
        dead.iter().all(|d| d.reason.contains("signature")),
        "{dead:?}"
    );

    let _right = setup.cluster(&[], &[]);
    let (removed, resubmitted) = dead.split_at(1);
    let run = setup.wasq(&["failed", "remove", "--package", &removed[0].digest], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    for d in resubmitted {
        let run = setup.wasq(&["failed", "resubmit", "--package", &d.digest[..12]], &[]);
        assert_eq!(run.code, 0, "{run:?}");
        let id = run.stdout.trim();
        assert_eq!(Some(id), d.task_id.as_deref(), "its own id is kept");
        let result = client
            .wait(id, Duration::from_secs(60))
            .await
            .unwrap()
            .expect("a result once resubmitted");
        assert_eq!(result.result_json(), 3);
    }
    assert!(block(client.store().dead_letters(10)).is_empty());
    let run = setup.wasq(&["failed", "remove", "--package", &removed[0].digest], &[]);
    assert_ne!(run.code, 0, "removed already: {run:?}");
    assert!(
        run.one_line_error().contains("no failed package"),
        "{run:?}"
    );
}
