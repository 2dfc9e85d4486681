//! The table and what every store shares of it: [`Store`] (the client, the table's name, whether
//! legacy items may remain), the store's own errors ([`StoreError`]) and results ([`Stored`],
//! [`Page`]); the one way to read an item ([`Store::get_item`], [`Store::batch_get`]), to read
//! back what a write returned ([`returned`]) and to decode an item ([`from_item`]); attribute
//! values, write tokens and conditional refusals, transactions, and SDK errors mapped to
//! [`StoreError`]. Each kind of item adds its own operations to [`Store`] in its own file.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::config::TableConfig;

pub(super) type Item = HashMap<String, AttributeValue>;

/// How a call to the table failed, in the store's own terms; `crate::error` says what each
/// means for a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The table could not be reached in time, throttled, or failed on its side: try again.
    #[error("table unavailable: {0}")]
    Unavailable(String),
    /// Anything else: an item that does not decode, a request that cannot be built.
    #[error("table: {0}")]
    Internal(String),
    /// The item is not there.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The item was written by someone else.
    #[error("not the author")]
    NotAuthor,
    /// The item is at another version than the change expected.
    #[error("version mismatch")]
    VersionMismatch,
    /// The email is already registered.
    #[error("email taken")]
    EmailTaken,
    /// The user changed (another user of the email, or another `jwtVersion`) or went since the
    /// caller read it.
    #[error("user changed: {0}")]
    UserChanged(&'static str),
}

/// An item as the table holds it, with its cache revision: a number that every change of the
/// item grows (in the same write as the change), so the cache can keep the newer of two
/// copies. Bookkeeping only: it never shows in a response (a post's `version` counts its
/// edits, which is another thing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<T> {
    pub item: T,
    pub rev: u64,
}

/// A page of a list: the items, and the id of the last one when more follow.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Id of the last item of this page, present only when another page exists.
    pub last_id: Option<String>,
}

/// Table access for every entity. Cheap to clone: the SDK client is an `Arc` inside.
#[derive(Clone, Debug)]
pub struct Store {
    pub(super) client: Client,
    pub(super) table: String,
    /// Whether the table may still hold items of the legacy layout (docs/architecture.md,
    /// "Data model"), which lists then read too.
    pub(super) legacy_layout: bool,
}

impl Store {
    /// The store over `client`, every attempt of every call timed for the metrics
    /// (`CallTimer`).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let client = Client::from_conf(client.config().to_builder().interceptor(CallTimer).build());
        Store {
            client,
            table: table.into(),
            legacy_layout: true,
        }
    }

    /// The same store, reading the legacy layout's partitions too (`on`) or not: off once
    /// `tools/migrate-layout` has moved every legacy item (`LEGACY_LAYOUT=false`).
    pub fn with_legacy_layout(mut self, on: bool) -> Self {
        self.legacy_layout = on;
        self
    }

    /// Reads a key that never exists, waiting at most `bound`, so the first request finds the
    /// connection open, the credentials resolved and the client's first-call work done. Never
    /// fails: an error or timeout is logged and the request path connects as usual. The key is
    /// outside every function's role (IAM conditions on key prefixes), so the answer may be
    /// `AccessDenied`: an answer all the same, which needed all of that done.
    pub async fn prewarm(&self, bound: std::time::Duration) {
        let read = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("PREWARM"))
            .key("sk", s("PREWARM"))
            .projection_expression("pk")
            .send();
        match tokio::time::timeout(bound, read).await {
            Ok(Ok(_)) => tracing::debug!("dynamodb connection ready"),
            Ok(Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e))) => tracing::debug!(
                error = %aws_sdk_dynamodb::error::ProvideErrorMetadata::code(e.err()).unwrap_or("unknown"),
                "dynamodb connection ready (it answered the prewarm read with an error)"
            ),
            Ok(Err(e)) => tracing::warn!(
                error = %aws_smithy_types::error::display::DisplayErrorContext(&e),
                "dynamodb not ready at init; the first request will connect"
            ),
            Err(_) => tracing::warn!(
                bound_ms = bound.as_millis() as u64,
                "dynamodb not ready at init; the first request will connect"
            ),
        }
    }
}

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

