//! Posts: conditional writes for `version`/`If-Match`, a newest-first feed merged from the
//! shards of the feed index.
//!
//! A post item carries, beside the post, its cache revision `rev` (bumped by every change of
//! the item: an edit, and each change of `commentCount` by the upkeep) and its feed
//! index keys. The feed index projects keys only, so neither an edit nor a count change writes
//! it: a post writes its feed partition once, when it is created. `commentCount` is kept by
//! the `upkeep` function from the table's stream (`super::upkeep`), not by the comment's own
//! write, so a popular post's comments never queue on the post item.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::{Deserialize, Serialize};

use super::dynamo::{
    classify, from_item, n, refused, returned, s, text, to_item, written_by, Item, NOT_YET_WRITTEN,
    WRITE_TOKEN,
};
use super::dynamo::{Page, Store, StoreError, Stored};
use super::keys::{
    feed_pk, feed_shard_pk, post_key, post_pk, FEED_INDEX, FEED_PK, FEED_SHARDS, FEED_SK,
    LEGACY_FEED_INDEX, LEGACY_FEED_PK, LEGACY_FEED_PK_VALUE, LEGACY_FEED_SK, POST_SK,
};
use super::paging::{merged_page, Order};
use crate::domain::{ExpectedVersion, Post, PostPatch};

#[derive(Serialize, Deserialize)]
struct PostItem {
    pk: String,
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feedpk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feedsk: Option<String>,
    /// The cache revision; items written before it existed read as 0.
    #[serde(default)]
    rev: u64,
    #[serde(flatten)]
    post: Post,
}

impl PostItem {
    fn stored(self) -> Stored<Post> {
        Stored {
            item: self.post,
            rev: self.rev,
        }
    }
}

/// Why a conditional write on a post failed, told from the item as it was (`ALL_OLD`):
/// gone is `404`, someone else's is `403`, another version is `412` — in that order.
fn explain_refusal(old: Option<Item>, user_id: &str) -> StoreError {
    let Some(old) = old else {
        return StoreError::NotFound("post");
    };
    if text(&old, "authorId") == Some(user_id) {
        StoreError::VersionMismatch
    } else {
        StoreError::NotAuthor
    }
}

/// The post exists, `:me` wrote it, and it is at the version the write expects. A version no
/// post can be at is a condition that never holds, so the refusal (and its `ALL_OLD` item)
/// still tells a missing post (`404`) and another author (`403`) from a version (`412`).
fn author_and_version_condition(expected: ExpectedVersion) -> &'static str {
    match expected {
        ExpectedVersion::Any => "attribute_exists(pk) AND authorId = :me",
        ExpectedVersion::Exactly(_) => {
            "attribute_exists(pk) AND authorId = :me AND version = :expected"
        }
        ExpectedVersion::Unmatchable => {
            "attribute_exists(pk) AND authorId = :me AND attribute_not_exists(pk)"
        }
    }
}

/// Whether `old`, found where a new post was to be created, is that post: written by an earlier
/// attempt of the same call, or by an earlier run of the same request (its `Idempotency-Key`
/// gives every run the same id). Its id is a new ULID, so nothing else can be there; the time
/// is not compared, since each run reads its own clock.
fn is_same_post(old: &Item, post: &Post) -> bool {
    text(old, "id") == Some(post.id.as_str())
        && text(old, "authorId") == Some(post.author_id.as_str())
}

/// The most keys one `BatchGetItem` takes.
const BATCH_GET_MAX: usize = 100;

impl Store {
    /// Stores a new post at revision 1, in its feed shard. A retried attempt that finds the
    /// post its first attempt wrote has succeeded, not failed.
    pub async fn create_post(&self, post: &Post) -> Result<Stored<Post>, StoreError> {
        let item = PostItem {
            pk: post_pk(&post.id),
            sk: POST_SK.to_owned(),
            feedpk: Some(feed_pk(&post.id)),
            feedsk: Some(post.id.clone()),
            rev: 1,
            post: post.clone(),
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item("post", &item)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(item.stored()),
            Err(e) => match refused(&e) {
                Some(Some(old)) if is_same_post(&old, post) => {
                    tracing::info!("post written by an earlier attempt of this request");
                    Ok(from_item::<PostItem>("post", old)?.stored())
                }
                _ => Err(classify("PutItem post", e)),
            },
        }
    }

    /// A post as the table holds it now (a strongly consistent read).
    pub async fn get_post(&self, post_id: &str) -> Result<Option<Stored<Post>>, StoreError> {
        Ok(self
            .get_item::<PostItem>("post", "GetItem post", post_key(post_id), None)
            .await?
            .map(PostItem::stored))
    }

