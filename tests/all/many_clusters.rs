//! Many clusters on the server brokers, black box: `wasq cluster`
//! processes of different names share one broker (Redis or PostgreSQL) and
//! one PostgreSQL store; a crash of one, and a restart of the broker's
//! server, lose no task and duplicate no result. The servers are the ones
//! `cargo xtask test` starts (`WASQ_TEST_REDIS_URL`,
//! `WASQ_TEST_POSTGRES_URL`); each test works in its own queue and its own
//! database.

#![cfg(all(feature = "redis", feature = "postgres"))]

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use wasq::{Client, Config, TaskRequest};
use wasq_tests::{ClusterProcess, eventually, postgres_database, server_url, wasm, wasq_env};

/// The secret every process of these tests signs with.
const TEST_SECRET: &str = "many-clusters-test-secret-0123456789abcdef";

/// Which broker a test runs on.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Redis,
    Postgres,
}

/// A test's broker, store, queue and the environment that points `wasq`
/// at them.
struct Shared {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    config: Config,
    client: Client,
}

impl Shared {
    async fn new(kind: Kind, store: String, broker: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker.unwrap_or_else(|| match kind {
            Kind::Redis => server_url("WASQ_TEST_REDIS_URL"),
            Kind::Postgres => store.clone(),
        });
        let queue = format!("many-{}", wasq::package::new_task_id());
        let config = Config {
            broker: broker.clone(),
            store: store.clone(),
            queue: queue.clone(),
            // Server brokers need a secret of one's own (there is no built-in one).
            secret: TEST_SECRET.into(),
            ..Config::default()
        };
        let client = Client::connect(&config).await.unwrap();
        let bytes = std::fs::read(wasm("basics")).unwrap();
        client.upload(&bytes, Some("basics")).await.unwrap();
        let env = vec![
            ("WASQ_BROKER".into(), broker),
            ("WASQ_STORE".into(), store),
            ("WASQ_QUEUE".into(), queue),
            ("WASQ_SECRET".into(), TEST_SECRET.into()),
            // Keep every result, and a short lease so a dead cluster's
            // tasks come back quickly.
            ("WASQ_SAVE_LIMIT".into(), "0".into()),
            ("WASQ_RETRY".into(), "\"2s\"".into()),
        ];
        Self {
            dir,
            env,
            config,
            client,
        }
    }

    fn cluster(&self, name: &str, workers: &str) -> ClusterProcess {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([("WASQ_NAME", name)])
            .collect();
        ClusterProcess::start(self.dir.path(), &["--workers", workers], &env)
    }

    /// Waits until `ids` all have results; then checks there is exactly
    /// one per task and nothing else, and that the broker is empty.
    async fn exactly_one_result_each(&self, ids: &[String], limit: Duration) {
        let store = self.client.store().clone();
        let want = ids.len() as u64;
        eventually(limit, "a result for every task", || {
            let counts = block_ok(store.counts())?;
            (counts.successes() + counts.failures() >= want).then_some(())
        });
        let counts = store.counts().await.unwrap();
        assert_eq!(counts.successes(), want, "one success per task: {counts:?}");
        assert_eq!(counts.failures(), 0, "{counts:?}");
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in ids.iter().step_by(97) {
            let result = store.result(id).await.unwrap();
            assert!(result.is_some_and(|r| r.success), "no result for {id}");
        }
        let queue = &self.config.queue;
        let broker = self.client.broker();
        eventually(limit, "an empty broker", || {
            let sizes = (
                block_ok(broker.queue_size(queue))?,
                block_ok(broker.lock_size(queue))?,
            );
            (sizes == (0, 0)).then_some(())
        });
    }
}

/// Blocks on a future from a sync closure inside the test runtime; `None`
/// when it fails (a server restarting).
fn block_ok<F: std::future::Future<Output = Result<T, E>>, T, E>(f: F) -> Option<T> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f)).ok()
}

/// Blocks on a future from a sync closure inside the test runtime.
fn block<F: std::future::Future<Output = Result<T, E>>, T, E: std::fmt::Debug>(f: F) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f)).unwrap()
}

