//! The services a function builds once per Lambda instance and reuses for every request.

use std::future::Future;
use std::time::Duration;

use lambda_http::{service_fn, Body, Request, Response};
use tracing::Instrument;

use crate::auth::{Authenticator, LoginAttempts, TokenKeys};
use crate::cache::{Posts, RedisCache, Users};
use crate::config::{validate_jwt_secret, CacheConfig, Config, ConfigError, Secret, SecretSource};
use crate::cursor::CursorCodec;
use crate::store::{client_from_config, Store};
use crate::telemetry::LogFormat;

/// Everything a handler needs: built in `main` before the runtime starts, then borrowed.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub users: Users,
    /// Posts, the feed and comments, cache-aside.
    pub posts: Posts,
    pub auth: Authenticator,
    pub login_attempts: LoginAttempts,
    pub cursors: CursorCodec,
    /// The clock new users' ids are read from (the system's; a test may set one that is skewed).
    pub clock: crate::domain::Clock,
}

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading secret {arn}: {message}")]
    Secret { arn: String, message: String },
}

impl App {
    /// Fetches the secrets `config` names by ARN and builds the clients.
    pub async fn from_config(config: Config) -> Result<Self, InitError> {
        let dynamo = client_from_config(&config.table).await;
        let jwt_secret_arn = match &config.jwt_secret {
            SecretSource::SecretsManager { arn } => Some(arn.as_str()),
            SecretSource::Value(_) => None,
        };
        let arns = [
            jwt_secret_arn,
            config.cache.redis_password_secret_arn.as_deref(),
        ];
        let secrets = SecretFetcher::for_secrets(&arns, &config.cache).await;
        let jwt_secret = match &config.jwt_secret {
            SecretSource::Value(secret) => secret.clone(),
            SecretSource::SecretsManager { arn } => {
                validate_jwt_secret(secrets.fetch(arn).await?.expose().to_owned())?
            }
        };
        let redis_password = secrets.cache_password(&config.cache).await?;
        Self::build(config, dynamo, jwt_secret, redis_password)
    }

    /// Builds the services from parts: what `from_config` does after I/O, and what tests use to
    /// point an app at their own DynamoDB and Redis.
    pub fn build(
        config: Config,
        dynamo: aws_sdk_dynamodb::Client,
        jwt_secret: Secret,
        redis_password: Option<Secret>,
    ) -> Result<Self, InitError> {
        let store = Store::new(dynamo, config.table.table_name.clone())
            .with_legacy_layout(config.table.legacy_layout);
        let cache = RedisCache::new(&config.cache, redis_password)?;
        let login_attempts = LoginAttempts::new(
            cache.connection().clone(),
            config.login_limits,
            config.registration_limits,
        );
        let posts = Posts::new(store.clone(), cache.clone());
        let users = Users::new(store.clone(), cache);
        let auth = Authenticator::new(TokenKeys::new(&jwt_secret, config.token_ttl), users.clone());
        let cursors = CursorCodec::new(&jwt_secret);
        Ok(App {
            config,
            store,
            users,
            posts,
            auth,
            login_attempts,
            cursors,
            clock: crate::domain::Clock::system(),
        })
    }

    /// Opens the Redis and DynamoDB connections before the first request, so that request
    /// does not pay for them (TCP, TLS, credentials, the SDK's first-call setup). Both run at
    /// once, each bounded by `bound`: a dead dependency delays the init by `bound` at most
    /// and fails nothing.
    pub async fn prewarm(&self, bound: Duration) {
        tokio::join!(self.users.cache().prewarm(bound), self.store.prewarm(bound));
    }
}

/// How long the init may spend opening connections before the first event ([`Prewarm`]).
const PREWARM_BOUND: Duration = Duration::from_millis(100);

/// Services that open their connections before the first event, so it does not pay for them
/// (TCP, TLS, credentials, the SDK's first-call setup), each bounded: a dead dependency delays
/// the init by the bound at most and fails nothing.
pub trait Prewarm: Send + Sync + 'static {
    fn prewarm(&self, bound: Duration) -> impl Future<Output = ()> + Send;
}

impl Prewarm for App {
    fn prewarm(&self, bound: Duration) -> impl Future<Output = ()> + Send {
        App::prewarm(self, bound)
    }
}

