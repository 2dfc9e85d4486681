//! Comments live in their post's partition; adding or removing one and moving the post's
//! `commentCount` is one transaction, so the count is never wrong.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    Delete, DeleteRequest, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
    WriteRequest,
};
use serde::{Deserialize, Serialize};

use super::dynamo::{classify, from_item, n, s, to_item, Item};
use super::posts::{post_pk, query_page};
use super::{Page, Store};
use crate::domain::Comment;
use crate::error::AppError;

const COMMENT_PREFIX: &str = "COMMENT#";

fn comment_sk(comment_id: &str) -> String {
    format!("{COMMENT_PREFIX}{comment_id}")
}

#[derive(Serialize, Deserialize)]
struct CommentItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    comment: Comment,
}

fn comment_key(post_id: &str, comment_id: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(post_pk(post_id))), ("sk".to_owned(), s(comment_sk(comment_id)))])
}

/// The reasons DynamoDB gives for a cancelled transaction, one per item, in order.
fn cancellation_codes(err: &TransactWriteItemsError) -> Option<Vec<Option<String>>> {
    match err {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => Some(
            cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().filter(|c| *c != "None").map(str::to_owned))
                .collect(),
        ),
        _ => None,
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
        && codes
            .iter()
            .flatten()
            .any(|c| matches!(c.as_str(), "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"))
}

/// Attempts of one transaction that keeps being cancelled by conflicts, before `503`.
const TRANSACTION_ATTEMPTS: u32 = 8;

/// How a transaction ended, when DynamoDB answered.
enum Transaction {
    Done,
    /// Cancelled by a condition; the reasons, one per item, in order.
    Refused(Vec<Option<String>>),
}

