//! The broker conformance suite: what every broker must do, written once
//! over a [`SharedBroker`] and run for each broker by `conformance!`. A new
//! broker adds one `conformance!` line that makes a fresh broker (and
//! whatever must live as long as it, such as a temporary directory).
//!
//! Queue names are unique per test, so that brokers on a shared server can
//! run the suite in parallel. Leases that must run out are short
//! ([`SHORT`]) and waited for by polling up to a generous [`DEADLINE`];
//! leases that must not run out are long ([`LONG`]).
//!
//! A broker that cannot keep some promise (SQS: no FIFO order, no fencing
//! tokens, leases in whole seconds) says so in its [`Caveats`], and the
//! tests concerned check the weaker property it does keep instead.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::slice::from_ref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasq_brokers::{AckId, BrokerError, Delivery, SharedBroker, connect};

/// A lease that runs out during the test.
const SHORT: Duration = Duration::from_millis(200);
/// A lease that does not.
const LONG: Duration = Duration::from_secs(600);
/// How long something that should happen may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// Keeps alive what a broker needs (a temporary directory, …).
type Guard = Box<dyn Any + Send>;

/// A broker under test.
struct Fixture {
    broker: SharedBroker,
    /// What [`wasq_brokers::BrokerInfo::kind`] must say.
    kind: &'static str,
    /// The promises it cannot keep.
    caveats: Caveats,
    _guard: Guard,
}

/// What a broker cannot promise; [`Caveats::NONE`] for a broker that keeps
/// the whole [`Broker`](wasq_brokers::Broker) contract.
#[derive(Clone, Copy, Debug)]
struct Caveats {
    /// Messages come out in enqueue order.
    fifo: bool,
    /// An ack id whose delivery is over (message gone, or delivered again)
    /// holds nothing: it answers `false` and changes nothing. Without it,
    /// such an ack id answers anything and may still act on its message.
    fenced: bool,
    /// A message is held by one delivery at a time: consumers never both
    /// get it. Without it (SQS standard queues deliver at least once, now
    /// and then twice at once; moto's receive, which takes no lock, often)
    /// nothing may be lost, and the copies carry the message unchanged.
    exclusive: bool,
    /// Leases shorter than this last this long (SQS: whole seconds).
    min_lease: Duration,
    /// The largest payload the suite sends. Below 1 MiB, a far bigger one
    /// (4 MiB) must be refused with an error, its batch sent whole or not
    /// at all.
    max_payload: usize,
    /// How many messages [`ten_thousand_through`] pushes through: fewer
    /// than 10 000 only where the test server cannot take that many in
    /// time (moto's SQS works through the whole queue for every message).
    through: usize,
}

impl Caveats {
    const NONE: Caveats = Caveats {
        fifo: true,
        fenced: true,
        exclusive: true,
        min_lease: Duration::ZERO,
        max_payload: usize::MAX,
        through: 10_000,
    };
}

/// `conformance!(NAME, KIND, FACTORY[, CAVEATS])`: the suite as module
/// `NAME`, each test on a broker made by `FACTORY` (an async closure
/// returning the broker and a guard), whose [`Caveats`] are `CAVEATS`
/// ([`Caveats::NONE`] if not given).
macro_rules! conformance {
    ($name:ident, $kind:literal, $make:expr) => {
        conformance!($name, $kind, $make, Caveats::NONE);
    };
    ($name:ident, $kind:literal, $make:expr, $caveats:expr) => {
        mod $name {
            #[allow(unused_imports, reason = "for the factory")]
            use super::*;

            async fn fixture() -> super::Fixture {
                let make = $make;
                let (broker, guard) = make().await;
                super::Fixture {
                    broker,
                    kind: $kind,
                    caveats: $caveats,
                    _guard: guard,
                }
            }

            conformance!(@tests
                fifo_order,
                bulk_dequeue_respects_max_and_leases,
                lease_expiry_redelivers,
                acknowledge_removes,
                stale_ack_after_redelivery_changes_nothing,
                fail_removes,
                renew_keeps_a_message_held,
                release_makes_visible_at_once,
                delete_removes_whatever_the_state,
                purge_removes_visible_only,
                delete_queue_removes_all,
                sizes_follow_leases,
                queues_are_independent,
                concurrent_consumers_never_share,
                ten_thousand_through,
                enqueue_batch_of_zero,
                payloads_are_opaque,
                foreign_ack_ids_hold_nothing,
                ping_and_info,
                dequeue_wait_takes_what_arrives,
                wait_returns,
            );
        }
    };
    (@tests $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let fixture = fixture().await;
                super::$test(&fixture).await;
            }
        )*
    };
}

conformance!(memory, "memory", || async {
    let broker = connect(&format!("memory://{}", unique("conformance")))
        .await
        .unwrap();
    (broker, Box::new(()) as Guard)
});

conformance!(sqlite, "sqlite", || async {
    let dir = tempfile::tempdir().unwrap();
    let broker = connect(&format!("sqlite://{}", dir.path().join("q.db").display()))
        .await
        .unwrap();
    (broker, Box::new(dir) as Guard)
});

#[cfg(feature = "redis")]
conformance!(redis, "redis", || async {
    let broker = connect(&server_url("WASQ_TEST_REDIS_URL")).await.unwrap();
    (broker, Box::new(()) as Guard)
});

