//! Idempotency records: one item per (user, key), holding who is running the request, the id
//! of the item the request creates and, once it is done, the answer every repeat gets.
//!
//! | `pk` | `sk` | what |
//! |---|---|---|
//! | `IDEMPOTENCY#<userId>#<key>` | `IDEMPOTENCY` | `fingerprint`, `claim`, `claimedUntil`, `state`, `resourceId`, the answer, `expiresAt` |
//!
//! - **Claim**: one conditional `PutItem`. It succeeds when there is no record, or when the
//!   record is older than its 24 hours (DynamoDB's TTL deletes it some time after `expiresAt`;
//!   until then the condition treats it as gone). So of two requests with one key, exactly one
//!   runs. The claim draws the id of the item the request will create (`resourceId`, a new
//!   ULID), and every later run of the same request keeps it.
//! - **Take over**: a record of the same request that is `released` (its run answered `503`),
//!   or `running` past its claim's lease ([`CLAIM_LEASE`]: its function died), is claimed again
//!   with one conditional `UpdateItem` naming the claim it replaces, so again exactly one
//!   request runs. It keeps `resourceId`: that run's write may have landed (a `503` is often an
//!   answer lost after the write), and the new run, writing the same id, finds it and answers as
//!   if it had made it, instead of creating a second item.
//! - **Complete**: the answer is written over the record, conditioned on still holding the
//!   claim. **Release** (a `503`, which is not kept): the record is marked `released`, on the
//!   same condition, so a retry runs again, with the same id. **Drop** (a `500`, which is not
//!   kept either, and comes of a write the table refused, so nothing landed): the record is
//!   deleted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::dynamo::{classify, n, refused, returned_item, s, text, Item};
use super::dynamo::{Store, StoreError};
use super::keys::idempotency_key as record_key;

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

/// Proof of holding a claim, and the id the claimed request gives the item it creates.
#[derive(Debug, PartialEq, Eq)]
pub struct ClaimToken {
    claim: String,
    resource_id: String,
}

