//! The one call every authenticated route makes: headers in, user out, or `401`.

use lambda_http::http::HeaderMap;

use super::token::{token_from_headers, TokenKeys};
use crate::cache::users::AtLeast;
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
    /// only the table failing to answer is something else: `503` when it cannot be reached,
    /// `500` when its answer cannot be read (`StoreError::Internal`).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<User, AppError> {
        let started = std::time::Instant::now();
        let authenticated = self.check(headers).await;
        crate::metrics::authenticated(started.elapsed());
        authenticated
    }

    async fn check(&self, headers: &HeaderMap) -> Result<User, AppError> {
        let span = tracing::Span::current();
        let token = token_from_headers(headers)?;
        let verified = self.keys.verify(token)?;
        let (claims, email) = (&verified.claims, &verified.email);
        let at_least = AtLeast {
            id: &claims.sub,
            jwt_version: claims.jwt_version,
            registration: claims.reg,
        };
        let (user, outcome) = self.users.find(email, Some(at_least)).await?;
        span.record("cache", outcome.as_str());
        crate::metrics::cache_lookup(crate::cache::Kind::User, outcome);
        let user = user.ok_or(AppError::Unauthorized("user is gone"))?;
        if user.id != claims.sub {
            return Err(AppError::Unauthorized(
                "token is for an earlier user with this email",
            ));
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
