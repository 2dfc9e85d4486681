//! The user cache: Redis in front of DynamoDB, never the truth.
//!
//! - [`users`]: **the cache-aside** (what a request reads, what a change writes). Start there.
//! - [`entry`]: what an entry holds, its [`Version`], its JSON.
//! - [`flights`]: concurrent misses of one user in one instance share one read, under the
//!   rule that keeps revocation at once.
//! - [`connection`]: the Redis connection: every call bounded, moved off a server that can no
//!   longer take writes.
//! - [`client`]: standalone or cluster (ElastiCache Serverless), behind one connection type;
//!   AUTH token or [`iam`] authentication; TLS.
//! - [`RedisCache`] (here): the two operations on entries. Reads are one `GET`. Every write
//!   (a miss written back, a change written through, a stream record applied by `cache-sync`)
//!   is the one compare-and-set script (`cas.lua`), which keeps the newer of the stored and
//!   the incoming state, so writes may land in any order, late or twice, and the cache still
//!   ends at the newest state. No plain `SET`, `SET NX` or `DEL` writes an entry.

pub mod client;
pub mod connection;
pub mod entry;
pub mod flights;
pub mod iam;
pub mod users;

use std::time::Duration;

use rand::Rng;
use redis::AsyncCommands;

pub use client::{CacheAuth, CacheConnection};
pub use connection::{CallError, RedisConnection};
pub use entry::{decode_entry, Cached, Entry, KEY_PREFIX};
pub use iam::IamTokens;
pub use users::{CacheOutcome, Users};

use crate::config::{CacheConfig, ConfigError, Secret};
use crate::domain::{Email, User, Version};

/// The user entries in Redis. Built once per Lambda instance; cheap to clone.
#[derive(Clone)]
pub struct RedisCache {
    conn: RedisConnection,
    script: std::sync::Arc<redis::Script>,
    ttl: Duration,
    negative_ttl: Duration,
}

/// What a `GET` of an email's entry found.
#[derive(Debug)]
pub enum Lookup {
    Found(User),
    /// No such user: a tombstone (naming the deleted user's id), or a recent "DynamoDB has
    /// none" (an empty id).
    Absent {
        id: String,
    },
    /// Nothing usable: no entry, or one unreadable or for another email.
    Empty,
    /// Redis failed or was too slow.
    Failed,
}

/// What became of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// The cache holds a newer state, and kept it.
    Stale,
    /// Redis failed or was too slow: the write may or may not land later.
    Failed,
}

impl RedisCache {
    /// The cache as the configuration says: with `password` (the AUTH token read from Secrets
    /// Manager) if given, or signing IAM tokens with the function's credentials when the
    /// configuration says `REDIS_AUTH=iam`.
    pub fn new(config: &CacheConfig, password: Option<Secret>) -> Result<Self, ConfigError> {
        let auth = match (&config.iam, password) {
            (Some(iam), _) => CacheAuth::Iam(IamTokens::from_environment(iam)),
            (None, Some(password)) => CacheAuth::Password(password),
            (None, None) => CacheAuth::None,
        };
        Self::with_auth(config, &auth)
    }

    /// The cache with the given authentication (tests sign IAM tokens with their own
    /// credentials).
    pub fn with_auth(config: &CacheConfig, auth: &CacheAuth) -> Result<Self, ConfigError> {
        Ok(RedisCache {
            conn: RedisConnection::new(config, auth)?,
            script: std::sync::Arc::new(redis::Script::new(entry::COMPARE_AND_SET)),
            ttl: config.cache_ttl,
            negative_ttl: config.negative_cache_ttl,
        })
    }

    pub fn connection(&self) -> &RedisConnection {
        &self.conn
    }

    /// Opens the connection ahead of the first request, waiting at most `bound`.
    pub async fn prewarm(&self, bound: Duration) {
        self.conn.prewarm(bound).await;
    }

    /// One `GET` of `email`'s entry; a failure is logged and reported, never raised.
    pub async fn lookup(&self, email: &Email) -> Lookup {
        let key = entry::key(email);
        let raw = self.conn.call(|mut conn| {
            let key = &key;
            async move { conn.get::<_, Option<Vec<u8>>>(key).await }
        });
        match raw.await {
            Ok(Some(raw)) => match decode_entry(&raw, email) {
                Some(Cached::User(user)) => Lookup::Found(user),
                Some(Cached::Absent { id }) => Lookup::Absent { id },
                None => Lookup::Empty,
            },
            Ok(None) => Lookup::Empty,
            Err(e) => {
                tracing::warn!(op = "GET", error = %e, "redis call failed; using DynamoDB");
                Lookup::Failed
            }
        }
    }

    /// Writes `entry` for `email` through the compare-and-set script, with its TTL: a user or
    /// a tombstone lives `CACHE_TTL_SECONDS`, "DynamoDB has none" `NEGATIVE_CACHE_TTL_SECONDS`,
    /// each jittered by ±10%.
    pub async fn put(&self, email: &Email, entry: &Entry) -> WriteOutcome {
        let Ok(value) = entry.encode() else {
            return WriteOutcome::Failed;
        };
        let version = entry.version();
        let base = if matches!(entry, Entry::Absent(v) if *v == Version::NONE) {
            self.negative_ttl
        } else {
            self.ttl
        };
        let ttl = jittered_millis(base);
        let key = entry::key(email);
        let written = self.conn.call(|mut conn| {
            let (script, key, value, id) = (&self.script, &key, &value, &version.id);
            let mut invocation = script.key(key);
            invocation
                .arg(value)
                .arg(id)
                .arg(version.revision)
                .arg(ttl)
                .arg(email.as_str());
            async move { invocation.invoke_async::<i64>(&mut conn).await }
        });
        match written.await {
            Ok(1) => WriteOutcome::Written,
            Ok(_) => {
                tracing::debug!(
                    revision = version.revision,
                    "cache holds a newer state; kept it"
                );
                WriteOutcome::Stale
            }
            Err(e) => {
                tracing::warn!(op = "compare-and-set", error = %e, "redis write failed");
                WriteOutcome::Failed
            }
        }
    }
}

/// TTL ± 10%, so entries written together do not expire together.
fn jittered_millis(base: Duration) -> u64 {
    let millis = base.as_millis().max(1) as u64;
    let spread = millis / 10;
    rand::thread_rng().gen_range(millis - spread..=millis + spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let ms = jittered_millis(Duration::from_secs(300));
            assert!((270_000..=330_000).contains(&ms));
        }
        assert!(jittered_millis(Duration::from_millis(0)) >= 1);
    }
}
