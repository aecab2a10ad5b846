//! Supervision and outages in the cluster: a part that panics stops the
//! cluster gracefully and says why, a stateless one is restarted (within
//! a bound); acknowledgements held through a broker outage shorter than
//! the lease are made, not given up; an outage logs once when it starts
//! and once when it ends per part; a renewal racing an acknowledgement is
//! no lost lease; the stop line counts the tasks finished during the stop.
//!
//! Faults come from real servers (a private Redis stopped and restarted)
//! and from [`FaultyBroker`], the memory broker behind a wrapper that
//! panics in one method or answers acknowledgements late, as a bug or a
//! slow network would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use serde_json::json;
use wasq::cluster::PartFailure;
use wasq::store::Store;
use wasq::{Client, Cluster, Config, Sandbox, TaskRequest};
use wasq_brokers::{AckId, Broker, BrokerError, BrokerInfo, Delivery, MemoryBroker, SharedBroker};
use wasq_tests::{ClusterProcess, dir_with_module, eventually, wasm, wasq_env, wasq_in};

/// The secret every cluster and client of these tests signs with.
const SECRET: &str = "delivery-supervision-test-secret-0123456789";

/// The memory broker, with one fault: a panic in one method (once armed,
/// `panics` times), or acknowledgements answered `ack_delay` late (made
/// at once, the answer delayed).
#[derive(Default)]
struct FaultyBroker {
    inner: MemoryBroker,
    /// `dequeue_wait` or `renew`.
    panic_in: &'static str,
    armed: AtomicBool,
    panics: AtomicU32,
    panicked: AtomicU32,
    ack_delay: Duration,
}

impl FaultyBroker {
    fn panicking(method: &'static str, times: u32, armed: bool) -> Arc<Self> {
        Arc::new(Self {
            panic_in: method,
            armed: AtomicBool::new(armed),
            panics: AtomicU32::new(times),
            ..Self::default()
        })
    }

    fn maybe_panic(&self, method: &str) {
        if method == self.panic_in
            && self.armed.load(Ordering::SeqCst)
            && self
                .panics
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            self.panicked.fetch_add(1, Ordering::SeqCst);
            panic!("test broker: {method} fails");
        }
    }
}

impl Broker for FaultyBroker {
    async fn enqueue(&self, queue: &str, payload: Vec<u8>) -> Result<(), BrokerError> {
        self.inner.enqueue(queue, payload).await
    }
    async fn enqueue_batch(&self, queue: &str, payloads: Vec<Vec<u8>>) -> Result<(), BrokerError> {
        self.inner.enqueue_batch(queue, payloads).await
    }
    async fn enqueue_priority(
        &self,
        queue: &str,
        priority: i32,
        payloads: Vec<Vec<u8>>,
    ) -> Result<(), BrokerError> {
        self.inner.enqueue_priority(queue, priority, payloads).await
    }
    async fn dequeue(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        self.maybe_panic("dequeue");
        self.inner.dequeue(queue, max, lease).await
    }
    async fn wait(&self, queue: &str, timeout: Duration) {
        self.inner.wait(queue, timeout).await
    }
    async fn dequeue_wait(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        self.maybe_panic("dequeue_wait");
        self.inner.dequeue_wait(queue, max, lease, wait).await
    }
    async fn acknowledge(&self, queue: &str, ack_ids: &[AckId]) -> Result<Vec<bool>, BrokerError> {
        self.maybe_panic("acknowledge");
        let held = self.inner.acknowledge(queue, ack_ids).await;
        if !self.ack_delay.is_zero() {
            tokio::time::sleep(self.ack_delay).await;
        }
        held
    }
    async fn fail(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        self.inner.fail(queue, ack_id).await
    }
    async fn renew(
        &self,
        queue: &str,
        ack_ids: &[AckId],
        lease: Duration,
    ) -> Result<Vec<bool>, BrokerError> {
        self.maybe_panic("renew");
        self.inner.renew(queue, ack_ids, lease).await
    }
    async fn release(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        self.inner.release(queue, ack_id).await
    }
    async fn delete(&self, queue: &str, ack_id: &AckId) -> Result<bool, BrokerError> {
        self.inner.delete(queue, ack_id).await
    }
    async fn purge_queue(&self, queue: &str) -> Result<u64, BrokerError> {
        self.inner.purge_queue(queue).await
    }
    async fn delete_queue(&self, queue: &str) -> Result<(), BrokerError> {
        self.inner.delete_queue(queue).await
    }
    async fn queue_size(&self, queue: &str) -> Result<u64, BrokerError> {
        self.inner.queue_size(queue).await
    }
    async fn lock_size(&self, queue: &str) -> Result<u64, BrokerError> {
        self.inner.lock_size(queue).await
    }
    async fn queues(&self) -> Result<Vec<String>, BrokerError> {
        self.inner.queues().await
    }
    async fn ping(&self) -> Result<(), BrokerError> {
        self.inner.ping().await
    }
    fn info(&self) -> BrokerInfo {
        self.inner.info()
    }
}

