//! A comment on a post.

use serde::{Deserialize, Serialize};

/// `Comment` in `API.md`; its serde form is both the response body and the stored attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub id: String,
    pub post_id: String,
    pub author_id: String,
    pub author_name: String,
    pub text: String,
    pub created_at: String,
    pub updated_at: String,
}
