//! Users, keyed by normalized email: the lookup every authenticated request makes, and the
//! changes that must reach the cache.
//!
//! Every change bumps the item's `revision` in the same write and returns the state it left
//! (a delete returns the deleted user), so the cache can order copies of a user
//! ([`crate::domain::Version`]). Every change is conditioned on the user's id, so a request
//! authenticated as an earlier user of the email can never change a later one.

use aws_sdk_dynamodb::types::{
    ConditionCheck, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use serde::{Deserialize, Serialize};

use super::dynamo::{
    classify, from_item, n, refused, returned, s, to_item, transact, written_by, Projection,
    Transaction, NOT_YET_WRITTEN, WRITE_TOKEN,
};
use super::dynamo::{Store, StoreError};
use super::keys::{record_keys, user_key, user_pk, user_tombstone_key, PROFILE, USER_PREFIX};
use crate::domain::{Email, User};

/// How long an email's tombstone stays in the table (DynamoDB's TTL, `expiresAt`): far past any
/// cache entry's life (`CACHE_TTL_SECONDS`, at most a day), so no registration of the email can
/// start its count over while the cache may still hold a deleted user of it.
pub const TOMBSTONE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3_600);

/// What the cache needs of a user item: never the password hash (`#name` is `name`, a
/// reserved word). The posts and comments functions' roles may read no more
/// (`template.yaml`, `dynamodb:Attributes`).
pub const USER_ATTRIBUTES: &str = "id, email, #name, jwtVersion, revision, registration, createdAt";

/// Registrations of one email refused because a delete left a newer tombstone meanwhile,
/// before giving up (`503`): each needs a delete of the email's user between two reads.
const REGISTRATION_ATTEMPTS: u32 = 4;

/// The read of [`USER_ATTRIBUTES`].
const USER_PROJECTION: Projection = Projection {
    expression: USER_ATTRIBUTES,
    names: &[("#name", "name")],
};

/// What is read of an email's tombstone: which user of the email was deleted last. Both are
/// among [`USER_ATTRIBUTES`], so `cache-sync`'s role, held to those and the key
/// (`template.yaml`, `dynamodb:Attributes`), may read it.
pub const TOMBSTONE_ATTRIBUTES: &str = "id, registration";

/// The read of [`TOMBSTONE_ATTRIBUTES`].
const TOMBSTONE_PROJECTION: Projection = Projection {
    expression: TOMBSTONE_ATTRIBUTES,
    names: &[],
};

/// An email's tombstone, as [`Store::get_tombstone`] reads it: the last deleted user of the
/// email (or the one a delete was last attempted of: it is written before the delete).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tombstone {
    /// The user's id (empty only in an item that lost it, which no code writes).
    #[serde(default)]
    pub id: String,
    /// Which registration of the email that user was (0: registered before they were counted).
    #[serde(default)]
    pub registration: u64,
}

/// The stored user: the public fields plus the password hash, which never leaves this module
/// except to the login check.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    user: User,
    password_hash: String,
}

/// A registration, already validated and hashed.
pub struct NewUser {
    pub user: User,
    pub password_hash: String,
}

/// A change of an existing user, as one `UpdateItem`.
enum UserUpdate {
    /// Logout: bump `jwtVersion`, revoking every token issued so far.
    RevokeTokens,
    Rename(String),
}

impl Store {
    /// The user and its password hash, for login only.
    pub async fn get_user_with_hash(
        &self,
        email: &Email,
    ) -> Result<Option<(User, String)>, StoreError> {
        Ok(self
            .get_user_item(email)
            .await?
            .map(|item| (item.user, item.password_hash)))
    }

    /// Reads a user with a strongly consistent read, so a logout or delete that has just
    /// succeeded is seen by the very next cache miss. Only what the cache needs is read
    /// ([`USER_ATTRIBUTES`]): never the password hash.
    pub async fn get_user(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.get_item(
            "user",
            "GetItem user",
            user_key(email),
            Some(USER_PROJECTION),
        )
        .await
    }

    async fn get_user_item(&self, email: &Email) -> Result<Option<UserItem>, StoreError> {
        self.get_item("user", "GetItem user", user_key(email), None)
            .await
    }

    /// `email`'s tombstone ([`TOMBSTONE_ATTRIBUTES`] only), read strongly consistent; `None`
    /// when no user of the email was deleted in the last [`TOMBSTONE_LIFETIME`].
    pub async fn get_tombstone(&self, email: &Email) -> Result<Option<Tombstone>, StoreError> {
        self.get_item(
            "user tombstone",
            "GetItem user tombstone",
            user_tombstone_key(email),
            Some(TOMBSTONE_PROJECTION),
        )
        .await
    }

