//! A Secrets Manager API on a loopback port: moto's server (`moto_server`, installed by
//! `scripts/install-deps`), which speaks `CreateSecret` and `GetSecretValue` over the same HTTP
//! API as AWS, so the functions' init reads its secrets through the real SDK client.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};

use crate::redis_server::free_port;

/// `moto_server` as a child process, killed on drop.
pub struct SecretsManager {
    pub endpoint: String,
    client: aws_sdk_secretsmanager::Client,
    child: Child,
}

/// The credentials and region every test client (and function process) signs with.
pub const TEST_ACCESS_KEY: &str = "AKIDTESTING";
pub const TEST_SECRET_KEY: &str = "test-secret-key";
pub const TEST_REGION: &str = "us-east-1";

impl SecretsManager {
    pub async fn start() -> Self {
        let port = free_port();
        let bin = std::env::var("MOTO_SERVER_BIN").unwrap_or_else(|_| "moto_server".to_owned());
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{bin} runs (pip install 'moto[server]': scripts/install-deps): {e}")
            });
        let endpoint = format!("http://127.0.0.1:{port}");
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(TEST_REGION))
            .credentials_provider(Credentials::new(
                TEST_ACCESS_KEY,
                TEST_SECRET_KEY,
                None,
                None,
                "test",
            ))
            .endpoint_url(&endpoint)
            .build();
        let server = SecretsManager {
            endpoint,
            client: aws_sdk_secretsmanager::Client::from_conf(config),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.client.list_secrets().send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// Creates a secret holding `value`; its ARN.
    pub async fn create_secret(&self, name: &str, value: &str) -> String {
        let out = self
            .client
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("CreateSecret");
        out.arn.expect("the new secret's ARN")
    }
}

impl Drop for SecretsManager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