/// A test's store (SQLite in a temp dir) and configuration, with basics
/// uploaded, over `broker`.
struct Setup {
    dir: tempfile::TempDir,
    config: Config,
    broker: SharedBroker,
    store: Store,
    client: Client,
}

impl Setup {
    async fn new(broker: SharedBroker, url: &str, tune: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store_url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::connect(&store_url).await.unwrap();
        let mut config = Config {
            broker: url.into(),
            store: store_url,
            queue: "supervision".into(),
            secret: SECRET.into(),
            workers: 4,
            save_limit: 0,
            cache_dir: Some(dir.path().join("cache")),
            ..Config::default()
        };
        tune(&mut config);
        let client = Client::new(config.clone(), broker.clone(), store.clone());
        let bytes = std::fs::read(wasm("basics")).unwrap();
        client.upload(&bytes, Some("basics")).await.unwrap();
        Self {
            dir,
            config,
            broker,
            store,
            client,
        }
    }

    async fn enqueue(&self, task: &str, args: serde_json::Value, n: usize) -> Vec<String> {
        let requests: Vec<_> = (0..n)
            .map(|_| TaskRequest::new("basics", task).args(args.clone()))
            .collect();
        self.client.enqueue_many(&requests).await.unwrap()
    }

    fn start(&self) -> Cluster {
        let sandbox = Sandbox::new(wasq::cluster::sandbox_config(&self.config)).unwrap();
        Cluster::start(
            self.config.clone(),
            self.broker.clone(),
            self.store.clone(),
            sandbox,
        )
    }

    async fn successes(&self) -> u64 {
        self.store.counts().await.map_or(0, |c| c.successes())
    }
}

/// Waits for `future` at most `limit`.
async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `check` (async) every 50 ms until it holds, at most `limit`.
async fn until<F: Future<Output = bool>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    within(limit, what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// The pusher panics while four tasks run: the cluster stops by itself,
/// gracefully (the four finish, are saved and acknowledged, the rest stay
/// queued, nothing stays leased), and says which part panicked and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_pusher_stops_the_cluster_gracefully_and_says_why() {
    let faulty = FaultyBroker::panicking("dequeue_wait", 1, false);
    let broker: SharedBroker = faulty.clone();
    let setup = Setup::new(broker, "memory://", |c| {
        c.queue_limit = Some(4);
        c.bulk = 4;
    })
    .await;
    setup.enqueue("sleep", json!([1000]), 12).await;
    let cluster = setup.start();
    until(Duration::from_secs(60), "four tasks running", || async {
        cluster.started() == 4
    })
    .await;
    // The pusher's next take, once a task is done, panics.
    faulty.armed.store(true, Ordering::SeqCst);
    let failure = within(
        Duration::from_secs(60),
        "the failure",
        cluster.wait_failure(),
    )
    .await;
    assert_eq!(failure.part(), "pusher", "{failure}");
    let stopped = within(
        Duration::from_secs(60),
        "the stop",
        cluster.stop(Duration::from_secs(30)),
    )
    .await;
    match &stopped.failure {
        Some(PartFailure::Panicked { part, message }) => {
            assert_eq!(*part, "pusher");
            assert_eq!(message, "test broker: dequeue_wait fails");
        }
        other => panic!("not the pusher's panic: {other:?}"),
    }
    let line = stopped.failure.as_ref().map(ToString::to_string).unwrap();
    assert!(
        line.contains("pusher") && line.contains("test broker: dequeue_wait fails"),
        "{line}"
    );
    assert_eq!(stopped.done, 4, "{stopped:?}");
    assert_eq!(setup.successes().await, 4);
    let queue = &setup.config.queue;
    assert_eq!(setup.broker.queue_size(queue).await.unwrap(), 8);
    assert_eq!(setup.broker.lock_size(queue).await.unwrap(), 0);
}