#[cfg(feature = "postgres")]
conformance!(postgres, "postgres", || async {
    let broker = connect(&server_url("WASQ_TEST_POSTGRES_URL"))
        .await
        .unwrap();
    (broker, Box::new(()) as Guard)
});

#[cfg(feature = "sqs")]
conformance!(
    sqs,
    "sqs",
    || async {
        let endpoint = server_url("WASQ_TEST_SQS_ENDPOINT");
        let url = format!(
            "sqs://{}?region=us-east-1&endpoint={endpoint}",
            unique("wasq")
        );
        let broker = connect(&url).await.unwrap();
        (broker, Box::new(()) as Guard)
    },
    // Standard queues, at least once; receipt handles, not fencing tokens;
    // visibility timeouts in seconds; 256 KiB bodies of base64 on some
    // endpoints; moto takes 10 000 messages in minutes, not seconds.
    Caveats {
        fifo: false,
        fenced: false,
        exclusive: false,
        min_lease: Duration::from_secs(1),
        max_payload: 192 * 1024,
        through: 1_000,
    }
);

// ---- helpers ----

/// The URL of a test server that `cargo xtask test` started, from the
/// environment variable `var`.
#[allow(
    dead_code,
    reason = "used by the server brokers' fixtures, each behind its feature"
)]
fn server_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{var} is not set: run the tests with `cargo xtask test`, which starts Redis, PostgreSQL and an SQS endpoint and sets it"
        ),
    }
}

/// A name no other test of this process uses.
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

