//! The `cache-sync` function: DynamoDB's stream of the table, applied to the cache.
//!
//! A change whose own cache write never landed (Redis down, refusing writes, failing over)
//! is not lost: every write of an item is a record in the table's stream, and this function
//! brings each changed item's entries to DynamoDB's state through the same compare-and-set as
//! every other cache write: a user's entry; a post's entry (and, for a new or deleted post, its
//! place in the feed's first page); a comment's place in its post's first comments.
//!
//! The stream says *what* changed; DynamoDB says what it is *now*. The stream is keys only
//! (`KEYS_ONLY`, `template.yaml`): a record names an item, and carries none of it, so no
//! reader of the stream ever sees a user's password hash. For each item a batch names, the
//! function reads it (strongly consistent) and writes that: a user's or a post's entry is
//! leased first, as a miss leases it, and the state read lands only in the entry leased (never
//! in one made after Redis lost it, and a newer change with it); a window (the feed, a post's
//! first comments) takes the change only where it exists. A record is a state from the past:
//! retried or replayed after the cache lost its data (a restart, a failover), its state would
//! put an old one back; the current item never is older than the cache should hold. A post or
//! a comment that is gone is written gone for good (its id is never used again).
//!
//! A user that is gone is written as the tombstone of the user the email's tombstone item
//! names: the users function writes that item (`id`, `registration`) before every delete
//! (`shared::store::users`), and keeps it a week, far past any cache entry. Its version is
//! [`Version::gone_for_good`]: that user's registration, with a revision past every revision
//! it ever had. Why not the deleted user's last revision plus one, as the users function
//! caches it (`User::deleted`)? The record does not carry it any more, and the tombstone item
//! cannot know it: it is written before the delete, from the token's user, which a concurrent
//! rename (the delete is conditioned on the user's id and `jwtVersion`, not its revision) or a
//! slower delete attempt of the same user can leave behind the state the delete removed. A
//! tombstone older than that state would let a late write-back of the user (a read from
//! before the delete) over it, and serve a deleted user's revoked tokens again. Past every
//! revision, it is never older than the delete's own tombstone, and a state of a user whose
//! id is never used again can never be newer. Registration first, it is older than every later
//! user of the email (whose registration is the tombstone's plus one), so it hides none.
//! The order of the reads makes it the right user's: the tombstone item is read after the
//! user was found gone, and the user read once more after that; only if both reads find no
//! user is the tombstone used (so a user registered, and a delete of it attempted and refused,
//! between the two reads is never written gone). With no tombstone item (none left, or expired:
//! no user of the email was deleted for a week, so no entry of one is left in the cache) the
//! entry is "DynamoDB had none" ([`Version::NONE`]), older than everything, as a miss writes it.
//! Records delivered twice, late or out of order change nothing more than one would.
//!
//! As Lambda's event source mapping expects (`ReportBatchItemFailures`):
//! - a record that cannot be read (a user key whose email is not one the users function
//!   writes, an unknown event name) is reported alone, by its sequence number, and the rest of
//!   the batch is still applied;
//! - when Redis cannot take writes, or the table cannot be read, the whole batch fails, so
//!   Lambda retries it (and, once the retries or the record age are spent, sends it to the
//!   failure queue);
//! - records of other items (an email's tombstone item, idempotency records, a sweep's
//!   progress) are skipped on their keys; so are the comments of a post that is gone (no read
//!   serves them). A tombstone item is written before its user's delete, whose own record
//!   follows.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::LambdaEvent;
use shared::cache::entry::{Record, Revision};
use shared::cache::posts::comment_json;
use shared::cache::{Entry, Posts, RedisCache, WriteOutcome};
use shared::config::{CacheConfig, TableConfig};
use shared::domain::{Email, Version};
use shared::store::keys::{comment_of_key, is_sweep_key, post_of_key, record_keys};
use shared::store::{client_from_config, email_of_user_key, is_user_key, Store, StoreError};

/// Why a batch failed as a whole (so Lambda retries it).
#[derive(thiserror::Error)]
pub enum BatchFailed {
    #[error("redis cannot take writes; the batch will be retried")]
    Cache,
    #[error("the table cannot be read; the batch will be retried: {0}")]
    Table(StoreError),
}

impl BatchFailed {
    /// The `errorType` Lambda records.
    fn error_type(&self) -> &'static str {
        match self {
            BatchFailed::Cache => "CacheUnavailable",
            BatchFailed::Table(_) => "TableUnavailable",
        }
    }
}

shared::batch_failure_reporting!(BatchFailed);

/// What one batch did, for the log line and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    /// Users the batch named (each read and written once, however many records it had).
    pub users: usize,
    /// Posts and comments the batch named (each read once).
    pub items: usize,
    /// Entries written.
    pub written: usize,
    /// Entries the cache already held newer (a change landed between the read and the write).
    pub stale: usize,
    /// Entries the cache did not hold: nothing to write, the next read fills them.
    pub absent: usize,
    /// Records of other items.
    pub ignored: usize,
    /// Records that could not be read, reported to Lambda.
    pub failed: usize,
}

