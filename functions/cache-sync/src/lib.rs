//! The `cache-sync` function: DynamoDB's stream of the table, applied to the user cache.
//!
//! A change whose own cache write never landed (Redis down, refusing writes, failing over)
//! is not lost: every write of a user item is a record in the table's stream, and this
//! function brings each changed user's entry to DynamoDB's state through the same
//! compare-and-set as every other cache write ([`RedisCache::put`]).
//!
//! The stream says *who* changed; DynamoDB says what they are *now*. For each user a batch
//! names, the function reads the item (strongly consistent) and writes that, not the record's
//! image. A record is a state from the past: retried or replayed after the cache lost its data
//! (a restart, a failover), images would put old states back, one after another, until the
//! newest record came round again; the current item never is older than the cache should
//! hold. When the item is gone, the entry is the tombstone of the newest user the batch shows
//! (its id, one revision on), which the real deletion's tombstone can only equal or follow.
//! Records delivered twice, late or out of order change nothing more than one would.
//!
//! As Lambda's event source mapping expects (`ReportBatchItemFailures`):
//! - a record that cannot be read (an image that is not a user) is reported alone, by its
//!   sequence number, and the rest of the batch is still applied;
//! - when Redis cannot take writes, or the table cannot be read, the whole batch fails, so
//!   Lambda retries it (and, once the retries or the record age are spent, sends it to the
//!   failure queue);
//! - records of other items (posts, comments) are skipped on their keys, without decoding.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use shared::cache::{Entry, RedisCache, WriteOutcome};
use shared::config::{CacheConfig, TableConfig};
use shared::domain::{Email, Version};
use shared::store::{client_from_config, is_user_key, user_from_image, Store, StoreError};
use shared::telemetry::LogFormat;
use tracing::Instrument;

/// Why a batch failed as a whole (so Lambda retries it).
#[derive(Debug, thiserror::Error)]
pub enum BatchFailed {
    #[error("redis cannot take writes; the batch will be retried")]
    Cache,
    #[error("the table cannot be read; the batch will be retried: {0}")]
    Table(StoreError),
}

