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

pub mod bounds;
pub mod cache_state;
pub mod contract;
pub mod dynamo;
pub mod dynamo_proxy;
pub mod emf;
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
pub mod tokens;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use shared::config::{CacheMode, Config, Secret};
use shared::App;

pub use dynamo::{CallCounter, Dynamo, TABLE_NAME};
pub use dynamo_proxy::DynamoProxy;
pub use events::{ApiRequest, ApiResponse};
pub use redis_cluster::RedisCluster;
pub use redis_proxy::{RedisProxy, WriteFault};
pub use redis_server::{closed_port, free_port, RedisNode, RedisServer};
pub use sync::{InProcess, StreamSync};
pub use test_redis::{cache_key, test_redis_mode, RedisLink, TestRedis};

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
    /// Where [`TestEnv::settle`] got to in the table's stream (none yet: from its start).
    pub stream_positions: std::sync::Mutex<sync::Positions>,
}

impl TestEnv {
    /// A fresh world: its own Redis (this run's mode), its own DynamoDB, an app over both.
    pub async fn new() -> Self {
        Self::builder().build().await
    }

    /// How a world is built, for a test that wants more than [`TestEnv::new`]: its own
    /// configuration, interceptors on the app's DynamoDB client, long timeouts, a proxy in front
    /// of DynamoDB. The one place a test world's app is built.
    pub fn builder<'a>() -> WorldBuilder<'a> {
        WorldBuilder::default()
    }

    /// A world of parts built elsewhere (a tool's own emulator or recorder in front of it).
    pub fn from_parts(app: App, redis: TestRedis, dynamo: Dynamo) -> Self {
        TestEnv {
            app,
            redis,
            dynamo,
            stream_positions: std::sync::Mutex::default(),
        }
    }

    /// A fresh world with the test's own tweaks to the configuration.
    pub async fn with_config(tweak: impl FnOnce(&mut Config) + Send) -> Self {
        Self::builder().config(tweak).build().await
    }

    /// A fresh world on a Redis of the given mode, whatever this run's: for tests of a
    /// scenario only one mode has (a standalone endpoint moved by a failover).
    pub async fn in_mode(mode: CacheMode, tweak: impl FnOnce(&mut Config) + Send) -> Self {
        Self::builder().mode(mode).config(tweak).build().await
    }

    /// A world with long Redis and DynamoDB timeouts ([`WorldBuilder::patient`]).
    pub async fn patient() -> Self {
        Self::builder().patient().build().await
    }

    /// A world whose app reaches DynamoDB only through a [`DynamoProxy`] (every call still
    /// counted), with the same SDK timeouts and retries as production.
    pub async fn behind_dynamo_proxy() -> (Self, DynamoProxy) {
        Self::builder().behind_dynamo_proxy().await
    }

    /// The configuration of a test app on this world's table and its Redis at `redis_url`, in
    /// this world's mode.
    pub fn config_for(&self, redis_url: &str) -> Config {
        let mut config = test_config(redis_url, &self.dynamo.endpoint);
        config.cache.mode = self.redis.mode();
        config
    }

    /// The stream sync on this world's table and Redis, in this world's mode, running until
    /// dropped.
    pub async fn stream_sync(&self) -> StreamSync {
        StreamSync::start(&self.config_for(&self.redis.url())).await
    }

    /// Sends a request through the function that serves its path, as API Gateway would.
    /// In this run's [`CacheState`](cache_state::CacheState): with the cache emptied first
    /// when the state is `empty`.
    pub async fn send(&self, request: ApiRequest) -> ApiResponse {
        cache_state::before_request(cache_state::test_cache_state(), &self.redis).await;
        send_to(&self.app, request).await
    }

    /// Deserializes a raw event with `lambda_http` and runs it through the right handler.
    pub async fn invoke_event(&self, event: &str, path: &str) -> ApiResponse {
        cache_state::before_request(cache_state::test_cache_state(), &self.redis).await;
        invoke_event(&self.app, event, path).await
    }

    /// Another Lambda instance of the functions on this world's table: its own DynamoDB client
    /// and its own connection to the Redis at `redis_url` (this world's, or a proxy in front of
    /// it), as two instances in production share nothing but the services.
    pub fn instance(&self, redis_url: &str) -> App {
        self.instance_with(redis_url, |_| {})
    }

