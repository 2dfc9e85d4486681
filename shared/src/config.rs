//! Configuration, read from the environment once per Lambda instance.
//!
//! Every variable is validated up front with an error that names it, so a misconfigured
//! deployment fails at init with a clear log line instead of on the first request.
//! Secrets may be given directly (`JWT_SECRET`, local use) or as a Secrets Manager ARN
//! (`JWT_SECRET_ARN`, `REDIS_PASSWORD_SECRET_ARN`, production), fetched once at init; with
//! `REDIS_AUTH=iam` the cache needs no secret at all.

use std::fmt;
use std::time::Duration;

use crate::telemetry::LogFormat;

/// A secret value whose `Debug` never prints it, so it cannot leak into a log line.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The secret used only by `cargo lambda watch` and the tests when `JWT_SECRET` is unset.
/// Release builds refuse to start without a real secret.
#[cfg(debug_assertions)]
const DEV_JWT_SECRET: &str = "dev-only-secret-do-not-use-in-production-0123456789";

/// Where the JWT signing secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Value(Secret),
    SecretsManager { arn: String },
}

/// Everything an API function needs to build its clients.
#[derive(Debug, Clone)]
pub struct Config {
    /// The table: what the stream functions read too.
    pub table: TableConfig,
    /// The cache: what the stream functions read too.
    pub cache: CacheConfig,
    pub jwt_secret: SecretSource,
    pub token_ttl: Duration,
    pub login_limits: LoginLimits,
    pub registration_limits: RegistrationLimits,
    pub log_format: LogFormat,
}

/// How many failed logins are allowed before `429 too_many_attempts` (API.md, "Abuse
/// limits"): per pair of email and source IP, per source IP, within one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    pub per_pair: u32,
    pub per_ip: u32,
    pub window: Duration,
}

/// How many registrations refused because the email is taken one source IP may have within
/// one window before `429 too_many_attempts` (API.md, "Abuse limits"): past it, nobody can
/// test which emails exist faster than that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationLimits {
    pub per_ip: u32,
    pub window: Duration,
}

/// The DynamoDB table and how calls to it are bounded.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// The single DynamoDB table (users, posts, comments).
    pub table_name: String,
    /// Overrides the DynamoDB endpoint (dynoxide locally); `None` uses AWS.
    pub dynamodb_endpoint: Option<String>,
    /// Per-attempt budget of a DynamoDB call; with `dynamodb_attempts` it bounds a request.
    pub dynamodb_attempt_timeout: Duration,
    pub dynamodb_connect_timeout: Duration,
    pub dynamodb_attempts: u32,
    /// Whether the table may still hold items of the legacy layout (`LEGACY_LAYOUT`, `true`
    /// unless set `false`): lists then read its partitions too. Set `false` once
    /// `tools/migrate-layout` has moved them (docs/architecture.md, "Data model").
    pub legacy_layout: bool,
}

/// The cache (Redis): everything the API functions and the stream functions (`cache-sync`,
/// `upkeep`) need of it. With [`TableConfig`], all a stream function reads: it needs no JWT key
/// and no secret but the cache's own.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `redis://` or `rediss://` (TLS, ElastiCache in-transit encryption). In cluster mode, any
    /// one node (ElastiCache's configuration endpoint): the others are discovered from it.
    pub redis_url: RedisUrl,
    /// Which client speaks to it (`REDIS_MODE`).
    pub mode: CacheMode,
    /// A Secrets Manager ARN holding the Redis AUTH token, if the cache needs one
    /// (`REDIS_AUTH=token`, the default).
    pub redis_password_secret_arn: Option<String>,
    /// ElastiCache IAM authentication instead of a token (`REDIS_AUTH=iam`).
    pub iam: Option<IamAuthConfig>,
    /// PEM roots trusted for `rediss://` instead of the public ones (`REDIS_TLS_CA_FILE`): a
    /// private CA, such as the tests' throwaway one. ElastiCache's certificates chain to public
    /// roots, so a deployment leaves it unset.
    pub tls_ca_file: Option<String>,
    /// Overrides the Secrets Manager endpoint (`SECRETS_MANAGER_ENDPOINT`: a local server);
    /// `None` uses AWS. The API functions read the JWT key through it too.
    pub secrets_manager_endpoint: Option<String>,
    /// Cluster mode only, never from the environment: node addresses to reach through other
    /// ones (`host:port` as the cluster names it, `host:port` to dial). The tests route one
    /// instance through fault-injecting proxies with it, as a client behind a NAT would be.
    pub node_address_map: Vec<(String, String)>,
    /// Bound on every Redis command: past it the request falls back to DynamoDB.
    pub redis_timeout: Duration,
    /// Bound on opening a Redis connection.
    pub redis_connect_timeout: Duration,
    /// TTL of a cached user or of a deleted user's tombstone (jittered by ±10% so entries do
    /// not expire together).
    pub cache_ttl: Duration,
    /// TTL of a "no such user" entry: short, since registration may follow.
    pub negative_cache_ttl: Duration,
}

