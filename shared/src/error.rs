//! The error a request ends with, [`AppError`], and its place in the HTTP contract.
//!
//! The layers below have errors of their own, each mapped to this one here, in one place: the
//! store's [`StoreError`](crate::store::StoreError) and the domain's
//! [`Invalid`](crate::domain::Invalid). A [`ConfigError`](crate::config::ConfigError) ends an
//! init, never a request (`app::InitError`), and the stream functions fail a batch with their
//! own (`BatchFailed`), which Lambda records.
//!
//! Each variant is one row of the error table in `API.md`; [`AppError::status`] and
//! [`AppError::code`] are the only place that mapping lives. Variants that carry internal
//! detail (`Unavailable`, `Internal`) keep it for the log: [`AppError::public_message`] never
//! shows it to the client.

use std::borrow::Cow;

/// An error that ends a request with a contract status and `{"error": {code, message}}`.
/// `Clone`, so requests that share one DynamoDB read (`cache::flights`) share its failure too.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    #[error("invalid JSON: {0}")]
    InvalidJson(Cow<'static, str>),
    #[error("validation failed on `{field}`: {message}")]
    Validation {
        field: &'static str,
        message: Cow<'static, str>,
    },
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("forbidden")]
    Forbidden,
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// `allow` lists the methods the path serves, sent as the `Allow` header (RFC 9110).
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("email taken")]
    EmailTaken,
    /// A request with the same `Idempotency-Key` is still running; sent with `Retry-After: 1`.
    #[error("a request with this idempotency key is still running")]
    RequestInProgress,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("idempotency key reused for another request")]
    IdempotencyKeyReused,
    /// Too many failed logins; `retry_after` (seconds) is sent as `Retry-After`.
    #[error("too many failed login attempts")]
    TooManyAttempts { retry_after: u64 },
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A value outside the contract's limits is `400 validation_failed`, naming its field.
impl From<crate::domain::Invalid> for AppError {
    fn from(invalid: crate::domain::Invalid) -> Self {
        AppError::Validation {
            field: invalid.field,
            message: invalid.message,
        }
    }
}

/// What a store outcome means for the client: the user a token named has changed is `401`,
/// someone else's item `403`, a stale version `412`.
impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Unavailable(detail) => AppError::Unavailable(detail),
            StoreError::Internal(detail) => AppError::Internal(detail),
            StoreError::NotFound(what) => AppError::NotFound(what),
            StoreError::NotAuthor => AppError::Forbidden,
            StoreError::VersionMismatch => AppError::PreconditionFailed,
            StoreError::EmailTaken => AppError::EmailTaken,
            StoreError::UserChanged(why) => AppError::Unauthorized(why),
        }
    }
}

impl AppError {
    /// A `validation_failed` error naming `field`.
    pub fn validation(field: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        AppError::Validation {
            field,
            message: message.into(),
        }
    }

    /// The HTTP status of this error, as `API.md` lists it.
    pub fn status(&self) -> u16 {
        match self {
            AppError::InvalidJson(_) | AppError::Validation { .. } | AppError::InvalidCursor => 400,
            AppError::Unauthorized(_) | AppError::InvalidCredentials => 401,
            AppError::Forbidden => 403,
            AppError::NotFound(_) => 404,
            AppError::MethodNotAllowed { .. } => 405,
            AppError::EmailTaken | AppError::RequestInProgress => 409,
            AppError::PreconditionFailed => 412,
            AppError::PayloadTooLarge => 413,
            AppError::UnsupportedMediaType => 415,
            AppError::IdempotencyKeyReused => 422,
            AppError::TooManyAttempts { .. } => 429,
            AppError::Unavailable(_) => 503,
            AppError::Internal(_) => 500,
        }
    }

    /// The machine-readable `error.code` of the contract.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::InvalidJson(_) => "invalid_json",
            AppError::Validation { .. } => "validation_failed",
            AppError::InvalidCursor => "invalid_cursor",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::Forbidden => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::EmailTaken => "email_taken",
            AppError::RequestInProgress => "request_in_progress",
            AppError::PreconditionFailed => "precondition_failed",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::IdempotencyKeyReused => "idempotency_key_reused",
            AppError::TooManyAttempts { .. } => "too_many_attempts",
            AppError::Unavailable(_) => "service_unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// The human message sent to the client: never an internal detail, never a token.
    ///
    /// `Unauthorized` deliberately says the same thing for every cause, so a client cannot
    /// tell a revoked token from a deleted user; the cause goes to the log.
    pub fn public_message(&self) -> Cow<'static, str> {
        match self {
            AppError::InvalidJson(why) => {
                format!("The request body is not a JSON object: {why}").into()
            }
            AppError::Validation { field, message } => format!("`{field}` {message}").into(),
            AppError::InvalidCursor => "The cursor is not one this API issued.".into(),
            AppError::Unauthorized(_) => "A valid token is required.".into(),
            AppError::InvalidCredentials => "The email or password is wrong.".into(),
            AppError::Forbidden => "You are not allowed to do this.".into(),
            AppError::NotFound(what) => format!("No such {what}.").into(),
            AppError::MethodNotAllowed { .. } => "This path does not accept that method.".into(),
            AppError::EmailTaken => "That email is already registered.".into(),
            AppError::RequestInProgress => {
                "A request with this Idempotency-Key is still running; try again shortly.".into()
            }
            AppError::IdempotencyKeyReused => {
                "This Idempotency-Key was used for another request (body, route or post).".into()
            }
            AppError::TooManyAttempts { .. } => "Too many failed logins; try again later.".into(),
            AppError::PreconditionFailed => {
                "The resource has changed since the version in If-Match.".into()
            }
            AppError::PayloadTooLarge => "The request body is over 64 KiB.".into(),
            AppError::UnsupportedMediaType => "Send the body as application/json.".into(),
            AppError::Unavailable(_) => {
                "The database cannot be reached right now; try again.".into()
            }
            AppError::Internal(_) => "Something went wrong on our side.".into(),
        }
    }

    /// Seconds the client should wait before trying again (`Retry-After`), where the contract
    /// gives one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::RequestInProgress => Some(1),
            AppError::TooManyAttempts { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether this error is the server's fault (logged at error level), not the client's.
    pub fn is_server_error(&self) -> bool {
        self.status() >= 500
    }
}
