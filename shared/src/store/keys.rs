//! The table's keys, in one place: every item's `pk`/`sk` and the feed index's keys (the
//! README's "Data model"). IAM policies name the same prefixes (`template.yaml`).

use std::collections::HashMap;

use super::dynamo::{s, Item};
use crate::domain::Email;

pub(super) const USER_PREFIX: &str = "USER#";
pub(super) const PROFILE: &str = "PROFILE";
pub(super) const POST_PREFIX: &str = "POST#";
pub(super) const POST_SK: &str = "POST";
pub(super) const COMMENT_PREFIX: &str = "COMMENT#";
pub(super) const FEED_PK: &str = "FEED";

/// A user's partition: its normalized email.
pub(super) fn user_pk(email: &Email) -> String {
    format!("{USER_PREFIX}{}", email.as_str())
}

/// A post's partition, which its comments share.
pub(super) fn post_pk(post_id: &str) -> String {
    format!("{POST_PREFIX}{post_id}")
}

pub(super) fn comment_sk(comment_id: &str) -> String {
    format!("{COMMENT_PREFIX}{comment_id}")
}

/// The primary key of a comment.
pub(super) fn comment_key(post_id: &str, comment_id: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(post_pk(post_id))), ("sk".to_owned(), s(comment_sk(comment_id)))])
}

/// The full primary and index key of a post, which is what a feed page starts after.
pub(super) fn feed_key(post_id: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(post_pk(post_id))),
        ("sk".to_owned(), s(POST_SK)),
        ("gsi1pk".to_owned(), s(FEED_PK)),
        ("gsi1sk".to_owned(), s(post_id)),
    ])
}
