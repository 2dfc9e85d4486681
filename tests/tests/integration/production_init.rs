//! The production connection path, for real: the functions' own init (`shared::app::run`, in a
//! process of their own under a Runtime API, configured only by environment variables as
//! `template.yaml` configures them) reads the JWT key and the cache's AUTH token from Secrets
//! Manager (moto's server) and reaches a `redis-server` that speaks only TLS with a certificate
//! from a throwaway CA and wants that token. Then the contract's requests go through it.
//!
//! And the ways it fails, each as the README says: a wrong certificate or a wrong token leave
//! the init alive and every request served from DynamoDB within the Redis timeout, with a log
//! line naming the cause; an unreachable or silent Secrets Manager ends the init within seconds
//! (not Lambda's 10 s init limit), with a log line naming the secret.

use std::path::Path;
use std::time::{Duration, Instant};

use integration_tests::dynamo_proxy::Mode;
use integration_tests::lambda_process::{Init, LambdaProcess};
use integration_tests::secrets_manager::{SecretsManager, TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY};
use integration_tests::tls_redis::{TestCa, TlsRedis};
use integration_tests::{cache_key, closed_port, unique_email, ApiRequest, Dynamo, DynamoProxy, PASSWORD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use redis::AsyncCommands;
use serde_json::{json, Value};

const CACHE_TOKEN: &str = "cache-auth-token-from-secrets-manager-0123456789";
const JWT_KEY: &str = "jwt-signing-key-from-secrets-manager-0123456789abcdef";

/// What a request may take with the cache refusing this instance: the Redis timeout (50 ms)
/// plus a DynamoDB read, with room for a loaded machine.
const REQUEST_BOUND: Duration = Duration::from_secs(1);

fn lambda_app() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lambda-app"))
}

/// The world: DynamoDB, Secrets Manager holding both secrets (the cache's is `cache_token`), and
/// the TLS Redis wanting [`CACHE_TOKEN`].
struct World {
    dynamo: Dynamo,
    secrets: SecretsManager,
    redis: TlsRedis,
    jwt_arn: String,
    cache_arn: String,
}

impl World {
    async fn new(cache_token: &str) -> Self {
        let (dynamo, secrets, redis) =
            tokio::join!(Dynamo::start(), SecretsManager::start(), TlsRedis::start(CACHE_TOKEN));
        let jwt_arn = secrets.create_secret("social/jwt-key", JWT_KEY).await;
        let cache_arn = secrets.create_secret("social/cache-auth-token", cache_token).await;
        World { dynamo, secrets, redis, jwt_arn, cache_arn }
    }

