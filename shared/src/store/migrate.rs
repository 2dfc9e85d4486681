//! Moving a table's legacy items into the current layout (docs/architecture.md, "Data model"), a
//! page of a scan at a time, resumable from where it stopped, with nothing lost on the way:
//!
//! - a legacy post (in the one partition `FEED` of `gsi1`) gets its feed shard's keys
//!   (`feedpk`, `feedsk`) and loses `gsi1`'s, in one conditional update;
//! - a legacy comment (in its post's own partition) is written to its comment shard, marked
//!   counted (it was counted when it was written), and deleted where it was, in one
//!   transaction; one already copied by an earlier run is only deleted where it was.
//!
//! Every step is conditioned on the item still being legacy, so a page done twice (a run that
//! stopped before saving its progress) changes nothing more. Readers meanwhile read both layouts
//! (`LEGACY_LAYOUT`), and a list shows an item once even while it is in both (the merge drops a
//! repeated id). `tools/migrate-layout` runs it.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};

use super::dynamo::{classify, n, s, text, transact, Item, Transaction};
use super::dynamo::{Store, StoreError};
use super::keys::{
    comment_of_key, comment_pk, feed_pk, Key, FEED_PK, FEED_SK, LEGACY_FEED_PK, LEGACY_FEED_SK,
    POST_SK,
};

/// What one page moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Items the page read.
    pub scanned: usize,
    pub posts: usize,
    pub comments: usize,
}

impl Store {
    /// Moves the legacy items of one page of a scan of the table (from `start`, at most
    /// `page_size` items read) and returns where the next page starts (`None`: the scan is
    /// done) and what it moved.
    pub async fn migrate_page(
        &self,
        start: Option<Key>,
        page_size: i32,
    ) -> Result<(Option<Key>, Moved), StoreError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .set_exclusive_start_key(start)
            .limit(page_size)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("Scan migrate", e))?;
        let mut moved = Moved::default();
        for item in out.items.unwrap_or_default() {
            moved.scanned += 1;
            let (Some(pk), Some(sk)) = (
                text(&item, "pk").map(str::to_owned),
                text(&item, "sk").map(str::to_owned),
            ) else {
                continue;
            };
            if sk == POST_SK && text(&item, LEGACY_FEED_PK).is_some() {
                if self.move_post(&pk).await? {
                    moved.posts += 1;
                }
            } else if let Some((post_id, comment_id, true)) = comment_of_key(&pk, &sk) {
                let (post_id, comment_id) = (post_id.to_owned(), comment_id.to_owned());
                if self.move_comment(item, &post_id, &comment_id).await? {
                    moved.comments += 1;
                }
            }
        }
        let next = out.last_evaluated_key.filter(|key| !key.is_empty());
        Ok((next, moved))
    }

    /// Gives a legacy post its feed shard's keys and takes `gsi1`'s away; `false` if it was no
    /// longer legacy (or gone).
    async fn move_post(&self, pk: &str) -> Result<bool, StoreError> {
        let Some(post_id) = pk.strip_prefix(super::keys::POST_PREFIX) else {
            return Ok(false);
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(POST_SK))
            .update_expression("SET #fpk = :fpk, #fsk = :fsk REMOVE #lpk, #lsk")
            .condition_expression("attribute_exists(#lpk)")
            .expression_attribute_names("#fpk", FEED_PK)
            .expression_attribute_names("#fsk", FEED_SK)
            .expression_attribute_names("#lpk", LEGACY_FEED_PK)
            .expression_attribute_names("#lsk", LEGACY_FEED_SK)
            .expression_attribute_values(":fpk", s(feed_pk(post_id)))
            .expression_attribute_values(":fsk", s(post_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if super::dynamo::refused(&e).is_some() => Ok(false),
            Err(e) => Err(classify("UpdateItem migrate post", e)),
        }
    }

    /// Writes a legacy comment to its shard, counted, and deletes it where it was, in one
    /// transaction; `false` if it had already gone from there.
    async fn move_comment(
        &self,
        mut item: Item,
        post_id: &str,
        comment_id: &str,
    ) -> Result<bool, StoreError> {
        let old_key: Key = ["pk", "sk"]
            .iter()
            .filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        item.insert("pk".into(), s(comment_pk(post_id, comment_id)));
        item.insert("counted".into(), AttributeValue::Bool(true));
        if !item.contains_key("rev") {
            item.insert("rev".into(), n(0));
        }
        let delete = || {
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(old_key.clone()))
                .condition_expression("attribute_exists(pk)")
                .build()
                .map_err(|e| StoreError::Internal(format!("building Delete: {e}")))
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Internal(format!("building Put: {e}")))?;
        let both = [
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().delete(delete()?).build(),
        ];
        match transact(self, &both, "TransactWriteItems migrate comment").await? {
            Transaction::Done => Ok(true),
            Transaction::Refused(reasons) => {
                if reasons
                    .get(1)
                    .is_some_and(super::dynamo::Reason::is_condition)
                {
                    // Gone from its old place already: a page done twice.
                    return Ok(false);
                }
                // Copied by an earlier run that stopped before the delete: delete it now.
                let only = [TransactWriteItem::builder().delete(delete()?).build()];
                Ok(matches!(
                    transact(self, &only, "TransactWriteItems migrate comment").await?,
                    Transaction::Done
                ))
            }
        }
    }
}