/// Counts the attempts the SDK makes of one call. The SDK tries a call again when its answer
/// was lost (a dropped connection, a timeout), and a write's second attempt then meets the
/// state its first attempt left: a condition that held fails, an item it created exists. A
/// write that learns from this count that an earlier attempt was sent can tell "my own first
/// attempt did it" from a real refusal. Attach one per call with `.customize().interceptor(..)`.
#[derive(Debug, Clone, Default)]
pub(super) struct Attempts(Arc<AtomicU32>);

impl Attempts {
    /// Whether more than one attempt was sent, so an earlier one may have been applied.
    pub(super) fn retried(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 1
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for Attempts {
    fn name(&self) -> &'static str {
        "Attempts"
    }

    fn read_before_attempt(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Times every attempt of every DynamoDB call for the metrics ([`crate::metrics::dynamodb_call`]):
/// the clock starts before the request is signed and sent and stops when the attempt ends,
/// answered or not.
#[derive(Debug)]
pub(super) struct CallTimer;

#[derive(Debug, Clone)]
struct AttemptStarted(std::time::Instant);

impl aws_smithy_types::config_bag::Storable for AttemptStarted {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for CallTimer {
    fn name(&self) -> &'static str {
        "CallTimer"
    }

    fn read_before_attempt(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        cfg.interceptor_state()
            .store_put(AttemptStarted(std::time::Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<
            '_,
        >,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(AttemptStarted(started)) = cfg.load::<AttemptStarted>() {
            crate::metrics::dynamodb_call(started.elapsed());
        }
        Ok(())
    }
}

/// The attribute every update of a user or a post stamps with a token of its own. The SDK
/// sends a retried attempt byte for byte as the first, token included, so a condition failure
/// that finds the item stamped with this call's token means the first attempt was applied:
/// the call succeeded, and the item as found is its result. Updates are also conditioned on
/// the item not carrying their token yet, so a retry never applies the same change twice.
pub(super) const WRITE_TOKEN: &str = "writeToken";

/// `(attribute_not_exists(writeToken) OR writeToken <> :writeToken)`, for the condition of an
/// update stamped with [`WRITE_TOKEN`].
pub(super) const NOT_YET_WRITTEN: &str =
    "(attribute_not_exists(writeToken) OR writeToken <> :writeToken)";

/// Whether `item` carries `token` in [`WRITE_TOKEN`].
pub(super) fn written_by(item: &Item, token: &str) -> bool {
    matches!(item.get(WRITE_TOKEN), Some(AttributeValue::S(found)) if found == token)
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The errors of writes that can be refused by their condition, and the item as the refusal
/// found it (asked for with `ReturnValuesOnConditionCheckFailure::AllOld`).
pub(super) trait ConditionalError {
    /// `Some(item)` when the condition failed (`item` is `None` when there was none), `None`
    /// for any other error.
    fn refused_item(&self) -> Option<Option<Item>>;
}

macro_rules! conditional_error {
    ($($error:ty),*) => {$(
        impl ConditionalError for $error {
            fn refused_item(&self) -> Option<Option<Item>> {
                match self {
                    Self::ConditionalCheckFailedException(refused) => Some(refused.item.clone()),
                    _ => None,
                }
            }
        }
    )*};
}

conditional_error!(
    aws_sdk_dynamodb::operation::put_item::PutItemError,
    aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError
);

/// If `err` is a failed condition, the item as it was then (`Some(None)`: no item).
pub(super) fn refused<E: ConditionalError, R>(err: &SdkError<E, R>) -> Option<Option<Item>> {
    err.as_service_error()
        .and_then(ConditionalError::refused_item)
}

/// Maps an SDK failure to the contract: unreachable, slow or throttled is `503`, the rest
/// is `500`. The SDK's message goes to the log through the error's text, not to the client.
pub(super) fn classify<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
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
    let detail = format!(
        "{operation}: {}",
        aws_smithy_types::error::display::DisplayErrorContext(&err)
    );
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(detail)
        }
        SdkError::ServiceError(service)
            if service.err().code().is_some_and(|c| TRANSIENT.contains(&c)) =>
        {
            StoreError::Unavailable(detail)
        }
        _ => StoreError::Internal(detail),
    }
}

/// The attributes a read returns of an item: a `ProjectionExpression`, and the `#name`s it
/// uses for reserved words.
#[derive(Debug, Clone, Copy)]
pub(super) struct Projection {
    pub(super) expression: &'static str,
    pub(super) names: &'static [(&'static str, &'static str)],
}

impl Store {
    /// The item under `key`, decoded: the one way the stores read a single item. The read is
    /// strongly consistent, so it sees every write answered before it was sent; with
    /// `projection`, it returns only the attributes that names.
    pub(super) async fn get_item<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        operation: &'static str,
        key: super::keys::Key,
        projection: Option<Projection>,
    ) -> Result<Option<T>, StoreError> {
        let mut read = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true);
        if let Some(projection) = projection {
            read = read.projection_expression(projection.expression);
            for (placeholder, name) in projection.names {
                read = read.expression_attribute_names(*placeholder, *name);
            }
        }
        let out = read.send().await.map_err(|e| classify(operation, e))?;
        out.item.map(|item| from_item(what, item)).transpose()
    }

    /// Every item of `keys` that exists, reading again what DynamoDB leaves unprocessed: the
    /// one way the stores read many items by key.
    pub(super) async fn batch_get(
        &self,
        keys: Vec<super::keys::Key>,
        consistent: bool,
        operation: &'static str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        let mut pending = Some(
            aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(consistent)
                .build()
                .map_err(|e| StoreError::Internal(format!("building {operation}: {e}")))?,
        );
        let mut backoff = std::time::Duration::from_millis(10);
        for _ in 0..8 {
            let Some(request) = pending.take() else {
                return Ok(items);
            };
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| classify(operation, e))?;
            items.extend(
                out.responses
                    .and_then(|mut tables| tables.remove(&self.table))
                    .unwrap_or_default(),
            );
            pending = out
                .unprocessed_keys
                .and_then(|mut tables| tables.remove(&self.table))
                .filter(|left| !left.keys().is_empty());
            if pending.is_some() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_millis(200));
            }
        }
        match pending {
            None => Ok(items),
            Some(_) => Err(StoreError::Unavailable(format!(
                "{operation}: keys left unprocessed"
            ))),
        }
    }
}

