//! Comments live in their post's partition; adding or removing one and moving the post's
//! `commentCount` is one transaction, so the count is never wrong.

use std::time::Duration;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    Delete, DeleteRequest, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update, WriteRequest,
};
use serde::{Deserialize, Serialize};

use super::dynamo::{classify, from_item, n, s, to_item, Item};
use super::keys::{comment_key, comment_sk, post_key, post_pk, COMMENT_PREFIX};
use super::paging::{query_page, Pages};
use super::StoreError;
use super::{Page, Store};
use crate::domain::Comment;

#[derive(Serialize, Deserialize)]
struct CommentItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    comment: Comment,
}

/// Why DynamoDB cancelled one item of a transaction, and the item as it found it (for the
/// items asked to return it on a failed condition).
#[derive(Debug)]
struct Reason {
    code: Option<String>,
    item: Option<Item>,
}

/// The reasons DynamoDB gives for a cancelled transaction, one per item, in order.
fn cancellation_reasons(err: &TransactWriteItemsError) -> Option<Vec<Reason>> {
    match err {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => Some(
            cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| Reason {
                    code: r.code().filter(|c| *c != "None").map(str::to_owned),
                    item: r.item().cloned().filter(|item| !item.is_empty()),
                })
                .collect(),
        ),
        _ => None,
    }
}

impl Reason {
    fn is_condition(&self) -> bool {
        is_condition(&self.code)
    }
}

fn is_condition(code: &Option<String>) -> bool {
    code.as_deref() == Some("ConditionalCheckFailed")
}

/// Whether a cancelled transaction may simply be tried again: it was cancelled only because
/// another transaction on the same item was in flight (many comments on one post at once)
/// or it was throttled, never because a condition failed. The SDK does not retry these.
fn is_retryable(codes: &[Option<String>]) -> bool {
    !codes.iter().any(is_condition)
        && codes.iter().flatten().any(|c| {
            matches!(
                c.as_str(),
                "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
            )
        })
}

/// Attempts of one transaction that keeps being cancelled by conflicts, before `503`.
const TRANSACTION_ATTEMPTS: u32 = 8;

/// How a transaction ended, when DynamoDB answered.
enum Transaction {
    Done,
    /// Cancelled by a condition; the reasons, one per item, in order.
    Refused(Vec<Reason>),
}