fn bytes(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn payloads(deliveries: &[Delivery]) -> Vec<Vec<u8>> {
    deliveries.iter().map(|d| d.payload.clone()).collect()
}

fn acks(deliveries: &[Delivery]) -> Vec<AckId> {
    deliveries.iter().map(|d| d.ack_id.clone()).collect()
}

/// Waits until `check` answers true, failing the test after [`DEADLINE`].
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

/// Dequeues one message (leased for `lease`) once one is visible.
async fn dequeue_one(broker: &SharedBroker, queue: &str, lease: Duration) -> Delivery {
    let start = Instant::now();
    loop {
        if let Some(delivery) = broker.dequeue(queue, 1, lease).await.unwrap().pop() {
            return delivery;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "nothing visible in {queue} within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that `got` is `want`: in this order where the broker keeps
/// FIFO order, in any order elsewhere.
fn assert_same(f: &Fixture, mut got: Vec<Vec<u8>>, mut want: Vec<Vec<u8>>, what: &str) {
    if !f.caveats.fifo {
        got.sort();
        want.sort();
    }
    assert_eq!(got, want, "{what}");
}

/// Asserts that an ack id whose delivery is over answered `want`, where
/// the broker is fenced; elsewhere any answer will do.
fn assert_fenced<T: PartialEq + Debug>(f: &Fixture, got: T, want: T, what: &str) {
    if f.caveats.fenced {
        assert_eq!(got, want, "{what}");
    }
}

/// Three times a [`SHORT`] lease as the broker keeps it: long enough for
/// it to have run out.
fn three_short_leases(f: &Fixture) -> Duration {
    SHORT.max(f.caveats.min_lease) * 3
}

/// `(queue_size, lock_size)`.
async fn sizes(broker: &SharedBroker, queue: &str) -> (u64, u64) {
    (
        broker.queue_size(queue).await.unwrap(),
        broker.lock_size(queue).await.unwrap(),
    )
}

// ---- the suite ----

async fn fifo_order(f: &Fixture) {
    let b = &f.broker;
    let q = unique("fifo");
    for i in 0..5 {
        b.enqueue(&q, format!("m{i}").into_bytes()).await.unwrap();
    }
    b.enqueue_batch(&q, (5..10).map(|i| format!("m{i}").into_bytes()).collect())
        .await
        .unwrap();
    let first = payloads(&b.dequeue(&q, 1, LONG).await.unwrap());
    let next = payloads(&b.dequeue(&q, 3, LONG).await.unwrap());
    let rest = payloads(&b.dequeue(&q, 100, LONG).await.unwrap());
    if !f.caveats.fifo {
        assert_eq!((first.len(), next.len(), rest.len()), (1, 3, 6));
        let all = [first, next, rest].concat();
        assert_same(
            f,
            all,
            (0..10).map(|i| format!("m{i}").into_bytes()).collect(),
            "all, once",
        );
        return;
    }
    assert_eq!(first, bytes(&["m0"]));
    assert_eq!(next, bytes(&["m1", "m2", "m3"]));
    assert_eq!(rest, bytes(&["m4", "m5", "m6", "m7", "m8", "m9"]));
}

async fn bulk_dequeue_respects_max_and_leases(f: &Fixture) {
    let b = &f.broker;
    let q = unique("bulk");
    assert!(
        b.dequeue(&q, 10, LONG).await.unwrap().is_empty(),
        "a queue never used is empty"
    );
    b.enqueue_batch(&q, (0..10).map(|i| vec![i]).collect())
        .await
        .unwrap();
    assert!(b.dequeue(&q, 0, LONG).await.unwrap().is_empty());
    assert_eq!(sizes(b, &q).await, (10, 0));

    let first = b.dequeue(&q, 4, LONG).await.unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(sizes(b, &q).await, (6, 4));
    let rest = b.dequeue(&q, 100, LONG).await.unwrap();
    assert_eq!(rest.len(), 6);
    assert!(
        b.dequeue(&q, 100, LONG).await.unwrap().is_empty(),
        "all are leased"
    );
    assert_eq!(sizes(b, &q).await, (0, 10));

    let all: Vec<Delivery> = first.into_iter().chain(rest).collect();
    assert!(all.iter().all(|d| d.deliveries == 1), "{all:?}");
    assert_same(
        f,
        payloads(&all),
        (0..10).map(|i| vec![i]).collect(),
        "all, once",
    );
    let ids: HashSet<AckId> = acks(&all).into_iter().collect();
    assert_eq!(ids.len(), 10, "ack ids are distinct");
}

async fn lease_expiry_redelivers(f: &Fixture) {
    let b = &f.broker;
    let q = unique("expiry");
    b.enqueue(&q, b"x".to_vec()).await.unwrap();
    let first = b.dequeue(&q, 1, SHORT).await.unwrap().pop().unwrap();
    assert_eq!(first.deliveries, 1);
    let second = dequeue_one(b, &q, SHORT).await;
    assert_eq!(second.payload, b"x");
    assert_eq!(second.deliveries, 2);
    assert_ne!(second.ack_id, first.ack_id);
    let third = dequeue_one(b, &q, LONG).await;
    assert_eq!(third.payload, b"x");
    assert_eq!(third.deliveries, 3);
    assert_ne!(third.ack_id, second.ack_id);
    assert_eq!(sizes(b, &q).await, (0, 1));
    assert!(b.dequeue(&q, 10, LONG).await.unwrap().is_empty());
}

async fn acknowledge_removes(f: &Fixture) {
    let b = &f.broker;
    let q = unique("ack");
    b.enqueue_batch(&q, bytes(&["a", "b", "c"])).await.unwrap();
    let ds = b.dequeue(&q, 3, LONG).await.unwrap();
    assert_eq!(
        b.acknowledge(&q, &[ds[0].ack_id.clone(), ds[2].ack_id.clone()])
            .await
            .unwrap(),
        [true, true]
    );
    assert_eq!(sizes(b, &q).await, (0, 1));
    assert_fenced(
        f,
        b.acknowledge(&q, from_ref(&ds[0].ack_id)).await.unwrap(),
        vec![false],
        "already gone",
    );
    assert_eq!(b.acknowledge(&q, &[]).await.unwrap(), Vec::<bool>::new());
    assert!(b.queues().await.unwrap().contains(&q));
    assert_eq!(
        b.acknowledge(&q, from_ref(&ds[1].ack_id)).await.unwrap(),
        [true]
    );
    assert_eq!(sizes(b, &q).await, (0, 0));
    assert!(b.dequeue(&q, 10, LONG).await.unwrap().is_empty());
    assert!(
        !b.queues().await.unwrap().contains(&q),
        "an empty queue is not listed"
    );
}

async fn stale_ack_after_redelivery_changes_nothing(f: &Fixture) {
    let b = &f.broker;
    let q = unique("stale");
    b.enqueue(&q, b"x".to_vec()).await.unwrap();
    let stale = b.dequeue(&q, 1, SHORT).await.unwrap().pop().unwrap();
    let fresh = dequeue_one(b, &q, LONG).await;
    assert_eq!(fresh.deliveries, 2);
    if !f.caveats.fenced {
        // The stale delivery may still act, and its answers say nothing;
        // still no errors, and the message comes out once more at most
        // (made visible by the stale release), then is gone.
        b.acknowledge(&q, from_ref(&stale.ack_id)).await.unwrap();
        b.fail(&q, &stale.ack_id).await.unwrap();
        b.release(&q, &stale.ack_id).await.unwrap();
        b.acknowledge(&q, from_ref(&fresh.ack_id)).await.unwrap();
        let again = b.dequeue(&q, 10, LONG).await.unwrap();
        assert!(again.len() <= 1, "{again:?}");
        assert!(again.iter().all(|d| d.payload == b"x"), "{again:?}");
        b.acknowledge(&q, &acks(&again)).await.unwrap();
        assert_eq!(sizes(b, &q).await, (0, 0));
        return;
    }
    assert_eq!(
        b.acknowledge(&q, from_ref(&stale.ack_id)).await.unwrap(),
        [false]
    );
    assert!(!b.fail(&q, &stale.ack_id).await.unwrap());
    assert!(!b.release(&q, &stale.ack_id).await.unwrap());
    assert_eq!(
        sizes(b, &q).await,
        (0, 1),
        "the redelivered message is still held"
    );
    assert_eq!(
        b.acknowledge(&q, &[stale.ack_id.clone(), fresh.ack_id.clone()])
            .await
            .unwrap(),
        [false, true]
    );
    assert_eq!(sizes(b, &q).await, (0, 0));
}

async fn fail_removes(f: &Fixture) {
    let b = &f.broker;
    let q = unique("fail");
    b.enqueue_batch(&q, bytes(&["a", "b"])).await.unwrap();
    let ds = b.dequeue(&q, 2, LONG).await.unwrap();
    assert!(b.fail(&q, &ds[0].ack_id).await.unwrap());
    assert_fenced(
        f,
        b.fail(&q, &ds[0].ack_id).await.unwrap(),
        false,
        "already gone",
    );
    assert_eq!(sizes(b, &q).await, (0, 1));
    assert!(
        b.dequeue(&q, 10, LONG).await.unwrap().is_empty(),
        "a failed message is not redelivered"
    );
    assert_eq!(
        b.acknowledge(&q, from_ref(&ds[1].ack_id)).await.unwrap(),
        [true]
    );
}

async fn renew_keeps_a_message_held(f: &Fixture) {
    let b = &f.broker;
    let q = unique("renew");
    b.enqueue(&q, b"x".to_vec()).await.unwrap();
    let d = b.dequeue(&q, 1, SHORT).await.unwrap().pop().unwrap();
    assert_eq!(
        b.renew(&q, from_ref(&d.ack_id), LONG).await.unwrap(),
        [true]
    );
    // Real time must pass: three times the original lease.
    tokio::time::sleep(three_short_leases(f)).await;
    assert!(
        b.dequeue(&q, 10, LONG).await.unwrap().is_empty(),
        "renewed past the original lease"
    );
    assert_eq!(sizes(b, &q).await, (0, 1));
    assert_eq!(
        b.renew(&q, from_ref(&d.ack_id), LONG).await.unwrap(),
        [true]
    );
    assert_eq!(
        b.acknowledge(&q, from_ref(&d.ack_id)).await.unwrap(),
        [true]
    );
    assert_fenced(
        f,
        b.renew(&q, from_ref(&d.ack_id), LONG).await.unwrap(),
        vec![false],
        "gone",
    );

    // A delivery whose message went to someone else cannot renew.
    b.enqueue(&q, b"y".to_vec()).await.unwrap();
    let stale = b.dequeue(&q, 1, SHORT).await.unwrap().pop().unwrap();
    let fresh = dequeue_one(b, &q, SHORT).await;
    let held = b
        .renew(&q, &[stale.ack_id.clone(), fresh.ack_id.clone()], LONG)
        .await
        .unwrap();
    assert!(held[1], "the fresh delivery renews");
    assert_fenced(
        f,
        held,
        vec![false, true],
        "the stale delivery cannot renew",
    );
    tokio::time::sleep(three_short_leases(f)).await;
    assert!(
        b.dequeue(&q, 10, LONG).await.unwrap().is_empty(),
        "the stale renew took the lease away"
    );
    assert_eq!(b.acknowledge(&q, &[fresh.ack_id]).await.unwrap(), [true]);
}

async fn release_makes_visible_at_once(f: &Fixture) {
    let b = &f.broker;
    let q = unique("release");
    b.enqueue_batch(&q, bytes(&["a", "b"])).await.unwrap();
    let ds = b.dequeue(&q, 2, LONG).await.unwrap();
    assert!(b.release(&q, &ds[0].ack_id).await.unwrap());
    assert_eq!(sizes(b, &q).await, (1, 1));
    assert_fenced(
        f,
        b.release(&q, &ds[0].ack_id).await.unwrap(),
        false,
        "no longer held",
    );
    let again = b.dequeue(&q, 10, LONG).await.unwrap();
    let released = if f.caveats.fifo {
        bytes(&["a"])
    } else {
        vec![ds[0].payload.clone()]
    };
    assert_eq!(payloads(&again), released);
    assert_eq!(
        again[0].deliveries, 2,
        "dequeue counts; release adds nothing"
    );
    assert_ne!(again[0].ack_id, ds[0].ack_id);
    assert_fenced(
        f,
        b.acknowledge(&q, from_ref(&ds[0].ack_id)).await.unwrap(),
        vec![false],
        "released, then delivered again",
    );
    // Unfenced, the stale acknowledge may have removed the message.
    assert_fenced(
        f,
        b.acknowledge(&q, &acks(&again)).await.unwrap(),
        vec![true],
        "held",
    );
    assert_eq!(
        b.acknowledge(&q, from_ref(&ds[1].ack_id)).await.unwrap(),
        [true]
    );
    assert_eq!(sizes(b, &q).await, (0, 0));
}

async fn delete_removes_whatever_the_state(f: &Fixture) {
    let b = &f.broker;
    let q = unique("delete");
    b.enqueue_batch(&q, bytes(&["held", "visible", "taken"]))
        .await
        .unwrap();
    let ds = b.dequeue(&q, 3, LONG).await.unwrap();
    // Held by this delivery.
    assert!(b.delete(&q, &ds[0].ack_id).await.unwrap());
    assert_fenced(
        f,
        b.delete(&q, &ds[0].ack_id).await.unwrap(),
        false,
        "already gone",
    );
    // Visible, held by nobody.
    assert!(b.release(&q, &ds[1].ack_id).await.unwrap());
    assert!(b.delete(&q, &ds[1].ack_id).await.unwrap());
    // Held by a later delivery.
    assert!(b.release(&q, &ds[2].ack_id).await.unwrap());
    let later = b.dequeue(&q, 1, LONG).await.unwrap();
    let taken = if f.caveats.fifo {
        bytes(&["taken"])
    } else {
        vec![ds[2].payload.clone()]
    };
    assert_eq!(payloads(&later), taken);
    assert!(b.delete(&q, &ds[2].ack_id).await.unwrap());
    assert_fenced(
        f,
        b.acknowledge(&q, &acks(&later)).await.unwrap(),
        vec![false],
        "deleted",
    );
    assert_eq!(sizes(b, &q).await, (0, 0));
}

async fn purge_removes_visible_only(f: &Fixture) {
    let b = &f.broker;
    let q = unique("purge");
    b.enqueue_batch(&q, bytes(&["a", "b", "c", "d", "e"]))
        .await
        .unwrap();
    let ds = b.dequeue(&q, 2, LONG).await.unwrap();
    assert_eq!(b.purge_queue(&q).await.unwrap(), 3);
    assert_eq!(sizes(b, &q).await, (0, 2));
    assert_eq!(b.purge_queue(&q).await.unwrap(), 0);
    assert_eq!(b.acknowledge(&q, &acks(&ds)).await.unwrap(), [true, true]);
    assert_eq!(b.purge_queue(&unique("never-used")).await.unwrap(), 0);
}

async fn delete_queue_removes_all(f: &Fixture) {
    let b = &f.broker;
    let q = unique("delete-queue");
    b.enqueue_batch(&q, bytes(&["a", "b", "c", "d", "e"]))
        .await
        .unwrap();
    let ds = b.dequeue(&q, 2, LONG).await.unwrap();
    b.delete_queue(&q).await.unwrap();
    assert_eq!(sizes(b, &q).await, (0, 0));
    assert_fenced(
        f,
        b.acknowledge(&q, &acks(&ds)).await.unwrap(),
        vec![false, false],
        "deleted with the queue",
    );
    assert!(!b.queues().await.unwrap().contains(&q));
    b.delete_queue(&unique("never-used")).await.unwrap();
    // The queue works again afterwards.
    b.enqueue(&q, b"new".to_vec()).await.unwrap();
    assert_eq!(
        payloads(&b.dequeue(&q, 10, LONG).await.unwrap()),
        bytes(&["new"])
    );
}

async fn sizes_follow_leases(f: &Fixture) {
    let b = &f.broker;
    let q = unique("sizes");
    assert_eq!(sizes(b, &q).await, (0, 0));
    b.enqueue_batch(&q, bytes(&["m0", "m1", "m2"]))
        .await
        .unwrap();
    assert_eq!(sizes(b, &q).await, (3, 0));
    let ds = b.dequeue(&q, 2, SHORT).await.unwrap();
    assert_eq!(ds.len(), 2);
    // Expired leases count as waiting again, without a dequeue.
    eventually("leases run out", || async { sizes(b, &q).await == (3, 0) }).await;
    let again = b.dequeue(&q, 10, LONG).await.unwrap();
    if f.caveats.fifo {
        assert_eq!(
            payloads(&again),
            bytes(&["m0", "m1", "m2"]),
            "redelivered in enqueue order"
        );
        assert_eq!(
            again.iter().map(|d| d.deliveries).collect::<Vec<_>>(),
            [2, 2, 1]
        );
    } else {
        assert_same(
            f,
            payloads(&again),
            bytes(&["m0", "m1", "m2"]),
            "redelivered",
        );
        for d in &again {
            let leased_before = ds.iter().any(|leased| leased.payload == d.payload);
            assert_eq!(d.deliveries, if leased_before { 2 } else { 1 }, "{d:?}");
        }
    }
    assert_eq!(sizes(b, &q).await, (0, 3));
}

async fn queues_are_independent(f: &Fixture) {
    let b = &f.broker;
    let (qa, qb) = (unique("a"), unique("b"));
    b.enqueue_batch(&qa, bytes(&["a1", "a2"])).await.unwrap();
    b.enqueue(&qb, b"b1".to_vec()).await.unwrap();
    let queues = b.queues().await.unwrap();
    assert!(queues.contains(&qa) && queues.contains(&qb), "{queues:?}");
    assert_eq!(sizes(b, &qa).await, (2, 0));
    assert_eq!(sizes(b, &qb).await, (1, 0));

    let db = b.dequeue(&qb, 10, LONG).await.unwrap();
    assert_eq!(payloads(&db), bytes(&["b1"]));
    // An ack id only works on its own queue.
    assert_eq!(b.acknowledge(&qa, &acks(&db)).await.unwrap(), [false]);
    assert_eq!(b.renew(&qa, &acks(&db), LONG).await.unwrap(), [false]);
    assert!(!b.release(&qa, &db[0].ack_id).await.unwrap());
    assert!(!b.delete(&qa, &db[0].ack_id).await.unwrap());
    assert_eq!(b.purge_queue(&qa).await.unwrap(), 2);
    assert_eq!(sizes(b, &qb).await, (0, 1));
    assert_eq!(b.acknowledge(&qb, &acks(&db)).await.unwrap(), [true]);
    let queues = b.queues().await.unwrap();
    assert!(!queues.contains(&qa) && !queues.contains(&qb), "{queues:?}");
}

async fn concurrent_consumers_never_share(f: &Fixture) {
    let b = &f.broker;
    let q = unique("concurrent");
    let total = 300;
    b.enqueue_batch(
        &q,
        (0..total).map(|i| format!("{i}").into_bytes()).collect(),
    )
    .await
    .unwrap();
    let consumer = |broker: SharedBroker, queue: String| async move {
        let mut taken = Vec::new();
        loop {
            let ds = broker.dequeue(&queue, 7, LONG).await.unwrap();
            if ds.is_empty() {
                return taken;
            }
            taken.extend(ds);
        }
    };
    let one = tokio::spawn(consumer(Arc::clone(b), q.clone()));
    let two = tokio::spawn(consumer(Arc::clone(b), q.clone()));
    let (one, two) = (one.await.unwrap(), two.await.unwrap());
    let seen_one: HashSet<Vec<u8>> = payloads(&one).into_iter().collect();
    let seen_two: HashSet<Vec<u8>> = payloads(&two).into_iter().collect();
    if !f.caveats.exclusive {
        let seen: HashSet<&Vec<u8>> = seen_one.union(&seen_two).collect();
        assert_eq!(seen.len(), total, "messages were lost");
        assert_eq!(sizes(b, &q).await, (0, total as u64));
        return;
    }
    assert_eq!(
        seen_one.len(),
        one.len(),
        "one consumer got a message twice"
    );
    assert_eq!(
        seen_two.len(),
        two.len(),
        "one consumer got a message twice"
    );
    assert!(
        seen_one.is_disjoint(&seen_two),
        "two consumers held the same message"
    );
    assert_eq!(one.len() + two.len(), total);
    assert_eq!(sizes(b, &q).await, (0, total as u64));
}

async fn ten_thousand_through(f: &Fixture) {
    let b = &f.broker;
    let q = unique("through");
    let total = f.caveats.through;
    let exclusive = f.caveats.exclusive;
    // Without exclusive deliveries, copies stranded by a lost answer are
    // waited for (see `drain_stale_copies`): a lease that ends in time.
    let lease = if exclusive {
        LONG
    } else {
        Duration::from_secs(30)
    };
    let acked = Arc::new(AtomicUsize::new(0));
    // Without exclusive deliveries, only a payload's first copy counts.
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let start = Instant::now();
    let producer = {
        let (broker, queue) = (Arc::clone(b), q.clone());
        tokio::spawn(async move {
            for batch in (0..total).step_by(1000) {
                let payloads = (batch..total.min(batch + 1000))
                    .map(|i| format!("package-{i:05}").into_bytes())
                    .collect();
                broker.enqueue_batch(&queue, payloads).await.unwrap();
            }
        })
    };
    let consumer = |broker: SharedBroker,
                    queue: String,
                    acked: Arc<AtomicUsize>,
                    seen: Arc<Mutex<HashSet<Vec<u8>>>>| async move {
        let mut done = Vec::new();
        while acked.load(Ordering::SeqCst) < total {
            assert!(
                start.elapsed() < DEADLINE * 4,
                "only {} acknowledged",
                acked.load(Ordering::SeqCst)
            );
            let ds = broker.dequeue(&queue, 100, lease).await.unwrap();
            if ds.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            let held = broker.acknowledge(&queue, &acks(&ds)).await.unwrap();
            assert!(held.iter().all(|&h| h), "a lease was lost: {held:?}");
            let new = if exclusive {
                ds.len()
            } else {
                let mut seen = seen.lock().unwrap();
                ds.iter().filter(|d| seen.insert(d.payload.clone())).count()
            };
            acked.fetch_add(new, Ordering::SeqCst);
            done.extend(ds.into_iter().map(|d| (d.payload, d.deliveries)));
        }
        done
    };
    let one = tokio::spawn(consumer(
        Arc::clone(b),
        q.clone(),
        Arc::clone(&acked),
        Arc::clone(&seen),
    ));
    let two = tokio::spawn(consumer(
        Arc::clone(b),
        q.clone(),
        Arc::clone(&acked),
        Arc::clone(&seen),
    ));
    producer.await.unwrap();
    let mut all = one.await.unwrap();
    all.extend(two.await.unwrap());
    if exclusive {
        assert!(all.iter().all(|(_, deliveries)| *deliveries == 1));
    } else {
        // Copies handed out at once count on from the first. moto's
        // receive takes no lock, so two receives racing on one message may
        // both count it, the first copy then counting 2; more means a
        // lease ran out.
        let mut first: HashMap<&[u8], u32> = HashMap::new();
        for (payload, deliveries) in &all {
            let least = first.entry(payload).or_insert(*deliveries);
            *least = (*least).min(*deliveries);
        }
        assert!(first.values().all(|&d| d <= 2), "a lease ran out");
    }
    let mut got: Vec<Vec<u8>> = all.into_iter().map(|(payload, _)| payload).collect();
    got.sort();
    if !exclusive {
        got.dedup();
    }
    let want: Vec<Vec<u8>> = (0..total)
        .map(|i| format!("package-{i:05}").into_bytes())
        .collect();
    assert_eq!(got.len(), total, "lost or duplicated packages");
    assert!(
        got == want,
        "the packages that came out are not the ones that went in"
    );
    if exclusive {
        assert_eq!(sizes(b, &q).await, (0, 0));
    } else {
        drain_stale_copies(b, &q, &want, lease).await;
    }
}

/// The end of [`ten_thousand_through`] on a broker without exclusive
/// deliveries: its counts are approximate and settle after the last
/// deletes, and a receive whose answer was lost in transit (its attempt
/// timed out and was retried, on a loaded machine) left copies of
/// packages already acknowledged held until their `lease` ends. They must
/// come back then; each is taken and acknowledged, and must be one of the
/// packages that went in, until the queue is empty.
async fn drain_stale_copies(b: &SharedBroker, q: &str, packages: &[Vec<u8>], lease: Duration) {
    let until = Instant::now() + lease + DEADLINE;
    loop {
        let left = sizes(b, q).await;
        if left == (0, 0) {
            return;
        }
        assert!(Instant::now() < until, "left in the queue: {left:?}");
        let ds = b.dequeue(q, 100, LONG).await.unwrap();
        assert!(
            ds.iter()
                .all(|d| packages.binary_search(&d.payload).is_ok()),
            "a package came out that never went in"
        );
        if !ds.is_empty() {
            b.acknowledge(q, &acks(&ds)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn enqueue_batch_of_zero(f: &Fixture) {
    let b = &f.broker;
    let q = unique("zero");
    b.enqueue_batch(&q, Vec::new()).await.unwrap();
    assert_eq!(sizes(b, &q).await, (0, 0));
    assert!(!b.queues().await.unwrap().contains(&q));
    assert!(b.dequeue(&q, 10, LONG).await.unwrap().is_empty());
}

async fn payloads_are_opaque(f: &Fixture) {
    let b = &f.broker;
    let q = unique("opaque");
    let big: Vec<u8> = (0..(1 << 20))
        .take(f.caveats.max_payload)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let sent = vec![
        Vec::new(),
        vec![0, 255, 0, 0xC3, 0x28],
        big,
        b"'); DROP TABLE wasq_queue; --".to_vec(),
    ];
    b.enqueue(&q, sent[0].clone()).await.unwrap();
    b.enqueue_batch(&q, sent[1..].to_vec()).await.unwrap();
    let got = b.dequeue(&q, 10, LONG).await.unwrap();
    let mut got = payloads(&got);
    let mut sent = sent;
    if !f.caveats.fifo {
        got.sort();
        sent.sort();
    }
    assert!(got == sent, "payloads changed on the way");

    if f.caveats.max_payload < 1 << 20 {
        let q = unique("too-big");
        let result = b
            .enqueue_batch(&q, vec![b"small".to_vec(), vec![7; 4 << 20]])
            .await;
        assert!(matches!(result, Err(BrokerError::Backend(_))), "{result:?}");
        assert_eq!(sizes(b, &q).await, (0, 0), "sent whole or not at all");
    }
}

async fn foreign_ack_ids_hold_nothing(f: &Fixture) {
    let b = &f.broker;
    let q = unique("foreign");
    b.enqueue(&q, b"x".to_vec()).await.unwrap();
    let d = b.dequeue(&q, 1, LONG).await.unwrap().pop().unwrap();
    for bad in [
        "",
        "garbage",
        "1",
        "1:",
        ":1",
        "1:2:3",
        "-5:-5",
        "99999999:1",
    ] {
        let bad = AckId(bad.into());
        assert_eq!(
            b.acknowledge(&q, from_ref(&bad)).await.unwrap(),
            [false],
            "{bad}"
        );
        assert_eq!(
            b.renew(&q, from_ref(&bad), LONG).await.unwrap(),
            [false],
            "{bad}"
        );
        assert!(!b.release(&q, &bad).await.unwrap(), "{bad}");
        assert!(!b.fail(&q, &bad).await.unwrap(), "{bad}");
        assert!(!b.delete(&q, &bad).await.unwrap(), "{bad}");
    }
    assert_eq!(sizes(b, &q).await, (0, 1));
    assert_eq!(b.acknowledge(&q, &[d.ack_id]).await.unwrap(), [true]);
}

async fn ping_and_info(f: &Fixture) {
    let b = &f.broker;
    b.ping().await.unwrap();
    let info = b.info();
    assert_eq!(info.kind, f.kind);
    assert!(!info.location.is_empty());
}

// ---- connecting ----

#[tokio::test]
async fn connect_errors_name_the_problem() {
    let error = |url: String| async move {
        match connect(&url).await {
            Ok(broker) => panic!("{url} connected: {:?}", broker.info()),
            Err(e) => (e.to_string(), e),
        }
    };
    let (msg, e) = error("amqp://user:hunter2@localhost:5672/0".into()).await;
    assert!(matches!(e, BrokerError::UnsupportedScheme(_)), "{e:?}");
    assert!(
        msg.contains("`amqp`") && msg.contains("sqlite://PATH") && msg.contains("memory://"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");

    for url in [
        "no scheme here",
        "sqlite:relative.db",
        "sqlite::memory:",
        "memory",
    ] {
        let (msg, e) = error(url.into()).await;
        assert!(matches!(e, BrokerError::BadUrl { .. }), "{url}: {e:?}");
        assert!(msg.contains(url), "{msg}");
    }
    let (msg, e) = error("sqlite://".into()).await;
    assert!(matches!(e, BrokerError::BadUrl { .. }), "{e:?}");
    assert!(msg.contains("sqlite://PATH"), "{msg}");

    let (msg, e) = error("sqlite:///proc/nope/q.db".into()).await;
    assert!(matches!(e, BrokerError::Unreachable(_)), "{e:?}");
    assert!(msg.contains("/proc/nope"), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    let (msg, e) = error(format!("sqlite://{}", dir.path().display())).await;
    assert!(matches!(e, BrokerError::Unreachable(_)), "{e:?}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
}

#[tokio::test]
async fn memory_names_share_one_broker() {
    let name = unique("shared");
    let a = connect(&format!("memory://{name}")).await.unwrap();
    let b = connect(&format!("memory://{name}")).await.unwrap();
    let other = connect(&format!("memory://{}", unique("other")))
        .await
        .unwrap();
    let (fresh_1, fresh_2) = (
        connect("memory://").await.unwrap(),
        connect("memory://").await.unwrap(),
    );
    a.enqueue("q", b"x".to_vec()).await.unwrap();
    fresh_1.enqueue("q", b"x".to_vec()).await.unwrap();
    assert_eq!(b.queue_size("q").await.unwrap(), 1);
    assert_eq!(other.queue_size("q").await.unwrap(), 0);
    assert_eq!(fresh_2.queue_size("q").await.unwrap(), 0);
    assert_eq!(a.info().location, format!("memory://{name}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connections_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/dirs/q.db");
    let url = format!("sqlite://{}", path.display());
    // Two pools on one file behave as two processes would.
    let a = connect(&url).await.unwrap();
    assert!(path.is_file(), "the file and its directories are created");
    let b = connect(&url).await.unwrap();
    assert_eq!(a.info().location, path.display().to_string());

    // Writers on both wait for each other instead of failing.
    let producer = |broker: SharedBroker, tag: &'static str| async move {
        for batch in 0..20 {
            let payloads = (0..50)
                .map(|i| format!("{tag}-{batch}-{i}").into_bytes())
                .collect();
            broker.enqueue_batch("q", payloads).await.unwrap();
        }
    };
    let written = Arc::new(AtomicBool::new(false));
    let consumer = |broker: SharedBroker, written: Arc<AtomicBool>| async move {
        let mut taken = Vec::new();
        let start = Instant::now();
        loop {
            assert!(
                start.elapsed() < DEADLINE * 2,
                "still consuming after {:?}",
                start.elapsed()
            );
            // Read the flag first: once it is set, an empty dequeue means
            // every message has been taken.
            let all_written = written.load(Ordering::SeqCst);
            let ds = broker.dequeue("q", 25, LONG).await.unwrap();
            if ds.is_empty() {
                if all_written {
                    return taken;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            taken.extend(payloads(&ds));
        }
    };
    let writers = [
        tokio::spawn(producer(Arc::clone(&a), "a")),
        tokio::spawn(producer(Arc::clone(&b), "b")),
    ];
    let readers = [
        tokio::spawn(consumer(Arc::clone(&a), Arc::clone(&written))),
        tokio::spawn(consumer(Arc::clone(&b), Arc::clone(&written))),
    ];
    for writer in writers {
        writer.await.unwrap();
    }
    written.store(true, Ordering::SeqCst);
    let mut taken = Vec::new();
    for reader in readers {
        taken.extend(reader.await.unwrap());
    }
    let distinct: HashSet<&Vec<u8>> = taken.iter().collect();
    assert_eq!(
        distinct.len(),
        taken.len(),
        "a message was handed out twice"
    );
    assert_eq!(taken.len(), 2000, "messages were lost");
    assert_eq!(b.lock_size("q").await.unwrap(), 2000);
}

async fn dequeue_wait_takes_what_arrives(f: &Fixture) {
    let b = f.broker.clone();
    let q = unique("dequeue-wait");
    assert!(
        b.dequeue_wait(&q, 10, LONG, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "no wait on an empty queue"
    );
    let waiter = {
        let (b, q) = (b.clone(), q.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            loop {
                let got = b
                    .dequeue_wait(&q, 10, LONG, Duration::from_secs(2))
                    .await
                    .unwrap();
                if !got.is_empty() || start.elapsed() > DEADLINE {
                    return got;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.enqueue_batch(&q, bytes(&["late 1", "late 2"]))
        .await
        .unwrap();
    let got = waiter.await.unwrap();
    assert!(!got.is_empty(), "the wait took nothing");
    assert!(payloads(&got).iter().all(|p| p.starts_with(b"late")));
    assert!(got.iter().all(|d| d.deliveries == 1));
}

async fn wait_returns(f: &Fixture) {
    let b = &f.broker;
    let q = unique("wait");
    // Times out on an empty queue, and returns after an enqueue (at once
    // where the broker is told, else after its timeout).
    b.wait(&q, Duration::from_millis(50)).await;
    b.enqueue(&q, b"x".to_vec()).await.unwrap();
    b.wait(&q, Duration::from_millis(50)).await;
    assert_eq!(b.dequeue(&q, 10, LONG).await.unwrap().len(), 1);
}
