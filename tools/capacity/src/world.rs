//! The local stack the traffic runs on: a real redis-server (watched by [`Monitor`]), dynoxide
//! ([`Emulator`]) behind the [`Recorder`], the app and the stream consumers both reaching the
//! table only through the recorder; and the requests the phases send, through the real
//! handlers as API Gateway events (`integration_tests::send_to`).

use std::time::Duration;

use integration_tests::{ApiRequest, ApiResponse, TestRedis, PASSWORD, TABLE_NAME};
use serde_json::{json, Value};
use shared::config::{CacheMode, Config, Secret};
use shared::App;

use crate::consumers::Consumers;
use crate::emulator::Emulator;
use crate::monitor::Monitor;
use crate::recorder::Recorder;
use crate::wire::Wire;

pub struct World {
    pub app: App,
    pub redis: TestRedis,
    pub emulator: Emulator,
    pub recorder: Recorder,
    pub monitor: Monitor,
    pub consumers: Consumers,
    /// Straight to the emulator, for the tool's own reads and bulk writes.
    pub wire: Wire,
}

impl World {
    pub async fn start() -> Result<Self, String> {
        let redis = TestRedis::start_in(CacheMode::Standalone).await;
        let emulator = Emulator::start(TABLE_NAME).await?;
        let recorder = Recorder::start(&emulator.endpoint, TABLE_NAME).await?;
        let config = app_config(&redis, &recorder.endpoint);
        let app = App::build(
            config.clone(),
            patient_client(&recorder.endpoint),
            Secret::new(integration_tests::TEST_SECRET),
            None,
        )
        .map_err(|e| format!("the app does not build: {e}"))?;
        let address = redis
            .url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let monitor = Monitor::start(&address).await?;
        let consumers = Consumers::start(&config).await?;
        let wire = Wire::new(&emulator.endpoint);
        Ok(World {
            app,
            redis,
            emulator,
            recorder,
            monitor,
            consumers,
            wire,
        })
    }

    /// Sends `request` through the function that serves its path, as API Gateway would.
    pub async fn send(&self, request: ApiRequest) -> ApiResponse {
        integration_tests::send_to(&self.app, request).await
    }

    /// Registers a user with a unique email and logs in: `(token, user)`.
    pub async fn new_user(&self, name: &str) -> Result<(String, Value), String> {
        let email = integration_tests::unique_email(name);
        let registered = self
            .send(
                ApiRequest::post("/users")
                    .json(json!({"email": email, "name": name, "password": PASSWORD})),
            )
            .await;
        if registered.status != 201 {
            return Err(format!(
                "register: {} {}",
                registered.status, registered.raw_body
            ));
        }
        let login = self
            .send(
                ApiRequest::post("/auth/login").json(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        let token = login.body["token"]
            .as_str()
            .ok_or(format!("login: {} {}", login.status, login.raw_body))?
            .to_owned();
        Ok((token, registered.body))
    }

    /// Creates a post as `token`'s user; its id.
    pub async fn new_post(&self, token: &str, caption: &str) -> Result<String, String> {
        let res = self
            .send(
                ApiRequest::post("/posts")
                    .bearer(token)
                    .json(json!({"caption": caption})),
            )
            .await;
        match res.body["id"].as_str() {
            Some(id) if res.status == 201 => Ok(id.to_owned()),
            _ => Err(format!("create post: {} {}", res.status, res.raw_body)),
        }
    }
}

/// The harness's test configuration on this Redis, with the table reached through `endpoint`.
fn app_config(redis: &TestRedis, endpoint: &str) -> Config {
    let mut config = integration_tests::test_config(&redis.url(), endpoint);
    redis.configure(&mut config.cache);
    config
}

/// A client for `endpoint` with production's retries and long timeouts: the recorder reads
/// each item before and after a write, and a debug build of the emulator answers a 1 MB page
/// slowly; what is measured here is capacity, not latency.
fn patient_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    let config = integration_tests::dynamo::client_for(endpoint, None)
        .config()
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}
