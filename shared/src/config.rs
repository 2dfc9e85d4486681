//! Configuration, read from the environment once per Lambda instance.
//!
//! Every variable is validated up front with an error that names it, so a misconfigured
//! deployment fails at init with a clear log line instead of on the first request.
//! Secrets may be given directly (`JWT_SECRET`, local use) or as a Secrets Manager ARN
//! (`JWT_SECRET_ARN`, `REDIS_PASSWORD_SECRET_ARN`, production), fetched once at init.

use std::fmt;
use std::time::Duration;

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
    /// The table: what `cache-sync` reads too.
    pub table: TableConfig,
    /// The cache: what `cache-sync` reads too.
    pub cache: CacheConfig,
    pub jwt_secret: SecretSource,
    pub token_ttl: Duration,
    pub login_limits: LoginLimits,
    pub log_json: bool,
}

/// How many failed logins are allowed before `429 too_many_attempts` (API.md, "Abuse
/// limits"): per pair of email and source IP, per source IP, within one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    pub per_pair: u32,
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
}

/// The user cache (Redis): everything both the API functions and `cache-sync` need of it.
/// With [`TableConfig`], all `cache-sync` reads: it needs no JWT key and no secret but the
/// cache's own.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `redis://` or `rediss://` (TLS, ElastiCache in-transit encryption).
    pub redis_url: String,
    /// A Secrets Manager ARN holding the Redis AUTH token, if the cache needs one.
    pub redis_password_secret_arn: Option<String>,
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

/// Variables a deployment must set on every API function (`template.yaml` sets each; a test
/// checks it).
pub const DEPLOYMENT_VARIABLES: &[&str] = &[
    "TABLE_NAME",
    "REDIS_URL",
    "REDIS_PASSWORD_SECRET_ARN",
    "JWT_SECRET_ARN",
    "TOKEN_TTL_SECONDS",
    "CACHE_TTL_SECONDS",
    "REDIS_TIMEOUT_MS",
    "LOG_FORMAT",
];

/// Variables a deployment must set on the `cache-sync` function: the cache's and the table's
/// name, nothing more.
pub const SYNC_DEPLOYMENT_VARIABLES: &[&str] =
    &["TABLE_NAME", "REDIS_URL", "REDIS_PASSWORD_SECRET_ARN", "CACHE_TTL_SECONDS", "REDIS_TIMEOUT_MS", "LOG_FORMAT"];

/// Variables with good defaults everywhere, or meant for local use only (`JWT_SECRET`,
/// `DYNAMODB_ENDPOINT`). `AWS_LAMBDA_FUNCTION_NAME` is set by Lambda itself.
pub const OPTIONAL_VARIABLES: &[&str] = &[
    "JWT_SECRET",
    "DYNAMODB_ENDPOINT",
    "DYNAMODB_TIMEOUT_MS",
    "DYNAMODB_CONNECT_TIMEOUT_MS",
    "DYNAMODB_MAX_ATTEMPTS",
    "REDIS_CONNECT_TIMEOUT_MS",
    "NEGATIVE_CACHE_TTL_SECONDS",
    "LOGIN_MAX_FAILURES_PER_PAIR",
    "LOGIN_MAX_FAILURES_PER_IP",
    "LOGIN_FAILURE_WINDOW_SECONDS",
    "AWS_LAMBDA_FUNCTION_NAME",
];

/// Variables read outside [`Config`], when the process starts: the log filter
/// ([`crate::telemetry`]) and the metrics' namespace ([`crate::metrics`]). Every function may get
/// them.
pub const PROCESS_VARIABLES: &[&str] = &["RUST_LOG", "AWS_LAMBDA_LOG_LEVEL", crate::metrics::NAMESPACE_VARIABLE];

