//! dynoxide served over HTTP in-process, one fresh database per test, with every call the
//! app makes counted by operation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use shared::domain::Email;
use shared::store::keys::{self, Key};

/// Counts DynamoDB requests as they leave the client, by operation (`GetItem`, `Query`, ...):
/// every request, or only those a filter takes ([`CallCounter::only`]).
#[derive(Debug, Default, Clone)]
pub struct CallCounter {
    calls: Arc<Mutex<HashMap<String, u64>>>,
    only: Option<fn(&str, &[u8]) -> bool>,
}

impl CallCounter {
    /// A counter of the requests `counted` takes, told by their operation and body (the
    /// request's JSON, as it leaves the client).
    pub fn only(counted: fn(&str, &[u8]) -> bool) -> Self {
        CallCounter {
            only: Some(counted),
            ..Self::default()
        }
    }

    pub fn get(&self, operation: &str) -> u64 {
        self.calls
            .lock()
            .map(|m| m.get(operation).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.calls.lock().map(|m| m.values().sum()).unwrap_or(0)
    }

    pub fn reset(&self) {
        if let Ok(mut m) = self.calls.lock() {
            m.clear();
        }
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or("unknown");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        if let Some(counted) = self.only {
            if !counted(&operation, request.body().bytes().unwrap_or_default()) {
                return Ok(());
            }
        }
        if let Ok(mut m) = self.calls.lock() {
            *m.entry(operation).or_default() += 1;
        }
        Ok(())
    }
}

/// A DynamoDB API on a loopback port, its table created, and a counted client for it.
pub struct Dynamo {
    pub endpoint: String,
    pub client: Client,
    pub calls: CallCounter,
    server: tokio::task::JoinHandle<()>,
}

impl Dynamo {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let db = dynoxide::Database::memory().expect("in-memory dynoxide");
        let server = tokio::spawn(dynoxide::server::serve_on(listener, db));
        let calls = CallCounter::default();
        let client = client_for(&endpoint, Some(calls.clone()));
        create_table(&client, TABLE_NAME).await;
        calls.reset();
        Dynamo {
            endpoint,
            client,
            calls,
            server,
        }
    }
}

/// The table every test world creates (the template's `social`).
pub const TABLE_NAME: &str = "social";

/// An item as the table holds it.
pub type Item = HashMap<String, AttributeValue>;

impl Dynamo {
    /// The item under `key` ([`shared::store::keys`]), read straight from the table
    /// (strongly consistent), on [`Dynamo::client`]: one `GetItem` in [`Dynamo::calls`].
    pub async fn item(&self, key: Key) -> Option<Item> {
        let read = self
            .client
            .get_item()
            .table_name(TABLE_NAME)
            .set_key(Some(key))
            .consistent_read(true);
        read.send().await.expect("GetItem").item
    }

    /// The user item of `email`.
    pub async fn user_item(&self, email: &str) -> Option<Item> {
        self.item(keys::user_key(&Email::parse(email).expect("a valid email")))
            .await
    }

    /// The post item of `post_id` (not its comments).
    pub async fn post_item(&self, post_id: &str) -> Option<Item> {
        self.item(keys::post_key(post_id)).await
    }

    /// The idempotency record of `user_id`'s `Idempotency-Key` `key`.
    pub async fn idempotency_record(&self, user_id: &str, key: &str) -> Option<Item> {
        self.item(keys::idempotency_key(user_id, key)).await
    }

    /// Deletes the item under `key` alone, whatever it belongs to: a write that died
    /// half-way.
    pub async fn delete_item(&self, key: Key) {
        self.client
            .delete_item()
            .table_name(TABLE_NAME)
            .set_key(Some(key))
            .send()
            .await
            .expect("DeleteItem");
    }
}

impl Drop for Dynamo {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An SDK client for `endpoint` with dummy credentials (the emulator checks none), the
/// same timeouts and retries as production, and optionally a call counter.
pub fn client_for(endpoint: &str, counter: Option<CallCounter>) -> Client {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    use std::time::Duration;

    let mut builder = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_attempt_timeout(Duration::from_millis(1500))
                .operation_timeout(Duration::from_secs(3))
                .build(),
        );
    if let Some(counter) = counter {
        builder = builder.interceptor(counter);
    }
    Client::from_conf(builder.build())
}

/// The table as `template.yaml` declares it (the shared schema).
pub async fn create_table(client: &Client, name: &str) {
    shared::store::schema::create_table(client, name)
        .await
        .expect("create table");
}