/// Which Redis client the cache uses (`REDIS_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// One primary endpoint (`standalone`, the default): a node-based cache with cluster mode
    /// disabled, or a plain `redis-server`.
    Standalone,
    /// Redis Cluster (`cluster`): ElastiCache Serverless, or a node-based cache with cluster
    /// mode enabled. Keys are routed by slot; `MOVED`/`ASK` are followed by the client.
    Cluster,
}

/// ElastiCache IAM authentication: the password is a short-lived SigV4 token signed with the
/// function's own credentials, so no long-lived cache password exists anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamAuthConfig {
    /// The ElastiCache user id (`REDIS_IAM_USER_ID`); an IAM user's name is its id.
    pub user_id: String,
    /// The replication group's or serverless cache's name (`REDIS_IAM_CACHE_NAME`): the host
    /// the token is signed for.
    pub cache_name: String,
    /// Whether the cache is ElastiCache Serverless (`REDIS_IAM_SERVERLESS`), which the token
    /// must say (`ResourceType=ServerlessCache`).
    pub serverless: bool,
}

/// Variables a deployment must set on every API function (`template.yaml` sets each; a test
/// checks it), besides those of its cache authentication ([`auth_variables`]).
pub const DEPLOYMENT_VARIABLES: &[&str] = &[
    "TABLE_NAME",
    "REDIS_URL",
    "REDIS_MODE",
    "REDIS_AUTH",
    "JWT_SECRET_ARN",
    "TOKEN_TTL_SECONDS",
    "CACHE_TTL_SECONDS",
    "REDIS_TIMEOUT_MS",
    "LOG_FORMAT",
];

/// Variables a deployment must set on the stream functions (`cache-sync`, `upkeep`): the cache's
/// and the table's name, nothing more (and those of their cache authentication,
/// [`auth_variables`]).
pub const SYNC_DEPLOYMENT_VARIABLES: &[&str] = &[
    "TABLE_NAME",
    "REDIS_URL",
    "REDIS_MODE",
    "REDIS_AUTH",
    "CACHE_TTL_SECONDS",
    "REDIS_TIMEOUT_MS",
    "LOG_FORMAT",
];

/// What `REDIS_AUTH=token` reads: the secret holding the AUTH token.
pub const TOKEN_AUTH_VARIABLES: &[&str] = &["REDIS_PASSWORD_SECRET_ARN"];

/// What `REDIS_AUTH=iam` reads: who to sign the token for. No secret.
pub const IAM_AUTH_VARIABLES: &[&str] = &[
    "REDIS_IAM_USER_ID",
    "REDIS_IAM_CACHE_NAME",
    "REDIS_IAM_SERVERLESS",
];

/// The variables a deployment sets for the cache authentication `REDIS_AUTH` names (`token` or
/// `iam`), on every function: each reads the cache.
pub fn auth_variables(redis_auth: &str) -> &'static [&'static str] {
    match redis_auth {
        "iam" => IAM_AUTH_VARIABLES,
        _ => TOKEN_AUTH_VARIABLES,
    }
}