/// A variable that is present but wrong, or missing where it is required.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn err(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { variable, message: message.into() }
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
            (Some(_), Some(_)) => return Err(err("JWT_SECRET", "set JWT_SECRET or JWT_SECRET_ARN, not both")),
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
                per_ip: parse_u64("LOGIN_MAX_FAILURES_PER_IP", vars.get("LOGIN_MAX_FAILURES_PER_IP"), 50, 1, 1_000_000)?
                    as u32,
                window: vars.seconds("LOGIN_FAILURE_WINDOW_SECONDS", 900, 24 * 3_600)?,
            },
            log_json: log_json(&lookup)?,
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
        let attempts = parse_u64("DYNAMODB_MAX_ATTEMPTS", vars.get("DYNAMODB_MAX_ATTEMPTS"), 2, 1, 10)? as u32;
        Ok(TableConfig {
            table_name: vars.get("TABLE_NAME").unwrap_or_else(|| "social".to_owned()),
            dynamodb_endpoint: vars.get("DYNAMODB_ENDPOINT"),
            dynamodb_attempt_timeout: vars.millis("DYNAMODB_TIMEOUT_MS", 1_500)?,
            dynamodb_connect_timeout: vars.millis("DYNAMODB_CONNECT_TIMEOUT_MS", 1_000)?,
            dynamodb_attempts: attempts,
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
        let redis_url = vars.get("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
        let scheme_ok = redis_url.starts_with("redis://") || redis_url.starts_with("rediss://");
        if !scheme_ok || redis::IntoConnectionInfo::into_connection_info(redis_url.as_str()).is_err() {
            return Err(err("REDIS_URL", "must be a redis:// or rediss:// URL"));
        }
        Ok(CacheConfig {
            redis_url,
            redis_password_secret_arn: vars.get("REDIS_PASSWORD_SECRET_ARN"),
            redis_timeout: vars.millis("REDIS_TIMEOUT_MS", 50)?,
            redis_connect_timeout: vars.millis("REDIS_CONNECT_TIMEOUT_MS", 250)?,
            cache_ttl: vars.seconds("CACHE_TTL_SECONDS", 300, 24 * 3_600)?,
            negative_cache_ttl: vars.seconds("NEGATIVE_CACHE_TTL_SECONDS", 30, 3_600)?,
        })
    }
}

/// Whether logs are JSON lines: `LOG_FORMAT`, else JSON exactly when running in Lambda.
pub fn log_json(lookup: impl Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    match Vars(&lookup).get("LOG_FORMAT").as_deref() {
        Some("json") => Ok(true),
        Some("text") => Ok(false),
        None => Ok(lookup("AWS_LAMBDA_FUNCTION_NAME").is_some()),
        Some(_) => Err(err("LOG_FORMAT", "must be `json` or `text`")),
    }
}

/// The variables as configuration reads them: values trimmed, empty ones unset, durations
/// whole numbers within bounds.
struct Vars<'a, L>(&'a L);

impl<L: Fn(&str) -> Option<String>> Vars<'_, L> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
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

fn parse_u64(name: &'static str, value: Option<String>, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    let Some(value) = value else { return Ok(default) };
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(err(name, format!("must be a whole number from {min} to {max}, got {value:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_suit_local_use() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.table.table_name, "social");
        assert_eq!(c.cache.redis_timeout, Duration::from_millis(50));
        assert!(matches!(c.jwt_secret, SecretSource::Value(_)));
        assert!(!c.log_json);
        let contract = LoginLimits { per_pair: 5, per_ip: 50, window: Duration::from_secs(900) };
        assert_eq!(c.login_limits, contract, "API.md's defaults");
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
        ] {
            let e = config(&[(var, value)]).expect_err(var);
            assert_eq!(e.variable, var, "{e}");
        }
    }

    #[test]
    fn secret_is_never_printed() {
        let c = config(&[("JWT_SECRET", "a-very-long-secret-value-of-more-than-32-bytes")]).expect("valid");
        assert!(!format!("{c:?}").contains("a-very-long-secret"));
    }

    #[test]
    fn every_variable_read_is_listed() {
        let read = std::sync::Mutex::new(Vec::new());
        let _ = Config::from_lookup(|name| {
            read.lock().expect("lock").push(name.to_owned());
            None
        });
        for name in read.into_inner().expect("lock") {
            assert!(
                DEPLOYMENT_VARIABLES.contains(&name.as_str()) || OPTIONAL_VARIABLES.contains(&name.as_str()),
                "{name} is read but not listed"
            );
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
        let _ = log_json(record);
        let read = read.into_inner().expect("lock");
        for name in SYNC_DEPLOYMENT_VARIABLES {
            assert!(read.iter().any(|r| r == name), "{name} is listed but not read");
        }
        for name in &read {
            assert!(
                SYNC_DEPLOYMENT_VARIABLES.contains(&name.as_str()) || OPTIONAL_VARIABLES.contains(&name.as_str()),
                "{name} is read by cache-sync but not listed"
            );
        }
    }

    #[test]
    fn lambda_environment_logs_json() {
        assert!(config(&[("AWS_LAMBDA_FUNCTION_NAME", "posts")]).expect("valid").log_json);
    }
}
