//! The Redis a test world runs on: one `redis-server`, or a three-master Redis Cluster, as
//! `TEST_REDIS_MODE` says (`standalone`, the default, or `cluster`). The same test files run
//! against either: `scripts/test` runs the cache's suites (cache-aside, faults, coherence,
//! cache-sync, abuse limits, concurrency) once more with `TEST_REDIS_MODE=cluster`.
//!
//! - [`TestRedis`]: the server or cluster, direct connections to it (keys routed by slot in a
//!   cluster), its nodes (to kill or freeze the one holding a key), and the app configuration
//!   that reaches it.
//! - [`RedisLink`]: one instance's faulty link to it: a [`RedisProxy`] in front of every node.
//!   A cluster names its nodes by their real addresses (in `CLUSTER SLOTS` and in `MOVED`), so
//!   the instance behind the link maps each node to its proxy (the client's node address map,
//!   as a client behind a NAT does), while other instances reach the nodes directly.

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde_json::Value;
use shared::cache::CacheConnection;
use shared::config::RedisUrl;
use shared::config::{CacheConfig, CacheMode};

use crate::redis_cluster::RedisCluster;
use crate::redis_proxy::{RedisProxy, WriteFault};
use crate::redis_server::{RedisNode, RedisServer};

/// The cache key of `email`'s entry, as the functions write it ([`shared::cache::kinds`]).
pub fn cache_key(email: &str) -> String {
    shared::cache::kinds::user_key(&shared::domain::Email::parse(email).expect("a valid email"))
}

/// A user entry as the tests look at it: `{"id", "rev", "kind": "user"|"absent", "user"}`, a
/// view of the cache's format (`shared::cache::entry`) that tests can read and edit. `None`
/// for bytes that are not a user entry of `email`.
pub fn user_entry_view(raw: &[u8], email: &str) -> Option<Value> {
    let entry = shared::cache::entry::parse(raw)?;
    let record = entry.item(email)?;
    let rev = record
        .version
        .rsplit('.')
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let mut view = serde_json::json!({
        "id": record.id,
        "rev": rev,
        "kind": if record.live { "user" } else { "absent" },
    });
    if record.live {
        view["user"] = serde_json::from_str(record.body).ok()?;
        // Which registration of the email the user is: in the entry's version, not its JSON.
        if let Some(registration) =
            shared::cache::entry::Revision::registration_of_user(record.version)
        {
            view["registration"] = registration.into();
        }
    }
    Some(view)
}

/// The cache's bytes for a user entry given as [`user_entry_view`] shows it: what a test
/// writes to make an entry up.
pub fn user_entry_bytes(view: &Value, email: &str) -> Vec<u8> {
    use shared::cache::entry::{Record, Revision};
    // A made-up entry may name its version only in its user, as the read path needs nothing
    // else of it.
    let id = view["id"]
        .as_str()
        .or_else(|| view["user"]["id"].as_str())
        .unwrap_or_default();
    let rev = view["rev"]
        .as_u64()
        .or_else(|| view["user"]["revision"].as_u64())
        .unwrap_or_default();
    let registration = view["registration"].as_u64().unwrap_or_default();
    let version = shared::domain::Version {
        registration,
        revision: rev,
        id: id.to_owned(),
    };
    let record = match view["kind"].as_str() {
        Some("user") => Record::live(
            id,
            Revision::of_user(&version),
            "",
            view["user"].to_string(),
        ),
        _ => Record::gone(id, Revision::of_user(&version)),
    };
    shared::cache::entry::item_bytes(email, &record)
}

/// The mode the test worlds run in: `TEST_REDIS_MODE` (`standalone` or `cluster`).
pub fn test_redis_mode() -> CacheMode {
    match std::env::var("TEST_REDIS_MODE").as_deref() {
        Err(_) | Ok("") | Ok("standalone") => CacheMode::Standalone,
        Ok("cluster") => CacheMode::Cluster,
        Ok(other) => panic!("TEST_REDIS_MODE must be `standalone` or `cluster`, not {other:?}"),
    }
}

/// A test world's Redis: a server or a cluster.
pub enum TestRedis {
    Standalone(RedisServer),
    Cluster(RedisCluster),
}

impl TestRedis {
    /// A fresh one, in the mode of this run ([`test_redis_mode`]).
    pub async fn start() -> Self {
        Self::start_in(test_redis_mode()).await
    }

