//! The user cache-aside: Redis first, DynamoDB on a miss, then Redis again.
//!
//! This file is the whole of it:
//! - **Read** ([`Users::find`]): `GET user:v1:<email>`. A hit returns with no DynamoDB call.
//!   A miss reads DynamoDB and writes the answer back with `SET NX` and a jittered TTL — a
//!   user, or a short-lived negative entry when there is none.
//! - **Change** (register, logout, rename, delete): DynamoDB first, then the new state is
//!   written over the entry with a plain `SET`, so the very next request sees it. Because
//!   read-backs use `NX`, a slow reader holding an old copy cannot overwrite a newer one.
//! - **Never the truth**: every Redis call is bounded by `REDIS_TIMEOUT_MS`. On timeout or
//!   error the request is served from DynamoDB and the failure is logged; the connection
//!   manager reconnects by itself. A corrupt entry, one of another format, or one for
//!   another email is a miss and is overwritten. The cached value never holds the password
//!   hash.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, Secret};
use crate::domain::{Email, User};
use crate::error::AppError;
use crate::store::{NewUser, Store};

/// Prefix of every key this cache writes. The `v1` is the entry format: a new format takes
/// a new prefix, so it never reads an old entry as new.
pub const KEY_PREFIX: &str = "user:v1:";

/// What the cache said on a read, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served from Redis.
    Hit,
    /// Redis had nothing (or something unusable); DynamoDB answered.
    Miss,
    /// Redis said "no such user", from a recent miss.
    Negative,
    /// Redis failed or was too slow; DynamoDB answered.
    Error,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Negative => "negative",
            CacheOutcome::Error => "error",
        }
    }
}

/// A cache entry: JSON tagged with its kind. A negative entry is explicit, not `"null"`.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Entry {
    User { user: User },
    Absent,
}

/// An [`Entry`] as it is read: the same JSON, decoded straight into a struct. (Deriving
/// `Deserialize` on the internally tagged enum would copy every field into a buffer first
/// to find the tag: a measurable part of a cache hit.)
#[derive(Deserialize)]
struct StoredEntry {
    kind: EntryKind,
    #[serde(default)]
    user: Option<User>,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum EntryKind {
    User,
    Absent,
}

/// What a `GET` found.
enum Lookup {
    Found(User),
    Absent,
    /// Nothing usable: missing, unreadable, or for another key.
    Empty {
        overwrite: bool,
    },
    Failed,
}

/// Redis with a bound on every call. Built once per Lambda instance; connects lazily, so a
/// dead Redis at cold start never fails the init.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    ttl: Duration,
    negative_ttl: Duration,
    timeout: Duration,
}

impl RedisCache {
    pub fn new(config: &Config, password: Option<Secret>) -> Result<Self, ConfigError> {
        let bad_url = |e: redis::RedisError| ConfigError { variable: "REDIS_URL", message: e.to_string() };
        let mut info = redis::IntoConnectionInfo::into_connection_info(config.redis_url.as_str()).map_err(bad_url)?;
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password.expose());
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(bad_url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_connect_timeout))
            .set_response_timeout(Some(config.redis_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config).map_err(bad_url)?;
        Ok(RedisCache {
            conn,
            ttl: config.cache_ttl,
            negative_ttl: config.negative_cache_ttl,
            timeout: config.redis_timeout,
        })
    }

    /// The connection every lookup uses (a cheap clone of the manager): for diagnostics and
    /// the benchmark, which times a bare `GET` on it against the whole auth path.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub fn key(email: &Email) -> String {
        format!("{KEY_PREFIX}{}", email.as_str())
    }

    /// Runs one Redis call within the timeout; `None` on error or timeout (logged).
    async fn bounded<T, F>(&self, op: &'static str, call: F) -> Option<T>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                tracing::warn!(op, error = %e, "redis call failed; using DynamoDB");
                None
            }
            Err(_) => {
                tracing::warn!(
                    op,
                    timeout_ms = self.timeout.as_millis() as u64,
                    "redis call timed out; using DynamoDB"
                );
                None
            }
        }
    }

    /// Opens the connection ahead of the first request, waiting at most `bound`.
    pub async fn prewarm(&self, bound: Duration) {
        let mut conn = self.conn.clone();
        let ping = async move { redis::cmd("PING").query_async::<String>(&mut conn).await };
        if tokio::time::timeout(bound, ping).await.map(|r| r.is_ok()).unwrap_or(false) {
            tracing::debug!("redis connection ready");
        } else {
            tracing::warn!("redis not ready at init; requests will use DynamoDB until it is");
        }
    }

    async fn lookup(&self, email: &Email) -> Lookup {
        let mut conn = self.conn.clone();
        let key = Self::key(email);
        let Some(raw) = self.bounded("GET", conn.get::<_, Option<Vec<u8>>>(&key)).await else { return Lookup::Failed };
        let Some(raw) = raw else { return Lookup::Empty { overwrite: false } };
        match decode_entry(&raw, email) {
            Some(Some(user)) => Lookup::Found(user),
            Some(None) => Lookup::Absent,
            None => Lookup::Empty { overwrite: true },
        }
    }

    /// Writes `entry`; with `only_if_absent`, never replaces what another request wrote.
    async fn store(&self, email: &Email, entry: &Entry, only_if_absent: bool) -> bool {
        let Ok(json) = serde_json::to_vec(entry) else { return false };
        let base = match entry {
            Entry::User { .. } => self.ttl,
            Entry::Absent => self.negative_ttl,
        };
        let mut options = redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(jittered_millis(base)));
        if only_if_absent {
            options = options.conditional_set(redis::ExistenceCheck::NX);
        }
        let mut conn = self.conn.clone();
        let key = Self::key(email);
        self.bounded("SET", conn.set_options::<_, _, Option<String>>(&key, json, options)).await.is_some()
    }
}