    /// The registration of `email`'s last deleted user (0 when none is known), read strongly
    /// consistent: a registration takes the next one.
    async fn last_registration(&self, email: &Email) -> Result<u64, StoreError> {
        Ok(self
            .get_tombstone(email)
            .await?
            .map_or(0, |t| t.registration))
    }

    /// Writes `email`'s tombstone for `user`, before its delete: which registration of the
    /// email it is, and which user (`cache-sync` caches a gone user's tombstone from it: the
    /// stream carries no image). Never goes back to an earlier registration (a delete
    /// authenticated as an earlier user of the email changes nothing).
    async fn leave_tombstone(&self, user: &User) -> Result<(), StoreError> {
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            + TOMBSTONE_LIFETIME;
        let mut item = user_tombstone_key(&user.email);
        item.insert("id".into(), s(&user.id));
        item.insert("registration".into(), n(user.registration));
        item.insert("expiresAt".into(), n(expires.as_secs()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR registration <= :registration")
            .expression_attribute_values(":registration", n(user.registration))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A later registration's tombstone: the delete that follows will be refused.
            Err(e) if refused(&e).is_some() => Ok(()),
            Err(e) => Err(classify("PutItem user tombstone", e)),
        }
    }

    /// Creates a user; of two registrations of one email, exactly one wins (`email_taken`).
    ///
    /// An attempt whose answer was lost is sent again by the SDK with the same
    /// `ClientRequestToken`, which DynamoDB answers as it answered the first: a success, not
    /// `email_taken`.
    ///
    /// The user's `registration` is one more than the email's last deleted user's, so it is
    /// newer than every state of that user whatever the clocks that made their ids: the write
    /// is one transaction with a check that the email's tombstone is still of an earlier
    /// registration (a delete racing this registration may leave a newer one between the read
    /// and the write).
    pub async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let mut user = new.user;
        for _ in 0..REGISTRATION_ATTEMPTS {
            user.registration = self.last_registration(&user.email).await? + 1;
            let registration = n(user.registration);
            let item = UserItem {
                pk: user_pk(&user.email),
                sk: PROFILE.to_owned(),
                user: user.clone(),
                password_hash: new.password_hash.clone(),
            };
            let mut attributes = to_item("user", &item)?;
            // Not among `User`'s serialized fields (it is kept out of every JSON copy of a user).
            attributes.insert("registration".into(), registration.clone());
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(attributes))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| StoreError::Internal(format!("building Put: {e}")))?;
            // The registration read above is still the last: a delete of the email's user that
            // left its tombstone since (the user it deleted had that very registration) refuses
            // this one, which reads the tombstone again. Without it, the new user would share
            // the deleted user's registration, and the deleted user's tombstone in the cache,
            // past every revision of that registration, would hide the new user.
            let still_last = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(user_tombstone_key(&user.email)))
                .condition_expression("attribute_not_exists(pk) OR registration < :registration")
                .expression_attribute_values(":registration", registration)
                .build()
                .map_err(|e| StoreError::Internal(format!("building ConditionCheck: {e}")))?;
            let items = [
                TransactWriteItem::builder().put(put).build(),
                TransactWriteItem::builder()
                    .condition_check(still_last)
                    .build(),
            ];
            let reasons = match transact(self, &items, "TransactWriteItems user").await? {
                Transaction::Done => return Ok(user),
                Transaction::Refused(reasons) => reasons,
            };
            if reasons.first().is_some_and(|taken| taken.is_condition()) {
                return Err(StoreError::EmailTaken);
            }
            tracing::info!("a delete of this email left a newer tombstone; reading it again");
        }
        Err(StoreError::Unavailable(
            "registration: the email's tombstone kept changing".into(),
        ))
    }

    /// Atomically bumps `jwtVersion`, revoking every token `user` was issued so far.
    pub async fn bump_jwt_version(&self, user: &User) -> Result<User, StoreError> {
        self.update_user(user, UserUpdate::RevokeTokens).await
    }

    /// Renames a user; its posts keep the name they were written under.
    pub async fn rename_user(&self, user: &User, name: String) -> Result<User, StoreError> {
        self.update_user(user, UserUpdate::Rename(name)).await
    }

    /// Changes `user` only as the token that authenticated it knows it: the same user id (not
    /// a later user of the email) at the same `jwtVersion` (not revoked since). Stamped with a
    /// write token, so a retried attempt neither applies twice nor reports its own first
    /// attempt's change as a refusal (see [`WRITE_TOKEN`]).
    async fn update_user(&self, user: &User, update: UserUpdate) -> Result<User, StoreError> {
        let token = crate::domain::new_id();
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(user_key(&user.email)))
            .condition_expression(format!(
                "id = :id AND jwtVersion = :jwtVersion AND {NOT_YET_WRITTEN}"
            ))
            .expression_attribute_values(":id", s(&user.id))
            .expression_attribute_values(":jwtVersion", n(user.jwt_version))
            .expression_attribute_values(":writeToken", s(&token))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let (request, operation) = match update {
            UserUpdate::RevokeTokens => (
                request.update_expression(format!(
                    "SET {WRITE_TOKEN} = :writeToken ADD jwtVersion :one, revision :one"
                )),
                "UpdateItem logout",
            ),
            UserUpdate::Rename(name) => (
                request
                    .update_expression(format!(
                        "SET #name = :name, {WRITE_TOKEN} = :writeToken ADD revision :one"
                    ))
                    .expression_attribute_names("#name", "name")
                    .expression_attribute_values(":name", s(name)),
                "UpdateItem rename",
            ),
        };
        match request.send().await {
            Ok(out) => Ok(returned::<UserItem>("user", operation, out.attributes)?.user),
            Err(e) => match refused(&e) {
                Some(Some(item)) if written_by(&item, &token) => {
                    tracing::info!(
                        operation,
                        "change applied by an earlier attempt of this call"
                    );
                    Ok(from_item::<UserItem>("user", item)?.user)
                }
                Some(Some(_)) => Err(StoreError::UserChanged(
                    "user changed since the token was checked",
                )),
                Some(None) => Err(StoreError::UserChanged("user is gone")),
                None => Err(classify(operation, e)),
            },
        }
    }

    /// Deletes `user` (and only that user of its email, at the token's `jwtVersion`) and
    /// returns it as it was, so the caller can cache the deletion's version; its tokens then
    /// fail the "user still exists" check.
    ///
    /// A user found already gone is a success: the request was authenticated as that user, so
    /// it existed moments ago, and whoever removed it (this call's own first attempt, whose
    /// answer was lost, or a concurrent delete) left the state the caller asked for. Its
    /// deletion's version is then the one `user` implies.
    pub async fn delete_user(&self, user: &User) -> Result<User, StoreError> {
        self.leave_tombstone(user).await?;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(user_key(&user.email)))
            .condition_expression("id = :id AND jwtVersion = :jwtVersion")
            .expression_attribute_values(":id", s(&user.id))
            .expression_attribute_values(":jwtVersion", n(user.jwt_version))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(returned::<UserItem>("user", "DeleteItem user", out.attributes)?.user),
            Err(e) => match refused(&e) {
                Some(Some(_)) => Err(StoreError::UserChanged(
                    "user changed since the token was checked",
                )),
                Some(None) => {
                    tracing::info!("user already gone; its deletion stands");
                    Ok(user.clone())
                }
                None => Err(classify("DeleteItem user", e)),
            },
        }
    }
}

