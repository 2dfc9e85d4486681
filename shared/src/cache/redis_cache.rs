//! The entries in Redis ([`RedisCache`]): a `GET` or an `MGET` of them, and the one write, the
//! compare-and-set script (`cas.lua`), of an item or of a window, with its TTL.

use std::time::Duration;

use rand::Rng;
use redis::AsyncCommands;

use super::client::CacheAuth;
use super::connection::{CallError, RedisConnection};
use super::entry::{self, Record, Revision, COMPARE_AND_SET};
use super::iam::IamTokens;
use super::kinds::WindowKind;
use crate::config::{CacheConfig, ConfigError, Secret};

/// The entries in Redis. Built once per Lambda instance; cheap to clone.
#[derive(Clone)]
pub struct RedisCache {
    conn: RedisConnection,
    script: std::sync::Arc<redis::Script>,
    ttl: Duration,
    negative_ttl: Duration,
}

/// What became of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// The cache holds each state the write carried, or a newer one, and kept it.
    Stale,
    /// Redis failed or was too slow: the write may or may not land later.
    Failed,
}

/// What a write of a window says.
#[derive(Debug, Clone, Copy)]
pub enum WindowWrite<'a> {
    /// Changes of items (a write-through, a stream record).
    Put,
    /// The window's first items read from the table, whether the list ends there, and the
    /// entry's epoch when the reader looked (`None`: there was no entry).
    Fill {
        complete: bool,
        seen: Option<&'a str>,
    },
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
            script: std::sync::Arc::new(redis::Script::new(COMPARE_AND_SET)),
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

    /// One `GET`; a failure is logged and returned.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CallError> {
        let raw = self
            .conn
            .call(|mut conn| async move { conn.get::<_, Option<Vec<u8>>>(key).await })
            .await;
        if let Err(e) = &raw {
            tracing::warn!(op = "GET", error = %e, "redis call failed; using DynamoDB");
        }
        raw
    }

    /// One `MGET` of `keys` (in a cluster, split by slot and sent at once by the client).
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CallError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let raw = self
            .conn
            .call(|mut conn| async move {
                redis::cmd("MGET")
                    .arg(keys)
                    .query_async::<Vec<Option<Vec<u8>>>>(&mut conn)
                    .await
            })
            .await;
        if let Err(e) = &raw {
            tracing::warn!(op = "MGET", error = %e, "redis call failed; using DynamoDB");
        }
        raw
    }

    /// Writes one item's `record` under `key` (an entry of `subject`) through the
    /// compare-and-set: kept only if the entry holds no newer state of the item. A record of
    /// "the table had none" lives `NEGATIVE_CACHE_TTL_SECONDS`, any other `CACHE_TTL_SECONDS`,
    /// each jittered by ±10%.
    pub async fn put_item(&self, key: &str, subject: &str, record: &Record) -> WriteOutcome {
        let base = if record.revision == Revision::none() {
            self.negative_ttl
        } else {
            self.ttl
        };
        let lines = [record.line()];
        self.run(key, "item", subject, base, "-", "put", &lines)
            .await
    }

    /// Writes into the window `kind` of `subject` under `key`: changes of its items, or what a
    /// read of the table found (see [`WindowWrite`]).
    pub async fn put_window(
        &self,
        key: &str,
        kind: &WindowKind,
        subject: &str,
        write: WindowWrite<'_>,
        records: &[Record],
    ) -> WriteOutcome {
        let op = match write {
            WindowWrite::Put => "put".to_owned(),
            WindowWrite::Fill { complete, seen } => format!(
                "fill:{}:{}",
                if complete { "complete" } else { "partial" },
                seen.unwrap_or("none")
            ),
        };
        let lines: Vec<String> = records.iter().map(Record::line).collect();
        let order = match kind.order {
            entry::Order::Ascending => "asc",
            entry::Order::Descending => "desc",
        };
        let spec = format!("{}:{order}", kind.size);
        self.run(key, "window", subject, self.ttl, &spec, &op, &lines)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        key: &str,
        shape: &str,
        subject: &str,
        base_ttl: Duration,
        spec: &str,
        op: &str,
        lines: &[String],
    ) -> WriteOutcome {
        let ttl = jittered_millis(base_ttl);
        let written = self.conn.call(|mut conn| {
            let mut invocation = self.script.key(key);
            invocation
                .arg(shape)
                .arg(subject)
                .arg(ttl)
                .arg(spec)
                .arg(op)
                .arg(lines);
            async move { invocation.invoke_async::<i64>(&mut conn).await }
        });
        match written.await {
            Ok(1) => WriteOutcome::Written,
            Ok(_) => {
                tracing::debug!(key, "cache holds these states or newer; kept them");
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
