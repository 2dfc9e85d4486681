//! The stream sync as it runs in production, in the test process: the table's DynamoDB stream
//! (dynoxide's), read by the local event source mapping ([`stream_poller::Poller`]), feeding
//! the real `cache-sync` handler with its own Redis connection.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{Context, LambdaEvent};
use shared::cache::RedisCache;
use shared::config::{CacheConfig, Config};
use stream_poller::{Invoke, Poller, PollerConfig, StreamApi};

/// `cache-sync`'s handler called in this process, as the Lambda runtime would call it.
pub struct InProcess {
    pub cache: RedisCache,
}

impl InProcess {
    /// A `cache-sync` instance with its own connection to `redis_url`.
    pub fn new(redis_url: &str) -> Self {
        Self::with_config(&crate::test_config(redis_url, "http://unused").cache)
    }

    pub fn with_config(config: &CacheConfig) -> Self {
        InProcess { cache: RedisCache::new(config, None).expect("cache-sync's cache builds") }
    }
}

impl Invoke for InProcess {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, String> {
        cache_sync_fn::handle(&self.cache, LambdaEvent::new(event, Context::default())).await.map_err(|e| e.to_string())
    }
}

/// The mapping's settings for tests: short waits, so a change lands within tens of ms.
pub fn test_poller_config() -> PollerConfig {
    PollerConfig {
        idle_wait: Duration::from_millis(20),
        retry_wait: Duration::from_millis(50),
        start_at_latest: false,
        ..PollerConfig::default()
    }
}

/// A poller over the table behind `dynamo_endpoint`, from the start of its stream.
pub async fn poller(dynamo_endpoint: &str) -> Poller {
    Poller::new(StreamApi::new(dynamo_endpoint), "social", test_poller_config()).await.expect("the table has a stream")
}

/// The stream sync running in the background until dropped.
pub struct StreamSync {
    task: tokio::task::JoinHandle<()>,
}

impl StreamSync {
    /// Starts reading `dynamo_endpoint`'s stream from its start, applying every record to
    /// the Redis at `redis_url` through `cache-sync`.
    pub async fn start(dynamo_endpoint: &str, redis_url: &str) -> Self {
        let poller = poller(dynamo_endpoint).await;
        let function = InProcess::new(redis_url);
        StreamSync { task: tokio::spawn(poller.run(function)) }
    }

    /// The same, with the cache-sync function's own cache configuration.
    pub async fn start_with(dynamo_endpoint: &str, config: &Config) -> Self {
        let poller = poller(dynamo_endpoint).await;
        let function = InProcess::with_config(&config.cache);
        StreamSync { task: tokio::spawn(poller.run(function)) }
    }
}

impl Drop for StreamSync {
    fn drop(&mut self) {
        self.task.abort();
    }
}
