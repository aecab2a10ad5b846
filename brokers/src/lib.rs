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
#[cfg(feature = "sqlite")]
mod file_watch;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
pub mod private;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub mod sqlite_pool;
#[cfg(feature = "sqs")]
mod sqs;
mod wake;

use std::fmt;

pub use broker::{BoxFuture, Broker, DynBroker, SharedBroker};
pub use connect::{connect, redact};
pub use memory::MemoryBroker;
#[cfg(feature = "postgres")]
pub use postgres::PostgresBroker;
#[cfg(feature = "redis")]
pub use redis::RedisBroker;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteBroker;
#[cfg(feature = "sqs")]
pub use sqs::SqsBroker;

/// Identifies one delivery of a message: which message, and which lease
/// on it (a fencing token). Brokers make it `"<message id>:<token>"`; to
/// callers it is opaque.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AckId(pub String);

impl AckId {
    /// The ack id of delivery `token` of message `id`.
    pub(crate) fn new(id: impl fmt::Display, token: impl fmt::Display) -> Self {
        Self(format!("{id}:{token}"))
    }

    /// `(message id, token)`, or `None` when this is not an ack id of the
    /// `"<id>:<token>"` form (such an id is held by nobody).
    pub(crate) fn parts<I: std::str::FromStr, T: std::str::FromStr>(&self) -> Option<(I, T)> {
        let (id, token) = self.0.split_once(':')?;
        Some((id.parse().ok()?, token.parse().ok()?))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message handed out by [`Broker::dequeue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// This delivery: pass it to acknowledge, fail, renew, release.
    pub ack_id: AckId,
    /// The bytes given to enqueue, unchanged.
    pub payload: Vec<u8>,
    /// How many times the message has been delivered, this time included:
    /// 1 on the first delivery.
    pub deliveries: u32,
}

/// What a broker is, for logs and `wasq info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    /// `"sqlite"`, `"memory"`, …
    pub kind: &'static str,
    /// Where it is, human readable, without secrets.
    pub location: String,
    /// Whether it hands out higher priorities first
    /// ([`Broker::enqueue_priority`]).
    pub priorities: bool,
}

/// The lowest task priority.
pub const MIN_PRIORITY: i32 = -1000;
/// The highest task priority.
pub const MAX_PRIORITY: i32 = 1000;

/// A priority outside [`MIN_PRIORITY`]..=[`MAX_PRIORITY`] is refused.
pub fn check_priority(priority: i32) -> Result<(), BrokerError> {
    if (MIN_PRIORITY..=MAX_PRIORITY).contains(&priority) {
        Ok(())
    } else {
        Err(BrokerError::Backend(format!(
            "priority {priority} is out of range {MIN_PRIORITY}..={MAX_PRIORITY}"
        )))
    }
}

/// A broker operation that failed.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum BrokerError {
    /// The URL is not one the broker of its scheme understands.
    #[error("bad broker URL `{url}`: {reason}")]
    BadUrl {
        /// The URL, with any password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No broker of this scheme exists.
    #[error(
        "unsupported broker scheme `{0}`: use sqlite://PATH, redis://HOST, postgres://HOST/DB, sqs://QUEUE or memory://"
    )]
    UnsupportedScheme(String),
    /// The broker cannot be reached (file cannot be opened, server down).
    #[error("broker unreachable: {0}")]
    Unreachable(String),
    /// The broker answered with an error.
    #[error("broker error: {0}")]
    Backend(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_id_round_trips() {
        let ack = AckId::new(42, 7);
        assert_eq!(ack.as_str(), "42:7");
        assert_eq!(ack.to_string(), "42:7");
        assert_eq!(ack.parts::<u64, u64>(), Some((42, 7)));
        assert_eq!(AckId("nope".into()).parts::<u64, u64>(), None);
        assert_eq!(AckId("1:x".into()).parts::<u64, u64>(), None);
        assert_eq!(AckId("-1:2".into()).parts::<u64, u64>(), None);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = BrokerError::UnsupportedScheme("amqp".into());
        assert_eq!(
            e.to_string(),
            "unsupported broker scheme `amqp`: use sqlite://PATH, redis://HOST, postgres://HOST/DB, sqs://QUEUE or memory://"
        );
        let e = BrokerError::BadUrl {
            url: "x".into(),
            reason: "no scheme".into(),
        };
        assert_eq!(e.to_string(), "bad broker URL `x`: no scheme");
    }
}
