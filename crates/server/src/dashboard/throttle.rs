//! Login attempts, limited: a token bucket per client address and one per
//! key id, so neither one client guessing many keys nor many clients
//! guessing one key get far. An attempt takes a token from both buckets
//! before the key is checked; a login that succeeds gives them back, so
//! only failures count.
//!
//! The limits are hard-coded ([`CLIENT`], [`KEY`]): a client may fail 10
//! times in a row and once more every 6 s after that; a key id 20 times and
//! once more every 3 s. A client is its peer address (IPv6 by its /64, which
//! one host can hold whole); `X-Forwarded-For` is not believed, so behind a
//! reverse proxy every browser shares the proxy's bucket.
//!
//! Each table holds at most [`MOST_ENTRIES`] buckets. A full bucket is the
//! same as none, so those are dropped first when a table fills; if every
//! bucket is still in use, newcomers share one overflow bucket, so a client
//! with many addresses can neither grow the table nor reset its own buckets.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many attempts a bucket allows at once, and how fast it refills.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    /// Attempts allowed at once.
    pub(crate) burst: u32,
    /// Time to earn one more attempt.
    pub(crate) every: Duration,
}

/// The rule for one client address.
pub(crate) const CLIENT: Rule = Rule {
    burst: 10,
    every: Duration::from_secs(6),
};

/// The rule for one key id (whoever tries it).
pub(crate) const KEY: Rule = Rule {
    burst: 20,
    every: Duration::from_secs(3),
};

/// The most buckets each table holds.
pub(crate) const MOST_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rule: Rule, now: Instant) -> Self {
        Self {
            tokens: f64::from(rule.burst),
            at: now,
        }
    }

    fn refill(&mut self, rule: Rule, now: Instant) {
        let earned =
            now.saturating_duration_since(self.at).as_secs_f64() / rule.every.as_secs_f64();
        self.tokens = (self.tokens + earned).min(f64::from(rule.burst));
        self.at = now;
    }

    /// How long until this bucket holds a whole token.
    fn wait(&self, rule: Rule) -> Duration {
        rule.every.mul_f64((1.0 - self.tokens).max(0.0))
    }
}

/// Buckets by key, bounded in number.
#[derive(Debug)]
struct Table<K> {
    rule: Rule,
    most: usize,
    buckets: HashMap<K, Bucket>,
    overflow: Bucket,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(rule: Rule, most: usize, now: Instant) -> Self {
        Self {
            rule,
            most: most.max(1),
            buckets: HashMap::new(),
            overflow: Bucket::full(rule, now),
        }
    }

    /// The bucket of `key` (refilled to `now`), made if there is room, else
    /// the overflow bucket.
    fn bucket(&mut self, key: &K, now: Instant) -> &mut Bucket {
        let rule = self.rule;
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.most {
            self.buckets.retain(|_, b| {
                b.refill(rule, now);
                b.tokens < f64::from(rule.burst)
            });
        }
        let bucket = if self.buckets.len() < self.most || self.buckets.contains_key(key) {
            self.buckets
                .entry(key.clone())
                .or_insert_with(|| Bucket::full(rule, now))
        } else {
            &mut self.overflow
        };
        bucket.refill(rule, now);
        bucket
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

/// Where an attempt comes from and which key it tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    client: IpAddr,
    key: Option<String>,
}

impl Attempt {
    /// An attempt from `client` (`None`: unknown, all such share a bucket)
    /// with the submitted `key` (counted by its id when it has the shape of
    /// a key; a string that is not a key is refused before any lookup and
    /// counts against the client only).
    pub(crate) fn new(client: Option<IpAddr>, key: &str) -> Self {
        Self {
            client: client.map_or(IpAddr::from([0, 0, 0, 0]), client_of),
            key: wasq_core::tenant::parse_key(key).map(|(id, _)| id.to_ascii_lowercase()),
        }
    }
}

/// The address a client is counted by: IPv4 as it is, IPv6 by its /64.
fn client_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// The login limiter of one `wasq serve` process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LoginLimiter {
    inner: Arc<Mutex<Tables>>,
}

#[derive(Debug)]
struct Tables {
    clients: Table<IpAddr>,
    keys: Table<String>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::with_rules(CLIENT, KEY, MOST_ENTRIES, Instant::now())
    }
}

