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
mod idempotency;
pub mod keys;
mod paging;
mod posts;
pub mod schema;
mod users;

use aws_sdk_dynamodb::Client;

pub use dynamo::client_from_config;
pub use idempotency::{Claim, ClaimToken, StoredAnswer, CLAIM_LEASE, RECORD_LIFETIME};
pub use users::{is_user_key, user_from_image, NewUser};

/// How a call to the table failed, in the store's own terms; `crate::error` says what each
/// means for a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The table could not be reached in time, throttled, or failed on its side: try again.
    #[error("table unavailable: {0}")]
    Unavailable(String),
    /// Anything else: an item that does not decode, a request that cannot be built.
    #[error("table: {0}")]
    Internal(String),
    /// The item is not there.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The item was written by someone else.
    #[error("not the author")]
    NotAuthor,
    /// The item is at another version than the change expected.
    #[error("version mismatch")]
    VersionMismatch,
    /// The email is already registered.
    #[error("email taken")]
    EmailTaken,
    /// The user changed (another user of the email, or another `jwtVersion`) or went since the
    /// caller read it.
    #[error("user changed: {0}")]
    UserChanged(&'static str),
}

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
    /// The store over `client`, every attempt of every call timed for the metrics
    /// (`CallTimer`).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let client = Client::from_conf(
            client
                .config()
                .to_builder()
                .interceptor(dynamo::CallTimer)
                .build(),
        );
        Store {
            client,
            table: table.into(),
        }
    }

    /// Reads a key that never exists, waiting at most `bound`, so the first request finds the
    /// connection open, the credentials resolved and the client's first-call work done. Never
    /// fails: an error or timeout is logged and the request path connects as usual.
    pub async fn prewarm(&self, bound: std::time::Duration) {
        let read = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", dynamo::s("PREWARM"))
            .key("sk", dynamo::s("PREWARM"))
            .projection_expression("pk")
            .send();
        match tokio::time::timeout(bound, read).await {
            Ok(Ok(_)) => tracing::debug!("dynamodb connection ready"),
            Ok(Err(e)) => tracing::warn!(
                error = %aws_smithy_types::error::display::DisplayErrorContext(&e),
                "dynamodb not ready at init; the first request will connect"
            ),
            Err(_) => tracing::warn!(
                bound_ms = bound.as_millis() as u64,
                "dynamodb not ready at init; the first request will connect"
            ),
        }
    }
}
