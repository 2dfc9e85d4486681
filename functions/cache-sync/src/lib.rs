//! The `cache-sync` function: DynamoDB's stream of the table, applied to the user cache.
//!
//! A change whose own cache write never landed (Redis down, refusing writes, failing over)
//! is not lost: every write of a user item is a record in the table's stream, and this
//! function writes each one to the cache through the same compare-and-set as every other cache
//! write ([`RedisCache::put`]). The revision in each state decides, so records delivered twice,
//! late or out of order leave the newest state, and a record older than what the cache holds
//! changes nothing.
//!
//! As Lambda's event source mapping expects (`ReportBatchItemFailures`):
//! - a record that cannot be applied (an image that is not a user) is reported alone, by its
//!   sequence number, and the rest of the batch is still applied;
//! - when Redis cannot take writes the whole batch fails, so Lambda retries it (and, once the
//!   retries or the record age are spent, sends it to the failure queue);
//! - records of other items (posts, comments) are skipped on their keys, without decoding.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use shared::cache::{Entry, RedisCache, WriteOutcome};
use shared::config::CacheConfig;
use shared::domain::Email;
use shared::store::{is_user_key, user_from_image};

/// Why a batch failed as a whole (so Lambda retries it).
#[derive(Debug, thiserror::Error)]
#[error("redis cannot take writes; the batch will be retried ({applied} applied before the failure)")]
pub struct CacheUnavailable {
    pub applied: usize,
}

/// What Lambda records of the failure (`errorType`, `errorMessage`), and what the failure
/// destination's metadata then shows.
impl From<CacheUnavailable> for Diagnostic {
    fn from(e: CacheUnavailable) -> Diagnostic {
        Diagnostic { error_type: "CacheUnavailable".into(), error_message: e.to_string() }
    }
}

/// What one batch did, for the log line and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    /// User states written to the cache.
    pub applied: usize,
    /// User states older than the cache's, left out.
    pub stale: usize,
    /// Records of other items.
    pub ignored: usize,
    /// Records that could not be read, reported to Lambda.
    pub failed: usize,
}

/// Applies one batch. `Ok` carries the records to retry (empty when all went well); `Err`
/// fails the batch.
pub async fn apply(
    cache: &RedisCache,
    records: Vec<EventRecord>,
) -> Result<(DynamoDbEventResponse, BatchReport), CacheUnavailable> {
    let mut report = BatchReport::default();
    let mut response = DynamoDbEventResponse::default();
    for record in records {
        if !is_user_key(&record.change.keys) {
            report.ignored += 1;
            continue;
        }
        let sequence_number = record.change.sequence_number.clone();
        let (email, entry) = match user_change(record) {
            Ok(change) => change,
            Err(why) => {
                tracing::error!(sequence_number = sequence_number.as_deref(), error = %why, "stream record not applied");
                report.failed += 1;
                response.batch_item_failures.push(failure(sequence_number));
                continue;
            }
        };
        match cache.put(&email, &entry).await {
            WriteOutcome::Written => report.applied += 1,
            WriteOutcome::Stale => report.stale += 1,
            WriteOutcome::Failed => return Err(CacheUnavailable { applied: report.applied }),
        }
    }
    Ok((response, report))
}

/// The cache state a user record leaves: the new image of a write, or the tombstone of a
/// remove (the old image's user, one revision on).
fn user_change(record: EventRecord) -> Result<(Email, Entry), String> {
    let (user, removed) = match record.event_name.as_str() {
        "INSERT" | "MODIFY" => (user_from_image(record.change.new_image), false),
        "REMOVE" => (user_from_image(record.change.old_image), true),
        other => return Err(format!("unknown event name {other:?}")),
    };
    let user = user.map_err(|e| e.to_string())?;
    let email = Email::parse(&user.email).map_err(|e| e.to_string())?;
    let entry = if removed { Entry::Absent(user.deleted()) } else { Entry::User(user) };
    Ok((email, entry))
}

fn failure(sequence_number: Option<String>) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = sequence_number;
    failure
}

/// The Lambda handler: one batch in, the records to retry out.
pub async fn handle(cache: &RedisCache, event: LambdaEvent<Event>) -> Result<DynamoDbEventResponse, CacheUnavailable> {
    let records = event.payload.records;
    let count = records.len();
    // The stream's clock says when the oldest change was made; its lag is how long the change
    // took to reach the cache (DynamoDB stamps to the second).
    let oldest = records.iter().map(|r| r.change.approximate_creation_date_time.timestamp_millis()).min();
    let (response, report) = apply(cache, records).await.inspect_err(|e| tracing::warn!(error = %e, "batch failed"))?;
    let lag_ms = oldest.map(|t| (unix_millis() - t).max(0));
    tracing::info!(
        records = count,
        applied = report.applied,
        stale = report.stale,
        ignored = report.ignored,
        failed = report.failed,
        lag_ms,
        "batch applied"
    );
    Ok(response)
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// How long the init may spend opening the Redis connection before the first batch.
const PREWARM_BOUND: Duration = Duration::from_millis(100);

/// The function's whole life: logs, the cache connection, then one [`handle`] per batch.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let lookup = |name: &str| std::env::var(name).ok();
    let log_json = shared::config::log_json(lookup);
    shared::telemetry::init(log_json.as_ref().map_or(true, |json| *json));
    let cache = async {
        log_json?;
        shared::app::cache_from_config(&CacheConfig::from_env()?).await
    }
    .await
    .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    cache.prewarm(PREWARM_BOUND).await;
    let cache: &'static RedisCache = Box::leak(Box::new(cache));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| handle(cache, event))).await
}