impl LoginLimiter {
    fn with_rules(client: Rule, key: Rule, most: usize, now: Instant) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Tables {
                clients: Table::new(client, most, now),
                keys: Table::new(key, most, now),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // Only plain map updates happen under the lock.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a token for `attempt` from its client's and its key's buckets,
    /// or, when either is empty, takes nothing and answers how long to
    /// wait.
    pub(crate) fn try_take(&self, attempt: &Attempt, now: Instant) -> Result<(), Duration> {
        let mut tables = self.lock();
        let tables = &mut *tables;
        let client_rule = tables.clients.rule;
        let client = *tables.clients.bucket(&attempt.client, now);
        let mut wait = (client.tokens < 1.0).then(|| client.wait(client_rule));
        if let Some(key) = &attempt.key {
            let rule = tables.keys.rule;
            let bucket = tables.keys.bucket(key, now);
            if bucket.tokens < 1.0 {
                wait = Some(wait.unwrap_or_default().max(bucket.wait(rule)));
            } else if wait.is_none() {
                bucket.tokens -= 1.0;
            }
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        tables.clients.bucket(&attempt.client, now).tokens -= 1.0;
        Ok(())
    }

    /// Gives back the tokens of an attempt that logged in.
    pub(crate) fn give_back(&self, attempt: &Attempt, now: Instant) {
        let mut tables = self.lock();
        let burst = f64::from(tables.clients.rule.burst);
        let bucket = tables.clients.bucket(&attempt.client, now);
        bucket.tokens = (bucket.tokens + 1.0).min(burst);
        if let Some(key) = &attempt.key {
            let burst = f64::from(tables.keys.rule.burst);
            let bucket = tables.keys.bucket(key, now);
            bucket.tokens = (bucket.tokens + 1.0).min(burst);
        }
    }

    /// Buckets held: clients, keys.
    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let tables = self.lock();
        (tables.clients.len(), tables.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Rule = Rule {
        burst: 3,
        every: Duration::from_secs(10),
    };
    const KEY_A: &str =
        "wasq_0123456789ab_0000000000000000000000000000000000000000000000000000000000000000";
    const KEY_B: &str =
        "wasq_ba9876543210_0000000000000000000000000000000000000000000000000000000000000000";

    fn from(last: u8, key: &str) -> Attempt {
        Attempt::new(Some(IpAddr::from([10, 0, 0, last])), key)
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_for_a_refill() {
        let now = Instant::now();
        let limiter = LoginLimiter::with_rules(FAST, KEY, 100, now);
        for _ in 0..3 {
            assert!(limiter.try_take(&from(1, "guess"), now).is_ok());
        }
        let wait = limiter
            .try_take(&from(1, "guess"), now)
            .expect_err("refused");
        assert_eq!(wait, Duration::from_secs(10));
        // Another client is not held back.
        assert!(limiter.try_take(&from(2, "guess"), now).is_ok());
        // One refill later, one more attempt.
        let later = now + Duration::from_secs(10);
        assert!(limiter.try_take(&from(1, "guess"), later).is_ok());
        assert!(limiter.try_take(&from(1, "guess"), later).is_err());
    }

    #[test]
    fn a_key_is_limited_across_clients_and_success_costs_nothing() {
        let now = Instant::now();
        let limiter = LoginLimiter::with_rules(CLIENT, FAST, 100, now);
        for client in 0..3 {
            assert!(limiter.try_take(&from(client, KEY_A), now).is_ok());
        }
        assert!(limiter.try_take(&from(9, KEY_A), now).is_err());
        // A refused attempt took nothing from its client.
        let client = from(9, KEY_B);
        for _ in 0..3 {
            assert!(limiter.try_take(&client, now).is_ok());
            limiter.give_back(&client, now);
        }
        assert!(limiter.try_take(&client, now).is_ok(), "successes are free");
        // Key ids count whatever their case.
        assert!(
            limiter
                .try_take(
                    &from(5, &KEY_A.to_ascii_uppercase().replace("WASQ", "wasq")),
                    now
                )
                .is_err()
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("v6");
        assert_eq!(client_of(a), client_of(b));
        assert_ne!(
            client_of(a),
            client_of("2001:db8:1:3::1".parse().expect("v6"))
        );
        assert_eq!(client_of(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn the_tables_stay_bounded_and_newcomers_share_the_overflow() {
        let now = Instant::now();
        let limiter = LoginLimiter::with_rules(FAST, FAST, 4, now);
        // Four clients empty their buckets; the table is full of them.
        for client in 0..4 {
            for _ in 0..3 {
                assert!(limiter.try_take(&from(client, "x"), now).is_ok());
            }
        }
        // A thousand new addresses share one overflow bucket of 3.
        let admitted = (10..=255)
            .filter(|c| limiter.try_take(&from(*c, "x"), now).is_ok())
            .count();
        assert_eq!(admitted, 3);
        assert_eq!(limiter.len().0, 4);
        // Buckets that refilled make room again.
        let later = now + Duration::from_secs(30);
        assert!(limiter.try_take(&from(200, "x"), later).is_ok());
        assert!(limiter.len().0 <= 4);
    }
}
