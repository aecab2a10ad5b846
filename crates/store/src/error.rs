//! Why a store operation failed, and the helpers that make those errors.

use wasq_core::Digest;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Not a store URL wasq knows.
    #[error("bad store URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    BadUrl(String),
    /// The database could not be opened.
    #[error("store unreachable ({url}): {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A query failed.
    #[error("store error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row is not what this version expects.
    #[error("corrupt store row: {0}")]
    Corrupt(String),
    /// A name that must be unique is taken.
    #[error("{0}")]
    Duplicate(String),
    /// The result cache answered with an error.
    #[error("result cache error: {0}")]
    Cache(String),
}

/// A take refused: the tenant's backlog is at its `max_queued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogFull {
    /// Tasks of the tenant waiting now.
    pub queued: u64,
    /// Its quota.
    pub max_queued: u64,
}

impl BacklogFull {
    /// The message for the caller, naming the quota.
    pub fn message(&self) -> String {
        format!(
            "{} tasks of the tenant are waiting (in all its queues, deferred tasks included), its quota max_queued is {}: retry when some have run",
            self.queued, self.max_queued
        )
    }
}

/// The store (or result cache) at `url` cannot be reached, and why; the
/// URL's password hidden.
pub(crate) fn unreachable(url: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Unreachable {
        url: wasq_brokers::redact(url),
        reason: reason.to_string(),
    }
}

pub(crate) fn parse_digest(s: &str) -> Result<Digest, StoreError> {
    s.parse()
        .map_err(|e: wasq_core::DigestParseError| StoreError::Corrupt(e.to_string()))
}