/// The item a write returned (`ReturnValues`); a write that returned none when it was asked to
/// is a server fault.
pub(super) fn returned_item(
    operation: &'static str,
    attributes: Option<Item>,
) -> Result<Item, StoreError> {
    attributes.ok_or_else(|| StoreError::Internal(format!("{operation}: no attributes returned")))
}

/// The item a write returned, decoded: the one way the stores read back what they wrote.
pub(super) fn returned<T: serde::de::DeserializeOwned>(
    what: &'static str,
    operation: &'static str,
    attributes: Option<Item>,
) -> Result<T, StoreError> {
    from_item(what, returned_item(operation, attributes)?)
}

/// A string attribute of an item as DynamoDB sent it (a condition's refusal, a key-only
/// page), without decoding the rest.
pub(super) fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

/// Decodes an item (as the SDK or a stream record holds it), treating a malformed one as a
/// server fault (it is our data).
pub(super) fn from_item<T: serde::de::DeserializeOwned>(
    what: &'static str,
    item: impl Into<serde_dynamo::Item>,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Internal(format!("unreadable {what} item: {e}")))
}

pub(super) fn to_item<T: serde::Serialize>(
    what: &'static str,
    value: &T,
) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value)
        .map_err(|e| StoreError::Internal(format!("encoding {what} item: {e}")))
}

/// Why DynamoDB cancelled one item of a transaction.
#[derive(Debug)]
pub(super) struct Reason {
    code: Option<String>,
}

impl Reason {
    /// Whether this item's condition failed.
    pub(super) fn is_condition(&self) -> bool {
        self.code.as_deref() == Some("ConditionalCheckFailed")
    }
}

