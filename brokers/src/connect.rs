//! Brokers by URL: [`connect`] picks one by its scheme.

use std::sync::Arc;

use crate::{BrokerError, MemoryBroker, SharedBroker, redact};

/// Opens the broker `url` names.
///
/// - `memory://`: a new in-process broker of its own.
/// - `memory://NAME`: the in-process broker called `NAME`, the same one
///   for every `connect` with that name in this process.
/// - `sqlite://PATH` (feature `sqlite`): the SQLite file at `PATH`, created
///   with its parent directories if missing. A relative `PATH` is relative
///   to the current directory (`sqlite://.wasq/wasq.db`); an absolute one
///   starts with a third slash (`sqlite:///var/lib/wasq/wasq.db`).
///
/// # Errors
///
/// [`BrokerError::UnsupportedScheme`] for a scheme no broker has,
/// [`BrokerError::BadUrl`] for a URL that cannot be read, and
/// [`BrokerError::Unreachable`] when the broker cannot be opened.
pub async fn connect(url: &str) -> Result<SharedBroker, BrokerError> {
    let (scheme, rest) = split_scheme(url)?;
    match scheme.as_str() {
        "memory" => {
            let name = rest.strip_suffix('/').unwrap_or(rest);
            if name.is_empty() {
                return Ok(Arc::new(MemoryBroker::new()));
            }
            if let Some(bad) = name
                .chars()
                .find(|c| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            {
                return Err(bad_url(
                    url,
                    format!("a memory broker name cannot contain {bad:?}"),
                ));
            }
            Ok(MemoryBroker::named(name))
        }
        "sqlite" => sqlite(url, rest).await,
        "redis" | "rediss" => redis(url).await,
        "postgres" | "postgresql" => postgres(url).await,
        "sqs" => sqs(url).await,
        _ => Err(BrokerError::UnsupportedScheme(scheme)),
    }
}

#[cfg(feature = "redis")]
async fn redis(url: &str) -> Result<SharedBroker, BrokerError> {
    Ok(Arc::new(crate::RedisBroker::connect(url).await?))
}

#[cfg(not(feature = "redis"))]
async fn redis(url: &str) -> Result<SharedBroker, BrokerError> {
    Err(missing(url, "Redis", "redis"))
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<SharedBroker, BrokerError> {
    Ok(Arc::new(crate::PostgresBroker::connect(url).await?))
}

#[cfg(not(feature = "postgres"))]
async fn postgres(url: &str) -> Result<SharedBroker, BrokerError> {
    Err(missing(url, "PostgreSQL", "postgres"))
}

#[cfg(feature = "sqs")]
async fn sqs(url: &str) -> Result<SharedBroker, BrokerError> {
    Ok(Arc::new(crate::SqsBroker::connect(url).await?))
}

#[cfg(not(feature = "sqs"))]
async fn sqs(url: &str) -> Result<SharedBroker, BrokerError> {
    Err(missing(url, "SQS", "sqs"))
}

#[cfg(not(all(feature = "redis", feature = "postgres", feature = "sqs")))]
fn missing(url: &str, what: &str, feature: &str) -> BrokerError {
    bad_url(
        url,
        format!("this build has no {what} broker (feature `{feature}` of wasq-brokers)"),
    )
}

#[cfg(feature = "sqlite")]
async fn sqlite(url: &str, rest: &str) -> Result<SharedBroker, BrokerError> {
    if let Some((_, query)) = rest.split_once('?') {
        return Err(bad_url(
            url,
            format!("options (`?{query}`) are not supported"),
        ));
    }
    if rest.is_empty() {
        return Err(bad_url(
            url,
            "no file path: use sqlite://PATH, e.g. sqlite://.wasq/wasq.db".into(),
        ));
    }
    Ok(Arc::new(crate::SqliteBroker::open(rest).await?))
}

#[cfg(not(feature = "sqlite"))]
async fn sqlite(url: &str, _rest: &str) -> Result<SharedBroker, BrokerError> {
    Err(bad_url(
        url,
        "this build has no SQLite broker (feature `sqlite` of wasq-brokers)".into(),
    ))
}

fn bad_url(url: &str, reason: String) -> BrokerError {
    BrokerError::BadUrl {
        url: redact(url),
        reason,
    }
}

/// `SCHEME://REST` → (lowercase scheme, rest).
fn split_scheme(url: &str) -> Result<(String, &str), BrokerError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad_url(
            url,
            "expected SCHEME://…, e.g. sqlite://PATH or memory://".into(),
        ));
    };
    let valid = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        return Err(bad_url(url, format!("`{scheme}` is not a URL scheme")));
    }
    Ok((scheme.to_ascii_lowercase(), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_only() {
        let cases = [
            ("memory://", "memory://"),
            ("memory://shared", "memory://shared"),
            ("sqlite://.wasq/wasq.db", "sqlite://.wasq/wasq.db"),
            ("sqlite:///var/lib/a@b/q.db", "sqlite:///var/lib/a@b/q.db"),
            ("redis://localhost:6379/0", "redis://localhost:6379/0"),
            (
                "redis://:hunter2@localhost:6379/0",
                "redis://:***@localhost:6379/0",
            ),
            (
                "postgres://wasq:p%40ss:w@db/wasq",
                "postgres://wasq:***@db/wasq",
            ),
            ("postgres://wasq@db/wasq", "postgres://wasq@db/wasq"),
            (
                "postgres://db/wasq?sslmode=require&password=x&Token=y#frag",
                "postgres://db/wasq?sslmode=require&password=***&Token=***#frag",
            ),
            ("amqp://u:p@h?heartbeat=10", "amqp://u:***@h?heartbeat=10"),
            ("not a url", "not a url"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want, "{url}");
        }
    }

    #[tokio::test]
    async fn bad_urls_say_what_is_wrong() {
        let err = |url: &'static str| async move {
            match connect(url).await {
                Ok(_) => panic!("{url} connected"),
                Err(e) => e,
            }
        };
        assert!(
            matches!(err("amqp://localhost").await, BrokerError::UnsupportedScheme(s) if s == "amqp")
        );
        assert!(
            matches!(err("SQLITE-X://a").await, BrokerError::UnsupportedScheme(s) if s == "sqlite-x")
        );
        for url in [
            "",
            "memory",
            "memory:",
            "sqlite:q.db",
            "sqlite::memory:",
            "://x",
            "1x://y",
        ] {
            let e = err(url).await;
            assert!(matches!(e, BrokerError::BadUrl { .. }), "{url}: {e:?}");
        }
        let e = err("memory://a/b").await.to_string();
        assert!(e.contains("'/'"), "{e}");
        let e = err("amqp://u:hunter2@h/x y").await.to_string();
        assert!(!e.contains("hunter2"), "{e}");
        let e = err("ftp://u:hunter2@h:: bad").await.to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn bad_sqlite_urls() {
        let e = connect("sqlite://").await.err().unwrap().to_string();
        assert!(e.contains("no file path"), "{e}");
        let e = connect("sqlite://q.db?mode=rwc")
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("mode=rwc"), "{e}");
    }

    #[tokio::test]
    async fn memory_urls() {
        let a = connect("memory://connect-unit").await.unwrap();
        let b = connect("memory://connect-unit/").await.unwrap();
        a.enqueue("q", vec![1]).await.unwrap();
        assert_eq!(b.queue_size("q").await.unwrap(), 1);
        let fresh = connect("memory://").await.unwrap();
        assert_eq!(fresh.queue_size("q").await.unwrap(), 0);
        assert_eq!(fresh.info().kind, "memory");
    }
}
