//! Micro-benchmarks of the brokers, run with `cargo xtask bench micro` (which starts Redis and
//! PostgreSQL and passes their URLs) or `cargo bench -p wasq-micro-benches --bench brokers`: per
//! message, `enqueue` one at a time, `enqueue_batch` of 100, and `dequeue` of 100 followed by
//! one `acknowledge`, the way a cluster takes tasks. Memory and SQLite always run; Redis and
//! PostgreSQL when `WASQ_TEST_REDIS_URL` / `WASQ_TEST_POSTGRES_URL` are set and their features
//! are on.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wasq_brokers::{AckId, SharedBroker};

const PAYLOAD: usize = 512;
const BULK: usize = 100;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `(name, url)` of each broker to measure.
fn brokers(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    let mut list = vec![
        ("memory", "memory://".to_string()),
        (
            "sqlite",
            format!("sqlite://{}", dir.join("bench.db").display()),
        ),
    ];
    if let Ok(url) = std::env::var("WASQ_TEST_REDIS_URL") {
        list.push(("redis", url));
    }
    if let Ok(url) = std::env::var("WASQ_TEST_POSTGRES_URL") {
        list.push(("postgres", url));
    }
    list
}

fn bench_brokers(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let rt = runtime();
    let mut group = c.benchmark_group("broker");
    group.throughput(Throughput::Elements(1));
    for (name, url) in brokers(dir.path()) {
        let broker: SharedBroker = rt
            .block_on(wasq_brokers::connect(&url))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let queue = format!("bench-{}", std::process::id());
        group.bench_function(format!("{name}/enqueue"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        broker
                            .enqueue(&queue, vec![7; PAYLOAD])
                            .await
                            .expect("enqueue");
                    }
                    let took = started.elapsed();
                    drain(&broker, &queue, iters as usize).await;
                    took
                })
            })
        });
        group.bench_function(format!("{name}/enqueue_batch-100"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    fill(&broker, &queue, iters as usize).await;
                    let took = started.elapsed();
                    drain(&broker, &queue, iters as usize).await;
                    took
                })
            })
        });
        group.bench_function(format!("{name}/dequeue-100+acknowledge"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    fill(&broker, &queue, iters as usize).await;
                    let started = Instant::now();
                    drain(&broker, &queue, iters as usize).await;
                    started.elapsed()
                })
            })
        });
        rt.block_on(broker.purge_queue(&queue)).expect("purge");
    }
    group.finish();
}

/// Enqueues `n` messages, 100 a batch.
async fn fill(broker: &SharedBroker, queue: &str, n: usize) {
    let mut left = n;
    while left > 0 {
        let batch = left.min(BULK);
        broker
            .enqueue_batch(queue, vec![vec![7; PAYLOAD]; batch])
            .await
            .expect("enqueue_batch");
        left -= batch;
    }
}

/// Takes and acknowledges `n` messages, 100 at a time.
async fn drain(broker: &SharedBroker, queue: &str, n: usize) {
    let mut left = n;
    while left > 0 {
        let deliveries = broker
            .dequeue(queue, left.min(BULK), Duration::from_secs(60))
            .await
            .expect("dequeue");
        if deliveries.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let acks: Vec<AckId> = deliveries.into_iter().map(|d| d.ack_id).collect();
        broker.acknowledge(queue, &acks).await.expect("acknowledge");
        left -= acks.len();
    }
}

criterion_group!(benches, bench_brokers);
criterion_main!(benches);
