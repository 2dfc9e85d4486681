//! DynamoDB: the source of truth for users, posts and comments, in one table.
//!
//! Single-table design (see the README's "Data model"):
//!
//! | item    | `pk`             | `sk`                 | `gsi1pk` | `gsi1sk`  |
//! |---------|------------------|----------------------|----------|-----------|
//! | user    | `USER#<email>`   | `PROFILE`            |          |           |
//! | post    | `POST#<postId>`  | `POST`               | `FEED`   | `<postId>`|
//! | comment | `POST#<postId>`  | `COMMENT#<commentId>`|          |           |
//!
//! Ids are ULIDs, so sort keys order by time: the feed is a newest-first `Query` on `gsi1`,
//! a post's comments an oldest-first `Query` of its partition. Nothing here scans.

mod comments;
mod dynamo;
mod posts;
pub mod schema;
mod users;

use aws_sdk_dynamodb::Client;

pub use dynamo::client_from_config;
pub use users::NewUser;

/// A page of a list: the items, and the id of the last one when more follow.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Id of the last item of this page, present only when another page exists.
    pub last_id: Option<String>,
}

/// Table access for every entity. Cheap to clone: the SDK client is an `Arc` inside.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
}

/// Name of the feed index; the template creates it with this name.
pub const FEED_INDEX: &str = "gsi1";

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Store { client, table: table.into() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}
