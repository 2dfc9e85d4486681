//! ElastiCache IAM authentication: the cache password is a short-lived token the function signs
//! with its own credentials, so no long-lived cache password exists anywhere.
//!
//! The token is what AWS documents for ElastiCache (and what its Java and Python samples build):
//! a SigV4 *query-presigned* `GET http://<cache-name>/?Action=connect&User=<user-id>` (plus
//! `&ResourceType=ServerlessCache` for a serverless cache), service `elasticache`, valid
//! 900 s, with the leading `http://` stripped. It is sent as the password of
//! `AUTH <user-id> <token>` (or `HELLO`); the user id is also the user name of an IAM user.
//!
//! [`IamTokens`] hands the `redis` crate a stream of credentials
//! ([`StreamingCredentialsProvider`]): every new connection (standalone, each cluster node's,
//! every reconnect) authenticates with the stream's first item, and each live connection sends
//! `AUTH` again with every later one. Two limits follow from ElastiCache's rules:
//! - a token must be valid when a connection presents it: it is reused for
//!   [`REFRESH_AFTER`] of its 15 minutes, then a new one is signed (signing is local, no call);
//! - ElastiCache closes an IAM connection 12 hours after its last `AUTH`: every live
//!   connection re-authenticates every [`REAUTHENTICATE_EVERY`] with a current token, so none
//!   reaches that age while the instance runs. (A Lambda instance frozen through that hour
//!   finds its connection closed on thaw: the command fails, falls back to DynamoDB within the
//!   timeout like any lost connection, and the reconnect signs a new token.)

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use futures_util::Stream;
use redis::auth::{BasicAuth, StreamingCredentialsProvider};
use redis::{ErrorKind, RedisError, RedisResult};

use crate::config::{IamAuthConfig, Secret};

/// How long a token is valid for (ElastiCache accepts at most 15 minutes).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// How long a signed token is reused for new connections: a third of its life left over covers
/// clock skew and a slow connect.
pub const REFRESH_AFTER: Duration = Duration::from_secs(600);

/// How often a live connection sends `AUTH` again: far inside ElastiCache's 12 hours, and cheap
/// (one command per connection per hour).
pub const REAUTHENTICATE_EVERY: Duration = Duration::from_secs(3_600);

/// The SigV4 service name of ElastiCache.
const SERVICE: &str = "elasticache";

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no AWS credentials to sign the ElastiCache IAM token: {0}")]
    Credentials(String),
    #[error("signing the ElastiCache IAM token: {0}")]
    Signing(String),
}

/// The ElastiCache IAM tokens of one cache user: signed on demand, reused while fresh, and
/// streamed to the `redis` crate for every connection it opens. Cheap to clone (shared).
#[derive(Clone)]
pub struct IamTokens {
    inner: Arc<Tokens>,
}

struct Tokens {
    config: IamAuthConfig,
    credentials: SharedCredentialsProvider,
    /// `None`: the region from the environment (`AWS_REGION`), read when signing.
    region: Option<String>,
    refresh_after: Duration,
    reauthenticate_every: Duration,
    current: Mutex<Option<Signed>>,
}

#[derive(Clone)]
struct Signed {
    token: Secret,
    at: SystemTime,
}

impl IamTokens {
    /// Tokens signed with the credentials and region Lambda gives the function (the same
    /// environment the SDK clients read, [`crate::sdk`]).
    pub fn from_environment(config: &IamAuthConfig) -> Self {
        Self::build(
            config,
            SharedCredentialsProvider::new(crate::sdk::credentials()),
            None,
            REFRESH_AFTER,
            REAUTHENTICATE_EVERY,
        )
    }

    /// Tokens signed with given credentials in a given region.
    pub fn new(
        config: &IamAuthConfig,
        credentials: impl ProvideCredentials + 'static,
        region: &str,
    ) -> Self {
        let credentials = SharedCredentialsProvider::new(credentials);
        Self::build(
            config,
            credentials,
            Some(region.to_owned()),
            REFRESH_AFTER,
            REAUTHENTICATE_EVERY,
        )
    }

    /// New tokens like these but with other timings, for tests that cannot wait ten minutes
    /// or an hour.
    pub fn with_timing(&self, refresh_after: Duration, reauthenticate_every: Duration) -> Self {
        let t = &self.inner;
        Self::build(
            &t.config,
            t.credentials.clone(),
            t.region.clone(),
            refresh_after,
            reauthenticate_every,
        )
    }

    fn build(
        config: &IamAuthConfig,
        credentials: SharedCredentialsProvider,
        region: Option<String>,
        refresh_after: Duration,
        reauthenticate_every: Duration,
    ) -> Self {
        let tokens = Tokens {
            config: config.clone(),
            credentials,
            region,
            refresh_after,
            reauthenticate_every,
            current: Mutex::new(None),
        };
        IamTokens {
            inner: Arc::new(tokens),
        }
    }