    /// The posts of `ids` that exist, in the order of `ids`: eventually consistent reads (as
    /// the feed allows: `API.md`, "Freshness of cached reads") unless `consistent` (a read
    /// the cache keeps, which a read of one post then serves).
    pub async fn posts_by_id(
        &self,
        ids: &[String],
        consistent: bool,
    ) -> Result<Vec<Stored<Post>>, StoreError> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_MAX) {
            let keys: Vec<_> = chunk.iter().map(|id| post_key(id)).collect();
            for item in self
                .batch_get(keys, consistent, "BatchGetItem posts")
                .await?
            {
                let post = from_item::<PostItem>("post", item)?.stored();
                found.insert(post.item.id.clone(), post);
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// The ids of the feed, newest first, `limit` after the post `after` (exclusive): the
    /// merge of the feed index's shards (and of the legacy feed partition, while the table may
    /// hold legacy posts).
    pub async fn feed_ids(
        &self,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<String>, StoreError> {
        let mut queries: Vec<_> = (0..FEED_SHARDS)
            .map(|shard| self.feed_query(FEED_INDEX, FEED_PK, FEED_SK, feed_shard_pk(shard), after))
            .collect();
        if self.legacy_layout {
            queries.push(self.feed_query(
                LEGACY_FEED_INDEX,
                LEGACY_FEED_PK,
                LEGACY_FEED_SK,
                LEGACY_FEED_PK_VALUE.to_owned(),
                after,
            ));
        }
        let decode = |item: Item| {
            Ok(match (item.get(FEED_SK), item.get(LEGACY_FEED_SK)) {
                (Some(AttributeValue::S(id)), _) | (None, Some(AttributeValue::S(id))) => {
                    Some(id.clone())
                }
                _ => None,
            })
        };
        merged_page(
            queries,
            "Query feed",
            Order::Descending,
            limit,
            decode,
            String::as_str,
        )
        .await
    }

    /// One partition of a feed index, newest first, after `after`: ids only.
    fn feed_query(
        &self,
        index: &str,
        pk_name: &str,
        sk_name: &str,
        pk: String,
        after: Option<&str>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_names("#pk", pk_name)
            .expression_attribute_names("#sk", sk_name)
            .expression_attribute_values(":pk", s(pk))
            .projection_expression("#sk")
            .scan_index_forward(false);
        query = match after {
            Some(after) => query
                .key_condition_expression("#pk = :pk AND #sk < :after")
                .expression_attribute_values(":after", s(after)),
            None => query.key_condition_expression("#pk = :pk"),
        };
        query
    }

    /// The feed, newest first, `limit` posts after the post `after` (exclusive). A post
    /// deleted between the index read and the item read is left out; the cursor still
    /// continues after the page's last id.
    pub async fn list_posts(
        &self,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Stored<Post>>, StoreError> {
        let ids = self.feed_ids(limit, after).await?;
        let items = self.posts_by_id(&ids.items, false).await?;
        Ok(Page {
            items,
            last_id: ids.last_id,
        })
    }

    /// Applies `patch` if `user_id` wrote the post and it is at the `expected` version.
    /// Stamped with a write token: a retried attempt neither applies the edit twice nor
    /// reports its own first attempt's edit as `412` (see `WRITE_TOKEN` in the store).
    pub async fn update_post(
        &self,
        post_id: &str,
        user_id: &str,
        patch: PostPatch,
        expected: ExpectedVersion,
        now: String,
    ) -> Result<Stored<Post>, StoreError> {
        let token = crate::domain::new_id();
        let stamp = format!("{WRITE_TOKEN} = :writeToken");
        let mut sets = vec!["updatedAt = :now", stamp.as_str()];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(post_key(post_id)))
            .expression_attribute_values(":writeToken", s(&token))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":me", s(user_id))
            .expression_attribute_values(":one", n(1));
        if let Some(caption) = patch.caption {
            sets.push("caption = :caption");
            request = request.expression_attribute_values(":caption", s(caption.into_inner()));
        }
        if let Some(image_url) = patch.image_url {
            sets.push("imageUrl = :imageUrl");
            let value = image_url.map_or(AttributeValue::Null(true), |u| s(u.into_inner()));
            request = request.expression_attribute_values(":imageUrl", value);
        }
        if let ExpectedVersion::Exactly(version) = expected {
            request = request.expression_attribute_values(":expected", n(version));
        }
        let result = request
            .update_expression(format!(
                "SET {} ADD version :one, rev :one",
                sets.join(", ")
            ))
            .condition_expression(format!(
                "{} AND {NOT_YET_WRITTEN}",
                author_and_version_condition(expected)
            ))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                Ok(returned::<PostItem>("post", "UpdateItem post", out.attributes)?.stored())
            }
            Err(e) => match refused(&e) {
                Some(Some(item)) if written_by(&item, &token) => {
                    tracing::info!("post edit applied by an earlier attempt of this call");
                    Ok(from_item::<PostItem>("post", item)?.stored())
                }
                Some(old) => Err(explain_refusal(old, user_id)),
                None => Err(classify("UpdateItem post", e)),
            },
        }
    }

    /// Deletes the post if `user_id` wrote it (at the `expected` version). Its comments are
    /// swept afterwards by the `upkeep` function, which the deletion's stream record starts:
    /// however many there are, the delete answers at once, and from then on no comment of the
    /// post is served (every comment read checks the post first).
    ///
    /// A post found gone by a retried attempt of this same call was deleted by its first
    /// attempt, whose answer was lost: that is a success.
    pub async fn delete_post(
        &self,
        post_id: &str,
        user_id: &str,
        expected: ExpectedVersion,
    ) -> Result<(), StoreError> {
        let attempts = super::dynamo::Attempts::default();
        let mut request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(post_key(post_id)))
            .condition_expression(author_and_version_condition(expected))
            .expression_attribute_values(":me", s(user_id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let ExpectedVersion::Exactly(version) = expected {
            request = request.expression_attribute_values(":expected", n(version));
        }
        let result = request
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match refused(&e) {
                Some(None) if attempts.retried() => {
                    tracing::info!("post deleted by an earlier attempt of this call");
                    Ok(())
                }
                Some(old) => Err(explain_refusal(old, user_id)),
                None => Err(classify("DeleteItem post", e)),
            },
        }
    }
}