/// Variables with good defaults everywhere, or meant for local use only (`JWT_SECRET`,
/// `DYNAMODB_ENDPOINT`). `AWS_LAMBDA_FUNCTION_NAME` is set by Lambda itself.
pub const OPTIONAL_VARIABLES: &[&str] = &[
    "JWT_SECRET",
    "DYNAMODB_ENDPOINT",
    "DYNAMODB_TIMEOUT_MS",
    "DYNAMODB_CONNECT_TIMEOUT_MS",
    "DYNAMODB_MAX_ATTEMPTS",
    "LEGACY_LAYOUT",
    "REDIS_CONNECT_TIMEOUT_MS",
    "REDIS_TLS_CA_FILE",
    "SECRETS_MANAGER_ENDPOINT",
    "NEGATIVE_CACHE_TTL_SECONDS",
    "LOGIN_MAX_FAILURES_PER_PAIR",
    "LOGIN_MAX_FAILURES_PER_IP",
    "LOGIN_FAILURE_WINDOW_SECONDS",
    "REGISTRATION_MAX_REFUSALS_PER_IP",
    "REGISTRATION_REFUSAL_WINDOW_SECONDS",
    "AWS_LAMBDA_FUNCTION_NAME",
];

/// Variables read outside [`Config`], when the process starts: the log filter
/// ([`crate::telemetry`]) and the metrics' namespace ([`crate::metrics`]). Every function may get
/// them.
pub const PROCESS_VARIABLES: &[&str] = &[
    "RUST_LOG",
    "AWS_LAMBDA_LOG_LEVEL",
    METRICS_NAMESPACE_VARIABLE,
];

/// The variable naming the metrics' CloudWatch namespace (`template.yaml` sets the stack's
/// name), read when the metrics recorder is installed.
pub const METRICS_NAMESPACE_VARIABLE: &str = "METRICS_NAMESPACE";

/// A variable that is present but wrong, or missing where it is required.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn err(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let get = |name: &str| vars.get(name);
        let jwt_secret = match (get("JWT_SECRET"), get("JWT_SECRET_ARN")) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "JWT_SECRET",
                    "set JWT_SECRET or JWT_SECRET_ARN, not both",
                ))
            }
            (Some(value), None) => SecretSource::Value(validate_jwt_secret(value)?),
            (None, Some(arn)) => SecretSource::SecretsManager { arn },
            (None, None) => default_jwt_secret()?,
        };

        Ok(Config {
            table: TableConfig::from_lookup(&lookup)?,
            cache: CacheConfig::from_lookup(&lookup)?,
            jwt_secret,
            token_ttl: vars.seconds("TOKEN_TTL_SECONDS", 3_600, 30 * 24 * 3_600)?,
            login_limits: LoginLimits {
                per_pair: parse_u64(
                    "LOGIN_MAX_FAILURES_PER_PAIR",
                    vars.get("LOGIN_MAX_FAILURES_PER_PAIR"),
                    5,
                    1,
                    10_000,
                )? as u32,
                per_ip: parse_u64(
                    "LOGIN_MAX_FAILURES_PER_IP",
                    vars.get("LOGIN_MAX_FAILURES_PER_IP"),
                    50,
                    1,
                    1_000_000,
                )? as u32,
                window: vars.seconds("LOGIN_FAILURE_WINDOW_SECONDS", 900, 24 * 3_600)?,
            },
            registration_limits: RegistrationLimits {
                per_ip: parse_u64(
                    "REGISTRATION_MAX_REFUSALS_PER_IP",
                    vars.get("REGISTRATION_MAX_REFUSALS_PER_IP"),
                    20,
                    1,
                    1_000_000,
                )? as u32,
                window: vars.seconds("REGISTRATION_REFUSAL_WINDOW_SECONDS", 900, 24 * 3_600)?,
            },
            log_format: log_format(&lookup)?,
        })
    }
}

impl TableConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the table's variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let attempts = parse_u64(
            "DYNAMODB_MAX_ATTEMPTS",
            vars.get("DYNAMODB_MAX_ATTEMPTS"),
            2,
            1,
            10,
        )? as u32;
        Ok(TableConfig {
            table_name: vars
                .get("TABLE_NAME")
                .unwrap_or_else(|| "social".to_owned()),
            dynamodb_endpoint: vars.get("DYNAMODB_ENDPOINT"),
            dynamodb_attempt_timeout: vars.millis("DYNAMODB_TIMEOUT_MS", 1_500)?,
            dynamodb_connect_timeout: vars.millis("DYNAMODB_CONNECT_TIMEOUT_MS", 1_000)?,
            dynamodb_attempts: attempts,
            legacy_layout: match vars.get("LEGACY_LAYOUT").as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(_) => return Err(err("LEGACY_LAYOUT", "must be `true` or `false`")),
            },
        })
    }
}