async fn two_named_clusters_share_20000_tasks(kind: Kind) {
    let shared = Shared::new(kind, postgres_database().await, None).await;
    let requests: Vec<_> = (0..20_000)
        .map(|_| TaskRequest::new("basics", "noop"))
        .collect();
    let ids = shared.client.enqueue_many(&requests).await.unwrap();
    let _a = shared.cluster("alpha", "4");
    let _b = shared.cluster("beta", "4");
    shared
        .exactly_one_result_each(&ids, Duration::from_secs(240))
        .await;

    // `wasq info` shows both clusters, by name, and both did work.
    let env: Vec<(&str, &str)> = shared
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let clusters = eventually(Duration::from_secs(30), "both heartbeats", || {
        let info = wasq_env(shared.dir.path(), &["info", "--json"], &env);
        assert_eq!(info.code, 0, "{info:?}");
        let clusters = info.json()["clusters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let done: u64 = clusters
            .iter()
            .map(|c| c["done"].as_u64().unwrap_or(0))
            .sum();
        // A task whose 2 s lease ran out on a loaded machine runs again
        // (its first result stands), so the clusters may count more runs
        // than tasks, never fewer.
        (clusters.len() == 2 && done >= 20_000).then_some(clusters)
    });
    let mut names: Vec<&str> = clusters
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(
        clusters.iter().all(|c| c["done"].as_u64() > Some(0)),
        "both clusters ran tasks: {clusters:?}"
    );
    let human = wasq_env(shared.dir.path(), &["info"], &env);
    assert!(
        human.stdout.contains("alpha") && human.stdout.contains("beta"),
        "{human:?}"
    );
}

async fn a_killed_cluster_loses_nothing(kind: Kind) {
    let shared = Shared::new(kind, postgres_database().await, None).await;
    let requests: Vec<_> = (0..2000)
        .map(|_| TaskRequest::new("basics", "sleep").args(json!([20])))
        .collect();
    let ids = shared.client.enqueue_many(&requests).await.unwrap();
    let mut doomed = shared.cluster("doomed", "16");
    let _survivor = shared.cluster("survivor", "16");
    let store = shared.client.store().clone();
    eventually(Duration::from_secs(60), "the first results", || {
        (block(store.counts()).successes() >= 200).then_some(())
    });
    doomed.kill9();
    assert!(
        store.counts().await.unwrap().successes() < 2000,
        "everything finished before the kill"
    );
    shared
        .exactly_one_result_each(&ids, Duration::from_secs(180))
        .await;
}

macro_rules! on_each_broker {
    ($($test:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Kind::Redis).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Kind::Postgres).await;
                }
            )*
        }
    };
}

/// The broker's server restarts (same data directory) under a running
/// cluster: the cluster reconnects and every task ends with one result.
/// The server is a private one, so that other tests keep theirs.
async fn a_broker_restart_loses_nothing(kind: Kind) {
    let data = tempfile::tempdir().unwrap();
    let (mut redis, mut postgres) = (None, None);
    let (store, broker) = match kind {
        Kind::Redis => {
            let server = wasq_testkit::RedisServer::start(data.path()).unwrap();
            let url = server.url();
            redis = Some(server);
            (postgres_database().await, url)
        }
        Kind::Postgres => {
            // Broker and store on the one server that restarts.
            let server = wasq_testkit::PostgresServer::start(data.path()).unwrap();
            let url = server.url();
            postgres = Some(server);
            (url.clone(), url)
        }
    };
    let shared = Shared::new(kind, store, Some(broker)).await;
    let requests: Vec<_> = (0..3000)
        .map(|_| TaskRequest::new("basics", "sleep").args(json!([5])))
        .collect();
    let ids = shared.client.enqueue_many(&requests).await.unwrap();
    let _cluster = shared.cluster("steady", "8");
    let store = shared.client.store().clone();
    eventually(Duration::from_secs(60), "the first results", || {
        let counts = block_ok(store.counts())?;
        (counts.successes() >= 300).then_some(())
    });
    if let Some(server) = &mut redis {
        server.restart().unwrap();
    }
    if let Some(server) = &mut postgres {
        server.restart().unwrap();
    }
    let counts = eventually(Duration::from_secs(30), "the store again", || {
        block_ok(store.counts())
    });
    assert!(
        counts.successes() < 3000,
        "everything finished before the restart"
    );
    shared
        .exactly_one_result_each(&ids, Duration::from_secs(180))
        .await;
}

