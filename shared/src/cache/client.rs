//! Which Redis client the cache speaks through, and how it authenticates: one connection type
//! over both kinds of cache, so everything above it (the cache-aside, the compare-and-set
//! script, `cache-sync`) is the same code whichever the configuration chose.
//!
//! - **Standalone** (`REDIS_MODE=standalone`): redis-rs's `ConnectionManager`, one multiplexed
//!   connection to the primary endpoint, reconnecting by itself after an I/O error.
//! - **Cluster** (`REDIS_MODE=cluster`): redis-rs's async cluster connection: one multiplexed
//!   connection per node, keys routed by slot, `MOVED`/`ASK` followed, the slot map refreshed
//!   when the topology changes, a node reconnected when it comes back. ElastiCache Serverless
//!   speaks only this. Every key the cache uses is one key per command (`GET`, the script on
//!   `KEYS[1]`), so no command spans slots.
//!
//! Both are lazy: building one opens nothing, so a dead cache at cold start never fails the
//! init. Both authenticate the same three ways ([`CacheAuth`]), over TLS with the public roots
//! or a private CA (`REDIS_TLS_CA_FILE`).

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig, NodeAddress};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::SingleNodeRoutingInfo;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind,
    TlsCertificates, Value,
};

use super::iam::IamTokens;
use crate::config::{CacheConfig, CacheMode, ConfigError, Secret};

/// How the cache proves who it is.
#[derive(Clone)]
pub enum CacheAuth {
    /// No `AUTH` (a local `redis-server`).
    None,
    /// A static AUTH token (ElastiCache's, from Secrets Manager).
    Password(Secret),
    /// ElastiCache IAM authentication: a fresh signed token per connection, and `AUTH` again
    /// before ElastiCache's 12-hour limit.
    Iam(IamTokens),
}

/// A connection to the cache, whichever kind: what [`super::connection::RedisConnection::call`] hands a
/// call. Cheap to clone (a handle on shared connections). A standalone command is passed
/// straight to the inner connection, whose future is already boxed: the dispatch adds no
/// allocation. A cluster command gets one more box, for [`ask_again`].
#[derive(Clone)]
pub enum CacheConnection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for CacheConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            CacheConnection::Standalone(conn) => conn.req_packed_command(cmd),
            CacheConnection::Cluster(conn) => Box::pin(async move {
                match conn.req_packed_command(cmd).await {
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::Ask) => {
                        ask_again(conn, cmd, e).await
                    }
                    answer => answer,
                }
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            CacheConnection::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            CacheConnection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            CacheConnection::Standalone(conn) => conn.get_db(),
            CacheConnection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Sends `cmd` once more to the node an `ASK` redirect names, with its `ASKING` in one pipeline.
///
/// During a slot migration the source answers `ASK` for the keys it no longer holds, and the
/// command must reach the target right after an `ASKING` on the same connection: the flag it
/// sets is good for one command. redis-rs follows `ASK` by sending `ASKING`, awaiting its reply,
/// then sending the command, on the node's multiplexed connection; any other invocation's
/// command sent to that node in between takes the flag, and the redirected command is answered
/// `MOVED` back to the source, which answers `ASK` again, until the retries run out (measured:
/// a quarter of the requests of a run eight at a time fell back to DynamoDB, and a logout's
/// write could be lost). One pipeline is written to the connection whole, so nothing comes
/// between the two. Any other error is the original one.
async fn ask_again(conn: &mut ClusterConnection, cmd: &Cmd, ask: RedisError) -> RedisResult<Value> {
    let Some((host, port)) = ask
        .redirect_node()
        .and_then(|(node, _slot)| node.rsplit_once(':'))
    else {
        return Err(ask);
    };
    let Ok(port) = port.parse::<u16>() else {
        return Err(ask);
    };
    let route = SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port,
    };
    let mut pipeline = redis::pipe();
    pipeline.cmd("ASKING").add_command(cmd.clone());
    let mut answers = conn.route_pipeline(pipeline, 1, 1, route).await?;
    answers.pop().ok_or(ask)
}

