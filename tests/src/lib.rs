//! The test harness: real services, a fresh set per test.
//!
//! - [`RedisServer`]: a real `redis-server` on a free loopback port, owned by one test;
//!   [`RedisCluster`]: three of them as a Redis Cluster; [`TestRedis`]: whichever of the two
//!   this run's worlds use (`TEST_REDIS_MODE`).
//! - [`Dynamo`]: dynoxide, a DynamoDB emulator, served over HTTP in this process and reached
//!   through the real `aws-sdk-dynamodb` client; every call is counted by operation.
//! - [`TestEnv`]: both, the table created as the template creates it, an [`App`] wired to
//!   them, and a client that sends API Gateway events through `lambda_http`'s own
//!   deserializer into the function handlers.

pub mod contract;
pub mod dynamo;
pub mod dynamo_proxy;
pub mod events;
pub mod lambda_process;
pub mod logs;
pub mod redis_cluster;
pub mod redis_proxy;
pub mod redis_server;
pub mod runtime_api;
pub mod secrets_manager;
pub mod sync;
pub mod test_redis;
pub mod tls_redis;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use shared::config::{CacheMode, Config, Secret};
use shared::App;

pub use dynamo::{CallCounter, Dynamo};
pub use dynamo_proxy::DynamoProxy;
pub use events::{ApiRequest, ApiResponse};
pub use redis_cluster::RedisCluster;
pub use redis_proxy::{RedisProxy, WriteFault};
pub use redis_server::{RedisNode, RedisServer, SilentServer};
pub use sync::{InProcess, StreamSync};
pub use test_redis::{test_redis_mode, RedisLink, TestRedis};

/// Every EMF line the process's functions flushed so far ([`shared::metrics`]), in order. The
/// recorder and this buffer are installed by the first test world, before any invocation, so
/// a test can read what its own requests emitted (among other tests' lines).
pub fn emitted_metrics() -> String {
    String::from_utf8_lossy(&metrics_buffer().lock().expect("lock")).into_owned()
}

fn metrics_buffer() -> &'static std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    static BUFFER: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buffer.clone();
        shared::metrics::redirect(move || Box::new(SharedWriter(sink.clone())));
        shared::metrics::init();
        shared::metrics::init_done();
        buffer
    })
}

/// Appends to a shared buffer.
struct SharedWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The signing secret of every test app.
pub const TEST_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// A password that meets the contract's rules.
pub const PASSWORD: &str = "correct horse battery";

/// One test's world: its own Redis (a server, or a cluster: [`TestRedis`]), its own DynamoDB,
/// an app over both.
pub struct TestEnv {
    pub app: App,
    pub redis: TestRedis,
    pub dynamo: Dynamo,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// A fresh world with the test's own tweaks to the configuration.
    pub async fn with_config(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::in_mode(test_redis_mode(), tweak).await
    }

    /// A fresh world on a Redis of the given mode, whatever this run's: for tests of a
    /// scenario only one mode has (a standalone endpoint moved by a failover).
    pub async fn in_mode(mode: CacheMode, tweak: impl FnOnce(&mut Config)) -> Self {
        metrics_buffer();
        let redis = TestRedis::start_in(mode).await;
        let dynamo = Dynamo::start().await;
        let mut config = test_config(&redis.url(), &dynamo.endpoint);
        redis.configure(&mut config.cache);
        tweak(&mut config);
        let app = App::build(config, dynamo.client.clone(), Secret::new(TEST_SECRET), None).expect("app builds");
        TestEnv { app, redis, dynamo }
    }

    /// The configuration of a test app on this world's table and its Redis at `redis_url`, in
    /// this world's mode.
    pub fn config_for(&self, redis_url: &str) -> Config {
        let mut config = test_config(redis_url, &self.dynamo.endpoint);
        config.cache.mode = self.redis.mode();
        config
    }