    pub async fn start_in(mode: CacheMode) -> Self {
        match mode {
            CacheMode::Standalone => TestRedis::Standalone(RedisServer::start().await),
            CacheMode::Cluster => TestRedis::Cluster(RedisCluster::start().await),
        }
    }

    pub fn mode(&self) -> CacheMode {
        match self {
            TestRedis::Standalone(_) => CacheMode::Standalone,
            TestRedis::Cluster(_) => CacheMode::Cluster,
        }
    }

    /// The URL an app is given: the server's, or a seed node's.
    pub fn url(&self) -> String {
        match self {
            TestRedis::Standalone(server) => server.url(),
            TestRedis::Cluster(cluster) => cluster.url(),
        }
    }

    /// Points `config` at this Redis, in its mode.
    pub fn configure(&self, config: &mut CacheConfig) {
        config.redis_url = RedisUrl::parse(&self.url()).expect("a Redis URL");
        config.mode = self.mode();
        config.node_address_map.clear();
    }

    /// Every process: the server, or each master.
    pub fn nodes(&self) -> Vec<&RedisNode> {
        match self {
            TestRedis::Standalone(server) => vec![server.node()],
            TestRedis::Cluster(cluster) => cluster.nodes.iter().collect(),
        }
    }

    /// The process holding `key`: the server, or the master of its slot.
    pub async fn node_of(&self, key: &str) -> &RedisNode {
        match self {
            TestRedis::Standalone(server) => server.node(),
            TestRedis::Cluster(cluster) => cluster.node_of(key).await,
        }
    }

    /// A direct connection (routing by slot in a cluster), for tests that inspect or corrupt
    /// entries: `KEYS`, `SCRIPT` and `CONFIG` go to every node, as redis-rs routes them.
    pub async fn connection(&self) -> redis::RedisResult<CacheConnection> {
        match self {
            TestRedis::Standalone(server) => {
                let client = redis::Client::open(server.url())?;
                Ok(CacheConnection::Standalone(
                    ConnectionManager::new(client).await?,
                ))
            }
            TestRedis::Cluster(cluster) => {
                Ok(CacheConnection::Cluster(cluster.connection().await?))
            }
        }
    }

    /// The raw value of `email`'s cache entry, if there is one (one `GET`, as a hit reads it).
    pub async fn entry_bytes(&self, email: &str) -> Option<Vec<u8>> {
        let mut conn = self.connection().await.expect("redis connection");
        conn.get(cache_key(email)).await.expect("GET")
    }

    /// `email`'s cache entry as [`user_entry_view`] shows it, if there is one that serves an
    /// answer (a miss's lease, a placeholder, serves none); panics on one that is not in the
    /// cache's format.
    pub async fn entry(&self, email: &str) -> Option<Value> {
        let raw = self.entry_bytes(email).await?;
        if shared::cache::entry::parse(&raw)
            .is_some_and(|e| e.coverage == shared::cache::entry::Coverage::Placeholder)
        {
            return None;
        }
        Some(user_entry_view(&raw, email).unwrap_or_else(|| {
            panic!(
                "entry is not a user entry of {email}: {}",
                String::from_utf8_lossy(&raw)
            )
        }))
    }

    /// Writes `value` as `email`'s entry with a plain `SET` (no TTL, no version check), byte for
    /// byte: an entry the test made up (corrupt, of an old format, or read earlier).
    pub async fn set_entry(&self, email: &str, value: impl AsRef<[u8]>) {
        let mut conn = self.connection().await.expect("redis connection");
        let () = conn
            .set(cache_key(email), value.as_ref())
            .await
            .expect("SET");
    }

    /// Writes a user entry given as [`user_entry_view`] shows it, in the cache's format, with a
    /// plain `SET`: a well-formed entry the test made up (forged, or at a version of its own).
    pub async fn set_user_entry(&self, email: &str, view: &Value) {
        self.set_entry(email, user_entry_bytes(view, email)).await;
    }

    /// Deletes the entry under `key`, as if it had expired.
    pub async fn evict_key(&self, key: &str) {
        let mut conn = self.connection().await.expect("redis connection");
        let _: i64 = conn.del(key).await.expect("DEL");
    }

    /// Deletes `email`'s entry, as if it had expired.
    pub async fn evict(&self, email: &str) {
        let mut conn = self.connection().await.expect("redis connection");
        let _: i64 = conn.del(cache_key(email)).await.expect("DEL");
    }