    /// The user id every `AUTH` names.
    pub fn user_id(&self) -> &str {
        &self.inner.config.user_id
    }

    /// A token valid now: the last one while it is younger than the refresh age, else a new one.
    pub async fn token(&self) -> Result<Secret, TokenError> {
        let now = SystemTime::now();
        if let Some(signed) = self.current() {
            let age = now.duration_since(signed.at).unwrap_or(Duration::MAX);
            if age < self.inner.refresh_after {
                return Ok(signed.token);
            }
        }
        let credentials = self
            .inner
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| TokenError::Credentials(e.to_string()))?;
        let region = match &self.inner.region {
            Some(region) => region.clone(),
            None => crate::sdk::region().await.to_string(),
        };
        let token =
            presign(&self.inner.config, &credentials.into(), &region, now).map(Secret::new)?;
        *self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Signed {
            token: token.clone(),
            at: now,
        });
        tracing::debug!(user = %self.inner.config.user_id, "signed a new ElastiCache IAM token");
        Ok(token)
    }

    fn current(&self) -> Option<Signed> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn credentials(&self) -> RedisResult<BasicAuth> {
        match self.token().await {
            Ok(token) => Ok(BasicAuth::new(
                self.inner.config.user_id.clone(),
                token.expose().to_owned(),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "no ElastiCache IAM token; the cache is unavailable until there is one");
                Err(RedisError::from((
                    ErrorKind::AuthenticationFailed,
                    "no ElastiCache IAM token",
                    e.to_string(),
                )))
            }
        }
    }
}

/// Every subscription yields a token at once (a new connection authenticates with it; the
/// connection's re-authentication task sends it once more, harmlessly), then a current one every
/// [`REAUTHENTICATE_EVERY`].
impl StreamingCredentialsProvider for IamTokens {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let tokens = self.clone();
        Box::pin(futures_util::stream::unfold(true, move |first| {
            let tokens = tokens.clone();
            async move {
                if !first {
                    tokio::time::sleep(tokens.inner.reauthenticate_every).await;
                }
                Some((tokens.credentials().await, false))
            }
        }))
    }
}