impl Store {
    /// Adds `comment` and grows the post's `commentCount` by one, or neither: a missing post
    /// cancels the transaction (`404`).
    pub async fn add_comment(&self, comment: &Comment) -> Result<(), StoreError> {
        let item = CommentItem {
            pk: post_pk(&comment.post_id),
            sk: comment_sk(&comment.id),
            comment: comment.clone(),
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item("comment", &item)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Internal(format!("building Put: {e}")))?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(post_key(&comment.post_id)))
            .update_expression("ADD commentCount :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| StoreError::Internal(format!("building Update: {e}")))?;
        let items = [
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        match self
            .transact(&items, "TransactWriteItems add comment")
            .await?
        {
            Transaction::Done => Ok(()),
            Transaction::Refused(reasons) if reasons.get(1).is_some_and(Reason::is_condition) => {
                Err(StoreError::NotFound("post"))
            }
            Transaction::Refused(reasons) => Err(StoreError::Internal(format!(
                "TransactWriteItems add comment: refused {reasons:?}"
            ))),
        }
    }

    /// Runs a transaction, trying it again with a jittered backoff while DynamoDB cancels it
    /// only for a conflict or throttling (see [`is_retryable`]); `503` if that goes on.
    ///
    /// A transaction whose answer is lost cannot apply twice or be refused by its own effect
    /// when the SDK sends it again: the SDK gives each `send` a `ClientRequestToken` (an
    /// idempotency token) and keeps it for its retries, and DynamoDB answers a repeated token
    /// (for ten minutes) as it answered the first. Each try here after a cancellation is a new
    /// `send`, so a new token (a cancelled transaction changed nothing).
    async fn transact(
        &self,
        items: &[TransactWriteItem],
        operation: &'static str,
    ) -> Result<Transaction, StoreError> {
        use rand::Rng;
        let mut backoff_ms = 10u64;
        for attempt in 1..=TRANSACTION_ATTEMPTS {
            let result = self
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
                    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
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

    pub async fn get_comment(
        &self,
        post_id: &str,
        comment_id: &str,
    ) -> Result<Option<Comment>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(comment_key(post_id, comment_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem comment", e))?;
        out.item
            .map(|item| from_item::<CommentItem>("comment", item).map(|i| i.comment))
            .transpose()
    }

    /// A post's comments, oldest first, `limit` after the comment `after` (exclusive).
    pub async fn list_comments(
        &self,
        post_id: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Comment>, StoreError> {
        let start = after.map(|id| comment_key(post_id, id));
        let decode = |item| from_item::<CommentItem>("comment", item).map(|i| i.comment);
        query_page(
            self.comments_query(post_id),
            "Query comments",
            limit,
            start,
            decode,
            |c: &Comment| c.id.clone(),
        )
        .await
    }

    /// A post's comments, oldest first, read consistently: what a list pages through and
    /// what a post's delete sweeps.
    fn comments_query(&self, post_id: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(post_pk(post_id)))
            .expression_attribute_values(":prefix", s(COMMENT_PREFIX))
            .consistent_read(true)
    }

    /// Changes the text of a comment written by `user_id`.
    pub async fn update_comment(
        &self,
        post_id: &str,
        comment_id: &str,
        user_id: &str,
        text: String,
        now: String,
    ) -> Result<Comment, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(comment_key(post_id, comment_id)))
            .update_expression("SET #text = :text, updatedAt = :now")
            .condition_expression("attribute_exists(pk) AND authorId = :me")
            .expression_attribute_names("#text", "text")
            .expression_attribute_values(":text", s(text))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":me", s(user_id))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.ok_or_else(|| {
                    StoreError::Internal("UpdateItem comment: no attributes".into())
                })?;
                Ok(from_item::<CommentItem>("comment", item)?.comment)
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    Err(if refused.item.is_some() {
                        StoreError::NotAuthor
                    } else {
                        StoreError::NotFound("comment")
                    })
                }
                _ => Err(classify("UpdateItem comment", e)),
            },
        }
    }

    /// Removes a comment that `user_id` may remove (its author, or its post's author, who
    /// moderates it) and shrinks the post's `commentCount`, in one transaction, with the
    /// permission decided by the transaction's own conditions and explained from the items they
    /// found, as a post's delete does: nothing is read first that could change before the
    /// write. The comment's author's delete is one transaction. When the comment is someone
    /// else's, a second one deletes it on the condition that it still is that author's and
    /// that `user_id` wrote the post. A comment or post that is gone is `404`; anyone else is
    /// `403`; nothing is counted twice.
    pub async fn remove_comment(
        &self,
        post_id: &str,
        comment_id: &str,
        user_id: &str,
    ) -> Result<(), StoreError> {
        let as_comment_author = self.comment_removal(post_id, comment_id, user_id, None)?;
        let author = match self
            .transact(&as_comment_author, "TransactWriteItems remove comment")
            .await?
        {
            Transaction::Done => return Ok(()),
            Transaction::Refused(reasons) => match removal_refusal(&reasons) {
                Removal::OthersComment(author) => author,
                Removal::Refused(refusal) => return Err(refusal),
            },
        };
        let as_post_author = self.comment_removal(post_id, comment_id, &author, Some(user_id))?;
        match self
            .transact(&as_post_author, "TransactWriteItems moderate comment")
            .await?
        {
            Transaction::Done => Ok(()),
            Transaction::Refused(reasons) => match removal_refusal(&reasons) {
                // Still another author's (or the post's condition failed with the post there):
                // `user_id` is neither.
                Removal::OthersComment(_) => Err(StoreError::NotAuthor),
                Removal::Refused(refusal) => Err(refusal),
            },
        }
    }

    /// The transaction deleting a comment written by `author`, and moving its post's count;
    /// with `post_author`, only if that user wrote the post.
    fn comment_removal(
        &self,
        post_id: &str,
        comment_id: &str,
        author: &str,
        post_author: Option<&str>,
    ) -> Result<[TransactWriteItem; 2], StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(comment_key(post_id, comment_id)))
            .condition_expression("attribute_exists(pk) AND authorId = :author")
            .expression_attribute_values(":author", s(author))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Internal(format!("building Delete: {e}")))?;
        let mut count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(post_key(post_id)))
            .update_expression("ADD commentCount :minus")
            .expression_attribute_values(":minus", n(-1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        count = match post_author {
            None => count.condition_expression("attribute_exists(pk)"),
            Some(user) => count
                .condition_expression("attribute_exists(pk) AND authorId = :postAuthor")
                .expression_attribute_values(":postAuthor", s(user)),
        };
        let count = count
            .build()
            .map_err(|e| StoreError::Internal(format!("building Update: {e}")))?;
        Ok([
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(count).build(),
        ])
    }

    /// Deletes every comment of a (deleted) post, a page of keys at a time, in batches of 25,
    /// retrying what DynamoDB leaves unprocessed.
    pub(super) async fn delete_comments_of(&self, post_id: &str) -> Result<(), StoreError> {
        let query = self.comments_query(post_id).projection_expression("pk, sk");
        let mut pages = Pages::new(query, "Query comments to delete");
        while let Some(keys) = pages.next().await? {
            for chunk in keys.chunks(25) {
                let requests = chunk
                    .iter()
                    .map(|key| {
                        DeleteRequest::builder()
                            .set_key(Some(key.clone()))
                            .build()
                            .map(|d| WriteRequest::builder().delete_request(d).build())
                            .map_err(|e| {
                                StoreError::Internal(format!("building DeleteRequest: {e}"))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.batch_write_all(requests).await?;
            }
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
                .map_err(|e| classify("BatchWriteItem comments", e))?;
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
            "BatchWriteItem: {} comment deletions left unprocessed",
            requests.len()
        )))
    }
}

/// What a refused removal's reasons (the comment's delete, then the post's count) say.
enum Removal {
    /// The comment is there, written by this author (not the remover).
    OthersComment(String),
    Refused(StoreError),
}

fn removal_refusal(reasons: &[Reason]) -> Removal {
    let (Some(comment), Some(post)) = (reasons.first(), reasons.get(1)) else {
        return Removal::Refused(StoreError::Internal(format!(
            "remove comment: reasons {reasons:?}"
        )));
    };
    let author = |item: &Item| match item.get("authorId") {
        Some(aws_sdk_dynamodb::types::AttributeValue::S(author)) => Some(author.clone()),
        _ => None,
    };
    match (
        comment.is_condition(),
        &comment.item,
        post.is_condition(),
        &post.item,
    ) {
        // The post is gone: so is the comment, for its reader.
        (_, _, true, None) => Removal::Refused(StoreError::NotFound("comment")),
        (true, None, _, _) => Removal::Refused(StoreError::NotFound("comment")),
        (true, Some(item), _, _) => match author(item) {
            Some(author) => Removal::OthersComment(author),
            None => Removal::Refused(StoreError::Internal("comment without an author".into())),
        },
        // The comment is as expected and the post is there, but not the remover's.
        (false, _, true, Some(_)) => Removal::OthersComment(String::new()),
        _ => Removal::Refused(StoreError::Internal(format!(
            "remove comment: reasons {reasons:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(raw: &[&str]) -> Vec<Option<String>> {
        raw.iter()
            .map(|c| {
                if *c == "None" {
                    None
                } else {
                    Some((*c).to_owned())
                }
            })
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
