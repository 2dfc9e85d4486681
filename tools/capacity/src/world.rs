//! The local stack the traffic runs on: a real redis-server (watched by [`Monitor`]), dynoxide
//! (the harness's `Dynamo`) behind the [`Recorder`], the app (`TestEnv`) and the stream
//! consumers both reaching the table only through the recorder.

use std::time::Duration;

use integration_tests::{Dynamo, TestEnv, TestRedis, TABLE_NAME};
use shared::config::{CacheMode, Config, Secret};
use shared::App;

use crate::consumers::Consumers;
use crate::monitor::Monitor;
use crate::recorder::Recorder;
use crate::wire::Wire;

pub struct World {
    pub env: TestEnv,
    pub recorder: Recorder,
    pub monitor: Monitor,
    pub consumers: Consumers,
    /// Straight to the emulator, for the tool's own reads and bulk writes.
    pub wire: Wire,
}

impl World {
    pub async fn start() -> Result<Self, String> {
        let redis = TestRedis::start_in(CacheMode::Standalone).await;
        let dynamo = Dynamo::start().await;
        let recorder = Recorder::start(&dynamo.endpoint, TABLE_NAME).await?;
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
        let wire = Wire::new(&dynamo.endpoint);
        Ok(World {
            env: TestEnv { app, redis, dynamo },
            recorder,
            monitor,
            consumers,
            wire,
        })
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
