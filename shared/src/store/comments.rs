//! Comments live in their post's comment shards (`POST#<postId>#<k>`), so a post's comments
//! spread over [`COMMENT_SHARDS`] partitions and one popular post can take thousands a
//! second. Writing one is a single `PutItem`: nothing else is written with it, so comments
//! never queue behind each other on one item. The post's `commentCount` follows from the
//! table's stream ([`super::upkeep`]): a comment is *counted* there, once, and marked so.
//!
//! A comment is removed in two steps: its delete marks it (`deletedAt`), which every read
//! honours at once, and the stream's upkeep then takes it out of the count and the table. A
//! post's comments go the same way, by the upkeep's sweep, when the post is deleted.
//!
//! Comments written before the shards existed live in the post's own partition (legacy) and
//! were counted when they were written; they are read, edited and removed where they are.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::{Deserialize, Serialize};

use super::dynamo::{
    classify, from_item, n, refused, returned, s, text, to_item, written_by, Item, NOT_YET_WRITTEN,
    WRITE_TOKEN,
};
use super::dynamo::{Page, Store, StoreError, Stored};
use super::keys::{
    comment_key, comment_pk, comment_shard_pk, comment_sk, legacy_comment_key, post_pk, Key,
    COMMENT_PREFIX, COMMENT_SHARDS,
};
use super::paging::{merged_page, Order};
use crate::domain::Comment;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CommentItem {
    pub(super) pk: String,
    pub(super) sk: String,
    /// The cache revision; legacy comments read as 0.
    #[serde(default)]
    pub(super) rev: u64,
    /// Set once the upkeep has counted the comment in its post's `commentCount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) counted: Option<bool>,
    /// Set by the comment's delete; the upkeep then uncounts and removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) deleted_at: Option<String>,
    #[serde(flatten)]
    pub(super) comment: Comment,
}

impl CommentItem {
    fn live(self) -> Option<Stored<Comment>> {
        self.deleted_at.is_none().then_some(Stored {
            item: self.comment,
            rev: self.rev,
        })
    }
}

/// Only comments not marked deleted.
const NOT_DELETED: &str = "attribute_not_exists(deletedAt)";

/// Whether `old`, found where a new comment was to be written, is that comment, written by an
/// earlier attempt of the same call, or by an earlier run of the same request (its
/// `Idempotency-Key` gives every run the same id). A new id is a ULID with 80 random bits, so
/// an item with that id and author is no one else's. The time is not compared: each run reads
/// its own clock.
fn is_same_comment(old: &Item, comment: &Comment) -> bool {
    text(old, "id") == Some(comment.id.as_str())
        && text(old, "authorId") == Some(comment.author_id.as_str())
        && text(old, "postId") == Some(comment.post_id.as_str())
}

/// Who removes a comment, which decides the condition of its delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remover {
    /// The comment's author (or anyone: the condition says the comment must be theirs).
    Author,
    /// The post's author, who moderates every comment on it.
    PostAuthor,
}