/// The token for `config`'s user and cache, signed with `identity` in `region` at `time`: the
/// presigned URL without its `http://`.
pub fn presign(
    config: &IamAuthConfig,
    identity: &Identity,
    region: &str,
    time: SystemTime,
) -> Result<String, TokenError> {
    let signing = |e: &dyn std::fmt::Display| TokenError::Signing(e.to_string());
    let mut url =
        url::Url::parse(&format!("http://{}/", config.cache_name)).map_err(|e| signing(&e))?;
    url.query_pairs_mut()
        .append_pair("Action", "connect")
        .append_pair("User", &config.user_id);
    if config.serverless {
        url.query_pairs_mut()
            .append_pair("ResourceType", "ServerlessCache");
    }
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| signing(&e))?;
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| signing(&e))?;
    let (instructions, _signature) = sign(request, &params.into())
        .map_err(|e| signing(&e))?
        .into_parts();
    for (name, value) in instructions.params() {
        url.query_pairs_mut().append_pair(name, value);
    }
    let url = String::from(url);
    Ok(url.strip_prefix("http://").unwrap_or(&url).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    /// 2026-01-02T03:04:05Z.
    const TIME: u64 = 1_767_323_045;

    fn config(serverless: bool) -> IamAuthConfig {
        IamAuthConfig {
            user_id: "app-user".into(),
            cache_name: "social-cache".into(),
            serverless,
        }
    }

    fn identity(session_token: Option<&str>) -> Identity {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "test",
        );
        credentials.into()
    }

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(TIME)
    }

    /// The token's query parameters, decoded, in order.
    fn params(token: &str) -> Vec<(String, String)> {
        let (_, query) = token.split_once('?').expect("a query");
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 3986 encoding, as SigV4's canonical query string wants it.
    fn encode(value: &str) -> String {
        value
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// The signature SigV4 gives this token, computed here from its own parts (canonical
    /// request, string to sign, derived key), independently of `aws-sigv4`.
    fn expected_signature(token: &str, secret: &str, region: &str) -> String {
        let host = token.split('/').next().expect("host");
        let mut query: Vec<(String, String)> = params(token)
            .into_iter()
            .filter(|(k, _)| k != "X-Amz-Signature")
            .map(|(k, v)| (encode(&k), encode(&v)))
            .collect();
        query.sort();
        let query = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let empty_body = hex(&Sha256::digest(b""));
        let canonical = format!("GET\n/\n{query}\nhost:{host}\n\nhost\n{empty_body}");
        let date_time = param(&params(token), "X-Amz-Date")
            .expect("X-Amz-Date")
            .to_owned();
        let date = &date_time[..8];
        let scope = format!("{date}/{region}/elasticache/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let key = ["", region, "elasticache", "aws4_request"]
            .iter()
            .skip(1)
            .fold(
                hmac(format!("AWS4{secret}").as_bytes(), date),
                |key, part| hmac(&key, part),
            );
        hex(&hmac(&key, &to_sign))
    }

    #[test]
    fn the_token_is_a_presigned_connect_url_for_the_cache_without_its_scheme() {
        let token = presign(&config(false), &identity(None), "eu-west-1", at()).expect("signed");
        assert!(
            token.starts_with("social-cache/?Action=connect&User=app-user&"),
            "{token}"
        );
        assert!(!token.contains("http"), "{token}");
        let p = params(&token);
        let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "Action",
                "User",
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-Expires",
                "X-Amz-SignedHeaders",
                "X-Amz-Signature"
            ],
            "{token}"
        );
        assert_eq!(param(&p, "X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
        assert_eq!(
            param(&p, "X-Amz-Credential"),
            Some("AKIDEXAMPLE/20260102/eu-west-1/elasticache/aws4_request")
        );
        assert_eq!(param(&p, "X-Amz-Date"), Some("20260102T030405Z"));
        assert_eq!(param(&p, "X-Amz-Expires"), Some("900"));
        assert_eq!(param(&p, "X-Amz-SignedHeaders"), Some("host"));
        assert_eq!(
            param(&p, "ResourceType"),
            None,
            "a node-based cache is not named serverless"
        );
        let signature = param(&p, "X-Amz-Signature").expect("signature");
        assert_eq!(
            signature,
            expected_signature(
                &token,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "eu-west-1"
            )
        );
    }

    #[test]
    fn a_serverless_token_says_so_and_a_session_token_is_signed_in() {
        let session = "FwoGZXIvYXdzE+/session==";
        let token =
            presign(&config(true), &identity(Some(session)), "us-east-1", at()).expect("signed");
        let p = params(&token);
        assert_eq!(
            param(&p, "ResourceType"),
            Some("ServerlessCache"),
            "{token}"
        );
        assert_eq!(param(&p, "X-Amz-Security-Token"), Some(session), "{token}");
        assert!(
            token.contains("X-Amz-Security-Token=FwoGZXIvYXdzE%2B%2Fsession%3D%3D"),
            "encoded in the URL: {token}"
        );
        let signature = param(&p, "X-Amz-Signature").expect("signature");
        assert_eq!(
            signature,
            expected_signature(
                &token,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "us-east-1"
            )
        );
    }

    #[test]
    fn the_signature_covers_user_cache_time_and_key() {
        let base = presign(&config(false), &identity(None), "eu-west-1", at()).expect("signed");
        let signature = |token: &str| param(&params(token), "X-Amz-Signature").map(str::to_owned);
        let other_user = IamAuthConfig {
            user_id: "other".into(),
            ..config(false)
        };
        let other_cache = IamAuthConfig {
            cache_name: "other-cache".into(),
            ..config(false)
        };
        let later = at() + Duration::from_secs(1);
        for other in [
            presign(&other_user, &identity(None), "eu-west-1", at()),
            presign(&other_cache, &identity(None), "eu-west-1", at()),
            presign(&config(false), &identity(None), "eu-west-2", at()),
            presign(&config(false), &identity(None), "eu-west-1", later),
            presign(&config(true), &identity(None), "eu-west-1", at()),
        ] {
            assert_ne!(signature(&other.expect("signed")), signature(&base));
        }
        assert_eq!(
            presign(&config(false), &identity(None), "eu-west-1", at()).expect("signed"),
            base,
            "deterministic"
        );
    }

    #[tokio::test]
    async fn a_token_is_reused_while_fresh_and_the_stream_yields_one_at_once() {
        use futures_util::StreamExt;
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let tokens = IamTokens::new(&config(false), credentials, "eu-west-1");
        let first = tokens.token().await.expect("a token");
        assert_eq!(
            tokens.token().await.expect("a token").expose(),
            first.expose(),
            "reused within the refresh age"
        );
        let auth = tokens
            .subscribe()
            .next()
            .await
            .expect("an item")
            .expect("credentials");
        assert_eq!(
            (auth.username(), auth.password()),
            ("app-user", first.expose())
        );
        let stale = tokens.with_timing(Duration::ZERO, REAUTHENTICATE_EVERY);
        let a = stale.token().await.expect("a token");
        tokio::time::sleep(Duration::from_millis(1_100)).await; // X-Amz-Date has whole seconds
        assert_ne!(
            stale.token().await.expect("a token").expose(),
            a.expose(),
            "signed again once stale"
        );
    }
}
