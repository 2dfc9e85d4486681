//! Users, keyed by normalized email: the lookup every authenticated request makes.

use serde::{Deserialize, Serialize};

use super::dynamo::{classify, from_item, is_condition_failure, n, s, to_item};
use super::Store;
use crate::domain::{Email, User};
use crate::error::AppError;

const PROFILE: &str = "PROFILE";

fn user_pk(email: &Email) -> String {
    format!("USER#{}", email.as_str())
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

impl Store {
    /// Reads a user with a strongly consistent read, so a logout or delete that has just
    /// succeeded is seen by the very next cache miss.
    pub async fn get_user(&self, email: &Email) -> Result<Option<User>, AppError> {
        Ok(self.get_user_item(email).await?.map(|item| item.user))
    }

    /// The user and its password hash, for login only.
    pub async fn get_user_with_hash(&self, email: &Email) -> Result<Option<(User, String)>, AppError> {
        Ok(self.get_user_item(email).await?.map(|item| (item.user, item.password_hash)))
    }

    async fn get_user_item(&self, email: &Email) -> Result<Option<UserItem>, AppError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(user_pk(email)))
            .key("sk", s(PROFILE))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem user", e))?;
        out.item.map(|item| from_item("user", item)).transpose()
    }

    /// Creates a user; of two registrations of one email, exactly one wins (`email_taken`).
    pub async fn create_user(&self, new: NewUser) -> Result<User, AppError> {
        let email = Email::parse(&new.user.email)?;
        let item =
            UserItem { pk: user_pk(&email), sk: PROFILE.to_owned(), user: new.user, password_hash: new.password_hash };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item("user", &item)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(item.user),
            Err(e) if is_condition_failure(&e) => Err(AppError::EmailTaken),
            Err(e) => Err(classify("PutItem user", e)),
        }
    }

    /// Atomically bumps `jwtVersion`, revoking every token issued so far.
    pub async fn bump_jwt_version(&self, email: &Email) -> Result<User, AppError> {
        self.update_user(email, "ADD jwtVersion :one", &[(":one", n(1))], "UpdateItem logout").await
    }

    /// Renames a user; its posts keep the name they were written under.
    pub async fn rename_user(&self, email: &Email, name: String) -> Result<User, AppError> {
        self.update_user(email, "SET #name = :name", &[(":name", s(name))], "UpdateItem rename").await
    }

    async fn update_user(
        &self,
        email: &Email,
        update: &str,
        values: &[(&str, aws_sdk_dynamodb::types::AttributeValue)],
        operation: &'static str,
    ) -> Result<User, AppError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(user_pk(email)))
            .key("sk", s(PROFILE))
            .update_expression(update)
            .condition_expression("attribute_exists(pk)")
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        if update.contains("#name") {
            request = request.expression_attribute_names("#name", "name");
        }
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        match request.send().await {
            Ok(out) => {
                let item =
                    out.attributes.ok_or_else(|| AppError::Internal(format!("{operation}: no attributes returned")))?;
                Ok(from_item::<UserItem>("user", item)?.user)
            }
            Err(e) if is_condition_failure(&e) => Err(AppError::Unauthorized("user is gone")),
            Err(e) => Err(classify(operation, e)),
        }
    }

    /// Deletes a user; its tokens then fail the "user still exists" check.
    pub async fn delete_user(&self, email: &Email) -> Result<(), AppError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(user_pk(email)))
            .key("sk", s(PROFILE))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(AppError::Unauthorized("user is gone")),
            Err(e) => Err(classify("DeleteItem user", e)),
        }
    }
}
