//! `redis-server` speaking only TLS and wanting an AUTH token, as ElastiCache with in-transit
//! encryption does, with a throwaway CA made by the test ([`TestCa`], `rcgen`): the production
//! connection path (`rediss://`, rustls, a password) run for real, against one server
//! ([`TlsRedis`]) or a cluster whose nodes speak TLS to each other too ([`TlsCluster`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use redis::AsyncCommands;

use crate::redis_cluster::{cluster_node, redis_cli, MASTERS};
use crate::redis_server::{free_port, free_ports, scratch_dir};

/// A certificate authority that exists for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key"))
            .expect("a CA");
        TestCa { issuer }
    }

    /// The CA's certificate (PEM): what a client trusts.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses) and its key, both PEM.
    pub fn server_certificate(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("a server key");
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("names");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        (certificate.pem(), key.serialize_pem())
    }

    /// Writes the CA's certificate to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.pem()).expect("write the CA certificate");
    }
}

/// The files a TLS-only server starts with, in `dir`: a certificate for `localhost` and
/// `127.0.0.1` from a new [`TestCa`] named `ca_name` (`server.pem`, `server.key`), and that
/// CA's certificate (`ca.pem`, what a client trusts), whose path it returns.
fn certificates(dir: &Path, ca_name: &str) -> PathBuf {
    let ca = TestCa::new(ca_name);
    // A cluster's nodes name each other, and the client, by IP: the certificate carries it.
    let (cert, key) = ca.server_certificate(&["localhost", "127.0.0.1"]);
    let ca_file = dir.join("ca.pem");
    ca.write(&ca_file);
    std::fs::write(dir.join("server.pem"), cert).expect("write the certificate");
    std::fs::write(dir.join("server.key"), key).expect("write the key");
    ca_file
}

/// Starts `redis-server` on loopback `port`, TLS only (`--port 0 --tls-port`), with the
/// [`certificates`] in `certs`, wanting `password`, working in `dir`, with `args` beyond that.
fn spawn_tls_server(port: u16, password: &str, certs: &Path, dir: &Path, args: &[String]) -> Child {
    Command::new(std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned()))
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--tls-auth-clients",
            "no",
        ])
        .args(["--requirepass", password])
        .arg("--dir")
        .arg(dir)
        .arg("--tls-cert-file")
        .arg(certs.join("server.pem"))
        .arg("--tls-key-file")
        .arg(certs.join("server.key"))
        .arg("--tls-ca-cert-file")
        .arg(certs.join("ca.pem"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs")
}

/// A TLS connection to the server on loopback `port`, by the name its certificate carries,
/// trusting the CA in `ca_file`, authenticated with `password`.
async fn tls_connection(
    port: u16,
    ca_file: &Path,
    password: &str,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let info =
        redis::IntoConnectionInfo::into_connection_info(format!("rediss://localhost:{port}"))?;
    let settings = info.redis_settings().clone().set_password(password);
    let info = info.set_redis_settings(settings);
    let roots = std::fs::read(ca_file).map_err(redis::RedisError::from)?;
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(roots),
    };
    redis::Client::build_with_tls(info, certificates)?
        .get_multiplexed_async_connection()
        .await
}

/// `redis-server` on a free loopback port, TLS only, with a certificate for `localhost` and
/// `127.0.0.1` from its own [`TestCa`], and `requirepass`.
pub struct TlsRedis {
    pub port: u16,
    /// The PEM file of the CA that issued the server's certificate.
    pub ca_file: PathBuf,
    dir: PathBuf,
    child: Child,
}

