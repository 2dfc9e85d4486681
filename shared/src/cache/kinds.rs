//! The kinds of entry, their keys and their sizes. Every key names one entry, and every command
//! names one key (a `GET`, the script on `KEYS[1]`; an `MGET` the cluster client splits by
//! slot), so none spans slots in a cluster.

use super::entry::Order;
use crate::domain::Email;

/// What an entry holds. Defined with the metrics, whose `Kind` dimension it is, as the cache's
/// [`CacheOutcome`](crate::metrics::CacheOutcome) is: the metrics count the cache's answers and
/// know nothing else of it.
pub use crate::metrics::Kind;

/// A window: the first items of a list, and how many of them the cache keeps.
#[derive(Debug, Clone, Copy)]
pub struct WindowKind {
    pub kind: Kind,
    /// At most this many live items: any `limit` up to one less is answered from the window
    /// with its `nextCursor` (a page of `size` is answered when the list ends there).
    pub size: usize,
    pub order: Order,
}

/// The feed's first 50 post ids, newest first: the default page of 20 and the pages clients
/// ask for most, with room for 30 deletions before a read of the table fills it again. Ids
/// only: the posts are their own entries, so an edit or a new comment count of a post changes
/// one small entry, not this one, which only a new or deleted post changes.
pub const FEED: WindowKind = WindowKind {
    kind: Kind::Feed,
    size: 50,
    order: Order::Descending,
};

/// A post's first 50 comments, oldest first, whole: a page of them is served from this one
/// entry. A new comment changes it only while the post has fewer than 50; after that it is
/// past the window, and the script only notes it (a popular post's comments do not rewrite
/// it).
pub const COMMENTS: WindowKind = WindowKind {
    kind: Kind::Comments,
    size: 50,
    order: Order::Ascending,
};

/// The user of `email`.
pub fn user_key(email: &Email) -> String {
    format!("user:v4:{}", email.as_str())
}

/// A post.
pub fn post_key(post_id: &str) -> String {
    format!("post:v4:{post_id}")
}

/// The feed's first posts.
pub const FEED_KEY: &str = "feed:v4";

/// The subject of the feed's window.
pub const FEED_SUBJECT: &str = "feed";

/// A post's first comments.
pub fn comments_key(post_id: &str) -> String {
    format!("comments:v4:{post_id}")
}
