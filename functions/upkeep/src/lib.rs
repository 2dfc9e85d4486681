//! The `upkeep` function: the table's own upkeep, done from its DynamoDB stream rather than
//! inside the requests that cause it, so no request waits on it and no item is written by
//! every request of a popular post (BENCHMARKS.md, "Scale"):
//!
//! - **Counts.** A comment's create, or its delete, changes its post's `commentCount` here: the
//!   comment is marked counted (or removed) and the post's count moved in one transaction, for
//!   all of a post's comments in a batch at once (`shared::store::upkeep`). `API.md` ("Counts
//!   and deletes at scale"): the count includes every comment whose create or delete was
//!   answered more than a second ago, and is exact at rest. The post's new state is written
//!   to the cache at once (and again by `cache-sync`, from the post's own record).
//! - **Orphans.** A comment that landed on a post deleted meanwhile is removed.
//! - **Sweeps.** A deleted post's comments are removed, a bounded amount per batch; a sweep
//!   that runs out of time saves its progress in an item whose own stream record brings it back.
//!
//! The stream says *what* changed; the table says what it is *now*: each step reads the items
//! as they are and writes under conditions that say the step has not been done yet, so a batch
//! applied twice, late, or out of order changes nothing more than once. As Lambda's event
//! source mapping expects (`ReportBatchItemFailures`): a record that cannot be read is reported
//! alone; a table that cannot be read or written fails the whole batch (Lambda retries it).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::LambdaEvent;
use shared::cache::Posts;
use shared::config::{CacheConfig, TableConfig};
use shared::store::keys::{comment_of_key, is_sweep_key, post_of_key, record_keys};
use shared::store::{client_from_config, Change, Settled, Store, StoreError, Swept};

/// This function's name in logs and metrics.
pub const FUNCTION: &str = "upkeep";

/// How long one batch may spend sweeping deleted posts' comments before it saves its progress
/// and lets the next batch go on: well inside the function's timeout (`template.yaml`).
pub const SWEEP_BUDGET: Duration = Duration::from_secs(10);

/// Times a post's comments are read again when one changed between the read and the write
/// (another batch counted it, its author deleted it), before the batch fails and is retried.
const PLANS: usize = 4;

/// Why a batch failed as a whole (so Lambda retries it).
#[derive(thiserror::Error)]
pub enum BatchFailed {
    #[error("the table cannot be read or written; the batch will be retried: {0}")]
    Table(#[from] StoreError),
    #[error("comments of post {0} kept changing under the count; the batch will be retried")]
    Busy(String),
}

impl BatchFailed {
    /// The `errorType` Lambda records.
    fn error_type(&self) -> &'static str {
        match self {
            BatchFailed::Table(_) => "TableUnavailable",
            BatchFailed::Busy(_) => "CountContended",
        }
    }
}

shared::batch_failure_reporting!(BatchFailed);

/// What one batch did, for the log line, the metrics and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpkeepReport {
    /// Comments counted into their post (`+1` each).
    pub counted: usize,
    /// Deleted comments removed (uncounted where they were counted).
    pub removed: usize,
    /// Comments of gone posts removed: orphans and swept ones.
    pub swept: usize,
    /// Sweeps that ran out of time and will go on.
    pub paused: usize,
    /// Records of other items.
    pub ignored: usize,
    /// Records that could not be read, reported to Lambda.
    pub failed: usize,
}

/// What the function builds once per instance: the table, and the cache it writes a post's
/// new count to.
pub struct Upkeep {
    pub store: Store,
    pub posts: Posts,
}

/// What a record asks of the upkeep.
enum Work {
    /// A comment was written (created, edited, marked deleted): its state decides.
    Comment { pk: String, sk: String },
    /// A post is gone, or its sweep has more to do.
    Sweep { post_id: String },
}

/// The work a record names, `None` for a record of another item, or why it cannot be read.
fn work(record: &EventRecord) -> Result<Option<Work>, String> {
    let Some((pk, sk)) = record_keys(&record.change.keys) else {
        return Err("keys without a string pk and sk".into());
    };
    let event = record.event_name.as_str();
    if !matches!(event, "INSERT" | "MODIFY" | "REMOVE") {
        return Err(format!("unknown event name {event:?}"));
    }
    if comment_of_key(pk, sk).is_some() {
        // A comment's removal is the upkeep's own (or a sweep's) work: nothing left to do.
        return Ok((event != "REMOVE").then(|| Work::Comment {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
        }));
    }
    let Some(post_id) = post_of_key(pk, sk) else {
        return Ok(None);
    };
    let sweep = if is_sweep_key(sk) {
        event != "REMOVE"
    } else {
        event == "REMOVE"
    };
    Ok(sweep.then(|| Work::Sweep {
        post_id: post_id.to_owned(),
    }))
}

