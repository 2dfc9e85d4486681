//! The stream's consumers as they run in production, in the test process: the table's DynamoDB
//! stream (dynoxide's), read by the local event source mapping ([`stream_poller::Poller`]),
//! one mapping per consumer, feeding the real `cache-sync` and `upkeep` handlers, each with its
//! own Redis connection and DynamoDB client.

use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use cache_sync_fn::CacheSync;
use lambda_runtime::{Context, LambdaEvent};
use shared::cache::RedisCache;
use shared::config::Config;
use shared::store::Store;
use stream_poller::{Invoke, Poller, PollerConfig, StreamApi};

/// `cache-sync`'s handler called in this process, as the Lambda runtime would call it.
pub struct InProcess {
    pub sync: CacheSync,
}

impl InProcess {
    /// A `cache-sync` instance with its own connection to `redis_url` and its own client for the
    /// table behind `dynamo_endpoint`.
    pub fn new(redis_url: &str, dynamo_endpoint: &str) -> Self {
        Self::with_config(&crate::test_config(redis_url, dynamo_endpoint))
    }

    pub fn with_config(config: &Config) -> Self {
        let endpoint = config
            .table
            .dynamodb_endpoint
            .as_deref()
            .expect("a test table endpoint");
        let cache = RedisCache::new(&config.cache, None).expect("cache-sync's cache builds");
        let store = Store::new(
            crate::dynamo::client_for(endpoint, None),
            config.table.table_name.clone(),
        );
        InProcess {
            sync: CacheSync::new(cache, store),
        }
    }
}

/// `upkeep`'s handler called in this process, as the Lambda runtime would call it.
pub struct UpkeepInProcess {
    pub upkeep: upkeep_fn::Upkeep,
}

impl UpkeepInProcess {
    pub fn with_config(config: &Config) -> Self {
        let endpoint = config
            .table
            .dynamodb_endpoint
            .as_deref()
            .expect("a test table endpoint");
        Self::with_client(config, crate::dynamo::client_for(endpoint, None))
    }

    /// An `upkeep` instance whose table client is `client` (with the test's interceptors).
    pub fn with_client(config: &Config, client: aws_sdk_dynamodb::Client) -> Self {
        let cache = RedisCache::new(&config.cache, None).expect("upkeep's cache builds");
        let store = Store::new(client, config.table.table_name.clone());
        let posts = shared::cache::Posts::new(store.clone(), cache);
        UpkeepInProcess {
            upkeep: upkeep_fn::Upkeep { store, posts },
        }
    }
}

impl Invoke for UpkeepInProcess {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, String> {
        upkeep_fn::handle(&self.upkeep, LambdaEvent::new(event, Context::default()))
            .await
            .map_err(|e| e.to_string())
    }
}

impl Invoke for InProcess {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, String> {
        cache_sync_fn::handle(&self.sync, LambdaEvent::new(event, Context::default()))
            .await
            .map_err(|e| e.to_string())
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
    Poller::new(
        StreamApi::new(dynamo_endpoint),
        crate::TABLE_NAME,
        test_poller_config(),
    )
    .await
    .expect("the table has a stream")
}

/// The stream's consumers running in the background until dropped: `cache-sync`, and (unless
/// left out) `upkeep`, each behind its own mapping, as two event source mappings on one stream.
pub struct StreamSync {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl StreamSync {
    /// Starts reading the stream of the table `config` names from its start, bringing the
    /// Redis it names to the table's state through `cache-sync`, and keeping the table's
    /// counts and sweeps through `upkeep`. The whole configuration, not a URL: a sync that took
    /// a cluster node for a standalone server would fail every write on the other nodes' slots
    /// (`MOVED`). [`crate::TestEnv::stream_sync`] is the usual way.
    pub async fn start(config: &Config) -> Self {
        let endpoint = config
            .table
            .dynamodb_endpoint
            .as_deref()
            .expect("a test table endpoint");
        let sync = tokio::spawn(poller(endpoint).await.run(InProcess::with_config(config)));
        let upkeep = tokio::spawn(
            poller(endpoint)
                .await
                .run(UpkeepInProcess::with_config(config)),
        );
        StreamSync {
            tasks: vec![sync, upkeep],
        }
    }

    /// `cache-sync` alone: for tests of the sync that must see no other consumer's writes.
    pub async fn cache_sync_only(config: &Config) -> Self {
        let endpoint = config
            .table
            .dynamodb_endpoint
            .as_deref()
            .expect("a test table endpoint");
        let sync = tokio::spawn(poller(endpoint).await.run(InProcess::with_config(config)));
        StreamSync { tasks: vec![sync] }
    }
}

impl Drop for StreamSync {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Where each of the stream's consumers got to in [`settle`].
#[derive(Default)]
pub struct Positions {
    cache_sync: Option<Poller>,
    upkeep: Option<Poller>,
}

/// Applies every record the table's stream holds from where the last call stopped, through
/// both its consumers (`upkeep`, then `cache-sync`, each behind its own mapping, as in
/// production), until the stream is quiet: what a test calls to let the counts, the sweeps and
/// the cache catch up, deterministically, before it reads them.
pub async fn settle(config: &Config, positions: &Mutex<Positions>) {
    let endpoint = config
        .table
        .dynamodb_endpoint
        .as_deref()
        .expect("a test table endpoint");
    let taken = std::mem::take(&mut *positions.lock().expect("lock"));
    let mut upkeep_poller = match taken.upkeep {
        Some(poller) => poller,
        None => poller(endpoint).await,
    };
    let mut sync_poller = match taken.cache_sync {
        Some(poller) => poller,
        None => poller(endpoint).await,
    };
    let upkeep = UpkeepInProcess::with_config(config);
    let sync = InProcess::with_config(config);
    // The upkeep's own writes (a count, a sweep's progress) are records too: until both are
    // quiet.
    for _ in 0..3 {
        upkeep_poller
            .drain(&upkeep, Duration::from_millis(30), Duration::from_secs(60))
            .await
            .expect("the stream drained through upkeep");
        sync_poller
            .drain(&sync, Duration::from_millis(30), Duration::from_secs(60))
            .await
            .expect("the stream drained through cache-sync");
    }
    *positions.lock().expect("lock") = Positions {
        cache_sync: Some(sync_poller),
        upkeep: Some(upkeep_poller),
    };
}

/// A function that records what it is given and answers "all done".
#[derive(Default)]
struct Capture {
    records: Mutex<Vec<EventRecord>>,
}

impl Invoke for Capture {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, String> {
        self.records.lock().expect("lock").extend(event.records);
        Ok(DynamoDbEventResponse::default())
    }
}

/// Every record the table's stream (behind `dynamo_endpoint`) holds so far.
pub async fn stream_records(dynamo_endpoint: &str) -> Vec<EventRecord> {
    let capture = Capture::default();
    let mut poller = poller(dynamo_endpoint).await;
    poller
        .drain(&capture, Duration::from_millis(50), Duration::from_secs(10))
        .await
        .expect("drained");
    capture.records.into_inner().expect("lock")
}

/// The records of `email`'s user item among `records` (not of the tombstone its deletes leave
/// beside it, which no stream consumer reads).
pub fn user_records(records: &[EventRecord], email: &str) -> Vec<EventRecord> {
    let pk =
        shared::store::keys::user_pk(&shared::domain::Email::parse(email).expect("a valid email"));
    records
        .iter()
        .filter(|r| matches!(r.change.keys.get("pk"), Some(serde_dynamo::AttributeValue::S(s)) if *s == pk))
        .filter(|r| shared::store::is_user_key(&r.change.keys))
        .cloned()
        .collect()
}