/// What the raw value of `email`'s key says: `Some(Some(user))` a user, `Some(None)` the
/// negative entry, `None` nothing usable (unreadable, another format, another user's), which
/// the caller treats as a miss and overwrites. Never panics, whatever the bytes.
pub fn decode_entry(raw: &[u8], email: &Email) -> Option<Option<User>> {
    match serde_json::from_slice::<StoredEntry>(raw) {
        Ok(StoredEntry { kind: EntryKind::User, user: Some(user) }) if user.email == email.as_str() => Some(Some(user)),
        Ok(StoredEntry { kind: EntryKind::Absent, .. }) => Some(None),
        Ok(StoredEntry { kind: EntryKind::User, user: Some(_) }) => {
            tracing::warn!("cache entry holds another user; ignoring it");
            None
        }
        Ok(StoredEntry { kind: EntryKind::User, user: None }) => {
            tracing::warn!("cache entry unreadable (a user entry without its user); ignoring it");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cache entry unreadable; ignoring it");
            None
        }
    }
}

/// TTL ± 10%, so entries written together do not expire together.
fn jittered_millis(base: Duration) -> u64 {
    let millis = base.as_millis().max(1) as u64;
    let spread = millis / 10;
    rand::thread_rng().gen_range(millis - spread..=millis + spread)
}

/// The users as the functions see them: the store, fronted by the cache.
#[derive(Clone)]
pub struct Users {
    store: Store,
    cache: RedisCache,
}

impl Users {
    pub fn new(store: Store, cache: RedisCache) -> Self {
        Users { store, cache }
    }

    pub fn cache(&self) -> &RedisCache {
        &self.cache
    }

    /// The user with this email, cache-aside, and where the answer came from.
    pub async fn find(&self, email: &Email) -> Result<(Option<User>, CacheOutcome), AppError> {
        let overwrite = match self.cache.lookup(email).await {
            Lookup::Found(user) => return Ok((Some(user), CacheOutcome::Hit)),
            Lookup::Absent => return Ok((None, CacheOutcome::Negative)),
            Lookup::Failed => {
                // Redis just failed: do not spend a second timeout writing back to it.
                return Ok((self.store.get_user(email).await?, CacheOutcome::Error));
            }
            Lookup::Empty { overwrite } => overwrite,
        };
        self.load(email, !overwrite).await
    }

    /// Reads the user from DynamoDB again, for an entry found provably older than a token
    /// (a token can only be newer than the truth if the entry missed a change): drops the
    /// entry, then takes the miss path, whose `NX` write-back cannot overwrite a change
    /// written meanwhile.
    pub async fn refresh(&self, email: &Email) -> Result<(Option<User>, CacheOutcome), AppError> {
        let mut conn = self.cache.conn.clone();
        let key = RedisCache::key(email);
        self.cache.bounded("DEL", conn.del::<_, i64>(&key)).await;
        self.load(email, true).await
    }

