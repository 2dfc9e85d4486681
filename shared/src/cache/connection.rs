//! The Redis connection every cache call goes through: bounded in time, and moved to a new
//! connection when the server it is on can no longer take writes.
//!
//! redis-rs's `ConnectionManager` reconnects by itself after an I/O error, but a server that
//! answers is kept, whatever it answers. After a failover the old primary answers every write
//! with `READONLY` (it is a replica now) for as long as the connection lives; a server loading
//! its data answers `LOADING`, one whose primary is gone `MASTERDOWN`. Those replies mean "this
//! connection is on the wrong server": the connection is replaced (a new one resolves the
//! endpoint again, which now names the new primary) and the command is tried once more on it,
//! within the same time bound.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind};

use crate::config::{CacheConfig, ConfigError, Secret};

/// Why a bounded call gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
}

/// A Redis connection, built once per Lambda instance. Connects lazily, so a dead Redis at cold
/// start never fails the init. Cheap to clone (shared).
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    config: ConnectionManagerConfig,
    current: ArcSwap<ConnectionManager>,
    timeout: Duration,
}

impl RedisConnection {
    pub fn new(config: &CacheConfig, password: Option<Secret>) -> Result<Self, ConfigError> {
        let bad_url = |e: RedisError| ConfigError { variable: "REDIS_URL", message: e.to_string() };
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
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone()).map_err(bad_url)?;
        Ok(RedisConnection {
            inner: Arc::new(Inner {
                client,
                config: manager_config,
                current: ArcSwap::from_pointee(manager),
                timeout: config.redis_timeout,
            }),
        })
    }

    /// The connection calls use now (a cheap clone of the manager): for diagnostics and the
    /// benchmark, which times a bare `GET` on it against the whole auth path.
    pub fn manager(&self) -> ConnectionManager {
        ConnectionManager::clone(&self.inner.current.load())
    }

    /// Runs `call` on the connection within the timeout. A reply that says the connection is on
    /// the wrong server ([`is_wrong_server`]) replaces the connection, and `call` runs once more
    /// on the new one, inside the same bound.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, CallError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let attempts = async {
            let used = self.inner.current.load_full();
            match call(ConnectionManager::clone(&used)).await {
                Err(e) if is_wrong_server(&e) => {
                    tracing::warn!(error = %e, "redis server cannot take writes; moving to a new connection");
                    self.replace(&used);
                    call(self.manager()).await
                }
                result => result,
            }
        };
        let started = std::time::Instant::now();
        let answer = match tokio::time::timeout(self.inner.timeout, attempts).await {
            Ok(result) => result.map_err(CallError::from),
            Err(_) => Err(CallError::Timeout(self.inner.timeout)),
        };
        crate::metrics::redis_call(started.elapsed());
        answer
    }

    /// Swaps in a fresh (lazy) connection, unless another call already replaced `used`.
    fn replace(&self, used: &Arc<ConnectionManager>) {
        match ConnectionManager::new_lazy_with_config(self.inner.client.clone(), self.inner.config.clone()) {
            Ok(fresh) => {
                self.inner.current.compare_and_swap(used, Arc::new(fresh));
            }
            Err(e) => tracing::warn!(error = %e, "could not build a new redis connection; keeping the old one"),
        }
    }

    /// Opens the connection ahead of the first request, waiting at most `bound`.
    pub async fn prewarm(&self, bound: Duration) {
        let mut conn = self.manager();
        let ping = async move { redis::cmd("PING").query_async::<String>(&mut conn).await };
        if tokio::time::timeout(bound, ping).await.map(|r| r.is_ok()).unwrap_or(false) {
            tracing::debug!("redis connection ready");
        } else {
            tracing::warn!("redis not ready at init; requests will use DynamoDB until it is");
        }
    }
}

/// Whether a reply says this connection is on a server that cannot serve us any more: a
/// demoted primary (`READONLY`), one still loading its data (`LOADING`), or a replica whose
/// primary is gone (`MASTERDOWN`). I/O errors need no help: the manager reconnects on those.
pub fn is_wrong_server(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown)
    )
}