/// Whether a stream record's `Keys` name a user item (and not a post or a comment). Cheap: two
/// string comparisons, no decoding.
pub fn is_user_key(keys: &serde_dynamo::Item) -> bool {
    record_keys(keys).is_some_and(|(pk, sk)| pk.starts_with(USER_PREFIX) && sk == PROFILE)
}

/// The email a user item's keys name (`USER#<email>`, `PROFILE`): all a stream record of a
/// user says (the stream is keys only). An error for keys of another item, or whose email is
/// not one the users function writes (not an email, or not normalized).
pub fn email_of_user_key(keys: &serde_dynamo::Item) -> Result<Email, StoreError> {
    let bad = |why: &str| StoreError::Internal(format!("user key: {why}"));
    let (pk, sk) = record_keys(keys).ok_or_else(|| bad("no string pk and sk"))?;
    let raw = pk
        .strip_prefix(USER_PREFIX)
        .filter(|_| sk == PROFILE)
        .ok_or_else(|| bad("not a user item"))?;
    let email = Email::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if user_pk(&email) != pk {
        return Err(bad("not a normalized email"));
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys::USER_TOMBSTONE;

    fn keys(pk: &str, sk: &str) -> serde_dynamo::Item {
        let text = |v: &str| serde_dynamo::AttributeValue::S(v.into());
        serde_dynamo::Item::from(std::collections::HashMap::from([
            ("pk".to_owned(), text(pk)),
            ("sk".to_owned(), text(sk)),
        ]))
    }

    #[test]
    fn a_user_record_names_its_email_by_its_keys_alone() {
        let email = email_of_user_key(&keys("USER#ann@example.com", PROFILE)).expect("a user");
        assert_eq!(email.as_str(), "ann@example.com");
        for (pk, sk) in [
            ("USER#ann@example.com", USER_TOMBSTONE),
            ("POST#01J00000000000000000000000", "POST"),
            ("USER#not an email", PROFILE),
            ("USER#Ann@Example.com", PROFILE),
        ] {
            assert!(email_of_user_key(&keys(pk, sk)).is_err(), "{pk} {sk}");
        }
        assert!(TOMBSTONE_ATTRIBUTES
            .split(',')
            .all(|a| USER_ATTRIBUTES.split(',').any(|u| u.trim() == a.trim())));
    }
}