    /// The same, with the test's own tweaks to that instance's configuration.
    /// In this run's [`CacheState`](cache_state::CacheState): no Redis at all when it is `down`.
    pub fn instance_with(&self, redis_url: &str, tweak: impl FnOnce(&mut Config)) -> App {
        let state = cache_state::test_cache_state();
        let mut config = self.config_for(&cache_state::app_redis_url(state, redis_url));
        tweak(&mut config);
        let client = dynamo::client_for(&self.dynamo.endpoint, None);
        App::build(config, client, Secret::new(TEST_SECRET), None).expect("app builds")
    }

    /// Another instance whose Redis link is `link` (a proxy in front of every node).
    pub fn instance_through(&self, link: &RedisLink) -> App {
        self.instance_with(&link.url(), |c| link.configure(&mut c.cache))
    }

    /// Sends `request` as [`TestEnv::send`] does, and how long the answer took.
    pub async fn timed(&self, request: ApiRequest) -> (ApiResponse, Duration) {
        let started = Instant::now();
        let res = self.send(request).await;
        (res, started.elapsed())
    }

    /// `GET /users/me` as `token`'s user.
    pub async fn me(&self, token: &str) -> ApiResponse {
        self.send(ApiRequest::me().bearer(token)).await
    }

    /// Lets the stream's consumers catch up: every record of the table's stream so far (and
    /// those their own writes make) applied through `upkeep` and `cache-sync`, as their event
    /// source mappings would within the second `API.md` allows. Deterministic, for tests that
    /// read counts or a swept post.
    pub async fn settle(&self) {
        sync::settle(&self.config_for(&self.redis.url()), &self.stream_positions).await;
    }

    /// The `commentCount` of post `post_id`, as `token`'s user reads it (`GET /posts/{postId}`),
    /// once the upkeep has caught up ([`TestEnv::settle`]).
    pub async fn comment_count(&self, token: &str, post_id: &str) -> u64 {
        self.settle().await;
        let res = self
            .send(ApiRequest::get(&format!("/posts/{post_id}")).bearer(token))
            .await;
        assert_eq!(res.status, 200, "{}", res.raw_body);
        res.body["commentCount"].as_u64().expect("commentCount")
    }

    pub async fn register(&self, email: &str, name: &str) -> ApiResponse {
        self.send(
            ApiRequest::post("/users")
                .json(json!({"email": email, "name": name, "password": PASSWORD})),
        )
        .await
    }

    pub async fn login(&self, email: &str) -> ApiResponse {
        self.send(
            ApiRequest::post("/auth/login").json(json!({"email": email, "password": PASSWORD})),
        )
        .await
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
        let res = self
            .send(
                ApiRequest::post("/posts")
                    .bearer(token)
                    .json(json!({"caption": caption})),
            )
            .await;
        assert_eq!(res.status, 201, "create post: {}", res.body);
        res.body
    }

    /// Every page of the list at `list` (`/posts` or `/posts/{postId}/comments`), `limit` at a
    /// time, following `nextCursor` as a client does: the ids in order, and each page's size.
    /// Checks each page's shape on the way.
    pub async fn walk(&self, token: &str, list: &str, limit: usize) -> (Vec<String>, Vec<usize>) {
        let (mut ids, mut sizes, mut cursor) = (Vec::new(), Vec::new(), None::<String>);
        loop {
            let path = match &cursor {
                None => format!("{list}?limit={limit}"),
                Some(c) => format!("{list}?limit={limit}&cursor={c}"),
            };
            let res = self.send(ApiRequest::get(&path).bearer(token)).await;
            assert_eq!(res.status, 200, "{path}: {}", res.raw_body);
            assert_eq!(
                keys_of(&res.body),
                ["items", "nextCursor"],
                "a page is its items and the next cursor"
            );
            let items = res.body["items"].as_array().expect("items");
            sizes.push(items.len());
            ids.extend(items.iter().map(id_of));
            match &res.body["nextCursor"] {
                Value::Null => return (ids, sizes),
                Value::String(c) => cursor = Some(c.clone()),
                other => panic!("nextCursor must be a string or null: {other}"),
            }
            assert!(sizes.len() < 1000, "paging does not end");
        }
    }

