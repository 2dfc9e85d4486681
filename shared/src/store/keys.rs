//! The table's keys, in one place: every item's `pk`/`sk` and the feed index's keys (the
//! README's "Data model"). IAM policies name the same prefixes (`template.yaml`). The key of
//! each kind of item is public, so tests that read the table directly build it the same way.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::dynamo::s;
use crate::domain::Email;

pub(super) const USER_PREFIX: &str = "USER#";
pub(super) const PROFILE: &str = "PROFILE";
pub(super) const POST_PREFIX: &str = "POST#";
pub(super) const POST_SK: &str = "POST";
pub(super) const COMMENT_PREFIX: &str = "COMMENT#";
pub(super) const FEED_PK: &str = "FEED";

/// Prefix of every idempotency record's partition key (the IAM policy names it too).
pub const IDEMPOTENCY_PREFIX: &str = "IDEMPOTENCY#";
const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";

/// An item's primary key (`pk` and `sk`), or its primary and index keys.
pub type Key = HashMap<String, AttributeValue>;

/// A user's partition: its normalized email.
pub fn user_pk(email: &Email) -> String {
    format!("{USER_PREFIX}{}", email.as_str())
}

/// The primary key of `email`'s user.
pub fn user_key(email: &Email) -> Key {
    primary_key(user_pk(email), PROFILE)
}

/// A post's partition, which its comments share.
pub fn post_pk(post_id: &str) -> String {
    format!("{POST_PREFIX}{post_id}")
}

/// The primary key of a post.
pub fn post_key(post_id: &str) -> Key {
    primary_key(post_pk(post_id), POST_SK)
}

pub(super) fn comment_sk(comment_id: &str) -> String {
    format!("{COMMENT_PREFIX}{comment_id}")
}

/// The primary key of a comment.
pub fn comment_key(post_id: &str, comment_id: &str) -> Key {
    primary_key(post_pk(post_id), comment_sk(comment_id))
}

/// The primary key of the idempotency record of `user_id`'s `idempotency_key`.
pub fn idempotency_key(user_id: &str, idempotency_key: &str) -> Key {
    primary_key(
        format!("{IDEMPOTENCY_PREFIX}{user_id}#{idempotency_key}"),
        IDEMPOTENCY_SK,
    )
}

/// The full primary and index key of a post, which is what a feed page starts after.
pub(super) fn feed_key(post_id: &str) -> Key {
    let mut key = post_key(post_id);
    key.extend([
        ("gsi1pk".to_owned(), s(FEED_PK)),
        ("gsi1sk".to_owned(), s(post_id)),
    ]);
    key
}

fn primary_key(pk: String, sk: impl Into<String>) -> Key {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}