on_each_broker!(
    two_named_clusters_share_20000_tasks,
    a_killed_cluster_loses_nothing,
    a_broker_restart_loses_nothing,
);

/// `wasq enqueue` against a broker that is down: a one-line error and a
/// non-zero exit, soon (not a hang), for every server broker.
#[test]
fn enqueue_against_a_down_broker_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let basics = wasm("basics");
    let store = format!("sqlite://{}", dir.path().join("store.db").display());
    let upload = wasq_env(
        dir.path(),
        &[
            "module",
            "upload",
            basics.to_str().unwrap(),
            "--name",
            "basics",
        ],
        &[("WASQ_STORE", &store), ("WASQ_BROKER", "memory://")],
    );
    assert_eq!(upload.code, 0, "{upload:?}");
    for broker in [
        "redis://127.0.0.1:1",
        "postgres://wasq:hunter2@127.0.0.1:1/wasq",
        "sqs://wasq?region=us-east-1&endpoint=http://127.0.0.1:1",
    ] {
        let started = std::time::Instant::now();
        let run = wasq_env(
            dir.path(),
            &["enqueue", "basics", "noop"],
            &[
                ("WASQ_STORE", &store),
                ("WASQ_BROKER", broker),
                ("WASQ_SECRET", TEST_SECRET),
            ],
        );
        assert_ne!(run.code, 0, "{broker}: {run:?}");
        let line = run.one_line_error();
        assert!(line.contains("unreachable"), "{broker}: {line}");
        assert!(!line.contains("hunter2"), "{broker}: {line}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{broker}: no answer for {:?}",
            started.elapsed()
        );
    }
}

/// Results of tasks enqueued with a cache time live in Redis (`cache`),
/// not in the store; `wasq result` finds them there; without a cache,
/// `--cached` is refused in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_results_live_in_the_result_cache() {
    let redis = server_url("WASQ_TEST_REDIS_URL");
    let shared = Shared::new(Kind::Redis, postgres_database().await, None).await;
    let mut config = Config {
        cache: Some(redis.clone()),
        ..shared.config.clone()
    };
    let client = Client::connect(&config).await.unwrap();
    let mut request = TaskRequest::new("basics", "add").args(json!([20, 22]));
    request.cached = Some(Duration::from_secs(600));
    let cached = client.enqueue(&request).await.unwrap();
    let stored = client
        .enqueue(&TaskRequest::new("basics", "add").args(json!([1, 2])))
        .await
        .unwrap();

    let mut cluster_env: Vec<(&str, &str)> = shared
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    cluster_env.push(("WASQ_CACHE", &redis));
    let _cluster = ClusterProcess::start(shared.dir.path(), &["--workers", "2"], &cluster_env);

    let result = client.wait(&cached, Duration::from_secs(60)).await.unwrap();
    assert_eq!(result.map(|r| r.result_json()), Some(json!(42)));
    let result = client.wait(&stored, Duration::from_secs(60)).await.unwrap();
    assert_eq!(result.map(|r| r.result_json()), Some(json!(3)));
    // Only the uncached result is in the database.
    let counts = shared.client.store().counts().await.unwrap();
    assert_eq!(counts.successes(), 1, "{counts:?}");
    assert!(
        shared
            .client
            .store()
            .result(&cached)
            .await
            .unwrap()
            .is_none()
    );
    // The command line reads the cache too.
    let run = wasq_env(
        shared.dir.path(),
        &["result", &cached, "--json"],
        &cluster_env,
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["result"], 42);

    // No cache configured: refused before anything is queued.
    config.cache = None;
    let plain = Client::connect(&config).await.unwrap();
    let err = plain.enqueue(&request).await.unwrap_err().to_string();
    assert!(err.contains("cache"), "{err}");
    let env: Vec<(&str, &str)> = cluster_env
        .iter()
        .copied()
        .filter(|(k, _)| *k != "WASQ_CACHE")
        .collect();
    let run = wasq_env(
        shared.dir.path(),
        &["enqueue", "basics", "noop", "--cached", "1m"],
        &env,
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.one_line_error().contains("WASQ_CACHE"), "{run:?}");
}