/// What opens a [`CacheConnection`]: built once from the configuration, used again whenever a
/// connection must be replaced.
pub(crate) enum Connector {
    Standalone {
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster {
        client: ClusterClient,
        config: ClusterConfig,
    },
}

/// How a cluster connection retries inside the call's own time bound: a redirect is followed at
/// once; a failed node is retried after a short wait, at most twice, so a dead node costs the
/// caller its timeout and never a queue of retries behind it.
const CLUSTER_RETRIES: u32 = 2;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 10;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 200;

impl Connector {
    pub(crate) fn new(config: &CacheConfig, auth: &CacheAuth) -> Result<Self, ConfigError> {
        let bad_url = |e: RedisError| ConfigError {
            variable: "REDIS_URL",
            message: e.to_string(),
        };
        if config.redis_url.tls() {
            install_crypto_provider();
        }
        let mut info = config.redis_url.connection_info().clone();
        if let CacheAuth::Password(password) = auth {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(settings);
        }
        let certificates = tls_certificates(config)?;
        match config.mode {
            CacheMode::Standalone => {
                let client = match certificates {
                    Some(certificates) => redis::Client::build_with_tls(info, certificates),
                    None => redis::Client::open(info),
                }
                .map_err(bad_url)?;
                let mut manager = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.redis_connect_timeout))
                    .set_response_timeout(Some(config.redis_timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(200));
                if let CacheAuth::Iam(tokens) = auth {
                    manager = manager.set_credentials_provider(tokens.clone());
                }
                Ok(Connector::Standalone {
                    client,
                    config: manager,
                })
            }
            CacheMode::Cluster => {
                let mut builder = ClusterClientBuilder::new([info])
                    .connection_timeout(config.redis_connect_timeout)
                    .response_timeout(config.redis_timeout)
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
                    .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS);
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates);
                }
                if let CacheAuth::Iam(tokens) = auth {
                    builder = builder.set_credentials_provider(tokens.clone());
                }
                if !config.node_address_map.is_empty() {
                    builder = builder.node_address_map(
                        node_address_map(&config.node_address_map).map_err(bad_url)?,
                    );
                }
                let client = builder.build().map_err(bad_url)?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(config.redis_connect_timeout)
                    .set_response_timeout(config.redis_timeout);
                Ok(Connector::Cluster { client, config })
            }
        }
    }

    /// A new connection, not yet open: it connects on its first command (standalone), or in
    /// the background from now on (cluster: a task of the current Tokio runtime, so this runs
    /// inside one, as the init does); either way nothing here waits.
    pub(crate) fn open(&self) -> RedisResult<CacheConnection> {
        match self {
            Connector::Standalone { client, config } => {
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    .map(CacheConnection::Standalone)
            }
            Connector::Cluster { client, config } => Ok(CacheConnection::Cluster(
                client.get_pending_async_connection_with_config(config.clone()),
            )),
        }
    }
}

/// `rediss://` (rustls) needs a process-wide crypto provider; the AWS SDK already links
/// aws-lc-rs, so that is the one installed (once; a later call changes nothing).
fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The private CA `REDIS_TLS_CA_FILE` names, if any, as the roots the TLS connection trusts
/// (instead of the public ones).
fn tls_certificates(config: &CacheConfig) -> Result<Option<TlsCertificates>, ConfigError> {
    let Some(path) = &config.tls_ca_file else {
        return Ok(None);
    };
    let bad = |message: String| ConfigError {
        variable: "REDIS_TLS_CA_FILE",
        message,
    };
    if !config.redis_url.tls() {
        return Err(bad("needs a rediss:// REDIS_URL".into()));
    }
    let pem = std::fs::read(path).map_err(|e| bad(format!("reading {path}: {e}")))?;
    Ok(Some(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

fn node_address_map(pairs: &[(String, String)]) -> RedisResult<HashMap<NodeAddress, NodeAddress>> {
    pairs
        .iter()
        .map(|(from, to)| {
            Ok((
                NodeAddress::try_from(from.as_str())?,
                NodeAddress::try_from(to.as_str())?,
            ))
        })
        .collect()
}
