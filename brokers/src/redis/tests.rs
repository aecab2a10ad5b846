//! Tests of the Redis broker that need its internals: URL settings, keys,
//! scripts; the shared conformance suite runs it against a real server.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::*;

/// A lease that does not run out during a test.
const LONG: Duration = Duration::from_secs(600);
/// How long something that should happen may take before a test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// The Redis server `cargo xtask test` started.
fn server_url() -> String {
    match std::env::var("WASQ_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "WASQ_TEST_REDIS_URL is not set: run the tests with `cargo xtask test`, which starts Redis and sets it"
        ),
    }
}

/// A name no other test uses, on this server.
fn unique(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{tag}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `url` with `?prefix=PREFIX` added.
fn with_prefix(url: &str, prefix: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}prefix={prefix}")
}

/// A broker on the test server with a prefix of its own.
async fn broker() -> RedisBroker {
    RedisBroker::connect(&with_prefix(&server_url(), &unique("unit")))
        .await
        .unwrap()
}

/// Waits until `check` answers true, failing after [`DEADLINE`].
async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < DEADLINE,
            "not within {DEADLINE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the broker's wake-up listener is subscribed.
async fn listening(broker: &RedisBroker) {
    broker.wait("unit-warm-up", Duration::ZERO).await;
    eventually("the listener subscribes", || async {
        *broker.shared.listening.borrow()
    })
    .await;
}

fn payloads(deliveries: &[Delivery]) -> Vec<Vec<u8>> {
    deliveries.iter().map(|d| d.payload.clone()).collect()
}

#[test]
fn urls_give_prefix_and_redis_url() {
    let cases = [
        ("redis://localhost", "redis://localhost", "wasq"),
        (
            "redis://:pw@cache:6380/2?prefix=team-a.jobs:v1",
            "redis://:pw@cache:6380/2",
            "team-a.jobs:v1",
        ),
        (
            "redis://h?protocol=resp3&prefix=p",
            "redis://h?protocol=resp3",
            "p",
        ),
        (
            "rediss://h:6380/?prefix=p#insecure",
            "rediss://h:6380/#insecure",
            "p",
        ),
        ("REDIS://h?", "REDIS://h", "wasq"),
    ];
    for (url, redis_url, prefix) in cases {
        let settings = parse_url(url).unwrap();
        assert_eq!(settings.redis_url, redis_url, "{url}");
        assert_eq!(settings.prefix, prefix, "{url}");
    }
}

#[test]
fn bad_urls_say_why() {
    let cases = [
        ("localhost:6379", "expected redis://"),
        ("http://h", "not a Redis scheme"),
        ("redis://h?prefix=", "empty"),
        ("redis://h?prefix=a&prefix=b", "twice"),
        ("redis://h?prefix=a{b}", "'{'"),
        ("redis://h?prefix=a b", "' '"),
        ("redis://:hunter2@h?prefx=a", "unknown option `prefx`"),
        ("redis://h?db=2", "unknown option `db`"),
    ];
    for (url, reason) in cases {
        let e = parse_url(url).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, BrokerError::BadUrl { .. }), "{url}: {e:?}");
        assert!(text.contains(reason), "{url}: {text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[tokio::test]
async fn urls_redis_cannot_read_are_bad() {
    for url in [
        "redis://:hunter2@h:notaport",
        "redis://:hunter2@h/notadb",
        "redis://h?protocol=9",
        "redis://",
    ] {
        let e = RedisBroker::connect(url).await.unwrap_err();
        assert!(matches!(e, BrokerError::BadUrl { .. }), "{url}: {e:?}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}

#[tokio::test]
async fn a_closed_port_fails_fast_with_one_line() {
    let url = "redis://:hunter2@127.0.0.1:1/0";
    let e = tokio::time::timeout(DEADLINE, RedisBroker::connect(url))
        .await
        .expect("connect hung")
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, BrokerError::Unreachable(_)), "{e:?}");
    assert!(text.contains("redis://:***@127.0.0.1:1/0"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains('\n'), "{text}");
}

#[tokio::test]
async fn tls_to_a_server_without_it_fails() {
    // Accepts connections and answers with plain text, not TLS.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            let _ = std::io::Write::write_all(&mut stream, b"-ERR not TLS\r\n");
        }
    });
    let url = format!("rediss://127.0.0.1:{port}");
    let e = tokio::time::timeout(DEADLINE, RedisBroker::connect(&url))
        .await
        .expect("connect hung")
        .unwrap_err();
    assert!(matches!(e, BrokerError::Unreachable(_)), "{e:?}");
    assert!(e.to_string().contains(&url), "{e}");
}

