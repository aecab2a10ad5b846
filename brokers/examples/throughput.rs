//! Rough throughput of a broker: enqueue in batches, then consumers that
//! dequeue in bulk and acknowledge each bulk in one call, the way a
//! cluster does.
//!
//! ```text
//! cargo run --release -p wasq-brokers --example throughput -- [URL] [MESSAGES] [BULK] [CONSUMERS] [PAYLOAD_BYTES]
//! ```
//!
//! Defaults: a temporary `sqlite://` file, 10000 messages, bulk 100, 2
//! consumers, 512-byte payloads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wasq_brokers::{AckId, SharedBroker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = tempfile::tempdir()?;
    let url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("q.db").display()));
    let messages: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let bulk: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let consumers: usize = args.next().map_or(Ok(2), |a| a.parse())?;
    let size: usize = args.next().map_or(Ok(512), |a| a.parse())?;
    let broker = wasq_brokers::connect(&url).await?;
    println!(
        "{} ({}): {messages} messages of {size} B, bulk {bulk}, {consumers} consumers",
        url,
        broker.info().kind
    );

    let start = Instant::now();
    for batch in (0..messages).collect::<Vec<_>>().chunks(1000) {
        let payloads = batch.iter().map(|_| vec![7; size]).collect();
        broker.enqueue_batch("bench", payloads).await?;
    }
    report("enqueue_batch (1000 a batch)", messages, start.elapsed());

    let start = Instant::now();
    consume(&broker, messages, bulk, consumers).await?;
    report("dequeue + acknowledge", messages, start.elapsed());

    // Both at once, as with producers feeding a running cluster.
    let start = Instant::now();
    let producer = {
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            for _ in 0..messages.div_ceil(100) {
                broker
                    .enqueue_batch("bench", vec![vec![7; size]; 100])
                    .await?;
            }
            Ok::<_, wasq_brokers::BrokerError>(())
        })
    };
    consume(&broker, messages.div_ceil(100) * 100, bulk, consumers).await?;
    producer.await??;
    report(
        "enqueue (100 a batch) while consuming, end to end",
        messages,
        start.elapsed(),
    );
    Ok(())
}

async fn consume(
    broker: &SharedBroker,
    total: usize,
    bulk: usize,
    consumers: usize,
) -> Result<(), wasq_brokers::BrokerError> {
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let (broker, done) = (Arc::clone(broker), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < total {
                let deliveries = broker
                    .dequeue("bench", bulk, Duration::from_secs(60))
                    .await?;
                if deliveries.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let acks: Vec<AckId> = deliveries.into_iter().map(|d| d.ack_id).collect();
                broker.acknowledge("bench", &acks).await?;
                done.fetch_add(acks.len(), Ordering::Relaxed);
            }
            Ok::<_, wasq_brokers::BrokerError>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| wasq_brokers::BrokerError::Backend(e.to_string()))??;
    }
    Ok(())
}

fn report(what: &str, messages: usize, took: Duration) {
    println!(
        "{what:>52}: {:>8.0} messages/s ({took:.2?})",
        messages as f64 / took.as_secs_f64()
    );
}
