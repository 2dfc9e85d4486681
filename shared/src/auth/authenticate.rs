//! The one call every authenticated route makes: headers in, user out, or `401`.

use lambda_http::http::HeaderMap;

use super::token::{token_from_headers, Claims, TokenKeys};
use crate::cache::{CacheOutcome, Users};
use crate::domain::User;
use crate::error::AppError;

/// Verifies tokens and loads their users cache-aside. Built once per instance.
pub struct Authenticator {
    keys: TokenKeys,
    users: Users,
}

impl Authenticator {
    pub fn new(keys: TokenKeys, users: Users) -> Self {
        Authenticator { keys, users }
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Enforces the whole rule of `API.md`: signature, `iss`, `aud`, `exp`, AND the user still
    /// exists (same id: an email re-registered after a delete is another user) AND the
    /// token's `jwtVersion` is the user's current one. Every failure is `401 unauthorized`;
    /// only a database that cannot be reached is something else (`503`).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<User, AppError> {
        let span = tracing::Span::current();
        let token = token_from_headers(headers)?;
        let verified = self.keys.verify(token)?;
        let (claims, email) = (&verified.claims, &verified.email);
        let (mut user, mut outcome) = self.users.find(email).await?;
        if outcome == CacheOutcome::Hit && user.as_ref().is_some_and(|cached| older_than_token(cached, claims)) {
            tracing::warn!("cache entry older than the token; reading DynamoDB");
            (user, outcome) = self.users.refresh(email).await?;
        }
        span.record("cache", outcome.as_str());
        let user = user.ok_or(AppError::Unauthorized("user is gone"))?;
        if user.id != claims.sub {
            return Err(AppError::Unauthorized("token is for an earlier user with this email"));
        }
        if user.jwt_version != claims.jwt_version {
            return Err(AppError::Unauthorized("token revoked"));
        }
        span.record("user_id", user.id.as_str());
        if outcome == CacheOutcome::Hit {
            tracing::trace!("authenticated from cache");
        }
        Ok(user)
    }
}

/// Whether a cached user is provably older than the token: ids (ULIDs) and `jwtVersion`s only
/// grow, and a token is issued from DynamoDB, so a token newer than the entry means the entry
/// missed a change (Redis unreachable during a logout, or a delete and a new registration of
/// the email). Then only DynamoDB can decide. A token *older* than the entry is refused from
/// the cache, so a revoked token costs no DynamoDB call.
fn older_than_token(cached: &User, claims: &Claims) -> bool {
    if cached.id == claims.sub {
        cached.jwt_version < claims.jwt_version
    } else {
        cached.id.as_str() < claims.sub.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, jwt_version: u64) -> User {
        User { id: id.into(), email: "a@x.io".into(), name: "A".into(), jwt_version, created_at: "t".into() }
    }

    fn claims(sub: &str, jwt_version: u64) -> Claims {
        Claims {
            sub: sub.into(),
            email: "a@x.io".into(),
            name: "A".into(),
            jwt_version,
            iss: String::new(),
            aud: String::new(),
            iat: 0,
            exp: 0,
        }
    }

    #[test]
    fn only_a_token_newer_than_the_entry_sends_the_lookup_to_dynamodb() {
        let (old, new) = ("01H00000000000000000000000", "01J00000000000000000000000");
        assert!(!older_than_token(&user(old, 2), &claims(old, 2)), "current");
        assert!(!older_than_token(&user(old, 2), &claims(old, 1)), "revoked token");
        assert!(older_than_token(&user(old, 1), &claims(old, 2)), "entry missed a logout");
        assert!(!older_than_token(&user(new, 1), &claims(old, 1)), "token of an earlier user");
        assert!(!older_than_token(&user(new, 1), &claims(old, 5)), "an earlier user's version says nothing");
        assert!(older_than_token(&user(old, 1), &claims(new, 1)), "entry missed a delete and re-registration");
    }
}
