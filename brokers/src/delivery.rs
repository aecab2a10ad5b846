//! What a broker hands out and is asked about: a [`Delivery`] and its
//! [`AckId`], a broker's [`BrokerInfo`], and the range of priorities.

use std::fmt;

use crate::error::BrokerError;

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

/// A message handed out by [`Broker::dequeue`](crate::Broker::dequeue).
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
    /// ([`Broker::enqueue_priority`](crate::Broker::enqueue_priority)).
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