impl CacheConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the cache's variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let redis_url = RedisUrl::parse(
            &vars
                .get("REDIS_URL")
                .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
        )?;
        let mode = match vars.get("REDIS_MODE").as_deref() {
            None | Some("standalone") => CacheMode::Standalone,
            Some("cluster") => CacheMode::Cluster,
            Some(_) => return Err(err("REDIS_MODE", "must be `standalone` or `cluster`")),
        };
        let (redis_password_secret_arn, iam) = match vars.get("REDIS_AUTH").as_deref() {
            None | Some("token") => (vars.get("REDIS_PASSWORD_SECRET_ARN"), None),
            Some("iam") => (None, Some(IamAuthConfig::from_vars(&vars)?)),
            Some(_) => return Err(err("REDIS_AUTH", "must be `token` or `iam`")),
        };
        Ok(CacheConfig {
            redis_url,
            mode,
            redis_password_secret_arn,
            iam,
            tls_ca_file: vars.get("REDIS_TLS_CA_FILE"),
            secrets_manager_endpoint: vars.get("SECRETS_MANAGER_ENDPOINT"),
            node_address_map: Vec::new(),
            redis_timeout: vars.millis("REDIS_TIMEOUT_MS", 50)?,
            redis_connect_timeout: vars.millis("REDIS_CONNECT_TIMEOUT_MS", 250)?,
            cache_ttl: vars.seconds("CACHE_TTL_SECONDS", 300, 24 * 3_600)?,
            negative_cache_ttl: vars.seconds("NEGATIVE_CACHE_TTL_SECONDS", 30, 3_600)?,
        })
    }
}

impl IamAuthConfig {
    /// `REDIS_AUTH=iam`'s variables: both names required, and no AUTH token secret beside them
    /// (one cache has one way in).
    fn from_vars<L: Fn(&str) -> Option<String>>(vars: &Vars<'_, L>) -> Result<Self, ConfigError> {
        if vars.get("REDIS_PASSWORD_SECRET_ARN").is_some() {
            return Err(err(
                "REDIS_PASSWORD_SECRET_ARN",
                "must be unset with REDIS_AUTH=iam (IAM needs no AUTH token)",
            ));
        }
        let required = |name: &'static str| {
            vars.get(name)
                .ok_or_else(|| err(name, "is required with REDIS_AUTH=iam"))
        };
        let serverless = match vars.get("REDIS_IAM_SERVERLESS").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(err("REDIS_IAM_SERVERLESS", "must be `true` or `false`")),
        };
        Ok(IamAuthConfig {
            user_id: required("REDIS_IAM_USER_ID")?,
            cache_name: required("REDIS_IAM_CACHE_NAME")?,
            serverless,
        })
    }
}

/// `REDIS_URL`, parsed once: its text, and what the Redis client connects with.
#[derive(Debug, Clone)]
pub struct RedisUrl {
    text: String,
    info: redis::ConnectionInfo,
}

impl RedisUrl {
    /// A `redis://` or `rediss://` (TLS) URL the Redis client understands.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let invalid = || err("REDIS_URL", "must be a redis:// or rediss:// URL");
        if !(text.starts_with("redis://") || text.starts_with("rediss://")) {
            return Err(invalid());
        }
        let info = redis::IntoConnectionInfo::into_connection_info(text).map_err(|_| invalid())?;
        Ok(RedisUrl {
            text: text.to_owned(),
            info,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it asks for TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        self.text.starts_with("rediss://")
    }

    /// What the Redis client connects with.
    pub fn connection_info(&self) -> &redis::ConnectionInfo {
        &self.info
    }
}

/// How logs are written: `LOG_FORMAT`, else JSON lines exactly when running in Lambda.
pub fn log_format(lookup: impl Fn(&str) -> Option<String>) -> Result<LogFormat, ConfigError> {
    match Vars(&lookup).get("LOG_FORMAT").as_deref() {
        Some("json") => Ok(LogFormat::Json),
        Some("text") => Ok(LogFormat::Text),
        None if lookup("AWS_LAMBDA_FUNCTION_NAME").is_some() => Ok(LogFormat::Json),
        None => Ok(LogFormat::Text),
        Some(_) => Err(err("LOG_FORMAT", "must be `json` or `text`")),
    }
}

/// The variables as configuration reads them: values trimmed, empty ones unset, durations
/// whole numbers within bounds.
struct Vars<'a, L>(&'a L);