impl Upkeep {
    /// Applies one batch. `Ok` carries the records to retry (none when all went well); `Err`
    /// fails the batch.
    pub async fn apply(
        &self,
        records: Vec<EventRecord>,
        sweep_until: Instant,
    ) -> Result<(DynamoDbEventResponse, UpkeepReport), BatchFailed> {
        let mut report = UpkeepReport::default();
        let mut response = DynamoDbEventResponse::default();
        let mut comments = BTreeSet::new();
        let mut sweeps = BTreeSet::new();
        for record in &records {
            match work(record) {
                Ok(Some(Work::Comment { pk, sk })) => {
                    comments.insert((pk, sk));
                }
                Ok(Some(Work::Sweep { post_id })) => {
                    sweeps.insert(post_id);
                }
                Ok(None) => report.ignored += 1,
                Err(why) => {
                    let sequence_number = record.change.sequence_number.clone();
                    tracing::error!(sequence_number = sequence_number.as_deref(), error = %why, "stream record not applied");
                    report.failed += 1;
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = sequence_number;
                    response.batch_item_failures.push(failure);
                }
            }
        }
        let comments: Vec<(String, String)> = comments.into_iter().collect();
        self.settle(&comments, &mut report).await?;
        for post_id in sweeps {
            match self.store.sweep_comments(&post_id, sweep_until).await? {
                Swept::Done { deleted } => report.swept += deleted,
                Swept::Paused { deleted } => {
                    report.swept += deleted;
                    report.paused += 1;
                }
            }
        }
        Ok((response, report))
    }

    /// Counts, uncounts and removes the comments `keys` names, post by post, as their states
    /// say now.
    async fn settle(
        &self,
        keys: &[(String, String)],
        report: &mut UpkeepReport,
    ) -> Result<(), BatchFailed> {
        let mut pending: Vec<(String, String)> = keys.to_vec();
        for _ in 0..PLANS {
            if pending.is_empty() {
                return Ok(());
            }
            let states = self.store.comment_states(&pending).await?;
            let mut by_post: BTreeMap<String, Vec<_>> = BTreeMap::new();
            for state in states.into_values() {
                by_post
                    .entry(state.post_id.clone())
                    .or_default()
                    .push(state);
            }
            let post_ids: Vec<String> = by_post.keys().cloned().collect();
            let existing = self.store.existing_posts(&post_ids).await?;
            let mut again = Vec::new();
            for (post_id, states) in by_post {
                if !existing.contains(&post_id) {
                    let orphans: Vec<_> = states.iter().map(|s| s.key.clone()).collect();
                    self.store.delete_items(&orphans).await?;
                    report.swept += orphans.len();
                    continue;
                }
                let changes: Vec<Change> = states
                    .iter()
                    .cloned()
                    .filter_map(Change::for_state)
                    .collect();
                if changes.is_empty() {
                    continue;
                }
                match self.store.settle_counts(&post_id, &changes).await? {
                    Settled::Done(post) => {
                        for change in &changes {
                            match change {
                                Change::Count(_) => report.counted += 1,
                                Change::Uncount(_) | Change::Drop(_) => report.removed += 1,
                            }
                        }
                        if let Some(post) = post {
                            // Failing here loses nothing: the post's own record reaches
                            // `cache-sync`, which writes it.
                            self.posts.publish_post_state(&post_id, &post).await;
                        }
                    }
                    Settled::PostGone => {
                        let orphans: Vec<_> = states.iter().map(|s| s.key.clone()).collect();
                        self.store.delete_items(&orphans).await?;
                        report.swept += orphans.len();
                    }
                    Settled::Changed => again.extend(states.iter().map(|s| s.key.clone())),
                }
            }
            pending = again;
        }
        match pending.first() {
            None => Ok(()),
            Some((pk, _)) => Err(BatchFailed::Busy(pk.clone())),
        }
    }
}

impl shared::app::Prewarm for Upkeep {
    async fn prewarm(&self, bound: Duration) {
        self.store.prewarm(bound).await;
    }
}

impl Upkeep {
    /// The services as the environment configures them: the table and the cache.
    pub async fn from_env() -> Result<Self, shared::app::InitError> {
        let table = TableConfig::from_env()?;
        let cache = shared::app::cache_from_config(&CacheConfig::from_env()?).await?;
        let store = Store::new(client_from_config(&table).await, table.table_name.clone())
            .with_legacy_layout(table.legacy_layout);
        let posts = Posts::new(store.clone(), cache);
        Ok(Upkeep { store, posts })
    }
}

/// The Lambda handler: one batch in, the records to retry out, in its invocation's span and
/// metrics (`shared::app::batch`, as `cache-sync`'s batches are).
pub async fn handle(
    upkeep: &Upkeep,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, BatchFailed> {
    shared::app::batch(FUNCTION, event, |event| apply_batch(upkeep, event)).await
}

async fn apply_batch(
    upkeep: &Upkeep,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, BatchFailed> {
    let records = event.payload.records;
    let count = records.len();
    let oldest = shared::app::OldestChange::of(&records);
    let sweep_until = Instant::now() + SWEEP_BUDGET;
    let (response, report) = upkeep.apply(records, sweep_until).await.inspect_err(|e| {
        tracing::warn!(error = %e, "batch failed");
        shared::metrics::upkeep_batch_failed();
    })?;
    let lag = oldest.lag();
    let lag_ms = lag.map(|d| d.as_millis() as u64);
    shared::metrics::upkeep_batch(report.counted, report.removed, report.swept, lag);
    tracing::info!(
        records = count,
        counted = report.counted,
        removed = report.removed,
        swept = report.swept,
        paused = report.paused,
        ignored = report.ignored,
        failed = report.failed,
        lag_ms,
        "batch applied"
    );
    Ok(response)
}

/// The function's whole life (`shared::app::run_events`).
pub async fn run() -> Result<(), lambda_runtime::Error> {
    shared::app::run_events(Upkeep::from_env(), handle).await
}
