//! The table's own upkeep, done from its stream by the `upkeep` function rather than inside
//! the requests that caused it: counting comments into their post's `commentCount`, removing
//! deleted comments, and sweeping the comments of deleted posts.
//!
//! Every step reads the items as they are now and changes them only under conditions that say
//! the step has not been done yet, so a stream record applied twice, late, or out of order
//! changes nothing more than once:
//!
//! | a comment that is | becomes, in one transaction with its post's `ADD commentCount` |
//! | --- | --- |
//! | live, not counted | counted (`+1`) |
//! | deleted, counted (or legacy, always counted) | removed (`-1`) |
//! | deleted, never counted | removed (`0`) |
//! | of a post that is gone | removed (no count to keep) |
//!
//! The post's `rev` grows with every count change, so the cache orders the post's states.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, TransactWriteItem, Update, WriteRequest,
};

use super::comments::CommentItem;
use super::dynamo::{from_item, n, s, text, transact, Item, Transaction};
use super::dynamo::{Store, StoreError, Stored};
use super::keys::{
    comment_of_key, comment_shard_pk, post_key, post_pk, primary_key, sweep_key, Key,
    COMMENT_PREFIX, COMMENT_SHARDS,
};
use super::paging::Pages;
use crate::domain::Post;

/// A comment as the upkeep finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentState {
    pub key: (String, String),
    pub post_id: String,
    pub counted: bool,
    pub deleted: bool,
    legacy: bool,
}

/// What the upkeep does to one comment, within its post's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Count a live comment: `+1`.
    Count(CommentState),
    /// Remove a deleted comment that was counted: `-1`.
    Uncount(CommentState),
    /// Remove a deleted comment that never was counted: `0`.
    Drop(CommentState),
}

impl Change {
    /// The change a comment in `state` needs, if any.
    pub fn for_state(state: CommentState) -> Option<Change> {
        match (state.deleted, state.counted) {
            (false, false) => Some(Change::Count(state)),
            (false, true) => None,
            (true, true) => Some(Change::Uncount(state)),
            (true, false) => Some(Change::Drop(state)),
        }
    }

    fn delta(&self) -> i64 {
        match self {
            Change::Count(_) => 1,
            Change::Uncount(_) => -1,
            Change::Drop(_) => 0,
        }
    }

    fn state(&self) -> &CommentState {
        match self {
            Change::Count(state) | Change::Uncount(state) | Change::Drop(state) => state,
        }
    }
}

/// How a post's changes ended.
#[derive(Debug)]
pub enum Settled {
    /// Applied; the post as it is after its count changed (when it did).
    Done(Option<Stored<Post>>),
    /// The post is gone: its comments are orphans, to remove.
    PostGone,
    /// A comment changed between the read and the write (deleted, counted by another batch):
    /// read again and plan again.
    Changed,
}

/// How far a sweep got.
#[derive(Debug, PartialEq, Eq)]
pub enum Swept {
    /// No comment of the post is left, and no progress is kept.
    Done { deleted: usize },
    /// Time ran out; the progress is saved, and its stream record brings the sweep back.
    Paused { deleted: usize },
}

/// The most items one `TransactWriteItems` takes: 99 comments and their post.
const TRANSACTION_COMMENTS: usize = 99;

impl Store {
    /// The current state of each comment `keys` names (a strongly consistent read), by key;
    /// a comment that is gone is not in the answer.
    pub async fn comment_states(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), CommentState>, StoreError> {
        let mut states = HashMap::with_capacity(keys.len());
        let unique: HashSet<&(String, String)> = keys.iter().collect();
        let keys: Vec<Key> = unique
            .into_iter()
            .map(|(pk, sk)| primary_key(pk.clone(), sk))
            .collect();
        for chunk in keys.chunks(100) {
            for item in self
                .batch_get(chunk.to_vec(), true, "BatchGetItem comments")
                .await?
            {
                let item: CommentItem = from_item("comment", item)?;
                let Some((post_id, _, legacy)) = comment_of_key(&item.pk, &item.sk) else {
                    continue;
                };
                let state = CommentState {
                    post_id: post_id.to_owned(),
                    counted: legacy || item.counted == Some(true),
                    deleted: item.deleted_at.is_some(),
                    legacy,
                    key: (item.pk.clone(), item.sk.clone()),
                };
                states.insert(state.key.clone(), state);
            }
        }
        Ok(states)
    }