/// What Lambda records of the failure (`errorType`, `errorMessage`), and what the failure
/// destination's metadata then shows.
impl From<BatchFailed> for Diagnostic {
    fn from(e: BatchFailed) -> Diagnostic {
        let error_type = match e {
            BatchFailed::Cache => "CacheUnavailable",
            BatchFailed::Table(_) => "TableUnavailable",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// What one batch did, for the log line and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    /// Users the batch named (each read and written once, however many records it had).
    pub users: usize,
    /// Entries written.
    pub written: usize,
    /// Entries the cache already held newer (a change landed between the read and the write).
    pub stale: usize,
    /// Records of other items.
    pub ignored: usize,
    /// Records that could not be read, reported to Lambda.
    pub failed: usize,
}

/// What the function builds once per instance: the cache, and the table it follows.
pub struct CacheSync {
    pub cache: RedisCache,
    pub store: Store,
}

impl CacheSync {
    /// Applies one batch. `Ok` carries the records to retry (none when all went well); `Err`
    /// fails the batch.
    pub async fn apply(
        &self,
        records: Vec<EventRecord>,
    ) -> Result<(DynamoDbEventResponse, BatchReport), BatchFailed> {
        let mut report = BatchReport::default();
        let mut response = DynamoDbEventResponse::default();
        // Each user the batch names, in order, with the newest "deleted since" version its
        // records show.
        let mut changed: Vec<(Email, Version)> = Vec::new();
        for record in records {
            if !is_user_key(&record.change.keys) {
                report.ignored += 1;
                continue;
            }
            let sequence_number = record.change.sequence_number.clone();
            match deleted_since(record) {
                Ok((email, version)) => match changed.iter_mut().find(|(e, _)| *e == email) {
                    Some((_, newest)) => *newest = version.max(newest.clone()),
                    None => changed.push((email, version)),
                },
                Err(why) => {
                    tracing::error!(sequence_number = sequence_number.as_deref(), error = %why, "stream record not applied");
                    report.failed += 1;
                    response.batch_item_failures.push(failure(sequence_number));
                }
            }
        }
        for (email, deleted) in changed {
            report.users += 1;
            let entry = match self
                .store
                .get_user(&email)
                .await
                .map_err(BatchFailed::Table)?
            {
                Some(user) => Entry::User(user),
                None => Entry::Absent(deleted),
            };
            match self.cache.put(&email, &entry).await {
                WriteOutcome::Written => report.written += 1,
                WriteOutcome::Stale => report.stale += 1,
                WriteOutcome::Failed => return Err(BatchFailed::Cache),
            }
        }
        Ok((response, report))
    }
}

/// The user a record names, and the version its deletion would have: the image's user (the
/// new image of a write, the old one of a remove) one revision on.
fn deleted_since(record: EventRecord) -> Result<(Email, Version), String> {
    let image = match record.event_name.as_str() {
        "INSERT" | "MODIFY" => record.change.new_image,
        "REMOVE" => record.change.old_image,
        other => return Err(format!("unknown event name {other:?}")),
    };
    let user = user_from_image(image).map_err(|e| e.to_string())?;
    Ok((user.email.clone(), user.deleted()))
}

fn failure(sequence_number: Option<String>) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = sequence_number;
    failure
}

/// This function's name in logs and metrics.
pub const FUNCTION: &str = "cache-sync";

/// The Lambda handler: one batch in, the records to retry out.
///
/// The batch runs inside a span naming its invocation, as the HTTP functions' requests do
/// (`shared::http::serve`): the function, Lambda's request id and the X-Ray trace id, so every
/// line it logs says which invocation wrote it. The span is attached to the batch's future,
/// not entered around it, so batches that run at once on Lambda Managed Instances keep their
/// own fields on whichever thread polls them.
pub async fn handle(
    sync: &CacheSync,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, BatchFailed> {
    let span = tracing::info_span!(
        "batch",
        function = FUNCTION,
        request_id = %event.context.request_id,
        trace_id = event.context.xray_trace_id.as_deref(),
    );
    let applied = shared::metrics::scope(FUNCTION, apply_batch(sync, event).instrument(span)).await;
    shared::metrics::invocation_done(FUNCTION);
    applied
}

async fn apply_batch(
    sync: &CacheSync,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, BatchFailed> {
    let records = event.payload.records;
    let count = records.len();
    // The stream's clock says when the oldest change was made; its lag is how long the change
    // took to reach the cache (DynamoDB stamps to the second).
    let oldest = records
        .iter()
        .map(|r| r.change.approximate_creation_date_time.timestamp_millis())
        .min();
    let (response, report) = sync.apply(records).await.inspect_err(|e| {
        tracing::warn!(error = %e, "batch failed");
        shared::metrics::sync_batch_failed();
    })?;
    let lag_ms = oldest.map(|t| (unix_millis() - t).max(0));
    let lag = lag_ms.map(|ms| Duration::from_millis(ms as u64));
    shared::metrics::sync_batch(report.written, report.stale, report.failed, lag);
    tracing::info!(
        records = count,
        users = report.users,
        written = report.written,
        stale = report.stale,
        ignored = report.ignored,
        failed = report.failed,
        lag_ms,
        "batch applied"
    );
    Ok(response)
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// How long the init may spend opening connections before the first batch.
const PREWARM_BOUND: Duration = Duration::from_millis(100);

/// The function's whole life: logs, the cache connection and the table client, then one
/// [`handle`] per batch: one at a time on demand, up to `AWS_LAMBDA_MAX_CONCURRENCY` at once on
/// Lambda Managed Instances. Concurrent batches may name the same user: each writes what
/// DynamoDB holds at its read, through the compare-and-set, so the newest read wins.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    shared::metrics::init();
    let lookup = |name: &str| std::env::var(name).ok();
    let log_format = shared::config::log_format(lookup);
    shared::telemetry::init(*log_format.as_ref().unwrap_or(&LogFormat::Json));
    let sync = async {
        log_format?;
        let table = TableConfig::from_env()?;
        let cache = shared::app::cache_from_config(&CacheConfig::from_env()?).await?;
        let store = Store::new(client_from_config(&table).await, table.table_name);
        Ok::<_, shared::app::InitError>(CacheSync { cache, store })
    }
    .await
    .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    tokio::join!(
        sync.cache.prewarm(PREWARM_BOUND),
        sync.store.prewarm(PREWARM_BOUND)
    );
    shared::metrics::init_done();
    let sync: &'static CacheSync = Box::leak(Box::new(sync));
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Event>| {
        handle(sync, event)
    }))
    .await
}