/// The lease keeper panics once: it is restarted, the task longer than
/// its lease keeps it and runs once, and the cluster carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_keeper_that_panics_is_restarted() {
    let faulty = FaultyBroker::panicking("renew", 1, true);
    let broker: SharedBroker = faulty.clone();
    let setup = Setup::new(broker, "memory://", |c| c.retry = Duration::from_secs(3)).await;
    let ids = setup.enqueue("sleep", json!([5000]), 1).await;
    let cluster = setup.start();
    let result = setup
        .client
        .wait(&ids[0], Duration::from_secs(60))
        .await
        .unwrap()
        .expect("a result");
    assert!(result.success, "{result:?}");
    assert_eq!(faulty.panicked.load(Ordering::SeqCst), 1);
    assert_eq!(
        cluster.started(),
        1,
        "the task ran again: its lease was lost"
    );
    assert_eq!(cluster.failure(), None);
    let stopped = cluster.stop(Duration::from_secs(30)).await;
    assert_eq!(stopped.failure, None);
    assert_eq!(stopped.done, 1);
}

/// The lease keeper panics at every renewal: after its restarts of the
/// minute the cluster stops, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_that_keeps_failing_stops_the_cluster() {
    let faulty = FaultyBroker::panicking("renew", u32::MAX, true);
    let broker: SharedBroker = faulty.clone();
    let setup = Setup::new(broker, "memory://", |c| {
        c.retry = Duration::from_millis(600);
    })
    .await;
    setup.enqueue("sleep", json!([60_000]), 2).await;
    let cluster = setup.start();
    let failure = within(
        Duration::from_secs(60),
        "the failure",
        cluster.wait_failure(),
    )
    .await;
    let stopped = cluster.stop(Duration::from_millis(100)).await;
    assert_eq!(stopped.failure.as_ref(), Some(&failure));
    match failure {
        PartFailure::KeptFailing {
            part,
            times,
            message,
        } => {
            assert_eq!(part, "lease keeper");
            assert_eq!(times, wasq::cluster::RESTARTS + 1);
            assert_eq!(message, "test broker: renew fails");
        }
        other => panic!("not the lease keeper's failures: {other:?}"),
    }
    assert_eq!(
        faulty.panicked.load(Ordering::SeqCst) as usize,
        wasq::cluster::RESTARTS + 1
    );
}

/// The value of a counter in the process's metrics (0 when never counted).
fn counter(name: &str) -> u64 {
    wasq::metrics::render(&wasq::metrics::Gauges::default())
        .lines()
        .filter_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
        .sum()
}

/// Many short tasks, a short lease renewed often, and acknowledgements
/// answered late: renewals keep finding tasks the broker has just let go
/// of for their acknowledgement, and none of those is a lost lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_racing_an_acknowledgement_is_no_lost_lease() {
    let faulty = Arc::new(FaultyBroker {
        ack_delay: Duration::from_millis(50),
        ..FaultyBroker::default()
    });
    let broker: SharedBroker = faulty.clone();
    let setup = Setup::new(broker, "memory://", |c| {
        c.retry = Duration::from_millis(1500);
    })
    .await;
    let n = 1000;
    setup.enqueue("sleep", json!([20]), n).await;
    let cluster = setup.start();
    until(Duration::from_secs(180), "every result", || async {
        setup.successes().await == n as u64
    })
    .await;
    let stopped = cluster.stop(Duration::from_secs(30)).await;
    assert_eq!(stopped.done, n as u64);
    assert!(
        counter("wasq_leases_renewed_total") > 0,
        "no renewal happened"
    );
    assert_eq!(counter("wasq_leases_lost_total"), 0);
}