impl TlsRedis {
    pub async fn start(password: &str) -> Self {
        let dir = scratch_dir("redis-tls");
        let ca_file = certificates(&dir, "caching-code test CA");
        let port = free_port();
        let child = spawn_tls_server(port, password, &dir, &dir, &[]);
        let server = TlsRedis {
            port,
            ca_file,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = server.connection(password).await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
                {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server (TLS) did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `rediss://localhost:<port>`: the name the certificate carries.
    pub fn url(&self) -> String {
        format!("rediss://localhost:{}", self.port)
    }

    /// A TLS connection trusting the server's CA, authenticated with `password`.
    pub async fn connection(
        &self,
        password: &str,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        tls_connection(self.port, &self.ca_file, password).await
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster that speaks only TLS, between its nodes too (`--tls-cluster yes`), as
/// ElastiCache Serverless and cluster-mode caches with in-transit encryption do: three
/// masters sharing the slots, each with the certificate of one [`TestCa`], wanting
/// `password`; killed on drop.
pub struct TlsCluster {
    /// Each master's TLS port.
    pub ports: Vec<u16>,
    /// The PEM file of the CA that issued the nodes' certificate.
    pub ca_file: PathBuf,
    password: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl TlsCluster {
    /// Starts the masters, joins them (`redis-cli --cluster create` over TLS), and waits until
    /// every node says the cluster is ok and knows all three.
    pub async fn start(password: &str) -> Self {
        let dir = scratch_dir("redis-tls-cluster");
        let ca_file = certificates(&dir, "caching-code cluster CA");
        // Each node's TLS port and cluster bus port, all distinct.
        let all = free_ports(2 * MASTERS);
        let ports: Vec<u16> = all.iter().step_by(2).copied().collect();
        let mut children = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let (node_dir, mut args) = cluster_node(&dir, i, all[2 * i + 1]);
            args.extend(["--tls-cluster", "yes"].map(str::to_owned));
            children.push(spawn_tls_server(*port, password, &dir, &node_dir, &args));
        }
        let cluster = TlsCluster {
            ports,
            ca_file,
            password: password.to_owned(),
            dir,
            children,
        };
        for port in &cluster.ports {
            cluster.wait_for(*port, |_| true).await;
        }
        let create = Command::new(redis_cli())
            .args(["--tls", "--cacert"])
            .arg(&cluster.ca_file)
            .args(["-a", password, "--no-auth-warning", "--cluster", "create"])
            .args(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            create.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&create.stdout)
        );
        for port in &cluster.ports {
            cluster
                .wait_for(*port, |info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
                })
                .await;
        }
        cluster
    }

    /// The seed node, by the name its certificate carries.
    pub fn url(&self) -> String {
        format!("rediss://localhost:{}", self.ports[0])
    }

    /// A TLS connection to one node alone, trusting the cluster's CA.
    pub async fn node(&self, port: u16) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        tls_connection(port, &self.ca_file, &self.password).await
    }

    /// Waits until the node on `port` answers and its `CLUSTER INFO` satisfies `ready`.
    async fn wait_for(&self, port: u16, ready: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut conn) = self.node(port).await {
                let info: redis::RedisResult<String> = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await;
                if info.is_ok_and(|info| ready(&info)) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the TLS cluster node on port {port} is not ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `key`'s value, from whichever node holds it (the others answer `MOVED`).
    pub async fn get(&self, key: &str) -> Option<String> {
        for port in &self.ports {
            let mut conn = self.node(*port).await.expect("a node");
            if let Ok(value) = conn.get::<_, Option<String>>(key).await {
                return value;
            }
        }
        panic!("no node holds the slot of {key}");
    }

    /// Deletes `key` on the node that holds its slot (the others answer `MOVED`): how many
    /// keys it deleted.
    pub async fn del(&self, key: &str) -> i64 {
        let mut answers = Vec::new();
        for port in &self.ports {
            let mut conn = self.node(*port).await.expect("a node");
            match conn.del::<_, i64>(key).await {
                Ok(deleted) => answers.push(deleted),
                Err(e) => assert!(
                    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved),
                    "DEL {key} on port {port}: {e}"
                ),
            }
        }
        assert_eq!(answers.len(), 1, "one node holds the slot of {key}");
        answers[0]
    }

    /// Connections other than this one's on the node on `port`.
    pub async fn clients(&self, port: u16) -> usize {
        let mut conn = self.node(port).await.expect("a node");
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .expect("CLIENT LIST");
        list.lines()
            .filter(|l| !l.contains("cmd=client|list"))
            .count()
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
