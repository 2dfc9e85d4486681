//! Building the DynamoDB client, key helpers and SDK error classification.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::config::TableConfig;
use crate::error::AppError;

pub(super) type Item = HashMap<String, AttributeValue>;

/// A DynamoDB client with timeouts and retries set on purpose: a request that cannot reach
/// the table answers `503` within `attempts × attempt_timeout`, never hangs until the Lambda
/// timeout. Credentials, region and HTTP client as [`crate::sdk`] says.
pub async fn client_from_config(config: &TableConfig) -> Client {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    use aws_sdk_dynamodb::config::BehaviorVersion;

    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.dynamodb_connect_timeout)
        .operation_attempt_timeout(config.dynamodb_attempt_timeout)
        .operation_timeout(config.dynamodb_attempt_timeout * config.dynamodb_attempts)
        .build();
    let mut builder = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(crate::sdk::region().await)
        .credentials_provider(crate::sdk::credentials())
        .http_client(crate::sdk::http_client(config.dynamodb_endpoint.as_deref()))
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(config.dynamodb_attempts));
    if let Some(endpoint) = &config.dynamodb_endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Whether a failed call was a condition that did not hold.
pub(super) fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// Maps an SDK failure to the contract: unreachable, slow or throttled is `503`, the rest
/// is `500`. The SDK's message goes to the log through the error's text, not to the client.
pub(super) fn classify<E, R>(operation: &'static str, err: SdkError<E, R>) -> AppError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    const TRANSIENT: &[&str] = &[
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    ];
    let detail = format!("{operation}: {}", aws_smithy_types::error::display::DisplayErrorContext(&err));
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            AppError::Unavailable(detail)
        }
        SdkError::ServiceError(service) if service.err().code().is_some_and(|c| TRANSIENT.contains(&c)) => {
            AppError::Unavailable(detail)
        }
        _ => AppError::Internal(detail),
    }
}

/// Decodes an item, treating a malformed one as a server fault (it is our data).
pub(super) fn from_item<T: serde::de::DeserializeOwned>(what: &'static str, item: Item) -> Result<T, AppError> {
    serde_dynamo::from_item(item).map_err(|e| AppError::Internal(format!("unreadable {what} item: {e}")))
}

pub(super) fn to_item<T: serde::Serialize>(what: &'static str, value: &T) -> Result<Item, AppError> {
    serde_dynamo::to_item(value).map_err(|e| AppError::Internal(format!("encoding {what} item: {e}")))
}