/// A private Redis, its URL, and a test setup on it.
#[cfg(feature = "redis")]
async fn on_private_redis(
    data: &std::path::Path,
    tune: impl FnOnce(&mut Config),
) -> (wasq_testkit::RedisServer, Setup) {
    let redis = wasq_testkit::RedisServer::start(data).unwrap();
    let url = redis.url();
    let broker = wasq_brokers::connect(&url).await.unwrap();
    let setup = Setup::new(broker, &url, tune).await;
    (redis, setup)
}

/// Redis is down for longer than half the lease (where acknowledgements
/// used to be given up) and shorter than what is left of the leases: the
/// results saved meanwhile are acknowledged once it is back, and no task
/// runs twice.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_outlast_a_broker_outage_shorter_than_the_lease() {
    let data = tempfile::tempdir().unwrap();
    // A 20 s lease, renewed every 6.7 s: every lease lasts 13 s past the
    // outage's start; the outage lasts 8 s (acknowledgements were given up
    // after 6.3 s).
    let (mut redis, setup) = on_private_redis(data.path(), |c| {
        c.retry = Duration::from_secs(20);
        c.queue_limit = Some(32);
    })
    .await;
    let n = 100;
    setup.enqueue("sleep", json!([200]), n).await;
    let cluster = setup.start();
    until(Duration::from_secs(60), "the first tasks", || async {
        cluster.started() >= 8
    })
    .await;
    let outage = tokio::time::Instant::now();
    redis.stop().unwrap();
    let before = setup.successes().await;
    until(
        Duration::from_secs(30),
        "results saved while Redis is down",
        || async { setup.successes().await >= before + 8 },
    )
    .await;
    // The fault's length, not a synchronisation.
    tokio::time::sleep_until(outage + Duration::from_secs(8)).await;
    let saved_in_outage = setup.successes().await - before;
    redis.restart().unwrap();
    until(Duration::from_secs(120), "every result", || async {
        setup.successes().await == n as u64
    })
    .await;
    let queue = setup.config.queue.clone();
    until(Duration::from_secs(120), "an empty broker", || async {
        let sizes = (
            setup.broker.queue_size(&queue).await,
            setup.broker.lock_size(&queue).await,
        );
        matches!(sizes, (Ok(0), Ok(0)))
    })
    .await;
    // A call in flight when the server stops may have run without its
    // answer arriving (at least once, as the broker says), so the tasks of
    // one take may run again; acknowledgements given up after half the
    // lease ran again nearly every task saved during the outage.
    let reruns = cluster.started() - n as u64;
    assert!(
        reruns < saved_in_outage / 2,
        "{reruns} tasks ran again of {saved_in_outage} saved while Redis was down: their acknowledgements were given up"
    );
    let stopped = cluster.stop(Duration::from_secs(30)).await;
    assert!(stopped.done >= n as u64, "{stopped:?}");
    assert_eq!(stopped.failure, None);
}

/// The WARN lines of a log, each with its numbers taken out (retry
/// counts, delays, durations), so that repeats of one message compare
/// equal.
fn warnings(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| line.split_once(" WARN ").map(|(_, rest)| rest))
        .map(|rest| rest.chars().filter(|c| !c.is_ascii_digit()).collect())
        .collect()
}