    /// The sort keys of every item of a post as DynamoDB holds them, read directly, every page:
    /// its partition `POST#<post_id>` (the post, legacy comments, a sweep's progress) and its
    /// comment shards `POST#<post_id>#<k>`.
    pub async fn post_partition(&self, post_id: &str) -> Vec<String> {
        let mut partitions = vec![shared::store::keys::post_pk(post_id)];
        partitions.extend(
            (0..shared::store::keys::COMMENT_SHARDS)
                .map(|shard| format!("{}#{shard}", shared::store::keys::post_pk(post_id))),
        );
        let mut sort_keys = Vec::new();
        for pk in partitions {
            let mut start = None;
            loop {
                let out = self
                    .dynamo
                    .client
                    .query()
                    .table_name(TABLE_NAME)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .expect("query partition");
                let page = out
                    .items()
                    .iter()
                    .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned());
                sort_keys.extend(page);
                match out.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => break,
                }
            }
        }
        sort_keys
    }
}

/// A test's change to its app's configuration.
type ConfigTweak<'a> = Box<dyn FnOnce(&mut Config) + Send + 'a>;

/// The choices a test makes about its world ([`TestEnv::builder`]).
#[derive(Default)]
pub struct WorldBuilder<'a> {
    mode: Option<CacheMode>,
    redis: Option<TestRedis>,
    tweaks: Vec<ConfigTweak<'a>>,
    interceptors: Vec<aws_smithy_runtime_api::client::interceptors::SharedInterceptor>,
    patient: bool,
    deployed: bool,
}

impl<'a> WorldBuilder<'a> {
    /// On a Redis of this mode, whatever this run's.
    pub fn mode(mut self, mode: CacheMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// On this Redis (a server or a cluster the test started).
    pub fn redis(mut self, redis: TestRedis) -> Self {
        self.redis = Some(redis);
        self
    }

    /// With the test's own tweak to the app's configuration (after the harness's own).
    pub fn config(mut self, tweak: impl FnOnce(&mut Config) + Send + 'a) -> Self {
        self.tweaks.push(Box::new(tweak));
        self
    }

    /// With `interceptor` on the app's DynamoDB client (to count, delay or fail calls).
    pub fn interceptor(
        mut self,
        interceptor: impl aws_smithy_runtime_api::client::interceptors::Intercept + 'static,
    ) -> Self {
        self.interceptors.push(
            aws_smithy_runtime_api::client::interceptors::SharedInterceptor::new(interceptor),
        );
        self
    }

    /// With long Redis and DynamoDB timeouts, for tests that check atomicity under heavy
    /// concurrency (a loaded 2-core machine), not latency.
    pub fn patient(mut self) -> Self {
        self.patient = true;
        self
    }

    /// Configured as a deployment is (the defaults, not the tests' short connect timeout), and
    /// in a release build too: what the benchmark measures.
    pub fn as_deployed(mut self) -> Self {
        self.deployed = true;
        self
    }

    pub async fn build(self) -> TestEnv {
        self.build_on(None).await.0
    }

    /// The world, with its app's DynamoDB reached only through a [`DynamoProxy`].
    pub async fn behind_dynamo_proxy(self) -> (TestEnv, DynamoProxy) {
        let (env, proxy) = self.build_on(Some(())).await;
        (env, proxy.expect("a proxy"))
    }

    async fn build_on(self, proxied: Option<()>) -> (TestEnv, Option<DynamoProxy>) {
        let redis = match self.redis {
            Some(redis) => redis,
            None => TestRedis::start_in(self.mode.unwrap_or_else(test_redis_mode)).await,
        };
        let dynamo = Dynamo::start().await;
        let proxy = match proxied {
            Some(()) => Some(DynamoProxy::start(&dynamo.endpoint).await),
            None => None,
        };
        let endpoint = proxy
            .as_ref()
            .map_or(dynamo.endpoint.as_str(), |p| p.endpoint.as_str());
        let mut config = if self.deployed {
            deployed_config(&redis, endpoint)
        } else {
            test_config(&redis.url(), endpoint)
        };
        redis.configure(&mut config.cache);
        let state = cache_state::test_cache_state();
        if state == cache_state::CacheState::Down {
            let url = cache_state::app_redis_url(state, &redis.url());
            config.cache.redis_url = shared::config::RedisUrl::parse(&url).expect("a Redis URL");
        }
        let mut client = dynamo::client_for(endpoint, Some(dynamo.calls.clone()))
            .config()
            .to_builder();
        for interceptor in self.interceptors {
            client.push_interceptor(interceptor);
        }
        if self.patient {
            use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
            config.cache.redis_timeout = Duration::from_secs(10);
            config.cache.redis_connect_timeout = Duration::from_secs(10);
            client = client.timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .operation_timeout(Duration::from_secs(60))
                    .build(),
            );
        }
        for tweak in self.tweaks {
            tweak(&mut config);
        }
        let client = aws_sdk_dynamodb::Client::from_conf(client.build());
        let app = App::build(config, client, Secret::new(TEST_SECRET), None).expect("app builds");
        (
            TestEnv {
                app,
                redis,
                dynamo,
                stream_positions: std::sync::Mutex::default(),
            },
            proxy,
        )
    }
}

