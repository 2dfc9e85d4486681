//! DynamoDB: the source of truth for users, posts and comments (and the idempotency records of
//! the routes that create), in one table.
//!
//! Single-table design (see docs/architecture.md, "Data model"; the keys are in [`keys`], the
//! client and what every kind of item shares of it in `dynamo.rs`): a
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

pub use comments::Remover;
pub use dynamo::{client_from_config, Page, Store, StoreError, Stored};
pub use idempotency::{Claim, ClaimToken, StoredAnswer, CLAIM_LEASE, RECORD_LIFETIME};
pub use keys::{FEED_INDEX, LEGACY_FEED_INDEX};
pub use migrate::Moved;
pub use upkeep::{Change, CommentState, Settled, Swept};
pub use users::{
    email_of_user_key, is_user_key, NewUser, Tombstone, TOMBSTONE_ATTRIBUTES, TOMBSTONE_LIFETIME,
    USER_ATTRIBUTES,
};