/// A `wasq cluster` on a private Redis through a Redis restart: every part
/// that noticed logs one WARN line when the outage starts and one when it
/// ends, with the count of failed tries; no line repeats.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_logs_once_per_part_when_it_starts_and_ends() {
    let data = tempfile::tempdir().unwrap();
    let (mut redis, setup) = on_private_redis(data.path(), |_| {}).await;
    let n = 300;
    setup.enqueue("sleep", json!([200]), n).await;
    let url = redis.url();
    let env = [
        ("WASQ_BROKER", url.as_str()),
        ("WASQ_STORE", setup.config.store.as_str()),
        ("WASQ_QUEUE", setup.config.queue.as_str()),
        ("WASQ_SECRET", SECRET),
        ("WASQ_SAVE_LIMIT", "0"),
        // Renewed every 5 s: outlives the outage (each part notices it
        // within a renewal, then Redis restarts), also on a loaded machine,
        // so no lease ends during it and no acknowledgement gives up.
        ("WASQ_RETRY", "\"15s\""),
        // Room for every task: a pusher holding a full queue would not ask
        // the broker (and notice the outage) until acknowledgements free
        // room, which they do not while the broker is down.
        ("WASQ_QUEUE_LIMIT", "1000"),
    ];
    let mut cluster = ClusterProcess::start(setup.dir.path(), &["--workers", "4"], &env);
    let log = || {
        let mut text = String::new();
        for entry in std::fs::read_dir(setup.dir.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("cluster-") && name.ends_with(".log") {
                text += &std::fs::read_to_string(entry.path()).unwrap_or_default();
            }
        }
        text
    };
    until(Duration::from_secs(60), "the first results", || async {
        setup.successes().await >= 20
    })
    .await;
    redis.stop().unwrap();
    let starts = [
        "cannot take tasks from the broker",
        "cannot acknowledge finished tasks",
        "cannot renew leases",
    ];
    eventually(Duration::from_secs(30), "the outage noticed", || {
        let log = log();
        starts.iter().all(|s| log.contains(s)).then_some(())
    });
    redis.restart().unwrap();
    let ends = [
        "the broker answers the pusher again",
        "the broker answers the monitor again",
        "the broker answers the lease keeper again",
    ];
    until(Duration::from_secs(120), "every result", || async {
        setup.successes().await == n as u64
    })
    .await;
    eventually(Duration::from_secs(30), "the outage's end logged", || {
        let log = log();
        ends.iter().all(|s| log.contains(s)).then_some(())
    });
    assert_eq!(cluster.terminate(), Some(0), "{}", log());
    let log = log();
    let warned = warnings(&log);
    for line in &warned {
        let times = warned.iter().filter(|other| *other == line).count();
        assert_eq!(times, 1, "a warning repeats: {line}\n{log}");
    }
    for part in starts.iter().chain(&ends) {
        let times = warned.iter().filter(|w| w.contains(part)).count();
        assert_eq!(times, 1, "{part}: {times} lines\n{log}");
    }
    assert!(
        log.contains("failed tries over"),
        "no count of retries: {log}"
    );
    // Start and end per part: the pusher, monitor and lease keeper, and
    // the Redis wake-up listener's start.
    assert!(warned.len() <= 7, "{log}");
}

/// SIGTERM while tasks run: they finish during the stop, and the stop line
/// counts them with the rest, as many as there are results.
#[test]
fn the_stop_line_counts_the_tasks_finished_during_the_stop() {
    let dir = dir_with_module("basics");
    let mut cluster = ClusterProcess::start(dir.path(), &["--workers", "4"], &[]);
    for _ in 0..12 {
        let run = wasq_in(
            dir.path(),
            &["enqueue", "basics", "sleep", "--args", "[1500]"],
        );
        assert_eq!(run.code, 0, "{run:?}");
    }
    let successes = || {
        let info = wasq_env(dir.path(), &["info", "--json"], &[]);
        info.json()["successes"].as_u64().unwrap_or(0)
    };
    eventually(Duration::from_secs(60), "the first results", || {
        (successes() >= 4).then_some(())
    });
    let at_signal = successes();
    assert_eq!(cluster.terminate(), Some(0));
    let saved = successes();
    assert!(
        saved > at_signal,
        "no task finished during the stop ({saved} results)"
    );
    let mut log = String::new();
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("cluster-") && name.ends_with(".log") {
            log += &std::fs::read_to_string(entry.path()).unwrap();
        }
    }
    let line = log
        .lines()
        .find(|l| l.starts_with("stopped after "))
        .unwrap_or_else(|| panic!("no stop line: {log}"));
    assert_eq!(line, format!("stopped after {saved} task(s)"), "{log}");
}