impl Store {
    /// Adds `comment` (revision 1), in its shard of its post. The post's existence is the
    /// caller's to check first; a comment that lands on a post deleted meanwhile is removed
    /// by the upkeep (it reads the post before counting). A retried attempt that finds the
    /// comment its first attempt wrote has succeeded.
    pub async fn add_comment(&self, comment: &Comment) -> Result<Stored<Comment>, StoreError> {
        let item = CommentItem {
            pk: comment_pk(&comment.post_id, &comment.id),
            sk: comment_sk(&comment.id),
            rev: 1,
            counted: None,
            deleted_at: None,
            comment: comment.clone(),
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item("comment", &item)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Stored {
                item: item.comment,
                rev: item.rev,
            }),
            Err(e) => match refused(&e) {
                Some(Some(old)) if is_same_comment(&old, comment) => {
                    tracing::info!("comment written by an earlier attempt of this request");
                    // Answered as that attempt wrote it (its time, its revision since).
                    let found = from_item::<CommentItem>("comment", old)?;
                    Ok(Stored {
                        item: found.comment,
                        rev: found.rev,
                    })
                }
                _ => Err(classify("PutItem comment", e)),
            },
        }
    }

    /// A comment that exists and is not deleted, read strongly consistent: in its shard, or
    /// (while legacy comments may remain) in its post's partition.
    pub async fn get_comment(
        &self,
        post_id: &str,
        comment_id: &str,
    ) -> Result<Option<Stored<Comment>>, StoreError> {
        Ok(self
            .comment_item(post_id, comment_id)
            .await?
            .and_then(|(_, item)| item.live()))
    }

    /// The comment's item and its key, wherever it lives.
    async fn comment_item(
        &self,
        post_id: &str,
        comment_id: &str,
    ) -> Result<Option<(Key, CommentItem)>, StoreError> {
        for key in self.comment_keys(post_id, comment_id) {
            if let Some(item) = self
                .get_item::<CommentItem>("comment", "GetItem comment", key.clone(), None)
                .await?
            {
                return Ok(Some((key, item)));
            }
        }
        Ok(None)
    }

    /// Where a comment may be: its shard, then (legacy) its post's partition.
    fn comment_keys(&self, post_id: &str, comment_id: &str) -> Vec<Key> {
        let mut keys = vec![comment_key(post_id, comment_id)];
        if self.legacy_layout {
            keys.push(legacy_comment_key(post_id, comment_id));
        }
        keys
    }

    /// A post's comments, oldest first, `limit` after the comment `after` (exclusive),
    /// strongly consistent: the merge of its comment shards (and of its legacy partition).
    pub async fn list_comments(
        &self,
        post_id: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Stored<Comment>>, StoreError> {
        let mut queries: Vec<_> = (0..COMMENT_SHARDS)
            .map(|shard| self.comments_query(comment_shard_pk(post_id, shard), after))
            .collect();
        if self.legacy_layout {
            queries.push(self.comments_query(post_pk(post_id), after));
        }
        let decode = |item| Ok(from_item::<CommentItem>("comment", item)?.live());
        merged_page(
            queries,
            "Query comments",
            Order::Ascending,
            limit,
            decode,
            |c: &Stored<Comment>| c.item.id.as_str(),
        )
        .await
    }

    /// One partition's comments not marked deleted, oldest first, after `after`.
    fn comments_query(&self, pk: String, after: Option<&str>) -> QueryFluentBuilder {
        // Every comment's sort key lies in [COMMENT#, COMMENT$); one past `after` is its key
        // followed by the lowest character.
        let low = match after {
            Some(after) => format!("{}\u{1}", comment_sk(after)),
            None => COMMENT_PREFIX.to_owned(),
        };
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
            .filter_expression(NOT_DELETED)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":low", s(low))
            .expression_attribute_values(":high", s("COMMENT$"))
            .consistent_read(true)
    }

    /// Changes the text of a comment written by `user_id`, if it is not deleted. Stamped with a
    /// write token, as a post's edit is, so a retried attempt neither applies twice nor reads
    /// its own first attempt as a refusal.
    pub async fn update_comment(
        &self,
        post_id: &str,
        comment_id: &str,
        user_id: &str,
        text: String,
        now: String,
    ) -> Result<Stored<Comment>, StoreError> {
        let token = crate::domain::new_id();
        for key in self.comment_keys(post_id, comment_id) {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .update_expression(format!(
                    "SET #text = :text, updatedAt = :now, {WRITE_TOKEN} = :writeToken ADD rev :one"
                ))
                .condition_expression(format!(
                    "attribute_exists(pk) AND authorId = :me AND {NOT_DELETED} AND {NOT_YET_WRITTEN}"
                ))
                .expression_attribute_names("#text", "text")
                .expression_attribute_values(":text", s(&text))
                .expression_attribute_values(":now", s(&now))
                .expression_attribute_values(":me", s(user_id))
                .expression_attribute_values(":writeToken", s(&token))
                .expression_attribute_values(":one", n(1))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let refusal = match result {
                Ok(out) => {
                    let item: CommentItem =
                        returned("comment", "UpdateItem comment", out.attributes)?;
                    return item.live().ok_or(StoreError::NotFound("comment"));
                }
                Err(e) => match refused(&e) {
                    Some(refusal) => refusal,
                    None => return Err(classify("UpdateItem comment", e)),
                },
            };
            match refusal {
                // Not in this place: look in the next.
                None => continue,
                Some(item) if written_by(&item, &token) => {
                    tracing::info!("comment edit applied by an earlier attempt of this call");
                    let item = from_item::<CommentItem>("comment", item)?;
                    return item.live().ok_or(StoreError::NotFound("comment"));
                }
                Some(item) if item.contains_key("deletedAt") => {
                    return Err(StoreError::NotFound("comment"))
                }
                Some(_) => return Err(StoreError::NotAuthor),
            }
        }
        Err(StoreError::NotFound("comment"))
    }

    /// Marks a comment deleted, if `remover` may: its author, or (as [`Remover::PostAuthor`],
    /// which the caller has checked) its post's author. From then on no read serves it; the
    /// upkeep then takes it out of the post's count and removes it. A comment this call's own
    /// earlier attempt marked is a success; one that is gone or already deleted is `404`.
    pub async fn remove_comment(
        &self,
        post_id: &str,
        comment_id: &str,
        user_id: &str,
        remover: Remover,
        now: String,
    ) -> Result<(), StoreError> {
        let token = crate::domain::new_id();
        let who = match remover {
            Remover::Author => " AND authorId = :me",
            Remover::PostAuthor => "",
        };
        for key in self.comment_keys(post_id, comment_id) {
            let mut request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .update_expression(format!(
                    "SET deletedAt = :now, {WRITE_TOKEN} = :writeToken ADD rev :one"
                ))
                .condition_expression(format!(
                    "attribute_exists(pk) AND {NOT_DELETED}{who} AND {NOT_YET_WRITTEN}"
                ))
                .expression_attribute_values(":now", s(&now))
                .expression_attribute_values(":writeToken", s(&token))
                .expression_attribute_values(":one", n(1))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            if remover == Remover::Author {
                request = request.expression_attribute_values(":me", s(user_id));
            }
            let refusal = match request.send().await {
                Ok(_) => return Ok(()),
                Err(e) => match refused(&e) {
                    Some(refusal) => refusal,
                    None => return Err(classify("UpdateItem delete comment", e)),
                },
            };
            match refusal {
                None => continue,
                Some(item) if written_by(&item, &token) => {
                    tracing::info!("comment deleted by an earlier attempt of this call");
                    return Ok(());
                }
                Some(item) if item.contains_key("deletedAt") => {
                    return Err(StoreError::NotFound("comment"))
                }
                Some(_) => return Err(StoreError::NotAuthor),
            }
        }
        Err(StoreError::NotFound("comment"))
    }
}