    /// DynamoDB, then the answer written back (`only_if_absent`: with `NX`).
    async fn load(&self, email: &Email, only_if_absent: bool) -> Result<(Option<User>, CacheOutcome), AppError> {
        let user = self.store.get_user(email).await?;
        let entry = match &user {
            Some(user) => Entry::User { user: user.clone() },
            None => Entry::Absent,
        };
        self.cache.store(email, &entry, only_if_absent).await;
        Ok((user, CacheOutcome::Miss))
    }

    /// The user and its password hash, straight from DynamoDB: the hash is never cached.
    pub async fn credentials(&self, email: &Email) -> Result<Option<(User, String)>, AppError> {
        self.store.get_user_with_hash(email).await
    }

    /// Creates the user and replaces any negative entry, so it can log in at once.
    pub async fn register(&self, new: NewUser) -> Result<User, AppError> {
        let user = self.store.create_user(new).await?;
        self.publish(&user.email, Entry::User { user: user.clone() }).await;
        Ok(user)
    }

    /// Revokes every token issued so far by bumping `jwtVersion`.
    pub async fn logout(&self, email: &Email) -> Result<User, AppError> {
        let user = self.store.bump_jwt_version(email).await?;
        self.publish(&user.email, Entry::User { user: user.clone() }).await;
        Ok(user)
    }

    pub async fn rename(&self, email: &Email, name: String) -> Result<User, AppError> {
        let user = self.store.rename_user(email, name).await?;
        self.publish(&user.email, Entry::User { user: user.clone() }).await;
        Ok(user)
    }

    pub async fn delete(&self, email: &Email) -> Result<(), AppError> {
        self.store.delete_user(email).await?;
        self.publish(email.as_str(), Entry::Absent).await;
        Ok(())
    }

    /// Writes a change through to the cache after DynamoDB took it. If Redis cannot take it,
    /// the entry is deleted instead; if that fails too, the stale entry lives at most its TTL
    /// (logged as an error, since a revoked token could pass until then).
    async fn publish(&self, email: &str, entry: Entry) {
        let Ok(email) = Email::parse(email) else { return };
        if self.cache.store(&email, &entry, false).await {
            return;
        }
        let mut conn = self.cache.conn.clone();
        let key = RedisCache::key(&email);
        if self.cache.bounded("DEL", conn.del::<_, i64>(&key)).await.is_none() {
            tracing::error!(ttl_s = self.cache.ttl.as_secs(), "cache not updated after a user change; stale until TTL");
        }
    }
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

    #[test]
    fn entries_are_tagged_json_without_hash() {
        let user =
            User { id: "1".into(), email: "a@x.io".into(), name: "A".into(), jwt_version: 1, created_at: "t".into() };
        let json = serde_json::to_string(&Entry::User { user }).expect("json");
        assert!(json.contains(r#""kind":"user""#));
        assert!(!json.to_lowercase().contains("hash"));
        assert_eq!(serde_json::to_string(&Entry::Absent).expect("json"), r#"{"kind":"absent"}"#);
    }

    #[test]
    fn entries_read_back_as_written_and_nothing_else_reads() {
        let email = Email::parse("a@x.io").expect("email");
        let user =
            User { id: "1".into(), email: "a@x.io".into(), name: "A".into(), jwt_version: 2, created_at: "t".into() };
        let written = serde_json::to_vec(&Entry::User { user: user.clone() }).expect("json");
        assert_eq!(decode_entry(&written, &email), Some(Some(user.clone())));
        assert_eq!(decode_entry(br#"{"kind":"absent"}"#, &email), Some(None));
        let user_json = serde_json::to_string(&user).expect("json");
        let tag_last = format!(r#"{{"user":{user_json},"kind":"user"}}"#);
        assert_eq!(decode_entry(tag_last.as_bytes(), &email), Some(Some(user)));
        let other = Email::parse("b@x.io").expect("email");
        assert_eq!(decode_entry(&written, &other), None, "another user's entry");
        for corrupt in [
            &b"{"[..],
            b"null",
            br#"{"kind":"user"}"#,
            br#"{"kind":"user","user":null}"#,
            br#"{"kind":"ghost"}"#,
            br#"{"user":{}}"#,
            br#"{"kind":"user","user":{"id":"1"}}"#,
            b"\xff\xfe",
        ] {
            assert_eq!(decode_entry(corrupt, &email), None, "{}", String::from_utf8_lossy(corrupt));
        }
    }
}