    /// A world with long Redis and DynamoDB timeouts, for tests that check atomicity under
    /// heavy concurrency (a loaded 2-core machine), not latency.
    pub async fn patient() -> Self {
        use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
        let patient = |c: &mut Config| {
            c.cache.redis_timeout = Duration::from_secs(10);
            c.cache.redis_connect_timeout = Duration::from_secs(10);
        };
        let env = Self::with_config(patient).await;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(60))
            .operation_timeout(Duration::from_secs(60))
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(
            env.dynamo.client.config().to_builder().timeout_config(timeouts).build(),
        );
        let mut config = env.config_for(&env.redis.url());
        patient(&mut config);
        let app = App::build(config, client, Secret::new(TEST_SECRET), None).expect("app builds");
        TestEnv { app, ..env }
    }

    /// A world whose app reaches DynamoDB only through a [`DynamoProxy`] (every call still
    /// counted), with the same SDK timeouts and retries as production.
    pub async fn behind_dynamo_proxy() -> (Self, DynamoProxy) {
        let env = TestEnv::new().await;
        let proxy = DynamoProxy::start(&env.dynamo.endpoint).await;
        let client = dynamo::client_for(&proxy.endpoint, Some(env.dynamo.calls.clone()));
        let config = test_config(&env.redis.url(), &proxy.endpoint);
        let app = App::build(config, client, Secret::new(TEST_SECRET), None).expect("app builds");
        (TestEnv { app, ..env }, proxy)
    }

    /// Sends a request through the function that serves its path, as API Gateway would.
    pub async fn send(&self, request: ApiRequest) -> ApiResponse {
        send_to(&self.app, request).await
    }

    /// Deserializes a raw event with `lambda_http` and runs it through the right handler.
    pub async fn invoke_event(&self, event: &str, path: &str) -> ApiResponse {
        invoke_event(&self.app, event, path).await
    }

    /// Another Lambda instance of the functions on this world's table: its own DynamoDB client
    /// and its own connection to the Redis at `redis_url` (this world's, or a proxy in front of
    /// it), as two instances in production share nothing but the services.
    pub fn instance(&self, redis_url: &str) -> App {
        self.instance_with(redis_url, |_| {})
    }

    /// The same, with the test's own tweaks to that instance's configuration.
    pub fn instance_with(&self, redis_url: &str, tweak: impl FnOnce(&mut Config)) -> App {
        let mut config = self.config_for(redis_url);
        tweak(&mut config);
        let client = dynamo::client_for(&self.dynamo.endpoint, None);
        App::build(config, client, Secret::new(TEST_SECRET), None).expect("app builds")
    }

    /// Another instance whose Redis link is `link` (a proxy in front of every node).
    pub fn instance_through(&self, link: &RedisLink) -> App {
        self.instance_with(&link.url(), |c| link.configure(&mut c.cache))
    }

    pub async fn register(&self, email: &str, name: &str) -> ApiResponse {
        self.send(ApiRequest::post("/users").json(json!({"email": email, "name": name, "password": PASSWORD}))).await
    }

    pub async fn login(&self, email: &str) -> ApiResponse {
        self.send(ApiRequest::post("/auth/login").json(json!({"email": email, "password": PASSWORD}))).await
    }

    /// Registers a new user with a unique email and logs in: `(token, user)`.
    pub async fn new_user(&self, name: &str) -> (String, Value) {
        let email = unique_email(name);
        let registered = self.register(&email, name).await;
        assert_eq!(registered.status, 201, "register: {}", registered.body);
        let login = self.login(&email).await;
        assert_eq!(login.status, 200, "login: {}", login.body);
        let token = login.body["token"].as_str().expect("token").to_owned();
        (token, registered.body)
    }

    /// Creates a post as `token`'s user and returns it.
    pub async fn new_post(&self, token: &str, caption: &str) -> Value {
        let res = self.send(ApiRequest::post("/posts").bearer(token).json(json!({"caption": caption}))).await;
        assert_eq!(res.status, 201, "create post: {}", res.body);
        res.body
    }

    /// The sort keys of partition `POST#<post_id>` (the post and its comments) as DynamoDB
    /// holds them, read directly, every page.
    pub async fn post_partition(&self, post_id: &str) -> Vec<String> {
        let mut sort_keys = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .dynamo
                .client
                .query()
                .table_name("social")
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(format!("POST#{post_id}")))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("query partition");
            let page = out.items().iter().filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned());
            sort_keys.extend(page);
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return sort_keys,
            }
        }
    }
}

/// Sends a request to `app` through the function that serves its path, as API Gateway would.
pub async fn send_to(app: &App, request: ApiRequest) -> ApiResponse {
    let event = request.to_v2_event();
    invoke_event(app, &event.to_string(), &request.path).await
}

/// Sends a request to `app` as Lambda invocation `request_id`: with the invocation context the
/// runtime attaches to each event, so logs name it as they do in Lambda.
pub async fn send_as(app: &App, request: ApiRequest, request_id: &str) -> ApiResponse {
    let mut context = lambda_runtime::Context::default();
    context.request_id = request_id.to_owned();
    context.xray_trace_id = Some(trace_id_of(request_id));
    invoke_with(app, &request.to_v2_event().to_string(), &request.path, Some(context)).await
}

/// The X-Ray trace id [`send_as`] gives invocation `request_id`.
pub fn trace_id_of(request_id: &str) -> String {
    format!("Root=1-00000000-{request_id};Sampled=0")
}

/// Deserializes a raw event with `lambda_http` and runs it through `app`'s right handler.
pub async fn invoke_event(app: &App, event: &str, path: &str) -> ApiResponse {
    invoke_with(app, event, path, None).await
}

async fn invoke_with(app: &App, event: &str, path: &str, context: Option<lambda_runtime::Context>) -> ApiResponse {
    use lambda_http::RequestExt;
    let req = lambda_http::request::from_str(event).expect("lambda_http deserializes the event");
    let req = match context {
        Some(context) => req.with_lambda_context(context),
        None => req,
    };
    let response: Response<Body> = match function_for(path) {
        "users" => users_fn::handle(app, req).await,
        "comments" => comments_fn::handle(app, req).await,
        _ => posts_fn::handle(app, req).await,
    };
    ApiResponse::from(response)
}

/// The handler of the function that serves `req`'s path, as API Gateway routes it: what the
/// `lambda-app` binary runs.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    match function_for(req.uri().path()) {
        "users" => users_fn::handle(app, req).await,
        "comments" => comments_fn::handle(app, req).await,
        _ => posts_fn::handle(app, req).await,
    }
}

/// The configuration of a test app: short timeouts so fault tests end fast.
pub fn test_config(redis_url: &str, dynamo_endpoint: &str) -> Config {
    let mut config = Config::from_lookup(|_| None).expect("defaults are valid");
    config.cache.redis_url = redis_url.to_owned();
    config.table.dynamodb_endpoint = Some(dynamo_endpoint.to_owned());
    config.table.table_name = "social".to_owned();
    config.cache.redis_timeout = Duration::from_millis(50);
    config.cache.redis_connect_timeout = Duration::from_millis(100);
    config
}

/// Which function serves a path, as `template.yaml` wires it.
pub fn function_for(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["users", ..] | ["auth", ..] => "users",
        ["posts", _, "comments", ..] => "comments",
        _ => "posts",
    }
}

/// A new, unique, valid email.
pub fn unique_email(hint: &str) -> String {
    let clean: String = hint.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase();
    format!("{clean}.{}@example.com", ulid::Ulid::new().to_string().to_lowercase())
}
