//! Why a broker call failed.

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