impl Store {
    /// Adds `comment` and grows the post's `commentCount` by one, or neither: a missing post
    /// cancels the transaction (`404`).
    pub async fn add_comment(&self, comment: &Comment) -> Result<(), AppError> {
        let item = CommentItem { pk: post_pk(&comment.post_id), sk: comment_sk(&comment.id), comment: comment.clone() };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item("comment", &item)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| AppError::Internal(format!("building Put: {e}")))?;
        let count = Update::builder()
            .table_name(&self.table)
            .key("pk", s(post_pk(&comment.post_id)))
            .key("sk", s("POST"))
            .update_expression("ADD commentCount :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| AppError::Internal(format!("building Update: {e}")))?;
        let items = [TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(count).build()];
        match self.transact(&items, "TransactWriteItems add comment").await? {
            Transaction::Done => Ok(()),
            Transaction::Refused(codes) if codes.get(1).is_some_and(is_condition) => Err(AppError::NotFound("post")),
            Transaction::Refused(codes) => {
                Err(AppError::Internal(format!("TransactWriteItems add comment: refused {codes:?}")))
            }
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
    async fn transact(&self, items: &[TransactWriteItem], operation: &'static str) -> Result<Transaction, AppError> {
        use rand::Rng;
        let mut backoff_ms = 10u64;
        for attempt in 1..=TRANSACTION_ATTEMPTS {
            let result = self.client.transact_write_items().set_transact_items(Some(items.to_vec())).send().await;
            let err = match result {
                Ok(_) => return Ok(Transaction::Done),
                Err(err) => err,
            };
            match err.as_service_error().and_then(cancellation_codes) {
                Some(codes) if is_retryable(&codes) => {
                    if attempt == TRANSACTION_ATTEMPTS {
                        return Err(AppError::Unavailable(format!(
                            "{operation}: still cancelled after {attempt} attempts: {codes:?}"
                        )));
                    }
                    tracing::debug!(operation, attempt, ?codes, "transaction cancelled by a conflict; retrying");
                    let sleep_ms = rand::thread_rng().gen_range(backoff_ms / 2..=backoff_ms);
                    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(200);
                }
                Some(codes) if codes.iter().any(is_condition) => return Ok(Transaction::Refused(codes)),
                _ => return Err(classify(operation, err)),
            }
        }
        Err(AppError::Unavailable(format!("{operation}: no attempt made")))
    }

    pub async fn get_comment(&self, post_id: &str, comment_id: &str) -> Result<Option<Comment>, AppError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(comment_key(post_id, comment_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem comment", e))?;
        out.item.map(|item| from_item::<CommentItem>("comment", item).map(|i| i.comment)).transpose()
    }

    /// A post's comments, oldest first, `limit` after the comment `after` (exclusive).
    pub async fn list_comments(
        &self,
        post_id: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Comment>, AppError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(post_pk(post_id)))
            .expression_attribute_values(":prefix", s(COMMENT_PREFIX))
            .consistent_read(true);
        let start = after.map(|id| comment_key(post_id, id));
        let decode = |item| from_item::<CommentItem>("comment", item).map(|i| i.comment);
        query_page(query, "Query comments", limit, start, decode, |c: &Comment| c.id.clone()).await
    }

    /// Changes the text of a comment written by `user_id`.
    pub async fn update_comment(
        &self,
        post_id: &str,
        comment_id: &str,
        user_id: &str,
        text: String,
        now: String,
    ) -> Result<Comment, AppError> {
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
                let item =
                    out.attributes.ok_or_else(|| AppError::Internal("UpdateItem comment: no attributes".into()))?;
                Ok(from_item::<CommentItem>("comment", item)?.comment)
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    Err(if refused.item.is_some() { AppError::Forbidden } else { AppError::NotFound("comment") })
                }
                _ => Err(classify("UpdateItem comment", e)),
            },
        }
    }

    /// Removes a comment (still written by `author_id`, as checked by the caller) and shrinks
    /// the post's `commentCount`, in one transaction. A comment or post that vanished
    /// meanwhile is `404`, and nothing is counted twice.
    pub async fn remove_comment(&self, post_id: &str, comment_id: &str, author_id: &str) -> Result<(), AppError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(comment_key(post_id, comment_id)))
            .condition_expression("attribute_exists(pk) AND authorId = :author")
            .expression_attribute_values(":author", s(author_id))
            .build()
            .map_err(|e| AppError::Internal(format!("building Delete: {e}")))?;
        let count = Update::builder()
            .table_name(&self.table)
            .key("pk", s(post_pk(post_id)))
            .key("sk", s("POST"))
            .update_expression("ADD commentCount :minus")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":minus", n(-1))
            .build()
            .map_err(|e| AppError::Internal(format!("building Update: {e}")))?;
        let items =
            [TransactWriteItem::builder().delete(delete).build(), TransactWriteItem::builder().update(count).build()];
        match self.transact(&items, "TransactWriteItems remove comment").await? {
            Transaction::Done => Ok(()),
            Transaction::Refused(_) => Err(AppError::NotFound("comment")),
        }
    }

    /// Deletes every comment of a (deleted) post, a page of keys at a time, in batches of 25,
    /// retrying what DynamoDB leaves unprocessed.
    pub(super) async fn delete_comments_of(&self, post_id: &str) -> Result<(), AppError> {
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(post_pk(post_id)))
                .expression_attribute_values(":prefix", s(COMMENT_PREFIX))
                .projection_expression("pk, sk")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query comments to delete", e))?;
            let keys = out.items.unwrap_or_default();
            for chunk in keys.chunks(25) {
                let requests = chunk
                    .iter()
                    .map(|key| {
                        DeleteRequest::builder()
                            .set_key(Some(key.clone()))
                            .build()
                            .map(|d| WriteRequest::builder().delete_request(d).build())
                            .map_err(|e| AppError::Internal(format!("building DeleteRequest: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.batch_write_all(requests).await?;
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(()),
            }
        }
    }

    async fn batch_write_all(&self, mut requests: Vec<WriteRequest>) -> Result<(), AppError> {
        let mut backoff = Duration::from_millis(20);
        for _ in 0..8 {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| classify("BatchWriteItem comments", e))?;
            requests = out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
        Err(AppError::Unavailable(format!("BatchWriteItem: {} comment deletions left unprocessed", requests.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(raw: &[&str]) -> Vec<Option<String>> {
        raw.iter().map(|c| if *c == "None" { None } else { Some((*c).to_owned()) }).collect()
    }

    #[test]
    fn conflicts_and_throttling_are_retried_failed_conditions_are_not() {
        assert!(is_retryable(&codes(&["None", "TransactionConflict"])));
        assert!(is_retryable(&codes(&["TransactionConflict", "TransactionConflict"])));
        assert!(is_retryable(&codes(&["ThrottlingError", "None"])));
        assert!(is_retryable(&codes(&["None", "ProvisionedThroughputExceeded"])));
        assert!(!is_retryable(&codes(&["None", "ConditionalCheckFailed"])));
        assert!(!is_retryable(&codes(&["TransactionConflict", "ConditionalCheckFailed"])));
        assert!(!is_retryable(&codes(&["None", "ValidationError"])));
        assert!(!is_retryable(&codes(&["None", "None"])));
    }
}
