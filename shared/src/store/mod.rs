//! DynamoDB: the source of truth for users, posts and comments (and the idempotency records of
//! the routes that create), in one table.
//!
//! Single-table design (see docs/architecture.md, "Data model"; the keys are in [`keys`]): a
//! tombstone is a deleted user's (which registration of the email it was), a sweep a deleted
//! post's (how far the removal of its comments got).
//!
//! | item        | `pk`                         | `sk`                  | `feedpk`      | `feedsk`   |
//! |-------------|------------------------------|-----------------------|---------------|------------|
//! | user        | `USER#<email>`               | `PROFILE`             |               |            |
//! | tombstone   | `USER#<email>`               | `TOMBSTONE`           |               |            |
//! | post        | `POST#<postId>`              | `POST`                | `FEED#<0-15>` | `<postId>` |
//! | sweep       | `POST#<postId>`              | `SWEEP`               |               |            |
//! | comment     | `POST#<postId>#<0-15>`       | `COMMENT#<commentId>` |               |            |
//! | idempotency | `IDEMPOTENCY#<userId>#<key>` | `IDEMPOTENCY`         |               |            |
//!
//! Ids are ULIDs, so sort keys order by time: the feed is the newest-first merge of the
//! sixteen partitions of the index `feed`, a post's comments the oldest-first merge of its
//! sixteen comment partitions ([`paging`]). No request scans: only the layout migration does
//! ([`migrate`]). The table's upkeep (comment counts, removals, the sweep of a deleted post's
//! comments) is done from its stream ([`upkeep`]).

mod comments;
mod dynamo;
mod idempotency;
pub mod keys;
mod migrate;
mod paging;
mod posts;
pub mod schema;
mod upkeep;
mod users;

use aws_sdk_dynamodb::Client;

pub use comments::Remover;
pub use dynamo::client_from_config;
pub use idempotency::{Claim, ClaimToken, StoredAnswer, CLAIM_LEASE, RECORD_LIFETIME};
pub use migrate::Moved;
pub use upkeep::{Change, CommentState, Settled, Swept};
pub use users::{is_user_key, user_from_image, NewUser, TOMBSTONE_LIFETIME, USER_ATTRIBUTES};

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

/// An item as the table holds it, with its cache revision: a number that every change of the
/// item grows (in the same write as the change), so the cache can keep the newer of two
/// copies. Bookkeeping only: it never shows in a response (a post's `version` counts its
/// edits, which is another thing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<T> {
    pub item: T,
    pub rev: u64,
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
    /// Whether the table may still hold items of the legacy layout (docs/architecture.md,
    /// "Data model"), which lists then read too.
    legacy_layout: bool,
}

/// Name of the feed index (keys only, partitioned by feed shard); the template creates it
/// with this name.
pub const FEED_INDEX: &str = "feed";

/// Name of the legacy feed index (one partition, every attribute), kept while legacy posts
/// may remain.
pub const LEGACY_FEED_INDEX: &str = "gsi1";

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
            legacy_layout: true,
        }
    }

    /// The same store, reading the legacy layout's partitions too (`on`) or not: off once
    /// `tools/migrate-layout` has moved every legacy item (`LEGACY_LAYOUT=false`).
    pub fn with_legacy_layout(mut self, on: bool) -> Self {
        self.legacy_layout = on;
        self
    }

    /// Reads a key that never exists, waiting at most `bound`, so the first request finds the
    /// connection open, the credentials resolved and the client's first-call work done. Never
    /// fails: an error or timeout is logged and the request path connects as usual. The key is
    /// outside every function's role (IAM conditions on key prefixes), so the answer may be
    /// `AccessDenied`: an answer all the same, which needed all of that done.
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
            Ok(Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e))) => tracing::debug!(
                error = %aws_sdk_dynamodb::error::ProvideErrorMetadata::code(e.err()).unwrap_or("unknown"),
                "dynamodb connection ready (it answered the prewarm read with an error)"
            ),
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