/// What the function builds once per instance: the cache, and the table it follows.
pub struct CacheSync {
    pub cache: RedisCache,
    pub store: Store,
    /// The posts' and comments' entries, over the same cache and store.
    pub posts: Posts,
}

impl CacheSync {
    pub fn new(cache: RedisCache, store: Store) -> Self {
        let posts = Posts::new(store.clone(), cache.clone());
        CacheSync {
            cache,
            store,
            posts,
        }
    }
}

/// What a record of a post or a comment names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Named {
    /// A post; `new` when the record is its creation (its place in the feed).
    Post {
        id: String,
        new: bool,
    },
    Comment {
        post_id: String,
        id: String,
    },
}

/// The post or comment a record's keys name, if any.
fn named(record: &EventRecord) -> Option<Named> {
    let (pk, sk) = record_keys(&record.change.keys)?;
    if let Some((post_id, id, _)) = comment_of_key(pk, sk) {
        return Some(Named::Comment {
            post_id: post_id.to_owned(),
            id: id.to_owned(),
        });
    }
    if is_sweep_key(sk) {
        return None;
    }
    post_of_key(pk, sk).map(|id| Named::Post {
        id: id.to_owned(),
        new: record.event_name == "INSERT",
    })
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
        // Each user the batch names, in order.
        let mut changed: Vec<Email> = Vec::new();
        let mut items: Vec<Named> = Vec::new();
        for record in records {
            if !is_user_key(&record.change.keys) {
                match named(&record) {
                    Some(Named::Post { id, new }) => {
                        match items
                            .iter_mut()
                            .find(|n| matches!(n, Named::Post { id: i, .. } if *i == id))
                        {
                            Some(Named::Post { new: seen, .. }) => *seen |= new,
                            _ => items.push(Named::Post { id, new }),
                        }
                    }
                    Some(comment) if !items.contains(&comment) => items.push(comment),
                    Some(_) => {}
                    None => report.ignored += 1,
                }
                continue;
            }
            let sequence_number = record.change.sequence_number.clone();
            match user_named(&record) {
                Ok(email) if changed.contains(&email) => {}
                Ok(email) => changed.push(email),
                Err(why) => {
                    tracing::error!(sequence_number = sequence_number.as_deref(), error = %why, "stream record not applied");
                    report.failed += 1;
                    response.batch_item_failures.push(failure(sequence_number));
                }
            }
        }
        for email in changed {
            report.users += 1;
            // Leased before the read, as a miss leases: the state read lands in the entry
            // leased, never in one made after Redis lost it (and a newer change with it).
            let lease = self.cache.lease(&email).await;
            let entry = self.user_entry(&email).await.map_err(BatchFailed::Table)?;
            report.count(self.cache.fill(&email, &entry, lease.as_ref()).await)?;
        }
        report.items = items.len();
        for outcome in self.apply_items(&items).await? {
            report.count(outcome)?;
        }
        Ok((response, report))
    }

    /// `email`'s entry as the table has it now: its user, or the tombstone of the user its
    /// tombstone item names, read after the user was found gone twice around it (the module's
    /// doc says why this version, and why this order).
    async fn user_entry(&self, email: &Email) -> Result<Entry, StoreError> {
        if let Some(user) = self.store.get_user(email).await? {
            return Ok(Entry::User(user));
        }
        let tombstone = self.store.get_tombstone(email).await?;
        if let Some(user) = self.store.get_user(email).await? {
            return Ok(Entry::User(user));
        }
        Ok(Entry::Absent(tombstone.map_or(Version::NONE, |t| {
            Version::gone_for_good(t.registration, t.id)
        })))
    }

    /// Brings the entries of the posts and comments `items` names to the table's state: each
    /// read once (strongly consistent, all at once), then written, a post's comments in one
    /// write of their post's first comments.
    async fn apply_items(&self, items: &[Named]) -> Result<Vec<WriteOutcome>, BatchFailed> {
        let posts = items.iter().filter_map(|n| match n {
            Named::Post { id, new } => Some((id.as_str(), *new)),
            Named::Comment { .. } => None,
        });
        let mut outcomes = Vec::new();
        let reads = posts.map(|(id, new)| async move {
            let lease = self.posts.lease_post(id).await;
            let post = self.store.get_post(id).await?;
            Ok::<_, StoreError>((id, new, lease, post))
        });
        for (id, new, lease, post) in futures_util::future::try_join_all(reads)
            .await
            .map_err(BatchFailed::Table)?
        {
            outcomes.push(
                self.posts
                    .sync_post_state(id, lease.as_ref(), post.as_ref())
                    .await,
            );
            if new && post.is_some() {
                outcomes.push(self.posts.publish_feed(id, true).await);
            }
        }
        let mut by_post: Vec<(&str, Vec<&str>)> = Vec::new();
        for named in items {
            if let Named::Comment { post_id, id } = named {
                match by_post.iter_mut().find(|(p, _)| p == post_id) {
                    Some((_, ids)) => ids.push(id),
                    None => by_post.push((post_id, vec![id])),
                }
            }
        }
        let reads = by_post.iter().map(|(post_id, ids)| async move {
            // A gone post's comments are never served (every read checks the post first), and
            // its sweep removes thousands of them: no need to write each one gone.
            if self.store.get_post(post_id).await?.is_none() {
                return Ok(None);
            }
            let mut records = Vec::with_capacity(ids.len());
            for id in ids {
                records.push(match self.store.get_comment(post_id, id).await? {
                    Some(comment) => Record::live(
                        *id,
                        Revision::at(comment.rev),
                        "",
                        comment_json(&comment.item)
                            .map_err(|e| StoreError::Internal(e.to_string()))?,
                    ),
                    None => Record::gone(*id, Revision::gone()),
                });
            }
            Ok::<_, StoreError>(Some((*post_id, records)))
        });
        for (post_id, records) in futures_util::future::try_join_all(reads)
            .await
            .map_err(BatchFailed::Table)?
            .into_iter()
            .flatten()
        {
            outcomes.push(self.posts.put_comments(post_id, &records).await);
        }
        Ok(outcomes)
    }
}

