//! The entries in Redis ([`RedisCache`]): a `GET` or an `MGET` of them, and the one write, the
//! compare-and-set script (`cas.lua`): a miss's [`Lease`], its write-back, or a change, of an
//! item or of a window, with its TTL.

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

/// How long a lease's placeholder lives if nothing lands in it: longer than a miss's read of
/// the table takes (its attempts are bounded by `DYNAMODB_TIMEOUT_MS`). One that outlives its
/// reader only makes the next reads miss, and they fill it.
const LEASE_TTL: Duration = Duration::from_secs(10);

/// What became of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// The cache holds each state the write carried, or a newer one, and kept it.
    Stale,
    /// There is no entry to write: a change found none (the next read fills it from the
    /// table), or a write-back's lease is gone (the entry was lost, and a change with it, since
    /// the reader looked). Nothing written, nothing lost.
    NoEntry,
    /// Redis failed or was too slow: the write may or may not land later.
    Failed,
}

impl WriteOutcome {
    /// Logs a change whose cache write failed: it is not lost, the stream brings it
    /// (`cache-sync`).
    pub fn warn_if_failed(self, change: &'static str) {
        if self == WriteOutcome::Failed {
            tracing::warn!(
                change,
                "cache not updated after a change; the stream sync will apply it"
            );
        }
    }
}

/// What a reader holds while it reads the table for a miss: the epoch of the entry it leased
/// (`<incarnation>.<count>`). Its write-back lands only in that entry, never in one made after
/// a loss of it, which may have lost a change the reader's read came too early to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease(String);

impl Lease {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a write of a window says.
#[derive(Debug, Clone, Copy)]
pub enum WindowWrite<'a> {
    /// Changes of items (a write-through, a stream record).
    Put,
    /// The window's first items read from the table under `lease`, and whether the list ends
    /// there.
    Fill { complete: bool, lease: &'a Lease },
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

    /// Leases the item entry `key` (of `subject`) before a read of the table: the entry as it
    /// is, or a placeholder if there is none. `None`: Redis failed, and the reader writes
    /// nothing back.
    pub async fn lease_item(&self, key: &str, subject: &str) -> Option<Lease> {
        self.lease_entry(key, "item", subject, "-").await
    }

    /// Leases the window `kind` of `subject` under `key` before a read of the table.
    pub async fn lease_window(&self, key: &str, kind: &WindowKind, subject: &str) -> Option<Lease> {
        self.lease_entry(key, "window", subject, &spec(kind)).await
    }

    async fn lease_entry(
        &self,
        key: &str,
        shape: &str,
        subject: &str,
        spec: &str,
    ) -> Option<Lease> {
        let op = format!("lease:{:016x}", rand::random::<u64>());
        let ttl = LEASE_TTL.as_millis() as u64;
        let leased = self
            .invoke::<String>(key, shape, subject, ttl, spec, &op, &[])
            .await;
        match leased {
            Ok(epoch) => Some(Lease(epoch)),
            Err(e) => {
                tracing::warn!(op = "lease", error = %e, "redis call failed; no write-back");
                None
            }
        }
    }

    /// Writes a change of one item, `record`, into the entry `key` (of `subject`), if there is
    /// one, through the compare-and-set: kept only if the entry holds no newer state of the
    /// item.
    pub async fn put_item(&self, key: &str, subject: &str, record: &Record) -> WriteOutcome {
        let lines = [record.line()];
        self.run(
            key,
            "item",
            subject,
            self.ttl_of(record),
            "-",
            "put",
            &lines,
        )
        .await
    }

    /// Writes back what a miss read of one item under `lease`: into the entry it leased only,
    /// the newer of the two states. A record of "the table had none" lives
    /// `NEGATIVE_CACHE_TTL_SECONDS`, any other `CACHE_TTL_SECONDS`, each jittered by ±10%.
    /// No lease (Redis failed to give one) is a failed write, with no call to Redis.
    pub async fn fill_item(
        &self,
        key: &str,
        subject: &str,
        record: &Record,
        lease: Option<&Lease>,
    ) -> WriteOutcome {
        let Some(lease) = lease else {
            return WriteOutcome::Failed;
        };
        let lines = [record.line()];
        let op = format!("fill:item:{}", lease.as_str());
        self.run(key, "item", subject, self.ttl_of(record), "-", &op, &lines)
            .await
    }

    fn ttl_of(&self, record: &Record) -> Duration {
        if record.revision == Revision::none() {
            self.negative_ttl
        } else {
            self.ttl
        }
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
            WindowWrite::Fill { complete, lease } => format!(
                "fill:{}:{}",
                if complete { "complete" } else { "partial" },
                lease.as_str()
            ),
        };
        let lines: Vec<String> = records.iter().map(Record::line).collect();
        self.run(key, "window", subject, self.ttl, &spec(kind), &op, &lines)
            .await
    }

    /// One run of the script on `key`, its arguments in `cas.lua`'s order.
    #[allow(clippy::too_many_arguments)]
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        key: &str,
        shape: &str,
        subject: &str,
        ttl_ms: u64,
        spec: &str,
        op: &str,
        lines: &[String],
    ) -> Result<T, CallError> {
        self.conn
            .call(|mut conn| {
                let mut invocation = self.script.key(key);
                invocation
                    .arg(shape)
                    .arg(subject)
                    .arg(ttl_ms)
                    .arg(spec)
                    .arg(op)
                    .arg(lines);
                async move { invocation.invoke_async::<T>(&mut conn).await }
            })
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
        let written = self
            .invoke::<i64>(key, shape, subject, ttl, spec, op, lines)
            .await;
        match written {
            Ok(1) => WriteOutcome::Written,
            Ok(-1) => WriteOutcome::NoEntry,
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

/// A window's size and order, as the script takes them: `<size>:<asc|desc>`.
fn spec(kind: &WindowKind) -> String {
    let order = match kind.order {
        entry::Order::Ascending => "asc",
        entry::Order::Descending => "desc",
    };
    format!("{}:{order}", kind.size)
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
