//! Posts: conditional writes for `version`/`If-Match`, a newest-first feed on `gsi1`.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::{Deserialize, Serialize};

use super::dynamo::{
    classify, from_item, n, refused, s, to_item, written_by, Attempts, Item, NOT_YET_WRITTEN,
    WRITE_TOKEN,
};
use super::keys::{feed_key, post_key, post_pk, FEED_PK, POST_SK};
use super::paging::query_page;
use super::StoreError;
use super::{Page, Store, FEED_INDEX};
use crate::domain::{ExpectedVersion, Post, PostPatch};

#[derive(Serialize, Deserialize)]
struct PostItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    #[serde(flatten)]
    post: Post,
}

/// Why a conditional write on a post failed, told from the item as it was (`ALL_OLD`):
/// gone is `404`, someone else's is `403`, another version is `412` — in that order.
fn explain_refusal(old: Option<Item>, user_id: &str) -> StoreError {
    let Some(old) = old else {
        return StoreError::NotFound("post");
    };
    match old.get("authorId") {
        Some(AttributeValue::S(author)) if author == user_id => StoreError::VersionMismatch,
        _ => StoreError::NotAuthor,
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
/// attempt of the same call (its id is a new ULID, so nothing else can be there).
fn is_same_post(old: &Item, post: &Post) -> bool {
    let text = |name: &str| match old.get(name) {
        Some(AttributeValue::S(value)) => Some(value.as_str()),
        _ => None,
    };
    text("id") == Some(post.id.as_str())
        && text("authorId") == Some(post.author_id.as_str())
        && text("createdAt") == Some(post.created_at.as_str())
}

impl Store {
    /// Stores a new post. A retried attempt that finds the post its first attempt wrote has
    /// succeeded, not failed.
    pub async fn create_post(&self, post: &Post) -> Result<(), StoreError> {
        let item = PostItem {
            pk: post_pk(&post.id),
            sk: POST_SK.to_owned(),
            gsi1pk: FEED_PK.to_owned(),
            gsi1sk: post.id.clone(),
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
            Ok(_) => Ok(()),
            Err(e) => match refused(&e) {
                Some(Some(old)) if is_same_post(&old, post) => {
                    tracing::info!("post written by an earlier attempt of this call");
                    Ok(())
                }
                _ => Err(classify("PutItem post", e)),
            },
        }
    }

    pub async fn get_post(&self, post_id: &str) -> Result<Option<Post>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(post_key(post_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem post", e))?;
        out.item
            .map(|item| from_item::<PostItem>("post", item).map(|i| i.post))
            .transpose()
    }

    /// The feed, newest first, `limit` posts after the post `after` (exclusive).
    pub async fn list_posts(
        &self,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Post>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(FEED_INDEX)
            .key_condition_expression("gsi1pk = :feed")
            .expression_attribute_values(":feed", s(FEED_PK))
            .scan_index_forward(false);
        let decode = |item| from_item::<PostItem>("post", item).map(|i| i.post);
        query_page(
            query,
            "Query feed",
            limit,
            after.map(feed_key),
            decode,
            |p: &Post| p.id.clone(),
        )
        .await
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
    ) -> Result<Post, StoreError> {
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
            .update_expression(format!("SET {} ADD version :one", sets.join(", ")))
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
                let item = out
                    .attributes
                    .ok_or_else(|| StoreError::Internal("UpdateItem post: no attributes".into()))?;
                Ok(from_item::<PostItem>("post", item)?.post)
            }
            Err(e) => match refused(&e) {
                Some(Some(item)) if written_by(&item, &token) => {
                    tracing::info!("post edit applied by an earlier attempt of this call");
                    Ok(from_item::<PostItem>("post", item)?.post)
                }
                Some(old) => Err(explain_refusal(old, user_id)),
                None => Err(classify("UpdateItem post", e)),
            },
        }
    }

    /// Deletes the post, then every comment in its partition.
    ///
    /// The post goes first: from then on no comment can be added (adding one is a
    /// transaction conditioned on the post), so the sweep that follows leaves none behind. A
    /// sweep that fails is `503`, so the client tries again; the retry finds the post gone,
    /// sweeps again, and answers `404` (or `204`, when the post went in an earlier attempt of
    /// this same call, whose answer was lost), so comments are never left behind by an answer
    /// that tells the client to stop.
    pub async fn delete_post(
        &self,
        post_id: &str,
        user_id: &str,
        expected: ExpectedVersion,
    ) -> Result<(), StoreError> {
        let attempts = Attempts::default();
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
            Ok(_) => self.sweep_comments_of(post_id).await,
            Err(e) => match refused(&e) {
                Some(None) => {
                    self.sweep_comments_of(post_id).await?;
                    if attempts.retried() {
                        tracing::info!("post deleted by an earlier attempt of this call");
                        Ok(())
                    } else {
                        Err(StoreError::NotFound("post"))
                    }
                }
                Some(old) => Err(explain_refusal(old, user_id)),
                None => Err(classify("DeleteItem post", e)),
            },
        }
    }

    /// [`Store::delete_comments_of`], where any failure means "not done yet, try again": `503`.
    async fn sweep_comments_of(&self, post_id: &str) -> Result<(), StoreError> {
        self.delete_comments_of(post_id).await.map_err(|e| match e {
            StoreError::Unavailable(detail) | StoreError::Internal(detail) => {
                StoreError::Unavailable(format!(
                    "sweeping the comments of a deleted post: {detail}"
                ))
            }
            other => other,
        })
    }
}
