//! The Redis connection every cache call goes through: bounded in time, and moved to a new
//! connection when the server it is on can no longer take writes.
//!
//! The connection is standalone or cluster, as configured ([`super::client`]); both reconnect
//! by themselves after an I/O error, and the cluster one follows `MOVED`/`ASK` and refreshes its
//! slot map. But a server that answers is kept, whatever it answers. After a failover the old
//! primary answers every write with `READONLY` (it is a replica now) for as long as the
//! connection lives; a server loading its data answers `LOADING`, one whose primary is gone
//! `MASTERDOWN`. Those replies mean "this connection is on the wrong server": the connection is
//! replaced (a new one resolves the endpoint again, which now names the new primary) and the
//! command is tried once more on it, within the same time bound.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind};

use super::client::{CacheAuth, CacheConnection, Connector};
use crate::config::{CacheConfig, ConfigError};

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
    connector: Connector,
    current: ArcSwap<CacheConnection>,
    timeout: Duration,
}

impl RedisConnection {
    pub fn new(config: &CacheConfig, auth: &CacheAuth) -> Result<Self, ConfigError> {
        let connector = Connector::new(config, auth)?;
        let first = connector.open().map_err(|e| ConfigError {
            variable: "REDIS_URL",
            message: e.to_string(),
        })?;
        Ok(RedisConnection {
            inner: Arc::new(Inner {
                connector,
                current: ArcSwap::from_pointee(first),
                timeout: config.redis_timeout,
            }),
        })
    }

    /// The connection calls use now (a cheap clone of a handle): for diagnostics and the
    /// benchmark, which times a bare `GET` on it against the whole auth path.
    pub fn current(&self) -> CacheConnection {
        CacheConnection::clone(&self.inner.current.load())
    }

    /// Runs `call` on the connection within the timeout. A reply that says the connection is on
    /// the wrong server ([`is_wrong_server`]) replaces the connection, and `call` runs once more
    /// on the new one, inside the same bound. A redirect the cluster client gave up on
    /// (`is_redirect`) runs `call` again at once, up to `REDIRECT_ROUNDS` times, inside the
    /// same bound too.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, CallError>
    where
        F: Fn(CacheConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let attempts = async {
            let used = self.inner.current.load_full();
            let mut result = call(CacheConnection::clone(&used)).await;
            for _ in 0..REDIRECT_ROUNDS {
                match &result {
                    Err(e) if is_redirect(e) => {
                        result = call(CacheConnection::clone(&used)).await;
                    }
                    _ => break,
                }
            }
            match result {
                Err(e) if is_wrong_server(&e) => {
                    tracing::warn!(error = %e, "redis server cannot take writes; moving to a new connection");
                    self.replace(&used);
                    call(self.current()).await
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
    fn replace(&self, used: &Arc<CacheConnection>) {
        match self.inner.connector.open() {
            Ok(fresh) => {
                self.inner.current.compare_and_swap(used, Arc::new(fresh));
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not build a new redis connection; keeping the old one")
            }
        }
    }

    /// Opens the connection ahead of the first request, waiting at most `bound`.
    ///
    /// A cache that refuses this instance's credentials or certificate will not heal by itself,
    /// unlike one that is down or slow: that is logged as an error, naming the cause.
    pub async fn prewarm(&self, bound: Duration) {
        let mut conn = self.current();
        let ping = async move { redis::cmd("PING").query_async::<String>(&mut conn).await };
        match tokio::time::timeout(bound, ping).await {
            Ok(Ok(_)) => tracing::debug!("redis connection ready"),
            Ok(Err(e)) if is_refusal(&e) => tracing::error!(
                error = %e,
                "redis refused this instance (AUTH or TLS certificate); requests will use DynamoDB"
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "redis not ready at init; requests will use DynamoDB until it is")
            }
            Err(_) => tracing::warn!(
                bound_ms = bound.as_millis() as u64,
                "redis not ready at init; requests will use DynamoDB until it is"
            ),
        }
    }
}

/// How many more times a call runs after the cluster client gave up following its redirects
/// (it follows `CLUSTER_RETRIES` of them, `client.rs`). While a slot is handed over, the
/// masters disagree for a moment (the new owner updated first, then the old one, then the
/// rest) and a request can be bounced more often than that; a redirect means the command was
/// not run, so running it again is safe. Each round starts at once, all inside the call's bound.
const REDIRECT_ROUNDS: usize = 2;

/// Whether a reply is a redirect (`MOVED` or `ASK`) the cluster client did not follow through.
fn is_redirect(e: &RedisError) -> bool {
    e.redirect_node().is_some()
}

/// Whether a reply says this connection is on a server that cannot serve us any more: a
/// demoted primary (`READONLY`), one still loading its data (`LOADING`), or a replica whose
/// primary is gone (`MASTERDOWN`). I/O errors need no help: the manager reconnects on those.
pub fn is_wrong_server(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::ReadOnly | ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown
        )
    )
}

/// Whether an error says the cache turned this instance away (wrong password or user, an IAM
/// token it does not accept, a certificate this instance does not trust) rather than being
/// unreachable: a configuration error, which no retry fixes.
pub fn is_refusal(e: &RedisError) -> bool {
    let text = e.to_string();
    e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.kind(), ErrorKind::Server(ServerErrorKind::NoPerm))
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
        || text.contains("certificate")
}