/// The reasons DynamoDB gives for a cancelled transaction, one per item, in order.
fn cancellation_reasons(
    err: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
) -> Option<Vec<Reason>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match err {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => Some(
            cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| Reason {
                    code: r.code().filter(|c| *c != "None").map(str::to_owned),
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Whether a cancelled transaction may simply be tried again: it was cancelled only because
/// another transaction on the same item was in flight or it was throttled, never because a
/// condition failed. The SDK does not retry these.
fn is_retryable(codes: &[Option<String>]) -> bool {
    let condition = |c: &Option<String>| c.as_deref() == Some("ConditionalCheckFailed");
    !codes.iter().any(condition)
        && codes.iter().flatten().any(|c| {
            matches!(
                c.as_str(),
                "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
            )
        })
}

/// Attempts of one transaction that keeps being cancelled by conflicts, before giving up.
const TRANSACTION_ATTEMPTS: u32 = 8;

/// How a transaction ended, when DynamoDB answered.
pub(super) enum Transaction {
    Done,
    /// Cancelled by a condition; the reasons, one per item, in order.
    Refused(Vec<Reason>),
}

/// Runs a transaction, trying it again with a jittered backoff while DynamoDB cancels it only
/// for a conflict or throttling (see [`is_retryable`]); `Unavailable` if that goes on.
///
/// A transaction whose answer is lost cannot apply twice or be refused by its own effect when
/// the SDK sends it again: the SDK gives each `send` a `ClientRequestToken` (an idempotency
/// token) and keeps it for its retries, and DynamoDB answers a repeated token (for ten
/// minutes) as it answered the first. Each try here after a cancellation is a new `send`, so a
/// new token (a cancelled transaction changed nothing).
pub(super) async fn transact(
    store: &Store,
    items: &[aws_sdk_dynamodb::types::TransactWriteItem],
    operation: &'static str,
) -> Result<Transaction, StoreError> {
    use rand::Rng;
    let mut backoff_ms = 10u64;
    for attempt in 1..=TRANSACTION_ATTEMPTS {
        let result = store
            .client
            .transact_write_items()
            .set_transact_items(Some(items.to_vec()))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Transaction::Done),
            Err(err) => err,
        };
        let reasons = err.as_service_error().and_then(cancellation_reasons);
        let codes: Option<Vec<Option<String>>> = reasons
            .as_ref()
            .map(|reasons| reasons.iter().map(|r| r.code.clone()).collect());
        match (reasons, codes) {
            (Some(_), Some(codes)) if is_retryable(&codes) => {
                if attempt == TRANSACTION_ATTEMPTS {
                    return Err(StoreError::Unavailable(format!(
                        "{operation}: still cancelled after {attempt} attempts: {codes:?}"
                    )));
                }
                tracing::debug!(
                    operation,
                    attempt,
                    ?codes,
                    "transaction cancelled by a conflict; retrying"
                );
                let sleep_ms = rand::thread_rng().gen_range(backoff_ms / 2..=backoff_ms);
                tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)).await;
                backoff_ms = (backoff_ms * 2).min(200);
            }
            (Some(reasons), _) if reasons.iter().any(Reason::is_condition) => {
                return Ok(Transaction::Refused(reasons))
            }
            _ => return Err(classify(operation, err)),
        }
    }
    Err(StoreError::Unavailable(format!(
        "{operation}: no attempt made"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(raw: &[&str]) -> Vec<Option<String>> {
        raw.iter()
            .map(|c| (*c != "None").then(|| (*c).to_owned()))
            .collect()
    }

    #[test]
    fn conflicts_and_throttling_are_retried_failed_conditions_are_not() {
        assert!(is_retryable(&codes(&["None", "TransactionConflict"])));
        assert!(is_retryable(&codes(&[
            "TransactionConflict",
            "TransactionConflict"
        ])));
        assert!(is_retryable(&codes(&["ThrottlingError", "None"])));
        assert!(is_retryable(&codes(&[
            "None",
            "ProvisionedThroughputExceeded"
        ])));
        assert!(!is_retryable(&codes(&["None", "ConditionalCheckFailed"])));
        assert!(!is_retryable(&codes(&[
            "TransactionConflict",
            "ConditionalCheckFailed"
        ])));
        assert!(!is_retryable(&codes(&["None", "ValidationError"])));
        assert!(!is_retryable(&codes(&["None", "None"])));
    }
}
