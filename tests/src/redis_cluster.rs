//! A real Redis Cluster per test: three `redis-server` masters with `--cluster-enabled yes`,
//! each on free loopback ports (its client port and its cluster bus port) with its own
//! directory, joined by `redis-cli --cluster create`, as ElastiCache's cluster mode (and its
//! Serverless, which speaks only cluster mode) presents itself to a client.
//!
//! Settings chosen for tests of a cluster that loses a master:
//! - no replicas, so a killed master is not failed over: its slots are unreachable until it
//!   comes back (what a client sees of a shard between its primary's death and a promotion);
//! - `cluster-require-full-coverage no`, as ElastiCache sets it: the other masters keep serving
//!   their slots meanwhile;
//! - a short node timeout, so the cluster agrees quickly that a node is gone or back.
//!
//! A master started again keeps its `nodes.conf`, so it rejoins with its identity and slots
//! (empty: nothing is persisted).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

use crate::redis_server::{free_ports, scratch_dir, RedisNode};

/// Masters in a test cluster.
pub const MASTERS: usize = 3;

/// Three masters sharing the 16,384 slots; killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisNode>,
    dir: PathBuf,
}

/// Node `i` of a test cluster in `dir`: its own directory (its `nodes.conf`, kept when it is
/// started again), and the arguments that make a `redis-server` a cluster node with its bus on
/// `bus_port` and a short node timeout.
pub(crate) fn cluster_node(dir: &Path, i: usize, bus_port: u16) -> (PathBuf, Vec<String>) {
    let node_dir = dir.join(format!("node-{i}"));
    std::fs::create_dir_all(&node_dir).expect("a node directory");
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        &bus_port.to_string(),
        "--cluster-node-timeout",
        "2000",
    ];
    (node_dir, args.map(str::to_owned).to_vec())
}

/// The `redis-cli` that joins a cluster (`REDIS_CLI_BIN`, or the one on the `PATH`).
pub(crate) fn redis_cli() -> String {
    std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".to_owned())
}

impl RedisCluster {
    /// Starts the masters, joins them, and waits until every node says the cluster is ok and
    /// knows every master's slots.
    pub async fn start() -> Self {
        let dir = scratch_dir("redis-cluster");
        let mut nodes = Vec::with_capacity(MASTERS);
        // Each node's client port and cluster bus port, all distinct.
        let ports = free_ports(2 * MASTERS);
        for i in 0..MASTERS {
            let (node_dir, mut args) = cluster_node(&dir, i, ports[2 * i + 1]);
            args.extend(["--cluster-require-full-coverage", "no"].map(str::to_owned));
            nodes.push(RedisNode::new(ports[2 * i], &node_dir, args));
        }
        let cluster = RedisCluster { nodes, dir };
        for node in &cluster.nodes {
            node.start().await;
        }
        let create = Command::new(redis_cli())
            .args(["--cluster", "create"])
            .args(cluster.nodes.iter().map(RedisNode::address))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs (it comes with redis-server: scripts/install-deps)");
        assert!(
            create.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&create.stdout),
            String::from_utf8_lossy(&create.stderr)
        );
        cluster.wait_until_ready().await;
        cluster
    }

    /// The seed node's URL: a client discovers the others from it, as from ElastiCache's
    /// configuration endpoint.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// A direct cluster connection (keys routed by slot), for tests that inspect or corrupt
    /// entries.
    pub async fn connection(&self) -> redis::RedisResult<ClusterConnection> {
        ClusterClient::new(self.nodes.iter().map(RedisNode::url).collect::<Vec<_>>())?
            .get_async_connection()
            .await
    }

    /// The master that holds `key`'s slot.
    pub async fn node_of(&self, key: &str) -> &RedisNode {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(port) = self.port_of(key).await {
                if let Some(node) = self.nodes.iter().find(|n| n.port == port) {
                    return node;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no live node says who holds {key}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Which port serves `key`, as the first live node sees it.
    async fn port_of(&self, key: &str) -> Option<u16> {
        for node in &self.nodes {
            let Ok(mut conn) = node.connection().await else {
                continue;
            };
            let Ok(slot) = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
            else {
                continue;
            };
            let Ok(ranges) = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<redis::Value>(&mut conn)
                .await
            else {
                continue;
            };
            return slot_owner(&ranges, slot);
        }
        None
    }

    /// Kills every master.
    pub fn stop(&self) {
        for node in &self.nodes {
            node.kill();
        }
    }

    /// Starts every master that is not running, and waits until the cluster is whole again.
    pub async fn restart(&self) {
        for node in &self.nodes {
            node.kill();
            node.start().await;
        }
        self.wait_until_ready().await;
    }

    /// Every node says `cluster_state:ok` and maps all slots to the three masters.
    pub async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut ports: Vec<u16> = self.nodes.iter().map(|n| n.port).collect();
        ports.sort_unstable();
        'wait: loop {
            assert!(
                Instant::now() < deadline,
                "the cluster on ports {ports:?} did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            for node in &self.nodes {
                let Ok(mut conn) = node.connection().await else {
                    continue 'wait;
                };
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if !info.contains("cluster_state:ok") {
                    continue 'wait;
                }
                let Ok(slots) = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<redis::Value>(&mut conn)
                    .await
                else {
                    continue 'wait;
                };
                let mut owners: Vec<u16> = (0..16_384)
                    .step_by(512)
                    .filter_map(|s| slot_owner(&slots, s))
                    .collect();
                let covered = owners.len() == 32;
                owners.sort_unstable();
                owners.dedup();
                if !covered || owners != ports {
                    continue 'wait;
                }
            }
            return;
        }
    }
}

/// The port of the master serving `slot` in a `CLUSTER SLOTS` reply.
fn slot_owner(reply: &redis::Value, slot: i64) -> Option<u16> {
    let redis::Value::Array(ranges) = reply else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let redis::Value::Array(parts) = range else {
            return None;
        };
        let (redis::Value::Int(start), redis::Value::Int(end), redis::Value::Array(master)) =
            (parts.first()?, parts.get(1)?, parts.get(2)?)
        else {
            return None;
        };
        let redis::Value::Int(port) = master.get(1)? else {
            return None;
        };
        (*start..=*end).contains(&slot).then_some(*port as u16)
    })
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
