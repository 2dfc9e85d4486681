//! A user as the rest of the system sees it: no password hash, ever.

use serde::{Deserialize, Serialize};

/// The user that authentication yields and the cache holds. The password hash lives only in
/// the store's item, so it can never leak through the cache or a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    /// Bumped by logout; a token is valid only while its `jwtVersion` equals this.
    pub jwt_version: u64,
    pub created_at: String,
}

impl User {
    /// The public representation of the contract.
    pub fn view(&self) -> UserView<'_> {
        UserView { id: &self.id, email: &self.email, name: &self.name, created_at: &self.created_at }
    }
}

/// `User` in `API.md`: `{id, email, name, createdAt}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub created_at: &'a str,
}
