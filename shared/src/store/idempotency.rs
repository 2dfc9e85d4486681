//! Idempotency records: one item per (user, key), holding who is running the request and,
//! once it is done, the answer every repeat gets.
//!
//! | `pk` | `sk` | what |
//! |---|---|---|
//! | `IDEMPOTENCY#<userId>#<key>` | `IDEMPOTENCY` | `fingerprint`, `claim`, `claimedUntil`, `state`, the answer, `expiresAt` |
//!
//! - **Claim**: one conditional `PutItem`. It succeeds when there is no record, when the
//!   record is older than its 24 hours (DynamoDB's TTL deletes it some time after `expiresAt`;
//!   until then the condition treats it as gone), or when a request with the same fingerprint
//!   claimed it and died without answering (its claim lasts [`CLAIM_LEASE`]). So of two
//!   requests with one key, exactly one runs.
//! - **Complete**: the answer is written over the record, conditioned on still holding the
//!   claim. **Release** (a `500`/`503` answer, which is not kept): the record is deleted, on
//!   the same condition, so a retry runs again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::dynamo::{classify, n, refused, s, Item};
use super::keys::idempotency_key as record_key;
use super::Store;
use super::StoreError;

/// How long a record answers repeats.
pub const RECORD_LIFETIME: Duration = Duration::from_secs(24 * 3_600);

/// How long a claim holds a key against other requests with it. A request that is still
/// running holds its claim (so a concurrent repeat is `409`); one whose function died
/// mid-request leaves a claim that another request may take after this long. It must exceed
/// the longest a request can run: the API functions' timeout (10 s, `template.yaml`) and API
/// Gateway's integration limit (30 s). A test checks the template against it.
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// The answer a repeat gets: what the first request answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
    pub etag: Option<String>,
}

/// What a claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This request runs; the token proves it holds the key.
    Acquired(ClaimToken),
    /// The first request with this key is done: its answer.
    Replay(StoredAnswer),
    /// The first request with this key is still running.
    InProgress,
    /// The key was used for another request (body, route or post).
    Reused,
}

/// Proof of holding a claim.
#[derive(Debug, PartialEq, Eq)]
pub struct ClaimToken(String);

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

/// The answer a finished record holds; `None` while it runs (or if it is unreadable).
fn stored_answer(item: &Item) -> Option<StoredAnswer> {
    if text(item, "state") != Some("done") {
        return None;
    }
    let status = match item.get("status") {
        Some(AttributeValue::N(status)) => status.parse().ok()?,
        _ => return None,
    };
    Some(StoredAnswer {
        status,
        body: text(item, "body").unwrap_or_default().to_owned(),
        location: text(item, "location").map(str::to_owned),
        etag: text(item, "etag").map(str::to_owned),
    })
}

impl Store {
    /// Claims `idempotency_key` of `user_id` for a request with `fingerprint`, or says why
    /// not. A retried attempt that finds its own first attempt's claim holds it.
    pub async fn claim_idempotency_key(
        &self,
        user_id: &str,
        idempotency_key: &str,
        fingerprint: &str,
    ) -> Result<Claim, StoreError> {
        let now = since_epoch();
        let claim = crate::domain::new_id();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record_key(user_id, idempotency_key)))
            .item("fingerprint", s(fingerprint))
            .item("claim", s(&claim))
            .item("claimedUntil", n((now + CLAIM_LEASE).as_millis()))
            .item("state", s("running"))
            .item("expiresAt", n((now + RECORD_LIFETIME).as_secs()))
            .condition_expression(
                "attribute_not_exists(pk) OR expiresAt < :nowSeconds \
                 OR (#state = :running AND claimedUntil < :nowMillis AND fingerprint = :fingerprint)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":nowSeconds", n(now.as_secs()))
            .expression_attribute_values(":nowMillis", n(now.as_millis()))
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":fingerprint", s(fingerprint))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(Claim::Acquired(ClaimToken(claim))),
            Err(e) => match refused(&e) {
                Some(Some(old)) => old,
                // Gone between the condition and the answer (TTL): as good as a claim refused
                // by a running request; the client's retry will claim it.
                Some(None) => return Ok(Claim::InProgress),
                None => return Err(classify("PutItem idempotency claim", e)),
            },
        };
        Ok(if text(&old, "claim") == Some(claim.as_str()) {
            Claim::Acquired(ClaimToken(claim))
        } else if text(&old, "fingerprint") != Some(fingerprint) {
            Claim::Reused
        } else if let Some(answer) = stored_answer(&old) {
            Claim::Replay(answer)
        } else {
            Claim::InProgress
        })
    }

    /// Keeps `answer` for the repeats of the claimed request.
    pub async fn complete_idempotency_key(
        &self,
        user_id: &str,
        idempotency_key: &str,
        claim: &ClaimToken,
        answer: &StoredAnswer,
    ) -> Result<(), StoreError> {
        let mut sets = vec!["#state = :done", "#status = :status", "body = :body"];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(record_key(user_id, idempotency_key)))
            .condition_expression("claim = :claim")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":claim", s(&claim.0))
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":status", n(answer.status))
            .expression_attribute_values(":body", s(&answer.body));
        if let Some(location) = &answer.location {
            sets.push("#location = :location");
            request = request
                .expression_attribute_names("#location", "location")
                .expression_attribute_values(":location", s(location));
        }
        if let Some(etag) = &answer.etag {
            sets.push("etag = :etag");
            request = request.expression_attribute_values(":etag", s(etag));
        }
        match request
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match refused(&e) {
                Some(_) => Err(StoreError::Internal(
                    "idempotency claim lost before its answer was kept".into(),
                )),
                None => Err(classify("UpdateItem idempotency answer", e)),
            },
        }
    }

    /// Gives the key up, so the next request with it runs.
    pub async fn release_idempotency_key(
        &self,
        user_id: &str,
        idempotency_key: &str,
        claim: &ClaimToken,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(record_key(user_id, idempotency_key)))
            .condition_expression("claim = :claim")
            .expression_attribute_values(":claim", s(&claim.0))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already released (a retried attempt) or taken over: nothing of ours is left.
            Err(e) if refused(&e).is_some() => Ok(()),
            Err(e) => Err(classify("DeleteItem idempotency claim", e)),
        }
    }
}
