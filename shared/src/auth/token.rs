//! HS256 tokens with the contract's issuer and audience, and where a request carries them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::domain::{Email, User};
use crate::error::AppError;

pub const ISSUER: &str = "Caching-Code-Login";
pub const AUDIENCE: &str = "Caching-Code-Auth";

/// The claims of a token, as `API.md` names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub sub: String,
    pub email: String,
    pub name: String,
    pub jwt_version: u64,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    /// A unique id per token, so two logins in the same second get two different tokens (and
    /// a test of "every token" checks more than one).
    #[serde(default)]
    pub jti: String,
    /// Which registration of its email the token's user is ([`User::registration`]), so the
    /// cache can tell an entry of an earlier user of the email from one of a later user by
    /// the table's order, not by ids made on clocks that may disagree. Absent in tokens issued
    /// before it existed, and for users registered before registrations were counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reg: Option<u64>,
}

/// A token's claims once verified, with the email in them already validated: what an
/// instance remembers of a token it has accepted ([`TokenKeys::verify`]).
#[derive(Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    pub claims: Claims,
    pub email: Email,
}

/// A freshly signed token and its lifetime in seconds (`expiresIn`).
#[derive(Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

/// Signing and verifying keys, built once per instance from the secret.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    /// Tokens this instance has already verified, by their exact text ([`TokenKeys::verify`]).
    verified: Remembered,
}

/// How many verified tokens an instance remembers; past it, a shard forgets its own and starts
/// again (about 0.5 KB each).
const VERIFIED_CAPACITY: usize = 512;

/// Shards of the memory. On Lambda Managed Instances many invocations check tokens at once,
/// on several threads: each shard has its own lock, and a lookup takes it only to read, so
/// checks of remembered tokens never wait for each other, and a first check (which writes)
/// holds up only the tokens of its shard.
const SHARDS: usize = 16;

/// The verified tokens, split by the last character of the token (the signature's, which
/// spreads evenly), each shard behind its own read-write lock.
struct Remembered {
    shards: [RwLock<HashMap<String, Arc<VerifiedToken>>>; SHARDS],
}

impl Remembered {
    fn new() -> Self {
        Remembered {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
        }
    }

    fn shard(&self, token: &str) -> &RwLock<HashMap<String, Arc<VerifiedToken>>> {
        &self.shards[token.as_bytes().last().map_or(0, |b| *b as usize) % SHARDS]
    }

    /// How many are remembered, all shards together.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().map_or(0, |s| s.len()))
            .sum()
    }

    #[cfg(test)]
    fn contains(&self, token: &str) -> bool {
        self.shard(token)
            .read()
            .is_ok_and(|s| s.contains_key(token))
    }
}

impl TokenKeys {
    pub fn new(secret: &Secret, ttl: Duration) -> Self {
        // Only HS256: a token whose header names `none`, RS256 or anything else is refused
        // before its signature is looked at, which closes the alg-confusion attacks.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            ttl,
            verified: Remembered::new(),
        }
    }

    /// Signs a token for `user` at its current `jwtVersion`.
    pub fn issue(&self, user: &User) -> Result<IssuedToken, AppError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.id.clone(),
            email: user.email.as_str().to_owned(),
            name: user.name.clone(),
            jwt_version: user.jwt_version,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            jti: crate::domain::new_id(),
            reg: (user.registration > 0).then_some(user.registration),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::Internal(format!("signing a token: {e}")))?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// Checks signature, algorithm, `iss`, `aud`, `exp` (and `nbf` when present), and that
    /// the email claim is a valid email.
    /// Whether the user still exists at this `jwtVersion` is the [`Authenticator`]'s job.
    ///
    /// A client sends the same token with every request until it expires, so a token this
    /// instance has accepted is remembered, by its exact text, with what was read from it:
    /// the next time only `exp` is checked again. That is the whole of the check that can
    /// change for the same bytes (the key is fixed per instance, `nbf` was already past,
    /// `iss` and `aud` are in the bytes), and it spares each later request a full check (its
    /// cost is in BENCHMARKS.md). Refused tokens are never remembered, and the memory is
    /// bounded (`VERIFIED_CAPACITY`).
    ///
    /// [`Authenticator`]: super::Authenticator
    pub fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, AppError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(verified) = self.remembered(token, now) {
            return Ok(verified);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                tracing::debug!(reason = ?e.kind(), "token refused");
                AppError::Unauthorized("token refused")
            })?;
        let email = Email::parse(&claims.email)
            .map_err(|_| AppError::Unauthorized("token email malformed"))?;
        let verified = Arc::new(VerifiedToken { claims, email });
        self.remember(token, &verified);
        Ok(verified)
    }

    /// The claims of `token` if it was verified before and has not expired since (expired:
    /// `exp` before now, as `jsonwebtoken` with no leeway has it).
    fn remembered(&self, token: &str, now: u64) -> Option<Arc<VerifiedToken>> {
        let shard = self.verified.shard(token);
        let known = shard.read().ok()?.get(token).map(Arc::clone)?;
        if known.claims.exp >= now {
            return Some(known);
        }
        if let Ok(mut shard) = shard.write() {
            shard.remove(token);
        }
        None
    }

    fn remember(&self, token: &str, known: &Arc<VerifiedToken>) {
        let Ok(mut shard) = self.verified.shard(token).write() else {
            return;
        };
        if shard.len() >= VERIFIED_CAPACITY / SHARDS {
            shard.clear();
        }
        shard.insert(token.to_owned(), Arc::clone(known));
    }
}

