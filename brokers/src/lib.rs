//! Brokers: the queues wasq tasks wait in.
//!
//! A broker moves opaque packages (bytes the caller signed) from the
//! processes that enqueue tasks to the clusters that run them. It never
//! looks inside a package. Delivery is *at least once* with a lease: a
//! dequeued message that is not acknowledged within its lease becomes
//! visible again and is delivered anew, its delivery count incremented.
//! Every delivery carries its own [`AckId`], a fencing token: once a
//! message has been handed to someone else, the old delivery's
//! acknowledge, renew and release answer `false` and change nothing.
//!
//! # Layout
//!
//! - [`Broker`]: the trait every broker implements (static dispatch), and
//!   [`DynBroker`] its object-safe twin, implemented for every [`Broker`],
//!   so that [`SharedBroker`] (`Arc<dyn DynBroker>`) can be picked at run
//!   time.
//! - [`connect`]: opens a broker from a URL (`memory://`, `sqlite://PATH`);
//!   [`redact`] hides the secrets of a URL for logs.
//! - [`MemoryBroker`]: in-process queues, for tests and one-process setups.
//! - [`SqliteBroker`] (feature `sqlite`): one SQLite file (table
//!   `wasq_queue`) that several processes on one machine share.
//! - `RedisBroker` (feature `redis`): `redis://` and `rediss://`, leases
//!   in sorted sets changed by Lua scripts, wake-ups over pub/sub.
//! - `PostgresBroker` (feature `postgres`): `postgres://USER@HOST/DB`, one
//!   table (`wasq_queue`) claimed with `FOR UPDATE SKIP LOCKED` on the
//!   database clock, wake-ups over `LISTEN`/`NOTIFY`.
//! - `SqsBroker` (feature `sqs`): `sqs://QUEUE?region=…`, Amazon SQS
//!   standard queues (or moto, ElasticMQ, LocalStack); leases are
//!   visibility timeouts, and receipt handles are no fencing tokens.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wasq_brokers::BrokerError> {
//! let broker = wasq_brokers::connect("memory://").await?;
//! broker.enqueue("default", b"package 1".to_vec()).await?;
//! broker.enqueue_batch("default", vec![b"package 2".to_vec(), b"package 3".to_vec()]).await?;
//!
//! // Take up to 10 packages, each leased for 30 s.
//! let deliveries = broker.dequeue("default", 10, Duration::from_secs(30)).await?;
//! assert_eq!(deliveries.len(), 3);
//! assert_eq!(deliveries[0].payload, b"package 1");
//! assert_eq!(deliveries[0].deliveries, 1);
//! assert_eq!(broker.lock_size("default").await?, 3);
//!
//! // Done with them: acknowledge, and learn which deliveries still held
//! // their lease (a `false` means someone else got the package meanwhile).
//! let ack_ids: Vec<_> = deliveries.into_iter().map(|d| d.ack_id).collect();
//! assert_eq!(broker.acknowledge("default", &ack_ids).await?, [true, true, true]);
//! assert_eq!(broker.queue_size("default").await? + broker.lock_size("default").await?, 0);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `sqlite` (default): the `sqlite://` broker, [`SqliteBroker`], on
//!   `sqlx`. Without it `connect("sqlite://…")` answers
//!   [`BrokerError::BadUrl`] saying so.
//! - `redis`: the `redis://` broker, `RedisBroker`, on `redis` (Redis 6 or
//!   later for wake-ups; older servers are polled).
//! - `postgres`: the `postgres://` (and `postgresql://`) broker,
//!   `PostgresBroker`, on `sqlx` (TLS by rustls per `sslmode`).
//! - `sqs`: the `sqs://` broker, `SqsBroker`, on the AWS SDK for Rust
//!   (HTTPS by rustls on ring: no C to build).

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod broker;
mod connect;
mod delivery;
mod error;
#[cfg(feature = "sqlite")]
mod file_watch;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
pub mod private;
mod redact;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub mod sqlite_pool;
#[cfg(feature = "sqs")]
mod sqs;
mod wake;

pub use broker::{BoxFuture, Broker, DynBroker, SharedBroker};
pub use connect::connect;
pub use delivery::{AckId, BrokerInfo, Delivery, MAX_PRIORITY, MIN_PRIORITY, check_priority};
pub use error::BrokerError;
pub use memory::MemoryBroker;
#[cfg(feature = "postgres")]
pub use postgres::PostgresBroker;
pub use redact::redact;
#[cfg(feature = "redis")]
pub use redis::RedisBroker;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteBroker;
#[cfg(feature = "sqs")]
pub use sqs::SqsBroker;