    /// Which of `post_ids` exist now (a strongly consistent read).
    pub async fn existing_posts(&self, post_ids: &[String]) -> Result<HashSet<String>, StoreError> {
        let unique: HashSet<&String> = post_ids.iter().collect();
        let keys: Vec<Key> = unique.into_iter().map(|id| post_key(id)).collect();
        let mut found = HashSet::new();
        for chunk in keys.chunks(100) {
            for item in self
                .batch_get(chunk.to_vec(), true, "BatchGetItem posts exist")
                .await?
            {
                if let Some(id) = text(&item, "id") {
                    found.insert(id.to_owned());
                }
            }
        }
        Ok(found)
    }

    /// Applies `changes` (all of one post's comments) and moves the post's `commentCount` by
    /// their sum, in transactions of up to 99 comments and the post. Stops at the first
    /// transaction that cannot be applied as planned.
    pub async fn settle_counts(
        &self,
        post_id: &str,
        changes: &[Change],
    ) -> Result<Settled, StoreError> {
        let mut counted = false;
        for chunk in changes.chunks(TRANSACTION_COMMENTS) {
            let delta: i64 = chunk.iter().map(Change::delta).sum();
            let mut items = Vec::with_capacity(chunk.len() + 1);
            for change in chunk {
                items.push(self.comment_write(change)?);
            }
            if delta != 0 {
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(post_key(post_id)))
                    .update_expression("ADD commentCount :delta, rev :one")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":delta", n(delta))
                    .expression_attribute_values(":one", n(1))
                    .build()
                    .map_err(|e| StoreError::Internal(format!("building Update: {e}")))?;
                items.push(TransactWriteItem::builder().update(update).build());
            }
            match transact(self, &items, "TransactWriteItems count comments").await? {
                Transaction::Done => {}
                Transaction::Refused(reasons) => {
                    let post_refused = delta != 0
                        && reasons
                            .last()
                            .is_some_and(super::dynamo::Reason::is_condition);
                    return Ok(if post_refused {
                        Settled::PostGone
                    } else {
                        Settled::Changed
                    });
                }
            }
            counted |= delta != 0;
        }
        if !counted {
            return Ok(Settled::Done(None));
        }
        Ok(Settled::Done(self.get_post(post_id).await?))
    }

    /// The transaction item of one change, conditioned on the state it was planned from.
    fn comment_write(&self, change: &Change) -> Result<TransactWriteItem, StoreError> {
        let state = change.state();
        let key = primary_key(state.key.0.clone(), &state.key.1);
        let built = match change {
            Change::Count(_) => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .update_expression("SET counted = :yes")
                        .condition_expression(
                            "attribute_exists(pk) AND attribute_not_exists(counted) AND attribute_not_exists(deletedAt)",
                        )
                        .expression_attribute_values(":yes", AttributeValue::Bool(true))
                        .build()
                        .map_err(|e| StoreError::Internal(format!("building Update: {e}")))?,
                )
                .build(),
            Change::Uncount(_) if state.legacy => delete(&self.table, key, "attribute_exists(deletedAt)", None)?,
            Change::Uncount(_) => delete(
                &self.table,
                key,
                "attribute_exists(deletedAt) AND counted = :yes",
                Some(AttributeValue::Bool(true)),
            )?,
            Change::Drop(_) => delete(
                &self.table,
                key,
                "attribute_exists(deletedAt) AND attribute_not_exists(counted)",
                None,
            )?,
        };
        Ok(built)
    }

    /// Deletes items outright (a gone post's comments), 25 at a time, retrying what
    /// DynamoDB leaves unprocessed.
    pub async fn delete_items(&self, keys: &[(String, String)]) -> Result<(), StoreError> {
        for chunk in keys.chunks(25) {
            let requests = chunk
                .iter()
                .map(|(pk, sk)| {
                    DeleteRequest::builder()
                        .key("pk", s(pk))
                        .key("sk", s(sk))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| StoreError::Internal(format!("building DeleteRequest: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.batch_write_all(requests).await?;
        }
        Ok(())
    }

    async fn batch_write_all(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut backoff = Duration::from_millis(20);
        for _ in 0..8 {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| super::dynamo::classify("BatchWriteItem", e))?;
            requests = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
        Err(StoreError::Unavailable(format!(
            "BatchWriteItem: {} deletions left unprocessed",
            requests.len()
        )))
    }

    /// Removes every comment of the deleted post `post_id`, shard after shard, until
    /// `deadline`. If time runs out, the shard it got to is saved in the post's sweep item,
    /// whose stream record brings the sweep back (to [`Store::sweep_comments`] again) in a
    /// later batch; a finished sweep deletes that item. A sweep of a post that still exists
    /// removes nothing.
    pub async fn sweep_comments(
        &self,
        post_id: &str,
        deadline: Instant,
    ) -> Result<Swept, StoreError> {
        if self.get_post(post_id).await?.is_some() {
            return Ok(Swept::Done { deleted: 0 });
        }
        let from = self.sweep_progress(post_id).await?.unwrap_or(0);
        let mut partitions: Vec<String> = (0..COMMENT_SHARDS)
            .map(|shard| comment_shard_pk(post_id, shard))
            .collect();
        // The legacy partition last (the post's own): it holds the sweep item too.
        partitions.push(post_pk(post_id));
        let mut deleted = 0;
        for (place, pk) in partitions.iter().enumerate().skip(from as usize) {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":prefix", s(COMMENT_PREFIX))
                .projection_expression("pk, sk")
                .consistent_read(true);
            let mut pages = Pages::new(query, "Query comments to sweep");
            while let Some(keys) = pages.next().await? {
                let keys: Vec<(String, String)> = keys.iter().filter_map(key_of).collect();
                self.delete_items(&keys).await?;
                deleted += keys.len();
                if Instant::now() >= deadline {
                    self.save_sweep_progress(post_id, place as u32).await?;
                    return Ok(Swept::Paused { deleted });
                }
            }
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(sweep_key(post_id)))
            .send()
            .await
            .map_err(|e| super::dynamo::classify("DeleteItem sweep", e))?;
        Ok(Swept::Done { deleted })
    }

    async fn sweep_progress(&self, post_id: &str) -> Result<Option<u32>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Progress {
            partition: u32,
        }
        Ok(self
            .get_item::<Progress>("sweep", "GetItem sweep", sweep_key(post_id), None)
            .await?
            .map(|p| p.partition))
    }

    /// Saves where the sweep goes on (each save changes the item, so each gives a record).
    async fn save_sweep_progress(&self, post_id: &str, partition: u32) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(sweep_key(post_id)))
            .update_expression("SET #partition = :partition ADD rounds :one")
            .expression_attribute_names("#partition", "partition")
            .expression_attribute_values(":partition", n(partition))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| super::dynamo::classify("UpdateItem sweep", e))?;
        Ok(())
    }
}

fn delete(
    table: &str,
    key: Key,
    condition: &str,
    yes: Option<AttributeValue>,
) -> Result<TransactWriteItem, StoreError> {
    let mut delete = Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .condition_expression(condition);
    if let Some(yes) = yes {
        delete = delete.expression_attribute_values(":yes", yes);
    }
    Ok(TransactWriteItem::builder()
        .delete(
            delete
                .build()
                .map_err(|e| StoreError::Internal(format!("building Delete: {e}")))?,
        )
        .build())
}

/// An item's `(pk, sk)`.
fn key_of(item: &Item) -> Option<(String, String)> {
    Some((text(item, "pk")?.to_owned(), text(item, "sk")?.to_owned()))
}