    /// The remaining TTL of `email`'s entry in ms (`PTTL`: -2 when there is none).
    pub async fn entry_pttl(&self, email: &str) -> i64 {
        let mut conn = self.connection().await.expect("redis connection");
        conn.pttl(cache_key(email)).await.expect("PTTL")
    }

    /// Writes every node's data to disk, so a [`restart`](Self::restart) after a
    /// [`stop`](Self::stop) comes back with it (a cache restarted from a snapshot).
    pub async fn snapshot(&self) {
        for node in self.nodes() {
            node.snapshot().await;
        }
    }

    /// Kills every process (SIGKILL).
    pub fn stop(&self) {
        for node in self.nodes() {
            node.kill();
        }
    }

    /// Starts every process again, and (a cluster) waits until it is whole.
    pub async fn restart(&self) {
        match self {
            TestRedis::Standalone(server) => server.node().start().await,
            TestRedis::Cluster(cluster) => cluster.restart().await,
        }
    }

    /// A faulty link to this Redis: a proxy in front of every node.
    pub async fn link(&self) -> RedisLink {
        let mut proxies = Vec::new();
        for node in self.nodes() {
            proxies.push((node.address(), RedisProxy::start(node.port).await));
        }
        RedisLink {
            mode: self.mode(),
            proxies,
        }
    }
}

/// One instance's link to a [`TestRedis`] through a [`RedisProxy`] per node; faults apply to
/// every node's proxy at once.
pub struct RedisLink {
    mode: CacheMode,
    /// Each node's address, and the proxy in front of it.
    proxies: Vec<(String, RedisProxy)>,
}

impl RedisLink {
    /// The URL through the link (the first node's proxy).
    pub fn url(&self) -> String {
        self.proxies[0].1.url()
    }

    /// Points `config` through the link: the URL, the mode, and (a cluster) every node mapped
    /// to its proxy.
    pub fn configure(&self, config: &mut CacheConfig) {
        config.redis_url = RedisUrl::parse(&self.url()).expect("a Redis URL");
        config.mode = self.mode;
        config.node_address_map = match self.mode {
            CacheMode::Standalone => Vec::new(),
            CacheMode::Cluster => self
                .proxies
                .iter()
                .map(|(node, proxy)| (node.clone(), format!("127.0.0.1:{}", proxy.port)))
                .collect(),
        };
    }

    /// [`RedisProxy::set_write_fault`] on every node's proxy.
    pub fn set_write_fault(&self, fault: WriteFault) {
        self.proxies
            .iter()
            .for_each(|(_, p)| p.set_write_fault(fault));
    }

    /// [`RedisProxy::spare_leases`] on every node's proxy.
    pub fn spare_leases(&self, spare: bool) {
        self.proxies.iter().for_each(|(_, p)| p.spare_leases(spare));
    }

    /// Write commands the proxies received, all nodes together.
    pub fn writes_seen(&self) -> u64 {
        self.proxies.iter().map(|(_, p)| p.writes_seen()).sum()
    }

    /// [`RedisProxy::release_held`] on every node's proxy.
    pub fn release_held(&self) {
        self.proxies.iter().for_each(|(_, p)| p.release_held());
    }

    /// Writes held right now, all nodes together ([`RedisProxy::held`]).
    pub fn held(&self) -> u64 {
        self.proxies.iter().map(|(_, p)| p.held()).sum()
    }

    /// `READONLY` replies the proxies wrote to clients, all nodes together
    /// ([`RedisProxy::refusals_sent`]).
    pub fn refusals_sent(&self) -> u64 {
        self.proxies.iter().map(|(_, p)| p.refusals_sent()).sum()
    }

    /// Connections closed by the `Drop` fault, all nodes together ([`RedisProxy::drops`]).
    pub fn drops(&self) -> u64 {
        self.proxies.iter().map(|(_, p)| p.drops()).sum()
    }

    /// Stalls every node's link (`true`) or releases it ([`RedisProxy::stall`]).
    pub fn stall(&self, stalled: bool) {
        self.proxies.iter().for_each(|(_, p)| p.stall(stalled));
    }

    /// [`RedisProxy::kill_connections`] on every node's proxy.
    pub fn kill_connections(&self) {
        self.proxies.iter().for_each(|(_, p)| p.kill_connections());
    }

    /// Live client connections through the link, all nodes together.
    pub fn connections(&self) -> usize {
        self.proxies.iter().map(|(_, p)| p.connections()).sum()
    }
}