impl<L: Fn(&str) -> Option<String>> Vars<'_, L> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        parse_u64(name, self.get(name), default, 1, 600_000).map(Duration::from_millis)
    }

    fn seconds(&self, name: &'static str, default: u64, max: u64) -> Result<Duration, ConfigError> {
        parse_u64(name, self.get(name), default, 1, max).map(Duration::from_secs)
    }
}

/// HS256 keys shorter than the hash output are guessable; refuse them.
pub fn validate_jwt_secret(value: String) -> Result<Secret, ConfigError> {
    if value.len() < 32 {
        return Err(err("JWT_SECRET", "must be at least 32 bytes"));
    }
    Ok(Secret(value))
}

#[cfg(debug_assertions)]
fn default_jwt_secret() -> Result<SecretSource, ConfigError> {
    Ok(SecretSource::Value(Secret(DEV_JWT_SECRET.to_owned())))
}

#[cfg(not(debug_assertions))]
fn default_jwt_secret() -> Result<SecretSource, ConfigError> {
    Err(err("JWT_SECRET", "is required (or JWT_SECRET_ARN)"))
}

fn parse_u64(
    name: &'static str,
    value: Option<String>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(err(
            name,
            format!("must be a whole number from {min} to {max}, got {value:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_suit_local_use() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.table.table_name, "social");
        assert_eq!(c.cache.redis_timeout, Duration::from_millis(50));
        assert!(matches!(c.jwt_secret, SecretSource::Value(_)));
        assert_eq!(c.log_format, LogFormat::Text);
        let contract = LoginLimits {
            per_pair: 5,
            per_ip: 50,
            window: Duration::from_secs(900),
        };
        assert_eq!(c.login_limits, contract, "API.md's defaults");
        let registration = RegistrationLimits {
            per_ip: 20,
            window: Duration::from_secs(900),
        };
        assert_eq!(c.registration_limits, registration, "API.md's defaults");
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("REDIS_TIMEOUT_MS", "soon"),
            ("REDIS_TIMEOUT_MS", "0"),
            ("CACHE_TTL_SECONDS", "-5"),
            ("JWT_SECRET", "short"),
            ("REDIS_URL", "http://example.com"),
            ("LOG_FORMAT", "xml"),
            ("LOGIN_MAX_FAILURES_PER_PAIR", "0"),
            ("LOGIN_MAX_FAILURES_PER_IP", "many"),
            ("LOGIN_FAILURE_WINDOW_SECONDS", "0"),
            ("REGISTRATION_MAX_REFUSALS_PER_IP", "0"),
            ("REGISTRATION_REFUSAL_WINDOW_SECONDS", "soon"),
        ] {
            let e = config(&[(var, value)]).expect_err(var);
            assert_eq!(e.variable, var, "{e}");
        }
    }

    #[test]
    fn secret_is_never_printed() {
        let c = config(&[(
            "JWT_SECRET",
            "a-very-long-secret-value-of-more-than-32-bytes",
        )])
        .expect("valid");
        assert!(!format!("{c:?}").contains("a-very-long-secret"));
    }

    /// Whether `name` is in one of the lists a deployment is checked against.
    fn listed(name: &str, deployment: &[&str]) -> bool {
        deployment.contains(&name)
            || OPTIONAL_VARIABLES.contains(&name)
            || TOKEN_AUTH_VARIABLES.contains(&name)
            || IAM_AUTH_VARIABLES.contains(&name)
    }

    #[test]
    fn every_variable_read_is_listed() {
        for redis_auth in [None, Some("token"), Some("iam")] {
            let read = std::sync::Mutex::new(Vec::new());
            let _ = Config::from_lookup(|name| {
                read.lock().expect("lock").push(name.to_owned());
                match name {
                    "REDIS_AUTH" => redis_auth.map(str::to_owned),
                    "REDIS_IAM_USER_ID" | "REDIS_IAM_CACHE_NAME" => Some("x".to_owned()),
                    _ => None,
                }
            });
            let read = read.into_inner().expect("lock");
            for name in &read {
                assert!(
                    listed(name, DEPLOYMENT_VARIABLES),
                    "{name} is read but not listed"
                );
            }
            for name in auth_variables(redis_auth.unwrap_or("token")) {
                assert!(
                    read.iter().any(|r| r == name),
                    "REDIS_AUTH={redis_auth:?} does not read {name}"
                );
            }
        }
    }

    fn cache(vars: &[(&str, &str)]) -> Result<CacheConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CacheConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn the_cache_is_standalone_with_a_token_unless_told_otherwise() {
        let c = cache(&[("REDIS_PASSWORD_SECRET_ARN", "arn:secret")]).expect("valid");
        assert_eq!(
            (c.mode, c.redis_password_secret_arn.as_deref(), &c.iam),
            (CacheMode::Standalone, Some("arn:secret"), &None)
        );
        let c = cache(&[("REDIS_MODE", "cluster"), ("REDIS_AUTH", "token")]).expect("valid");
        assert_eq!(
            (c.mode, c.redis_password_secret_arn, c.iam),
            (CacheMode::Cluster, None, None)
        );
    }

    #[test]
    fn iam_auth_needs_its_user_and_cache_and_no_token_secret() {
        let iam = [
            ("REDIS_AUTH", "iam"),
            ("REDIS_IAM_USER_ID", "app-user"),
            ("REDIS_IAM_CACHE_NAME", "social-cache"),
        ];
        let c = cache(&iam).expect("valid");
        let expected = IamAuthConfig {
            user_id: "app-user".into(),
            cache_name: "social-cache".into(),
            serverless: false,
        };
        assert_eq!(c.iam, Some(expected));
        let c = cache(&[&iam[..], &[("REDIS_IAM_SERVERLESS", "true")]].concat()).expect("valid");
        assert!(c.iam.is_some_and(|iam| iam.serverless));
        for (missing, variable) in [(1, "REDIS_IAM_USER_ID"), (2, "REDIS_IAM_CACHE_NAME")] {
            let vars: Vec<_> = iam
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, v)| *v)
                .collect();
            assert_eq!(cache(&vars).expect_err(variable).variable, variable);
        }
        for (extra, variable) in [
            (
                ("REDIS_PASSWORD_SECRET_ARN", "arn:secret"),
                "REDIS_PASSWORD_SECRET_ARN",
            ),
            (("REDIS_IAM_SERVERLESS", "yes"), "REDIS_IAM_SERVERLESS"),
        ] {
            let e = cache(&[&iam[..], &[extra]].concat()).expect_err(variable);
            assert_eq!(e.variable, variable, "{e}");
        }
        for (var, value) in [("REDIS_AUTH", "password"), ("REDIS_MODE", "sentinel")] {
            assert_eq!(cache(&[(var, value)]).expect_err(var).variable, var);
        }
    }

    #[test]
    fn the_sync_function_reads_only_its_variables() {
        let read = std::sync::Mutex::new(Vec::new());
        let record = |name: &str| {
            read.lock().expect("lock").push(name.to_owned());
            None
        };
        let _ = CacheConfig::from_lookup(record);
        let _ = TableConfig::from_lookup(record);
        let _ = log_format(record);
        let read = read.into_inner().expect("lock");
        for name in SYNC_DEPLOYMENT_VARIABLES {
            assert!(
                read.iter().any(|r| r == name),
                "{name} is listed but not read"
            );
        }
        for name in &read {
            assert!(
                listed(name, SYNC_DEPLOYMENT_VARIABLES),
                "{name} is read by cache-sync but not listed"
            );
        }
    }

    #[test]
    fn lambda_environment_logs_json() {
        let format = config(&[("AWS_LAMBDA_FUNCTION_NAME", "posts")])
            .expect("valid")
            .log_format;
        assert_eq!(format, LogFormat::Json);
    }
}
