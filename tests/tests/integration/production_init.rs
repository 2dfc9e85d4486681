//! The production connection path, for real: the functions' own init (`shared::app::run`, in a
//! process of their own under a Runtime API, configured only by environment variables as
//! `template.yaml` configures them) reads the JWT key and the cache's AUTH token from Secrets
//! Manager (moto's server) and reaches a `redis-server` that speaks only TLS with a certificate
//! from a throwaway CA and wants that token. Then the contract's requests go through it.
//!
//! And the ways it fails, each as docs/architecture.md says ("How a misconfigured instance
//! fails"): a wrong certificate or a wrong token leave the init alive and every request served
//! from DynamoDB within the Redis timeout, with a log line naming the cause; an unreachable or
//! silent Secrets Manager ends the init within seconds (not Lambda's 10 s init limit), with a
//! log line naming the secret.

use std::path::Path;
use std::time::{Duration, Instant};

use integration_tests::dynamo_proxy::Mode;
use integration_tests::lambda_process::{Init, LambdaProcess};
use integration_tests::secrets_manager::{
    SecretsManager, TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY,
};
use integration_tests::tls_redis::{TestCa, TlsRedis};
use integration_tests::{
    cache_key, closed_port, unique_email, ApiRequest, Dynamo, DynamoProxy, PASSWORD,
};
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
        let (dynamo, secrets, redis) = tokio::join!(
            Dynamo::start(),
            SecretsManager::start(),
            TlsRedis::start(CACHE_TOKEN)
        );
        let jwt_arn = secrets.create_secret("social/jwt-key", JWT_KEY).await;
        let cache_arn = secrets
            .create_secret("social/cache-auth-token", cache_token)
            .await;
        World {
            dynamo,
            secrets,
            redis,
            jwt_arn,
            cache_arn,
        }
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
            (
                "REDIS_TLS_CA_FILE",
                self.redis.ca_file.display().to_string(),
            ),
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

    async fn function(
        &self,
        tweak: impl FnOnce(&mut Vec<(&'static str, String)>),
    ) -> LambdaProcess {
        let mut vars = self.environment();
        tweak(&mut vars);
        LambdaProcess::spawn(lambda_app(), "users", &vars).await
    }
}

fn set(vars: &mut [(&'static str, String)], name: &str, value: String) {
    vars.iter_mut()
        .find(|(n, _)| *n == name)
        .expect("a variable of the environment")
        .1 = value;
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
        assert!(
            started.elapsed() < bound,
            "a request took {:?}:\n{}",
            started.elapsed(),
            function.log()
        );
        res
    };
    let registered = timed(
        ApiRequest::post("/users")
            .json(json!({"email": email, "name": "Prod", "password": PASSWORD})),
    )
    .await;
    assert_eq!(
        registered.status,
        201,
        "{}\n{}",
        registered.raw_body,
        function.log()
    );
    let login =
        timed(ApiRequest::post("/auth/login").json(json!({"email": email, "password": PASSWORD})))
            .await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    let token = login.body["token"].as_str().expect("token").to_owned();
    let me = timed(ApiRequest::me().bearer(&token)).await;
    assert_eq!(
        (me.status, &me.body),
        (200, &registered.body),
        "{}",
        me.raw_body
    );
    (email, token, registered.body)
}

/// The log lines (JSON) at `level` whose text contains `needle`.
fn lines_with(log: &str, level: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(&format!("\"level\":\"{level}\"")) && l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// A logout through `function` answers `204`, and the token is refused on the next request.
async fn logout_revokes(function: &LambdaProcess, token: &str) {
    let logout = function
        .send(ApiRequest::post("/auth/logout").bearer(token))
        .await;
    assert_eq!(logout.status, 204, "{}", logout.raw_body);
    function
        .send(ApiRequest::me().bearer(token))
        .await
        .assert_error(401, "unauthorized");
}

/// `log` has no ERROR line, no WARN line but the one a loaded machine may cause (a prewarm
/// past its 100 ms bound), and none of `secrets`.
fn assert_quiet_log<'a>(log: &str, what: &str, secrets: impl IntoIterator<Item = &'a str>) {
    assert!(
        lines_with(log, "ERROR", "").is_empty(),
        "ERROR lines {what}:\n{log}"
    );
    let warnings: Vec<String> = lines_with(log, "WARN", "")
        .into_iter()
        .filter(|l| !l.contains("not ready at init"))
        .collect();
    assert!(
        warnings.is_empty(),
        "WARN lines {what}: {warnings:#?}\n{log}"
    );
    for secret in secrets {
        assert!(!log.contains(secret), "a secret in the logs:\n{log}");
    }
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
    let claims = jsonwebtoken::decode::<Value>(
        &token,
        &DecodingKey::from_secret(JWT_KEY.as_bytes()),
        &validation,
    )
    .expect("the token verifies with the key in Secrets Manager")
    .claims;
    assert_eq!(claims["email"], email.as_str());

    // The cache over TLS with the token from Secrets Manager holds the user; a miss writes it back.
    let mut redis = world
        .redis
        .connection(CACHE_TOKEN)
        .await
        .expect("TLS connection");
    let key = cache_key(&email);
    let cached: Option<String> = redis.get(&key).await.expect("GET");
    assert!(
        cached.is_some_and(|c| c.contains(user["id"].as_str().expect("id"))),
        "registration wrote the entry"
    );
    let deleted: i64 = redis.del(&key).await.expect("DEL");
    assert_eq!(
        deleted, 1,
        "the entry is gone before the request, so it misses"
    );
    assert_eq!(
        function.send(ApiRequest::me().bearer(&token)).await.status,
        200
    );
    assert!(
        redis.exists::<_, bool>(&key).await.expect("EXISTS"),
        "the miss wrote the entry back over TLS"
    );

    let post = function
        .send(
            ApiRequest::post("/posts")
                .bearer(&token)
                .json(json!({"caption": "over TLS"})),
        )
        .await;
    assert_eq!(post.status, 201, "{}", post.raw_body);
    let read = function
        .send(
            ApiRequest::get(&format!("/posts/{}", post.body["id"].as_str().expect("id")))
                .bearer(&token),
        )
        .await;
    assert_eq!(
        (read.status, &read.body["caption"]),
        (200, &json!("over TLS")),
        "{}",
        read.raw_body
    );
    logout_revokes(&function, &token).await;
    assert_quiet_log(&function.log(), "on the happy path", [CACHE_TOKEN, JWT_KEY]);
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
        assert_eq!(
            function.send(ApiRequest::me().bearer(&token)).await.status,
            200
        );
        assert!(started.elapsed() < REQUEST_BOUND, "{:?}", started.elapsed());
    }
    let log = function.log();
    let named = [
        lines_with(&log, "ERROR", cause),
        lines_with(&log, "WARN", cause),
    ]
    .concat();
    assert!(!named.is_empty(), "no log line names {cause:?}:\n{log}");
    println!(
        "refused ({cause}): init {init:?}; first line naming it: {}",
        named[0]
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_serves_from_dynamodb_and_logs_why() {
    let world = World::new(CACHE_TOKEN).await;
    let stranger = TestCa::new("someone else's CA");
    let ca_file = std::env::temp_dir().join(format!("stranger-ca-{}.pem", ulid::Ulid::new()));
    stranger.write(&ca_file);
    let mut function = world
        .function(|vars| set(vars, "REDIS_TLS_CA_FILE", ca_file.display().to_string()))
        .await;
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
    let mut function = world
        .function(|vars| set(vars, "SECRETS_MANAGER_ENDPOINT", endpoint.to_owned()))
        .await;
    match function.init(Duration::from_secs(10)).await {
        Init::Exited(status, took) => {
            assert!(!status.success(), "the process exited cleanly");
            assert!(
                took < Duration::from_secs(6),
                "{what}: the init took {took:?} to fail"
            );
            let log = function.log();
            let lines = lines_with(&log, "ERROR", "init failed");
            assert!(
                lines.iter().any(|l| l.contains("reading secret arn:")),
                "no clear line:\n{log}"
            );
            println!(
                "Secrets Manager {what}: init failed in {took:?}: {}",
                lines[0]
            );
        }
        Init::Ready(_) => panic!("the init went on without its secrets:\n{}", function.log()),
    }
}

#[tokio::test]
async fn an_unreachable_secrets_manager_fails_the_init_fast_with_a_clear_log_line() {
    let world = World::new(CACHE_TOKEN).await;
    assert_init_fails_fast(
        &world,
        &format!("http://127.0.0.1:{}", closed_port()),
        "refusing connections",
    )
    .await;
}

#[tokio::test]
async fn a_silent_secrets_manager_fails_the_init_within_its_timeout() {
    let world = World::new(CACHE_TOKEN).await;
    // The fault proxy in front of Secrets Manager, reading requests and answering none.
    let silent = DynamoProxy::start(&world.secrets.endpoint).await;
    silent.set(Mode::Blackhole);
    assert_init_fails_fast(&world, &silent.endpoint, "never answering").await;
}

/// ElastiCache IAM authentication through the real init: `REDIS_AUTH=iam`, the token signed by
/// `IamTokens::from_environment` with the credentials and region Lambda puts in the environment.
mod iam {
    use std::time::{SystemTime, UNIX_EPOCH};

    use aws_credential_types::Credentials;
    use aws_smithy_runtime_api::client::identity::Identity;
    use shared::cache::iam::presign;
    use shared::config::IamAuthConfig;

    use super::*;

    const USER_ID: &str = "app-user";
    const CACHE_NAME: &str = "social-cache";
    /// Lambda gives a function temporary credentials: a session token beside the keys.
    const SESSION_TOKEN: &str = "lambda-session-token-0123456789";

    /// The tokens the function may present: SigV4 signs the time to the second, so the token
    /// of every second from just before now to `seconds` after, each signed as the code signs
    /// it (`presign`, checked against an independent SigV4 computation in `iam.rs`) with the
    /// credentials and region the process gets.
    fn tokens_from_now(seconds: u64) -> Vec<String> {
        let config = IamAuthConfig {
            user_id: USER_ID.into(),
            cache_name: CACHE_NAME.into(),
            serverless: false,
        };
        let credentials = Credentials::new(
            TEST_ACCESS_KEY,
            TEST_SECRET_KEY,
            Some(SESSION_TOKEN.into()),
            None,
            "test",
        );
        let identity: Identity = credentials.into();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        (now - 2..now + seconds)
            .map(|second| {
                presign(
                    &config,
                    &identity,
                    TEST_REGION,
                    UNIX_EPOCH + Duration::from_secs(second),
                )
                .expect("a token")
            })
            .collect()
    }

    /// The access string `template.yaml` gives the cache's IAM user in ElastiCache.
    fn deployed_access_string() -> String {
        let template: serde_yaml::Value =
            serde_yaml::from_str(include_str!("../../../template.yaml"))
                .expect("template.yaml parses");
        let access = &template["Resources"]["CacheIamUser"]["Properties"]["AccessString"];
        access
            .as_str()
            .expect("the IAM user's access string")
            .to_owned()
    }

    /// `CLIENT LIST` lines of the cache user's connections.
    async fn iam_connections(redis: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(redis)
            .await
            .expect("CLIENT LIST");
        list.lines()
            .filter(|l| l.split(' ').any(|f| f == format!("user={USER_ID}")))
            .map(str::to_owned)
            .collect()
    }

    async fn gets_run(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(redis)
            .await
            .expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn the_real_init_with_iam_auth_signs_the_token_from_the_environment_and_serves_through_the_cache(
    ) {
        let world = World::new(CACHE_TOKEN).await;
        // The cache's IAM user, with the deployed access string and no password but the tokens
        // the function will sign (the TLS server's `default` user, with its own password, is
        // the test's).
        let tokens = tokens_from_now(30);
        let mut admin = world
            .redis
            .connection(CACHE_TOKEN)
            .await
            .expect("TLS connection");
        let access = deployed_access_string();
        let passwords: Vec<String> = tokens.iter().map(|t| format!(">{t}")).collect();
        let rules: Vec<&str> = ["SETUSER", USER_ID, "reset"]
            .into_iter()
            .chain(passwords.iter().map(String::as_str))
            .chain(access.split_whitespace())
            .collect();
        let () = redis::cmd("ACL")
            .arg(&rules)
            .query_async(&mut admin)
            .await
            .expect("ACL SETUSER");

        let mut function = world
            .function(|vars| {
                vars.retain(|(name, _)| {
                    *name != "REDIS_PASSWORD_SECRET_ARN" && *name != "REDIS_AUTH"
                });
                vars.push(("REDIS_AUTH", "iam".into()));
                vars.push(("REDIS_IAM_USER_ID", USER_ID.into()));
                vars.push(("REDIS_IAM_CACHE_NAME", CACHE_NAME.into()));
                vars.push(("AWS_SESSION_TOKEN", SESSION_TOKEN.into()));
            })
            .await;
        let init = ready(&mut function).await;
        let (email, token, user) = sign_up(&function, Duration::from_secs(10)).await;

        // The function is connected as the IAM user (so `AUTH app-user <token>` went out), and
        // the registration's write went through that connection.
        let connections = iam_connections(&mut admin).await;
        assert!(
            !connections.is_empty(),
            "no connection as {USER_ID}:\n{}",
            function.log()
        );
        let key = cache_key(&email);
        let cached: Option<String> = admin.get(&key).await.expect("GET");
        assert!(
            cached.is_some_and(|c| c.contains(user["id"].as_str().expect("id"))),
            "registration wrote the entry"
        );

        // A hit: one GET on the cache, as the IAM user.
        let before = gets_run(&mut admin).await;
        let me = function
            .send(ApiRequest::get("/users/me").bearer(&token))
            .await;
        assert_eq!((me.status, &me.body), (200, &user), "{}", me.raw_body);
        assert_eq!(
            gets_run(&mut admin).await,
            before + 1,
            "the request read the cache"
        );
        // A miss, written back.
        let deleted: i64 = admin.del(&key).await.expect("DEL");
        assert_eq!(
            deleted, 1,
            "the entry is gone before the request, so it misses"
        );
        assert_eq!(
            function
                .send(ApiRequest::get("/users/me").bearer(&token))
                .await
                .status,
            200
        );
        assert!(
            admin.exists::<_, bool>(&key).await.expect("EXISTS"),
            "the miss wrote the entry back as the IAM user"
        );
        // A revocation reaches the cache through the same connection.
        logout_revokes(&function, &token).await;
        let secrets = tokens.iter().map(String::as_str);
        let secrets = secrets.chain([JWT_KEY, TEST_SECRET_KEY, SESSION_TOKEN]);
        assert_quiet_log(&function.log(), "with IAM auth", secrets);
        println!(
            "production init with IAM auth ready in {init:?}; {} connection(s) as {USER_ID}",
            connections.len()
        );
    }
}

/// The same init against a Redis Cluster that speaks only TLS, between its nodes too
/// (`--tls-cluster yes`), as ElastiCache Serverless and cluster-mode caches with in-transit
/// encryption do: `REDIS_MODE=cluster`, the seed node's `rediss://` URL, the AUTH token from
/// Secrets Manager.
mod tls_cluster {
    use integration_tests::tls_redis::TlsCluster;

    use super::*;

    #[tokio::test]
    async fn the_real_init_reaches_a_tls_cluster_with_its_token_and_serves_the_contract() {
        let (world, cluster) =
            tokio::join!(World::new(CACHE_TOKEN), TlsCluster::start(CACHE_TOKEN));
        let mut function = world
            .function(|vars| {
                set(vars, "REDIS_URL", cluster.url());
                set(vars, "REDIS_MODE", "cluster".into());
                set(
                    vars,
                    "REDIS_TLS_CA_FILE",
                    cluster.ca_file.display().to_string(),
                );
            })
            .await;
        let init = ready(&mut function).await;
        let (email, token, user) = sign_up(&function, Duration::from_secs(10)).await;

        // The function holds a TLS connection to every master (it learnt them from the seed's
        // slot map), and the registration's entry is on the one its slot names.
        for port in &cluster.ports {
            assert!(
                cluster.clients(*port).await >= 1,
                "no connection from the function to port {port}"
            );
        }
        let key = cache_key(&email);
        let cached = cluster.get(&key).await;
        assert!(
            cached.is_some_and(|c| c.contains(user["id"].as_str().expect("id"))),
            "registration wrote the entry"
        );
        assert_eq!(cluster.del(&key).await, 1, "the entry was deleted");
        assert!(
            cluster.get(&key).await.is_none(),
            "the entry is gone before the request, so the request misses"
        );
        let me = function
            .send(ApiRequest::get("/users/me").bearer(&token))
            .await;
        assert_eq!((me.status, &me.body), (200, &user), "{}", me.raw_body);
        let written_back = cluster.get(&key).await;
        assert!(
            written_back.is_some(),
            "the miss wrote the entry back over TLS"
        );
        assert!(
            written_back.is_some_and(|c| c.contains(user["id"].as_str().expect("id"))),
            "the entry written back is the user's"
        );
        let post = function
            .send(
                ApiRequest::post("/posts")
                    .bearer(&token)
                    .json(json!({"caption": "clustered"})),
            )
            .await;
        assert_eq!(post.status, 201, "{}", post.raw_body);
        logout_revokes(&function, &token).await;
        assert_quiet_log(&function.log(), "on a TLS cluster", [CACHE_TOKEN, JWT_KEY]);
        println!("production init on a TLS cluster (tls-cluster yes, AUTH) ready in {init:?}");
    }
}