/// The token from `aid: <jwt>` or `Authorization: Bearer <jwt>`.
///
/// Both headers may be sent, but then they must carry the same token: two different tokens
/// in one request are refused rather than guessing which one the client meant. An
/// `Authorization` of another scheme (Basic from a proxy, SigV4) is not a token of ours: with
/// `aid` present it is ignored, and alone it is no token at all.
pub fn token_from_headers(headers: &HeaderMap) -> Result<&str, AppError> {
    let single = |name: &str| -> Result<Option<&str>, AppError> {
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(AppError::Unauthorized("header sent twice"));
        }
        first
            .to_str()
            .map(|v| Some(v.trim()))
            .map_err(|_| AppError::Unauthorized("header is not text"))
    };
    let aid = single("aid")?.filter(|v| !v.is_empty());
    let bearer = match single("authorization") {
        Ok(Some(value)) => match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
            _ if value.eq_ignore_ascii_case("bearer") => Some(""),
            _ => None,
        },
        Ok(None) => None,
        // Not text, or sent twice: beside `aid`, ignored unless one of them is a Bearer token.
        Err(_) if aid.is_some() && !any_bearer(headers) => None,
        Err(e) => return Err(e),
    };
    match (aid, bearer) {
        (Some(a), Some(b)) if a != b => {
            Err(AppError::Unauthorized("aid and authorization disagree"))
        }
        (Some(token), _) | (None, Some(token)) if !token.is_empty() => Ok(token),
        (None, None) if headers.contains_key("authorization") => {
            Err(AppError::Unauthorized("authorization scheme is not Bearer"))
        }
        _ => Err(AppError::Unauthorized("no token")),
    }
}
/// Whether any `Authorization` value names the Bearer scheme.
fn any_bearer(headers: &HeaderMap) -> bool {
    headers.get_all("authorization").iter().any(|v| {
        let bytes = v.as_bytes().trim_ascii_start();
        bytes.len() >= 6 && bytes[..6].eq_ignore_ascii_case(b"bearer")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::HeaderValue;

    fn keys() -> TokenKeys {
        TokenKeys::new(&Secret::new("k".repeat(32)), Duration::from_secs(60))
    }

    fn user() -> User {
        User {
            id: "01J0000000000000000000000A".into(),
            email: Email::parse("a@x.io").expect("email"),
            name: "Ada".into(),
            jwt_version: 3,
            revision: 4,
            registration: 0,
            created_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let keys = keys();
        let issued = keys.issue(&user()).expect("sign");
        let verified = keys.verify(&issued.token).expect("verify");
        let claims = &verified.claims;
        assert_eq!(verified.email, user().email);
        assert_eq!(claims.sub, user().id);
        assert_eq!(claims.jwt_version, 3);
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(issued.expires_in, 60);
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_refused_one_is_never_remembered() {
        // A lifetime of 0 s: valid during the second it was issued in, expired after. Issued
        // again until issue and first check fall in the same second, so the checks below
        // always run (a tick between the two would leave nothing to remember).
        let keys = TokenKeys::new(&Secret::new("k".repeat(32)), Duration::from_secs(0));
        let (issued, first) = (0..10)
            .find_map(|_| {
                let issued = keys.issue(&user()).expect("sign");
                keys.verify(&issued.token).ok().map(|first| (issued, first))
            })
            .expect("a token verified within the second it was issued in");
        assert!(keys.verified.contains(&issued.token), "remembered");
        assert_eq!(
            keys.verify(&issued.token).ok(),
            Some(first),
            "and answered from memory"
        );
        let second_after_exp = (jsonwebtoken::get_current_timestamp() + 1) * 1000;
        let now_ms = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_millis() as u64
        };
        std::thread::sleep(Duration::from_millis(
            second_after_exp.saturating_sub(now_ms()) + 10,
        ));
        assert!(
            keys.verify(&issued.token).is_err(),
            "expired, remembered or not"
        );
        assert_eq!(keys.verified.len(), 0, "and forgotten");

        let other = TokenKeys::new(&Secret::new("o".repeat(32)), Duration::from_secs(60))
            .issue(&user())
            .expect("sign");
        assert!(keys.verify(&other.token).is_err());
        assert!(keys.verify(&other.token).is_err());
        assert_eq!(keys.verified.len(), 0, "refusals are not remembered");
    }

    #[test]
    fn remembered_tokens_are_bounded() {
        let keys = keys();
        for i in 0..VERIFIED_CAPACITY + 10 {
            let mut user = user();
            user.name = format!("user {i}");
            keys.verify(&keys.issue(&user).expect("sign").token)
                .expect("verify");
        }
        assert!(keys.verified.len() <= VERIFIED_CAPACITY);
    }

    #[test]
    fn threads_checking_tokens_at_once_each_get_their_own_claims() {
        let keys = keys();
        let tokens: Vec<(String, String)> = (0..64)
            .map(|i| {
                let mut user = user();
                user.name = format!("user {i}");
                (keys.issue(&user).expect("sign").token, user.name)
            })
            .collect();
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let (keys, tokens) = (&keys, &tokens);
                scope.spawn(move || {
                    for round in 0..200 {
                        let (token, name) = &tokens[(thread * 7 + round) % tokens.len()];
                        assert_eq!(&keys.verify(token).expect("verify").claims.name, name);
                    }
                });
            }
        });
        assert_eq!(keys.verified.len(), tokens.len(), "each remembered once");
    }

    #[test]
    fn another_key_is_refused() {
        let issued = keys().issue(&user()).expect("sign");
        let other = TokenKeys::new(&Secret::new("o".repeat(32)), Duration::from_secs(60));
        assert!(other.verify(&issued.token).is_err());
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        map
    }

    #[test]
    fn token_comes_from_aid_or_bearer() {
        assert_eq!(
            token_from_headers(&headers(&[("aid", "abc")])).ok(),
            Some("abc")
        );
        assert_eq!(
            token_from_headers(&headers(&[("authorization", "Bearer abc")])).ok(),
            Some("abc")
        );
        assert_eq!(
            token_from_headers(&headers(&[("authorization", "bearer abc")])).ok(),
            Some("abc")
        );
        assert_eq!(
            token_from_headers(&headers(&[("aid", "abc"), ("authorization", "Bearer abc")])).ok(),
            Some("abc")
        );
    }

    #[test]
    fn another_authorization_scheme_beside_aid_is_not_a_token() {
        for other in [
            "Basic dXNlcjpwYXNz",
            "AWS4-HMAC-SHA256 Credential=x/y, Signature=z",
            "Negotiate",
            "\u{1}",
        ] {
            let Ok(value) = HeaderValue::from_str(other) else {
                continue;
            };
            let mut h = headers(&[("aid", "abc")]);
            h.append("authorization", value);
            assert_eq!(token_from_headers(&h).ok(), Some("abc"), "{other}");
        }
        let two = headers(&[
            ("aid", "abc"),
            ("authorization", "Basic a"),
            ("authorization", "Basic b"),
        ]);
        assert_eq!(token_from_headers(&two).ok(), Some("abc"));
        assert!(
            token_from_headers(&headers(&[("authorization", "Basic abc")])).is_err(),
            "alone: no token"
        );
    }

    #[test]
    fn two_logins_in_one_second_get_two_tokens() {
        let keys = keys();
        let (a, b) = (
            keys.issue(&user()).expect("sign"),
            keys.issue(&user()).expect("sign"),
        );
        assert_ne!(a.token, b.token);
        assert_ne!(
            keys.verify(&a.token).expect("a").claims.jti,
            keys.verify(&b.token).expect("b").claims.jti
        );
    }

    #[test]
    fn missing_or_conflicting_tokens_are_refused() {
        for h in [
            headers(&[]),
            headers(&[("aid", "")]),
            headers(&[("authorization", "Basic abc")]),
            headers(&[("authorization", "Bearer")]),
            headers(&[("authorization", "Bearer ")]),
            headers(&[("aid", "abc"), ("authorization", "Bearer xyz")]),
            headers(&[("aid", "abc"), ("aid", "abc")]),
            headers(&[
                ("aid", "abc"),
                ("authorization", "Bearer abc"),
                ("authorization", "Basic x"),
            ]),
        ] {
            assert!(
                matches!(token_from_headers(&h), Err(AppError::Unauthorized(_))),
                "{h:?}"
            );
        }
    }
}