#[test]
fn batches_are_cut_by_count_and_bytes() {
    let sizes =
        |payloads: &[Vec<u8>]| -> Vec<usize> { chunks(payloads).iter().map(|c| c.len()).collect() };
    assert!(chunks(&[]).is_empty());
    assert_eq!(sizes(&vec![vec![0]; 1]), [1]);
    assert_eq!(sizes(&vec![vec![0]; BATCH]), [BATCH]);
    assert_eq!(sizes(&vec![vec![0]; 2 * BATCH + 1]), [BATCH, BATCH, 1]);
    let big = vec![vec![0; BATCH_BYTES / 2 + 1]; 3];
    assert_eq!(sizes(&big), [1, 1, 1]);
    let huge = vec![vec![0], vec![0; BATCH_BYTES + 1], vec![0]];
    assert_eq!(sizes(&huge), [1, 1, 1]);
}

#[test]
fn odd_dequeue_replies_are_errors() {
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    assert_eq!(parse_deliveries(Value::Array(Vec::new())).unwrap(), []);
    let good = parse_deliveries(Value::Array(vec![bulk("7"), Value::Int(2), bulk("x")]));
    assert_eq!(
        good.unwrap(),
        [Delivery {
            ack_id: AckId::new(7, 2),
            payload: b"x".to_vec(),
            deliveries: 2
        }]
    );
    for bad in [
        Value::Int(1),
        Value::Array(vec![bulk("7"), Value::Int(2)]),
        Value::Array(vec![bulk("x"), Value::Int(2), bulk("x")]),
        Value::Array(vec![bulk("7"), Value::Int(-2), bulk("x")]),
        Value::Array(vec![bulk("7"), Value::Int(2), Value::Nil]),
    ] {
        assert!(parse_deliveries(bad.clone()).is_err(), "{bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_keep_setups_apart() {
    let (a, b) = (broker().await, broker().await);
    a.enqueue("q", b"a".to_vec()).await.unwrap();
    assert_eq!(a.queues().await.unwrap(), ["q"]);
    assert!(b.queues().await.unwrap().is_empty());
    assert_eq!(b.queue_size("q").await.unwrap(), 0);
    assert!(b.dequeue("q", 10, LONG).await.unwrap().is_empty());
    assert_eq!(payloads(&a.dequeue("q", 10, LONG).await.unwrap()), [b"a"]);
    assert_eq!(a.info().kind, "redis");
    assert!(a.info().location.contains("prefix=unit-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_still_held_until_taken_again() {
    let b = broker().await;
    b.enqueue("q", b"a".to_vec()).await.unwrap();
    let d = b.dequeue("q", 1, Duration::ZERO).await.unwrap().remove(0);
    assert_eq!(
        (
            b.queue_size("q").await.unwrap(),
            b.lock_size("q").await.unwrap()
        ),
        (1, 0)
    );
    assert_eq!(
        b.renew("q", std::slice::from_ref(&d.ack_id), LONG)
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(
        (
            b.queue_size("q").await.unwrap(),
            b.lock_size("q").await.unwrap()
        ),
        (0, 1)
    );
    // Twice the same ack id: the message answers once.
    assert_eq!(
        b.acknowledge("q", &[d.ack_id.clone(), d.ack_id])
            .await
            .unwrap(),
        [true, false]
    );
    assert!(b.queues().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_queue_leaves_no_key_behind() {
    let b = broker().await;
    let keys = b.keys("q");
    let left = || async {
        let n: u64 = ::redis::cmd("EXISTS")
            .arg(&keys.ready)
            .arg(&keys.leased)
            .arg(&keys.messages)
            .query_async(&mut b.conn())
            .await
            .unwrap();
        n
    };
    let b = &b;
    let taken = |n: usize| async move { b.dequeue("q", n, LONG).await.unwrap() };
    // Emptied by acknowledge, by delete, by purge.
    b.enqueue_batch("q", vec![b"a".to_vec(); 300])
        .await
        .unwrap();
    let all = taken(300).await;
    let acks: Vec<AckId> = all.iter().map(|d| d.ack_id.clone()).collect();
    assert!(b.acknowledge("q", &acks).await.unwrap().iter().all(|&h| h));
    assert_eq!(left().await, 0);
    b.enqueue_batch("q", vec![b"a".to_vec(); 2]).await.unwrap();
    let two = taken(2).await;
    assert!(b.release("q", &two[0].ack_id).await.unwrap());
    assert!(b.delete("q", &two[0].ack_id).await.unwrap());
    assert!(b.delete("q", &two[1].ack_id).await.unwrap());
    assert_eq!(left().await, 0);
    b.enqueue_batch("q", vec![b"a".to_vec(); 2]).await.unwrap();
    let one = b.dequeue("q", 1, Duration::ZERO).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(b.purge_queue("q").await.unwrap(), 2);
    assert_eq!(left().await, 0);
    assert!(b.queues().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_more_than_a_call_takes() {
    let b = broker().await;
    let n = usize::try_from(PURGE_BATCH).unwrap() + 5;
    b.enqueue_batch("q", vec![b"v".to_vec(); n]).await.unwrap();
    // Expired leases count as visible.
    let expired = b.dequeue("q", n, Duration::ZERO).await.unwrap();
    assert_eq!(expired.len(), n);
    b.enqueue_batch("q", vec![b"v".to_vec(); n]).await.unwrap();
    // One of the expired ones is taken again, and held.
    let held = b.dequeue("q", 1, LONG).await.unwrap();
    assert_eq!(held.len(), 1);
    b.enqueue("q", b"w".to_vec()).await.unwrap();
    assert_eq!(b.purge_queue("q").await.unwrap(), 2 * n as u64);
    assert_eq!(
        (
            b.queue_size("q").await.unwrap(),
            b.lock_size("q").await.unwrap()
        ),
        (0, 1)
    );
    assert_eq!(
        b.acknowledge("q", &[held[0].ack_id.clone()]).await.unwrap(),
        [true]
    );
    assert!(b.queues().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_batches_keep_their_order() {
    let b = broker().await;
    let n = 2 * BATCH + 500;
    let sent: Vec<Vec<u8>> = (0..n).map(|i| i.to_string().into_bytes()).collect();
    // Several script calls in one transaction.
    b.enqueue_batch("q", sent.clone()).await.unwrap();
    b.enqueue("q", b"last".to_vec()).await.unwrap();
    assert_eq!(b.queue_size("q").await.unwrap(), n as u64 + 1);
    // More than one script call's worth in one dequeue.
    let got = b.dequeue("q", n, LONG).await.unwrap();
    assert_eq!(payloads(&got), sent);
    let acks: Vec<AckId> = got.iter().map(|d| d.ack_id.clone()).collect();
    let held = b.acknowledge("q", &acks).await.unwrap();
    assert!(held.iter().all(|&h| h));
    assert_eq!(
        payloads(&b.dequeue("q", usize::MAX, LONG).await.unwrap()),
        [b"last"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_loaded_again_when_the_server_forgot_them() {
    let b = broker().await;
    b.enqueue("q", b"a".to_vec()).await.unwrap();
    let _: () = ::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut b.conn())
        .await
        .unwrap();
    b.enqueue("q", b"b".to_vec()).await.unwrap();
    let got = b.dequeue("q", 10, LONG).await.unwrap();
    assert_eq!(payloads(&got), [b"a", b"b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_and_release_wake_other_processes() {
    let url = with_prefix(&server_url(), &unique("wake"));
    let consumer = Arc::new(RedisBroker::connect(&url).await.unwrap());
    let producer = RedisBroker::connect(&url).await.unwrap();
    listening(&consumer).await;
    let waiter = |queue: &'static str| {
        let consumer = Arc::clone(&consumer);
        tokio::spawn(async move {
            // Far longer than the test may take: only a wake-up ends it.
            consumer.wait(queue, DEADLINE * 10).await;
        })
    };

    let woken = waiter("q");
    tokio::time::sleep(Duration::from_millis(50)).await;
    producer.enqueue("q", b"x".to_vec()).await.unwrap();
    tokio::time::timeout(DEADLINE, woken)
        .await
        .expect("the enqueue did not wake the waiter")
        .unwrap();

    let d = producer.dequeue("q", 1, LONG).await.unwrap().remove(0);
    let woken = waiter("q");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(producer.release("q", &d.ack_id).await.unwrap());
    tokio::time::timeout(DEADLINE, woken)
        .await
        .expect("the release did not wake the waiter")
        .unwrap();

    // A wake-up nobody waited for is kept for the next wait.
    producer.enqueue("kept", b"y".to_vec()).await.unwrap();
    tokio::time::timeout(DEADLINE, consumer.wait("kept", DEADLINE * 10))
        .await
        .expect("the wake-up was not kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_broker_stops_its_listener() {
    let prefix = unique("drop");
    let url = with_prefix(&server_url(), &prefix);
    let observer = RedisBroker::connect(&url).await.unwrap();
    let subscribers = || async {
        let (_, n): (String, u64) = ::redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("{prefix}:wake"))
            .query_async(&mut observer.conn())
            .await
            .unwrap();
        n
    };
    let b = RedisBroker::connect(&url).await.unwrap();
    assert_eq!(subscribers().await, 0, "no listener before the first wait");
    listening(&b).await;
    assert_eq!(subscribers().await, 1);
    drop(b);
    eventually("the listener unsubscribes", || async {
        subscribers().await == 0
    })
    .await;
}

/// A `redis-server` of the test's own, on `port`, without persistence.
fn start_server(port: u16, dir: &Path) -> Child {
    let program = std::env::var("WASQ_TEST_REDIS_SERVER").unwrap_or("redis-server".into());
    Command::new(&program)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start `{program}` ({e}): this test restarts a Redis server of its own; install redis-server or set WASQ_TEST_REDIS_SERVER to its path (`cargo xtask test` provides one)"
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_used_again() {
    // Like the other server tests, this one runs under `cargo xtask test`.
    let _ = server_url();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut server = start_server(port, dir.path());
    let started = Instant::now();
    let b = loop {
        match RedisBroker::connect(&url).await {
            Ok(b) => break b,
            Err(e) => assert!(started.elapsed() < DEADLINE, "server not up: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    b.enqueue("q", b"before".to_vec()).await.unwrap();
    listening(&b).await;
    let waiting = {
        // A waiter from before the crash is sent to look again.
        let url = url.clone();
        tokio::spawn(async move {
            let b = RedisBroker::connect(&url).await.unwrap();
            listening(&b).await;
            b.wait("idle", DEADLINE * 10).await;
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.kill().unwrap();
    server.wait().unwrap();
    let e = tokio::time::timeout(DEADLINE, b.queue_size("q"))
        .await
        .expect("a call to a dead server hung");
    assert!(matches!(e, Err(BrokerError::Unreachable(_))), "{e:?}");
    for _ in 0..3 {
        let e = tokio::time::timeout(DEADLINE, b.enqueue("q", b"lost".to_vec()))
            .await
            .expect("a call to a dead server hung");
        assert!(e.is_err(), "{e:?}");
    }
    tokio::time::timeout(DEADLINE, b.wait("q", DEADLINE * 10))
        .await
        .expect("a wait hung while the server was down");
    tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("a waiter was not woken when the connection dropped")
        .unwrap();

    let mut server = start_server(port, dir.path());
    eventually("the broker reconnects", || async { b.ping().await.is_ok() }).await;
    // The new server knows no scripts: they are loaded again.
    b.enqueue("q", b"after".to_vec()).await.unwrap();
    b.enqueue_batch("q", vec![b"batch".to_vec(); 2 * BATCH])
        .await
        .unwrap();
    let got = b.dequeue("q", 1, LONG).await.unwrap();
    assert_eq!(payloads(&got), [b"after"]);
    assert_eq!(
        b.acknowledge("q", &[got[0].ack_id.clone()]).await.unwrap(),
        [true]
    );
    // And wake-ups flow again.
    listening(&b).await;
    let consumer = Arc::new(b);
    let woken = {
        let consumer = Arc::clone(&consumer);
        tokio::spawn(async move { consumer.wait("fresh", DEADLINE * 10).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    consumer.enqueue("fresh", b"x".to_vec()).await.unwrap();
    tokio::time::timeout(DEADLINE, woken)
        .await
        .expect("no wake-up after the restart")
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
}
