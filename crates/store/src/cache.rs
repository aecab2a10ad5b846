//! The result cache (`cache = "redis://…"`): results of tasks enqueued
//! with a cache time live in Redis, expiring, instead of in the database —
//! Django Q2's `cached`. Keys are `wasq:result:<task id>`; values the
//! postcard encoding of the [`TaskResult`]. The first result of a task
//! wins here too (`SET … NX`).

use crate::{StoreError, TaskResult, unreachable};

/// How long the cache may take to connect or answer.
#[cfg(feature = "redis")]
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(feature = "redis")]
/// The key of a task's cached result.
fn key(id: &str) -> String {
    format!("wasq:result:{id}")
}

/// A connection to the result cache. Cheap to clone.
#[derive(Clone)]
pub(super) struct ResultCache {
    #[cfg(feature = "redis")]
    connection: redis::aio::ConnectionManager,
    url: String,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ResultCache {
    /// Connects to the Redis at `url`.
    #[cfg(feature = "redis")]
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(StoreError::BadUrl(wasq_brokers::redact(url)));
        }
        let client = redis::Client::open(url).map_err(|e| unreachable(url, e))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2);
        let connection = tokio::time::timeout(
            TIMEOUT * 2,
            redis::aio::ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| unreachable(url, "no answer"))?
        .map_err(|e| unreachable(url, e))?;
        Ok(Self {
            connection,
            url: wasq_brokers::redact(url),
        })
    }

    /// Without Redis support there is no result cache.
    #[cfg(not(feature = "redis"))]
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        Err(unreachable(
            url,
            "this build has no Redis support (feature `redis` of wasq)",
        ))
    }

    /// Caches results, each for its `cached_secs`, in one round trip;
    /// answers per result whether it was the first for its task.
    #[cfg(feature = "redis")]
    pub(super) async fn put(&self, results: &[&TaskResult]) -> Result<Vec<bool>, StoreError> {
        let mut pipe = redis::pipe();
        for result in results {
            let value =
                postcard::to_stdvec(result).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let ttl = u64::from(result.cached_secs.unwrap_or(60).max(1));
            pipe.cmd("SET")
                .arg(key(&result.id))
                .arg(value)
                .arg("NX")
                .arg("EX")
                .arg(ttl);
        }
        let answers: Vec<Option<String>> = pipe
            .query_async(&mut self.connection.clone())
            .await
            .map_err(|e| self.error(e))?;
        Ok(answers.into_iter().map(|a| a.is_some()).collect())
    }

    #[cfg(not(feature = "redis"))]
    pub(super) async fn put(&self, _results: &[&TaskResult]) -> Result<Vec<bool>, StoreError> {
        Err(unreachable(&self.url, "no Redis support"))
    }

    /// A task's cached result, if it has one that has not expired.
    #[cfg(feature = "redis")]
    pub(super) async fn get(&self, id: &str) -> Result<Option<TaskResult>, StoreError> {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key(id))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(|e| self.error(e))?;
        value
            .map(|bytes| {
                postcard::from_bytes(&bytes)
                    .map_err(|e| StoreError::Corrupt(format!("cached result of {id}: {e}")))
            })
            .transpose()
    }

    #[cfg(not(feature = "redis"))]
    pub(super) async fn get(&self, _id: &str) -> Result<Option<TaskResult>, StoreError> {
        Ok(None)
    }

    #[cfg(feature = "redis")]
    fn error(&self, error: redis::RedisError) -> StoreError {
        if error.is_io_error() || error.is_timeout() || error.is_connection_dropped() {
            unreachable(&self.url, error)
        } else {
            StoreError::Cache(error.to_string())
        }
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_cache_is_named() {
        let err = ResultCache::connect("redis://:hunter2@127.0.0.1:1")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(matches!(
            ResultCache::connect("memcached://x").await,
            Err(StoreError::BadUrl(_))
        ));
    }

    #[test]
    fn keys_are_namespaced() {
        assert_eq!(key("abc"), "wasq:result:abc");
    }
}
