//! A real `redis-server` per test, and the loopback ports tests put services (or nothing) on.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A `redis-server` child process on a free loopback port, with its own working directory
/// (nothing it writes, such as a replication snapshot, can reach another server or the
/// repository); killed on drop.
pub struct RedisServer {
    pub port: u16,
    node: RedisNode,
    dir: PathBuf,
}

/// A free loopback port (free when asked: the caller binds it soon after).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// A loopback port nothing listens on: a service that is down (connections are refused).
/// Free when asked, and never bound by the harness.
pub fn closed_port() -> u16 {
    free_port()
}

/// `n` distinct free loopback ports, each handed out once per test process, from below the
/// kernel's ephemeral range.
///
/// A port the kernel picks (`bind` to port 0) comes from the ephemeral range, where every
/// outgoing connection takes its source port too: released for a server to bind, it could be
/// taken by any test's next connection first, and the server would not start (seen once in a
/// cluster pass: "redis-server did not start"). Below that range no connection takes a port
/// by itself, and the registry keeps two tests of the process from being handed the same one.
pub fn free_ports(n: usize) -> Vec<u16> {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let (low, high) = below_ephemeral();
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let mut held: Vec<StdListener> = Vec::with_capacity(n);
    let mut tries = 0;
    while held.len() < n {
        tries += 1;
        assert!(tries < 100_000, "no free loopback port in {low}..{high}");
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), low..high);
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(listener) = StdListener::bind(("127.0.0.1", port)) {
            handed_out.push(port);
            held.push(listener);
        }
    }
    held.iter()
        .map(|l| l.local_addr().expect("its address").port())
        .collect()
}

/// The ports from 10000 up to the first ephemeral one (`/proc/sys/net/ipv4/ip_local_port_range`;
/// Linux's default range starts at 32768).
fn below_ephemeral() -> (u16, u16) {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    (10_000, first_ephemeral.max(20_000))
}

fn redis_binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned())
}

/// A fresh working directory under the system's temporary one.
pub(crate) fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{what}-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).expect("a working directory for redis-server");
    dir
}

/// One `redis-server` process: started, killed (SIGKILL), frozen (SIGSTOP) and thawed through a
/// shared reference, so a test can inject a fault while requests run against it. Started again,
/// it keeps its port, directory and arguments (a cluster node its identity, `nodes.conf`).
pub struct RedisNode {
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Mutex<Option<Child>>,
}

impl RedisNode {
    /// A node on `port` working in `dir`, with `args` beyond the basics; not yet started.
    pub(crate) fn new(port: u16, dir: &Path, args: Vec<String>) -> Self {
        RedisNode {
            port,
            dir: dir.to_owned(),
            args,
            child: Mutex::new(None),
        }
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`, as a cluster names its nodes.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again), and waits until it answers `PING`.
    pub async fn start(&self) {
        let child = Command::new(redis_binary())
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .arg("--logfile")
            .arg(self.dir.join(format!("redis-{}.log", self.port)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server runs (install it: apt-get install redis-server, or run scripts/test)",
            );
        *self.child() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut conn) = self.connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let log = std::fs::read_to_string(self.dir.join(format!("redis-{}.log", self.port)))
            .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        panic!(
            "redis-server did not start on port {}: {:?}",
            self.port,
            tail.into_iter().rev().collect::<Vec<_>>()
        );
    }

    /// Writes the data to disk (`SAVE`), so a start after a [`kill`](Self::kill) comes back
    /// with it, as a cache restarted from a snapshot (or a replica promoted) does: entries
    /// written before, stale ones among them, are still there.
    pub async fn snapshot(&self) {
        let mut conn = self.connection().await.expect("redis connection");
        redis::cmd("SAVE")
            .query_async::<String>(&mut conn)
            .await
            .expect("SAVE");
    }

    /// SIGKILL: a crash, not a shutdown. Everything it held in memory since the last
    /// [`snapshot`](Self::snapshot) is gone.
    pub fn kill(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill(); // SIGKILL ends a stopped process too
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the kernel still completes TCP handshakes on its port, and nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`RedisNode::freeze`].
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child().as_ref().expect("the node is running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// A direct connection to this node alone.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// How many times this node answered the error `error` (`READONLY`, `NOREPLICAS`, `ASK`,
    /// `MOVED`, ...) since it started or its last `CONFIG RESETSTAT` (`INFO errorstats`): what
    /// shows a fault took effect on the server's side.
    pub async fn errors_answered(&self, error: &str) -> u64 {
        let info = self.info("errorstats").await;
        let prefix = format!("errorstat_{error}:count=");
        info.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Calls of `command` (lower case: `get`, `evalsha`, ...) this node ran since it started or
    /// its last `CONFIG RESETSTAT` (`INFO commandstats`; a command answered with a redirect or
    /// refused before it ran is not a call).
    pub async fn calls(&self, command: &str) -> u64 {
        let info = self.info("commandstats").await;
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse().ok())
            .unwrap_or(0)
    }

    /// Scripts this node ran (`EVALSHA` and `EVAL` calls): every cache write is the
    /// compare-and-set script, so this is how a test sees a late write land.
    pub async fn scripts_run(&self) -> u64 {
        self.calls("evalsha").await + self.calls("eval").await
    }

    /// `CONFIG RESETSTAT`: the counts of [`errors_answered`](Self::errors_answered) and
    /// [`calls`](Self::calls) start again from zero.
    pub async fn reset_stats(&self) {
        let mut conn = self.connection().await.expect("redis connection");
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async::<()>(&mut conn)
            .await
            .expect("CONFIG RESETSTAT");
    }

    async fn info(&self, section: &str) -> String {
        let mut conn = self.connection().await.expect("redis connection");
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut conn)
            .await
            .expect("INFO")
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.kill();
    }
}

impl RedisServer {
    pub async fn start() -> Self {
        let dir = scratch_dir("redis-test");
        let port = free_port();
        let server = RedisServer {
            port,
            node: RedisNode::new(port, &dir, Vec::new()),
            dir,
        };
        server.node.start().await;
        server
    }

    pub fn url(&self) -> String {
        self.node.url()
    }

    /// The process, for faults injected through a shared reference.
    pub fn node(&self) -> &RedisNode {
        &self.node
    }

    /// Starts (again) on the same port, and waits until it answers `PING`.
    pub async fn restart(&mut self) {
        self.node.start().await;
    }

    /// Kills the server (SIGKILL: a crash, not a shutdown).
    pub fn stop(&mut self) {
        self.node.kill();
    }

    /// A direct connection, for tests that inspect or corrupt entries.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        self.node.connection().await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.node.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