/// Every function's start, HTTP or stream alike: the metrics recorder first (the init's
/// duration is measured from it), then the logs (JSON unless `LOG_FORMAT` says, so even a bad
/// configuration is reported as a log line), then the services `build` makes once per
/// instance (a failure is logged as `init failed` and ends the init, which Lambda reports),
/// their connections opened, and the end of the init marked.
///
/// The services are leaked on purpose: they live exactly as long as the process, and a
/// `'static` borrow is what lets every invocation, on any thread, share them without
/// reference counting (on Lambda Managed Instances many run at once).
pub async fn start<S: Prewarm>(
    build: impl Future<Output = Result<S, InitError>>,
) -> Result<&'static S, InitError> {
    crate::metrics::init();
    let log_format = crate::config::log_format(|name| std::env::var(name).ok());
    crate::telemetry::init(*log_format.as_ref().unwrap_or(&LogFormat::Json));
    let services = async {
        log_format?;
        build.await
    }
    .await
    .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    services.prewarm(PREWARM_BOUND).await;
    crate::metrics::init_done();
    Ok(Box::leak(Box::new(services)))
}

/// An HTTP function's whole life: [`start`] with the [`App`], then one `handle` call per
/// event until the instance is retired: one at a time on demand, up to
/// `AWS_LAMBDA_MAX_CONCURRENCY` at once on Lambda Managed Instances
/// (`lambda_http::run_concurrent` decides from the environment; run it on
/// [`crate::runtime::build`]'s runtime).
pub async fn run<F, Fut>(handle: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static App, Request) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let app = start(async { App::from_config(Config::from_env()?).await }).await?;
    let service = service_fn(move |req: Request| async move {
        Ok::<_, lambda_http::Error>(handle(app, req).await)
    });
    lambda_http::run_concurrent(service).await
}

/// A stream function's whole life (`cache-sync`, `upkeep`): [`start`] with its services, then
/// one `handle` call per batch, as [`run`] does for requests.
pub async fn run_events<S, E, R, Err, F, Fut>(
    build: impl Future<Output = Result<S, InitError>>,
    handle: F,
) -> Result<(), lambda_runtime::Error>
where
    S: Prewarm,
    E: serde::de::DeserializeOwned + Send + 'static,
    R: serde::Serialize + Send + 'static,
    Err: Into<lambda_runtime::Diagnostic> + std::fmt::Debug + Send + 'static,
    F: Fn(&'static S, lambda_runtime::LambdaEvent<E>) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Result<R, Err>> + Send + 'static,
{
    let services = start(build).await?;
    lambda_runtime::run_concurrent(lambda_runtime::service_fn(move |event| {
        handle(services, event)
    }))
    .await
}

/// How a stream function's batch failure is reported, for a type with an inherent
/// `error_type(&self) -> &'static str` and a `Display` message: the runtime logs a handler's
/// error at `ERROR` with its `Debug` print, the line alarms and log filters catch, so that print
/// is `<errorType>: <message>` (what failed and what happens next), not the variant's
/// structure; and Lambda records the same two (`errorType`, `errorMessage`), which the failure
/// destination's metadata then shows.
#[macro_export]
macro_rules! batch_failure_reporting {
    ($failure:ty) => {
        impl ::std::fmt::Debug for $failure {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}: {self}", self.error_type())
            }
        }

        impl From<$failure> for ::lambda_runtime::Diagnostic {
            fn from(e: $failure) -> ::lambda_runtime::Diagnostic {
                ::lambda_runtime::Diagnostic {
                    error_type: e.error_type().into(),
                    error_message: e.to_string(),
                }
            }
        }
    };
}

/// When the oldest change of a stream batch was made (the stream's clock, which DynamoDB stamps
/// to the second): read before the batch is applied, so that [`OldestChange::lag`] after it is
/// how long that change took to be applied, the stream functions' lag metric.
pub struct OldestChange(Option<i64>);

impl OldestChange {
    pub fn of(records: &[aws_lambda_events::event::dynamodb::EventRecord]) -> Self {
        OldestChange(
            records
                .iter()
                .map(|r| r.change.approximate_creation_date_time.timestamp_millis())
                .min(),
        )
    }