impl ClaimToken {
    /// The id of the item the claimed request creates: drawn by the key's first claim (a ULID,
    /// time-ordered like every other id), the same in every run of the request, so a run finds
    /// an earlier run's write as its own.
    pub fn resource_id(&self) -> &str {
        &self.resource_id
    }
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
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
        let resource_id = crate::domain::new_id();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record_key(user_id, idempotency_key)))
            .item("fingerprint", s(fingerprint))
            .item("claim", s(&claim))
            .item("claimedUntil", n((now + CLAIM_LEASE).as_millis()))
            .item("state", s("running"))
            .item("resourceId", s(&resource_id))
            .item("expiresAt", n((now + RECORD_LIFETIME).as_secs()))
            .condition_expression("attribute_not_exists(pk) OR expiresAt < :nowSeconds")
            .expression_attribute_values(":nowSeconds", n(now.as_secs()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(Claim::Acquired(ClaimToken { claim, resource_id })),
            Err(e) => match refused(&e) {
                Some(Some(old)) => old,
                // Gone between the condition and the answer (TTL): as good as a claim refused
                // by a running request; the client's retry will claim it.
                Some(None) => return Ok(Claim::InProgress),
                None => return Err(classify("PutItem idempotency claim", e)),
            },
        };
        if text(&old, "claim") == Some(claim.as_str()) {
            return acquired(claim, &old);
        }
        if text(&old, "fingerprint") != Some(fingerprint) {
            return Ok(Claim::Reused);
        }
        if let Some(answer) = stored_answer(&old) {
            return Ok(Claim::Replay(answer));
        }
        let lease_over = matches!(old.get("claimedUntil"), Some(AttributeValue::N(until))
            if until.parse::<u128>().is_ok_and(|until| until < now.as_millis()));
        match (text(&old, "state"), text(&old, "claim")) {
            (Some("released"), Some(previous)) => {
                self.take_over(user_id, idempotency_key, fingerprint, previous, claim, now)
                    .await
            }
            (Some("running"), Some(previous)) if lease_over => {
                self.take_over(user_id, idempotency_key, fingerprint, previous, claim, now)
                    .await
            }
            _ => Ok(Claim::InProgress),
        }
    }

    /// Claims a record of the same request that no run holds any more (released after a
    /// `503`, or its lease over), keeping the id it drew for the item it creates. Of several
    /// requests taking it over at once, exactly one succeeds: the write names the claim it
    /// replaces.
    async fn take_over(
        &self,
        user_id: &str,
        idempotency_key: &str,
        fingerprint: &str,
        previous: &str,
        claim: String,
        now: std::time::Duration,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(record_key(user_id, idempotency_key)))
            .update_expression(
                "SET claim = :claim, claimedUntil = :until, #state = :running, \
                 resourceId = if_not_exists(resourceId, :resourceId)",
            )
            .condition_expression(
                "claim = :previous AND fingerprint = :fingerprint AND expiresAt >= :nowSeconds \
                 AND (#state = :released OR (#state = :running AND claimedUntil < :nowMillis))",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":claim", s(&claim))
            .expression_attribute_values(":until", n((now + CLAIM_LEASE).as_millis()))
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":released", s("released"))
            .expression_attribute_values(":resourceId", s(crate::domain::new_id()))
            .expression_attribute_values(":previous", s(previous))
            .expression_attribute_values(":fingerprint", s(fingerprint))
            .expression_attribute_values(":nowSeconds", n(now.as_secs()))
            .expression_attribute_values(":nowMillis", n(now.as_millis()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => acquired(
                claim,
                &returned_item("UpdateItem idempotency take-over", out.attributes)?,
            ),
            Err(e) => match refused(&e) {
                // This call's own first attempt took it over (its answer was lost).
                Some(Some(old)) if text(&old, "claim") == Some(claim.as_str()) => {
                    acquired(claim, &old)
                }
                Some(Some(old)) => Ok(match stored_answer(&old) {
                    Some(answer) if text(&old, "fingerprint") == Some(fingerprint) => {
                        Claim::Replay(answer)
                    }
                    // Another request took it over first, or it expired meanwhile.
                    _ => Claim::InProgress,
                }),
                Some(None) => Ok(Claim::InProgress),
                None => Err(classify("UpdateItem idempotency take-over", e)),
            },
        }
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
            .expression_attribute_values(":claim", s(&claim.claim))
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

    /// Gives the key up after a `503`, so the next request with it runs, with the same id for
    /// the item it creates: this run's write may have landed.
    pub async fn release_idempotency_key(
        &self,
        user_id: &str,
        idempotency_key: &str,
        claim: &ClaimToken,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(record_key(user_id, idempotency_key)))
            .update_expression("SET #state = :released")
            .condition_expression("claim = :claim")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":claim", s(&claim.claim))
            .expression_attribute_values(":released", s("released"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Taken over (or gone): nothing of ours is left.
            Err(e) if refused(&e).is_some() => Ok(()),
            Err(e) => Err(classify("UpdateItem idempotency release", e)),
        }
    }

    /// Deletes the key's record after a `500`, so the next request with it runs as a first
    /// one.
    pub async fn drop_idempotency_key(
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
            .expression_attribute_values(":claim", s(&claim.claim))
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

/// The claim `claim` on `record`, with the id the record holds for the item the request
/// creates (a record of an older release without one gets a new id: it holds no earlier write
/// to find).
fn acquired(claim: String, record: &Item) -> Result<Claim, StoreError> {
    let resource_id = match text(record, "resourceId") {
        Some(id) if crate::domain::is_valid_id(id) => id.to_owned(),
        Some(_) => {
            return Err(StoreError::Internal(
                "idempotency record: resourceId is not an id".into(),
            ))
        }
        None => crate::domain::new_id(),
    };
    Ok(Claim::Acquired(ClaimToken { claim, resource_id }))
}