    /// The environment `template.yaml` gives an API function (token auth), pointed here.
    fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TABLE_NAME", "social".into()),
            ("DYNAMODB_ENDPOINT", self.dynamo.endpoint.clone()),
            ("REDIS_URL", self.redis.url()),
            ("REDIS_MODE", "standalone".into()),
            ("REDIS_AUTH", "token".into()),
            ("REDIS_PASSWORD_SECRET_ARN", self.cache_arn.clone()),
            ("REDIS_TLS_CA_FILE", self.redis.ca_file.display().to_string()),
            ("JWT_SECRET_ARN", self.jwt_arn.clone()),
            ("SECRETS_MANAGER_ENDPOINT", self.secrets.endpoint.clone()),
            ("TOKEN_TTL_SECONDS", "3600".into()),
            ("CACHE_TTL_SECONDS", "300".into()),
            ("REDIS_TIMEOUT_MS", "50".into()),
            ("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY.into()),
            ("AWS_REGION", TEST_REGION.into()),
            ("LOG_FORMAT", "json".into()),
            ("RUST_LOG", "info".into()),
        ]
    }

    async fn function(&self, tweak: impl FnOnce(&mut Vec<(&'static str, String)>)) -> LambdaProcess {
        let mut vars = self.environment();
        tweak(&mut vars);
        LambdaProcess::spawn(lambda_app(), "users", &vars).await
    }
}

fn set(vars: &mut [(&'static str, String)], name: &str, value: String) {
    vars.iter_mut().find(|(n, _)| *n == name).expect("a variable of the environment").1 = value;
}

async fn ready(function: &mut LambdaProcess) -> Duration {
    match function.init(Duration::from_secs(10)).await {
        Init::Ready(took) => took,
        Init::Exited(status, _) => panic!("the init failed ({status}):\n{}", function.log()),
    }
}

/// Registers, logs in and authenticates through the process: `(email, token, user)`, each
/// request within `bound`.
async fn sign_up(function: &LambdaProcess, bound: Duration) -> (String, String, Value) {
    let email = unique_email("Prod");
    let timed = |request: ApiRequest| async move {
        let started = Instant::now();
        let res = function.send(request).await;
        assert!(started.elapsed() < bound, "a request took {:?}:\n{}", started.elapsed(), function.log());
        res
    };
    let registered =
        timed(ApiRequest::post("/users").json(json!({"email": email, "name": "Prod", "password": PASSWORD}))).await;
    assert_eq!(registered.status, 201, "{}\n{}", registered.raw_body, function.log());
    let login = timed(ApiRequest::post("/auth/login").json(json!({"email": email, "password": PASSWORD}))).await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    let token = login.body["token"].as_str().expect("token").to_owned();
    let me = timed(ApiRequest::me().bearer(&token)).await;
    assert_eq!((me.status, &me.body), (200, &registered.body), "{}", me.raw_body);
    (email, token, registered.body)
}

/// The log lines (JSON) at `level` whose text contains `needle`.
fn lines_with(log: &str, level: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(&format!("\"level\":\"{level}\"")) && l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_real_init_reads_both_secrets_and_serves_the_contract_through_tls_and_auth() {
    let world = World::new(CACHE_TOKEN).await;
    let mut function = world.function(|_| {}).await;
    let init = ready(&mut function).await;

    let (email, token, user) = sign_up(&function, Duration::from_secs(10)).await;
    // The token is signed with the key read from Secrets Manager.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["Caching-Code-Login"]);
    validation.set_audience(&["Caching-Code-Auth"]);
    let claims = jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(JWT_KEY.as_bytes()), &validation)
        .expect("the token verifies with the key in Secrets Manager")
        .claims;
    assert_eq!(claims["email"], email.as_str());

    // The cache over TLS with the token from Secrets Manager holds the user; a miss writes it back.
    let mut redis = world.redis.connection(CACHE_TOKEN).await.expect("TLS connection");
    let key = cache_key(&email);
    let cached: Option<String> = redis.get(&key).await.expect("GET");
    assert!(cached.is_some_and(|c| c.contains(user["id"].as_str().expect("id"))), "registration wrote the entry");
    let _: i64 = redis.del(&key).await.expect("DEL");
    assert_eq!(function.send(ApiRequest::me().bearer(&token)).await.status, 200);
    assert!(redis.exists::<_, bool>(&key).await.expect("EXISTS"), "the miss wrote the entry back over TLS");

    let post = function.send(ApiRequest::post("/posts").bearer(&token).json(json!({"caption": "over TLS"}))).await;
    assert_eq!(post.status, 201, "{}", post.raw_body);
    let read = function
        .send(ApiRequest::get(&format!("/posts/{}", post.body["id"].as_str().expect("id"))).bearer(&token))
        .await;
    assert_eq!((read.status, &read.body["caption"]), (200, &json!("over TLS")), "{}", read.raw_body);
    let logout = function.send(ApiRequest::post("/auth/logout").bearer(&token)).await;
    assert_eq!(logout.status, 204, "{}", logout.raw_body);
    function.send(ApiRequest::me().bearer(&token)).await.assert_error(401, "unauthorized");

    let log = function.log();
    assert!(lines_with(&log, "ERROR", "").is_empty(), "ERROR lines on the happy path:\n{log}");
    // The one warning a loaded machine may cause: a prewarm past its 100 ms bound.
    let warnings: Vec<String> =
        lines_with(&log, "WARN", "").into_iter().filter(|l| !l.contains("not ready at init")).collect();
    assert!(warnings.is_empty(), "WARN lines on the happy path: {warnings:#?}\n{log}");
    assert!(!log.contains(CACHE_TOKEN) && !log.contains(JWT_KEY), "a secret in the logs:\n{log}");
    println!("production init (Secrets Manager, TLS, AUTH) ready in {init:?}");
}

/// A cache that turns the instance away is not a reason to fail the init: requests are served
/// from DynamoDB within the Redis timeout, and the log names the cause.
async fn assert_refused_by_the_cache(function: &mut LambdaProcess, cause: &str) {
    let init = ready(function).await;
    assert!(init < Duration::from_secs(5), "the init took {init:?}");
    let (_, token, _) = sign_up(function, REQUEST_BOUND).await;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(function.send(ApiRequest::me().bearer(&token)).await.status, 200);
        assert!(started.elapsed() < REQUEST_BOUND, "{:?}", started.elapsed());
    }
    let log = function.log();
    let named = [lines_with(&log, "ERROR", cause), lines_with(&log, "WARN", cause)].concat();
    assert!(!named.is_empty(), "no log line names {cause:?}:\n{log}");
    println!("refused ({cause}): init {init:?}; first line naming it: {}", named[0]);
}

#[tokio::test]
async fn a_certificate_from_another_ca_serves_from_dynamodb_and_logs_why() {
    let world = World::new(CACHE_TOKEN).await;
    let stranger = TestCa::new("someone else's CA");
    let ca_file = std::env::temp_dir().join(format!("stranger-ca-{}.pem", ulid::Ulid::new()));
    stranger.write(&ca_file);
    let mut function = world.function(|vars| set(vars, "REDIS_TLS_CA_FILE", ca_file.display().to_string())).await;
    assert_refused_by_the_cache(&mut function, "UnknownIssuer").await;
    let _ = std::fs::remove_file(ca_file);
}

#[tokio::test]
async fn a_wrong_cache_token_serves_from_dynamodb_and_logs_why() {
    let world = World::new("not-the-cache-token").await;
    let mut function = world.function(|_| {}).await;
    assert_refused_by_the_cache(&mut function, "Password authentication failed").await;
}

/// Secrets Manager that cannot be reached, or never answers: the init ends within its bound
/// (2 attempts of 1.5 s, 3 s in all), the process exits, and the log says which secret.
async fn assert_init_fails_fast(world: &World, endpoint: &str, what: &str) {
    let mut function = world.function(|vars| set(vars, "SECRETS_MANAGER_ENDPOINT", endpoint.to_owned())).await;
    match function.init(Duration::from_secs(10)).await {
        Init::Exited(status, took) => {
            assert!(!status.success(), "the process exited cleanly");
            assert!(took < Duration::from_secs(6), "{what}: the init took {took:?} to fail");
            let log = function.log();
            let lines = lines_with(&log, "ERROR", "init failed");
            assert!(lines.iter().any(|l| l.contains("reading secret arn:")), "no clear line:\n{log}");
            println!("Secrets Manager {what}: init failed in {took:?}: {}", lines[0]);
        }
        Init::Ready(_) => panic!("the init went on without its secrets:\n{}", function.log()),
    }
}

#[tokio::test]
async fn an_unreachable_secrets_manager_fails_the_init_fast_with_a_clear_log_line() {
    let world = World::new(CACHE_TOKEN).await;
    assert_init_fails_fast(&world, &format!("http://127.0.0.1:{}", closed_port()), "refusing connections").await;
}

#[tokio::test]
async fn a_silent_secrets_manager_fails_the_init_within_its_timeout() {
    let world = World::new(CACHE_TOKEN).await;
    // The fault proxy in front of Secrets Manager, reading requests and answering none.
    let silent = DynamoProxy::start(&world.secrets.endpoint).await;
    silent.set(Mode::Blackhole);
    assert_init_fails_fast(&world, &silent.endpoint, "never answering").await;
}