    /// From the oldest change to now (none for an empty batch).
    pub fn lag(&self) -> Option<Duration> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        self.0
            .map(|t| Duration::from_millis((now - t).max(0) as u64))
    }
}

/// One batch of a stream function, as [`crate::http::serve`] is one request: `apply` runs in a
/// span naming its invocation (the function, Lambda's request id, the X-Ray trace id), so every
/// line it logs says which invocation wrote it, and its measurements are the function's, flushed
/// when it ends. The span is attached to the batch's future, not entered around it, so batches
/// that run at once on Lambda Managed Instances keep their own fields on whichever thread polls
/// them.
pub async fn batch<E, T, Fut>(
    function: &'static str,
    event: lambda_runtime::LambdaEvent<E>,
    apply: impl FnOnce(lambda_runtime::LambdaEvent<E>) -> Fut,
) -> T
where
    Fut: Future<Output = T>,
{
    let span = tracing::info_span!(
        "batch",
        function,
        request_id = %event.context.request_id,
        trace_id = event.context.xray_trace_id.as_deref(),
    );
    let applied = crate::metrics::scope(function, apply(event).instrument(span)).await;
    crate::metrics::invocation_done(function);
    applied
}

/// The cache as the stream functions (`cache-sync`, `upkeep`) build it at init: the AUTH token
/// from Secrets Manager when the configuration names one, and the (lazy) connection.
pub async fn cache_from_config(config: &CacheConfig) -> Result<RedisCache, InitError> {
    let secrets =
        SecretFetcher::for_secrets(&[config.redis_password_secret_arn.as_deref()], config).await;
    let password = secrets.cache_password(config).await?;
    Ok(RedisCache::new(config, password)?)
}

/// Secrets Manager, used only at init and only when a secret is given by ARN.
struct SecretFetcher {
    client: Option<aws_sdk_secretsmanager::Client>,
}

/// Bounds on reading a secret at init: an unreachable or silent Secrets Manager fails the init
/// within about 2 × 1.5 s, with a log line naming the secret, well inside Lambda's 10 s init
/// limit (which would otherwise end it with no word of why).
const SECRETS_CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
const SECRETS_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1_500);
const SECRETS_OPERATION_TIMEOUT: Duration = Duration::from_millis(3_000);
const SECRETS_MAX_ATTEMPTS: u32 = 2;

impl SecretFetcher {
    /// A client when any of the secrets the configuration may name by ARN (`arns`, `None` for
    /// one it gives otherwise or not at all) is named, none otherwise (so no init time is spent
    /// on it); at `SECRETS_MANAGER_ENDPOINT` when the configuration names one.
    async fn for_secrets(arns: &[Option<&str>], config: &CacheConfig) -> Self {
        use aws_sdk_secretsmanager::config::{retry::RetryConfig, timeout::TimeoutConfig};
        if arns.iter().all(Option::is_none) {
            return SecretFetcher { client: None };
        }
        let endpoint = config.secrets_manager_endpoint.as_deref();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(SECRETS_CONNECT_TIMEOUT)
            .operation_attempt_timeout(SECRETS_ATTEMPT_TIMEOUT)
            .operation_timeout(SECRETS_OPERATION_TIMEOUT)
            .build();
        let mut builder = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(crate::sdk::region().await)
            .credentials_provider(crate::sdk::credentials())
            .http_client(crate::sdk::http_client(endpoint))
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(SECRETS_MAX_ATTEMPTS));
        if let Some(endpoint) = endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        SecretFetcher {
            client: Some(aws_sdk_secretsmanager::Client::from_conf(builder.build())),
        }
    }

    /// The cache's AUTH token, if the configuration names its secret.
    async fn cache_password(&self, config: &CacheConfig) -> Result<Option<Secret>, InitError> {
        match &config.redis_password_secret_arn {
            Some(arn) => Ok(Some(self.fetch(arn).await?)),
            None => Ok(None),
        }
    }

    async fn fetch(&self, arn: &str) -> Result<Secret, InitError> {
        let fail = |message: String| InitError::Secret {
            arn: arn.to_owned(),
            message,
        };
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| fail("no Secrets Manager client".into()))?;
        let out = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                fail(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())
            })?;
        out.secret_string
            .map(Secret::new)
            .ok_or_else(|| fail("the secret has no string value".into()))
    }
}