impl BatchReport {
    /// Counts one write; a write Redis could not take fails the batch.
    fn count(&mut self, outcome: WriteOutcome) -> Result<(), BatchFailed> {
        match outcome {
            WriteOutcome::Written => self.written += 1,
            WriteOutcome::Stale => self.stale += 1,
            WriteOutcome::NoEntry => self.absent += 1,
            WriteOutcome::Failed => return Err(BatchFailed::Cache),
        }
        Ok(())
    }
}

/// The email a user record names, by its keys (the stream carries nothing else).
fn user_named(record: &EventRecord) -> Result<Email, String> {
    match record.event_name.as_str() {
        "INSERT" | "MODIFY" | "REMOVE" => {}
        other => return Err(format!("unknown event name {other:?}")),
    }
    email_of_user_key(&record.change.keys).map_err(|e| e.to_string())
}

fn failure(sequence_number: Option<String>) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = sequence_number;
    failure
}

/// This function's name in logs and metrics.
pub const FUNCTION: &str = "cache-sync";

/// The Lambda handler: one batch in, the records to retry out, in its invocation's span and
/// metrics (`shared::app::batch`).
pub async fn handle(
    sync: &CacheSync,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, BatchFailed> {
    shared::app::batch(FUNCTION, event, |event| apply_batch(sync, event)).await
}

async fn apply_batch(
    sync: &CacheSync,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, BatchFailed> {
    let records = event.payload.records;
    let count = records.len();
    // How long the oldest change took to reach the cache.
    let oldest = shared::app::OldestChange::of(&records);
    let (response, report) = sync.apply(records).await.inspect_err(|e| {
        tracing::warn!(error = %e, "batch failed");
        shared::metrics::sync_batch_failed();
    })?;
    let lag = oldest.lag();
    let lag_ms = lag.map(|d| d.as_millis() as u64);
    shared::metrics::sync_batch(report.written, report.stale, report.failed, lag);
    tracing::info!(
        records = count,
        users = report.users,
        items = report.items,
        written = report.written,
        stale = report.stale,
        ignored = report.ignored,
        failed = report.failed,
        lag_ms,
        "batch applied"
    );
    Ok(response)
}

impl shared::app::Prewarm for CacheSync {
    async fn prewarm(&self, bound: Duration) {
        tokio::join!(self.cache.prewarm(bound), self.store.prewarm(bound));
    }
}

impl CacheSync {
    /// The services as the environment configures them: the table's name and the cache's
    /// variables, nothing else (no JWT key).
    pub async fn from_env() -> Result<Self, shared::app::InitError> {
        let table = TableConfig::from_env()?;
        let cache = shared::app::cache_from_config(&CacheConfig::from_env()?).await?;
        let store = Store::new(client_from_config(&table).await, table.table_name.clone())
            .with_legacy_layout(table.legacy_layout);
        Ok(CacheSync::new(cache, store))
    }
}

/// The function's whole life (`shared::app::run_events`): one [`handle`] per batch, one at a
/// time on demand, up to `AWS_LAMBDA_MAX_CONCURRENCY` at once on Lambda Managed Instances.
/// Concurrent batches may name the same item: each writes what DynamoDB holds at its read,
/// through the compare-and-set, so the newest read wins.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    shared::app::run_events(CacheSync::from_env(), handle).await
}