/// The configuration a deployment gives the functions (the defaults), pointed at these services,
/// with the test key given as `JWT_SECRET` (a release build has no default).
fn deployed_config(redis: &TestRedis, dynamo_endpoint: &str) -> Config {
    let mode = match redis.mode() {
        CacheMode::Standalone => "standalone",
        CacheMode::Cluster => "cluster",
    };
    let vars = [
        ("JWT_SECRET", TEST_SECRET.to_owned()),
        ("REDIS_URL", redis.url()),
        ("REDIS_MODE", mode.to_owned()),
        ("DYNAMODB_ENDPOINT", dynamo_endpoint.to_owned()),
        ("TABLE_NAME", TABLE_NAME.to_owned()),
    ];
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    })
    .expect("valid config")
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
    invoke_with(
        app,
        &request.to_v2_event().to_string(),
        &request.path,
        Some(context),
    )
    .await
}

/// The X-Ray trace id [`send_as`] gives invocation `request_id`.
pub fn trace_id_of(request_id: &str) -> String {
    format!("Root=1-00000000-{request_id};Sampled=0")
}

/// Deserializes a raw event with `lambda_http` and runs it through `app`'s right handler.
pub async fn invoke_event(app: &App, event: &str, path: &str) -> ApiResponse {
    invoke_with(app, event, path, None).await
}

async fn invoke_with(
    app: &App,
    event: &str,
    path: &str,
    context: Option<lambda_runtime::Context>,
) -> ApiResponse {
    use lambda_http::RequestExt;
    let req = lambda_http::request::from_str(event).expect("lambda_http deserializes the event");
    let req = match context {
        Some(context) => req.with_lambda_context(context),
        None => req,
    };
    let response: Response<Body> = match function_for(path) {
        "comments" => comments_fn::handle(app, req).await,
        "posts" => posts_fn::handle(app, req).await,
        _ => users_fn::handle(app, req).await,
    };
    ApiResponse::from(response)
}

/// The handler of the function that serves `req`'s path, as API Gateway routes it: what the
/// `lambda-app` binary runs.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    match function_for(req.uri().path()) {
        "comments" => comments_fn::handle(app, req).await,
        "posts" => posts_fn::handle(app, req).await,
        _ => users_fn::handle(app, req).await,
    }
}

/// The configuration of a test app: timeouts short enough that fault tests end fast, long
/// enough that a loaded two-core CI machine (every test with its own Redis, a cluster's three)
/// does not turn a hit into a timed-out miss: 50 ms, the deployed default, did.
pub fn test_config(redis_url: &str, dynamo_endpoint: &str) -> Config {
    let mut config =
        Config::from_lookup(|name| (name == "JWT_SECRET").then(|| TEST_SECRET.to_owned()))
            .expect("defaults are valid");
    config.cache.redis_url = shared::config::RedisUrl::parse(redis_url).expect("a Redis URL");
    config.table.dynamodb_endpoint = Some(dynamo_endpoint.to_owned());
    config.table.table_name = TABLE_NAME.to_owned();
    config.cache.redis_timeout = Duration::from_millis(250);
    config.cache.redis_connect_timeout = Duration::from_millis(500);
    config
}

/// Which function serves a path, as `template.yaml` wires it.
pub fn function_for(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["posts", _, "comments", ..] => "comments",
        ["posts", ..] => "posts",
        // As the template and `cargo lambda watch` route them: any other path to users.
        _ => "users",
    }
}

/// The `id` of a resource the API answered with.
pub fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// The `email` of a user the API answered with.
pub fn email_of(user: &Value) -> String {
    user["email"].as_str().expect("an email").to_owned()
}

/// The names of a JSON object's fields, sorted: what a response's shape is checked against.
pub fn keys_of(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// A new, unique, valid email.
pub fn unique_email(hint: &str) -> String {
    let clean: String = hint
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    format!(
        "{clean}.{}@example.com",
        ulid::Ulid::new().to_string().to_lowercase()
    )
}
