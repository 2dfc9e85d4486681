//! A `redis-server` that speaks only TLS and wants an AUTH token, as ElastiCache with in-transit
//! encryption does, with a throwaway CA made by the test ([`TestCa`], `rcgen`): the production
//! connection path (`rediss://`, rustls, a password) run for real.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::redis_server::{free_port, scratch_dir};

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

/// `redis-server` on a free loopback port, TLS only (`--port 0 --tls-port`), with a
/// certificate for `localhost` and `127.0.0.1` from its own [`TestCa`], and `requirepass`.
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
        let ca = TestCa::new("caching-code test CA");
        let (cert, key) = ca.server_certificate(&["localhost", "127.0.0.1"]);
        let ca_file = dir.join("ca.pem");
        ca.write(&ca_file);
        std::fs::write(dir.join("server.pem"), cert).expect("write the certificate");
        std::fs::write(dir.join("server.key"), key).expect("write the key");
        let port = free_port();
        let child = Command::new(
            std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned()),
        )
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
            "--requirepass",
            password,
        ])
        .arg("--dir")
        .arg(&dir)
        .arg("--tls-cert-file")
        .arg(dir.join("server.pem"))
        .arg("--tls-key-file")
        .arg(dir.join("server.key"))
        .arg("--tls-ca-cert-file")
        .arg(&ca_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs");
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
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let info = redis::IntoConnectionInfo::into_connection_info(self.url())?;
        let settings = info.redis_settings().clone().set_password(password);
        let info = info.set_redis_settings(settings);
        let roots = std::fs::read(&self.ca_file).map_err(redis::RedisError::from)?;
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(roots),
        };
        redis::Client::build_with_tls(info, certificates)?
            .get_multiplexed_async_connection()
            .await
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
