//! The table's keys, in one place: every item's `pk`/`sk` and the feed index's keys
//! (docs/architecture.md, "Data model"). IAM policies name the same prefixes (`template.yaml`).
//! The key of each kind of item is public, so tests that read the table directly build it the
//! same way.
//!
//! Two kinds of list are spread over several partition key values, because one value is one
//! DynamoDB partition and a partition takes at most 1,000 WCU/s and 3,000 RCU/s (BENCHMARKS.md,
//! "Scale"):
//! - the feed index: [`FEED_SHARDS`] values `FEED#<k>`;
//! - a post's comments: [`COMMENT_SHARDS`] values `POST#<postId>#<k>`.
//!
//! An item's shard is a function of its own id ([`shard_of`]), so a single item is found
//! without a lookup, and a list is the merge, by id, of its shards. Items written before the
//! shards existed (the *legacy* layout: every post in the index partition `FEED` of `gsi1`,
//! a post's comments in the post's own partition) are still read, as one more source of each
//! merge, until the layout migration says none is left ([`super::migrate`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::Email;

pub(super) const USER_PREFIX: &str = "USER#";
pub(super) const PROFILE: &str = "PROFILE";
pub(super) const USER_TOMBSTONE: &str = "TOMBSTONE";
pub(super) const POST_PREFIX: &str = "POST#";
pub(super) const POST_SK: &str = "POST";
pub(super) const COMMENT_PREFIX: &str = "COMMENT#";
/// Where a post whose comments are still being swept keeps the sweep's progress (its own
/// partition, beside the post item).
pub(super) const SWEEP_SK: &str = "SWEEP";

/// Partition key values of the feed index: a post is in `FEED#<shard_of(id, FEED_SHARDS)>`.
/// Sixteen spread the feed's writes (one per post created) over sixteen index partitions.
pub const FEED_SHARDS: u32 = 16;

/// Partition key values of a post's comments: a comment is in
/// `POST#<postId>#<shard_of(id, COMMENT_SHARDS)>`. Sixteen let one post take thousands of
/// comments per second (BENCHMARKS.md, "Scale").
pub const COMMENT_SHARDS: u32 = 16;

/// The feed index's key attributes (the index `feed`, keys only).
pub(super) const FEED_PK: &str = "feedpk";
pub(super) const FEED_SK: &str = "feedsk";

/// Name of the feed index (keys only, partitioned by feed shard); the template creates it
/// with this name.
pub const FEED_INDEX: &str = "feed";

/// Name of the legacy feed index (one partition, every attribute), kept while legacy posts
/// may remain.
pub const LEGACY_FEED_INDEX: &str = "gsi1";

/// The legacy feed index (`gsi1`, projecting all attributes) and its one partition.
pub(super) const LEGACY_FEED_PK_VALUE: &str = "FEED";
pub(super) const LEGACY_FEED_PK: &str = "gsi1pk";
pub(super) const LEGACY_FEED_SK: &str = "gsi1sk";

/// Prefix of every idempotency record's partition key (the IAM policy names it too).
pub const IDEMPOTENCY_PREFIX: &str = "IDEMPOTENCY#";
const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";

/// An item's primary key (`pk` and `sk`), or its primary and index keys.
pub type Key = HashMap<String, AttributeValue>;

/// The shard of an item among `shards` (a power of two up to 32), from its id: the last
/// character of a ULID is five bits of its randomness, so items spread evenly, and whoever
/// knows the id knows the shard. An id that is not a ULID (never one of ours: ids are checked
/// at the edge) still gets a shard.
pub fn shard_of(id: &str, shards: u32) -> u32 {
    /// Crockford's base 32, in which ULIDs are written: a character's place is its value.
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let last = id.as_bytes().last().copied().unwrap_or(b'0');
    let value = ALPHABET
        .iter()
        .position(|&c| c == last.to_ascii_uppercase())
        .map_or(u32::from(last), |place| place as u32);
    value % shards.max(1)
}

/// A user's partition: its normalized email.
pub fn user_pk(email: &Email) -> String {
    format!("{USER_PREFIX}{}", email.as_str())
}

/// The primary key of `email`'s user.
pub fn user_key(email: &Email) -> Key {
    primary_key(user_pk(email), PROFILE)
}

/// The key of the tombstone `email`'s last deleted user left: which registration of the email
/// it was, so the next registration continues from it (`super::users`).
pub fn user_tombstone_key(email: &Email) -> Key {
    primary_key(user_pk(email), USER_TOMBSTONE)
}

/// A post's partition: the post item, and (legacy layout) its comments.
pub fn post_pk(post_id: &str) -> String {
    format!("{POST_PREFIX}{post_id}")
}

/// The primary key of a post.
pub fn post_key(post_id: &str) -> Key {
    primary_key(post_pk(post_id), POST_SK)
}

/// The key of the progress of a deleted post's sweep.
pub(super) fn sweep_key(post_id: &str) -> Key {
    primary_key(post_pk(post_id), SWEEP_SK)
}

/// The feed index partition of a post.
pub fn feed_pk(post_id: &str) -> String {
    feed_shard_pk(shard_of(post_id, FEED_SHARDS))
}

/// The feed index partition `shard`.
pub(super) fn feed_shard_pk(shard: u32) -> String {
    format!("FEED#{shard}")
}

/// The partition of a post's comment shard `shard`.
pub(super) fn comment_shard_pk(post_id: &str, shard: u32) -> String {
    format!("{POST_PREFIX}{post_id}#{shard}")
}

/// The partition of a comment: one of its post's comment shards.
pub fn comment_pk(post_id: &str, comment_id: &str) -> String {
    comment_shard_pk(post_id, shard_of(comment_id, COMMENT_SHARDS))
}

pub(super) fn comment_sk(comment_id: &str) -> String {
    format!("{COMMENT_PREFIX}{comment_id}")
}

/// The primary key of a comment.
pub fn comment_key(post_id: &str, comment_id: &str) -> Key {
    primary_key(comment_pk(post_id, comment_id), comment_sk(comment_id))
}

/// Where a comment written before the shards existed lives: its post's own partition.
pub fn legacy_comment_key(post_id: &str, comment_id: &str) -> Key {
    primary_key(post_pk(post_id), comment_sk(comment_id))
}

/// The `pk` and `sk` a stream record's `Keys` hold, when both are strings: what the stream's
/// consumers tell items apart by, and all a record carries (the stream is keys only).
pub fn record_keys(keys: &serde_dynamo::Item) -> Option<(&str, &str)> {
    let text = |name: &str| match keys.get(name) {
        Some(serde_dynamo::AttributeValue::S(value)) => Some(value.as_str()),
        _ => None,
    };
    Some((text("pk")?, text("sk")?))
}

/// The post and comment a comment item's key names, in either layout: `(postId, commentId,
/// legacy)`. `None` for any other item.
pub fn comment_of_key<'a>(pk: &'a str, sk: &'a str) -> Option<(&'a str, &'a str, bool)> {
    let comment_id = sk.strip_prefix(COMMENT_PREFIX)?;
    let rest = pk.strip_prefix(POST_PREFIX)?;
    match rest.split_once('#') {
        Some((post_id, _shard)) => Some((post_id, comment_id, false)),
        None => Some((rest, comment_id, true)),
    }
}

/// The post a post item's (or its sweep's) key names.
pub fn post_of_key<'a>(pk: &'a str, sk: &str) -> Option<&'a str> {
    let post_id = pk.strip_prefix(POST_PREFIX)?;
    (!post_id.contains('#') && (sk == POST_SK || sk == SWEEP_SK)).then_some(post_id)
}

/// Whether a key is a post's sweep progress (rather than the post).
pub fn is_sweep_key(sk: &str) -> bool {
    sk == SWEEP_SK
}

/// The primary key of the idempotency record of `user_id`'s `idempotency_key`.
pub fn idempotency_key(user_id: &str, idempotency_key: &str) -> Key {
    primary_key(
        format!("{IDEMPOTENCY_PREFIX}{user_id}#{idempotency_key}"),
        IDEMPOTENCY_SK,
    )
}

/// The key of the item `pk`, `sk`.
pub(super) fn primary_key(pk: String, sk: impl Into<String>) -> Key {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.into())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_ulids_evenly_and_are_stable() {
        let mut counts = [0u32; FEED_SHARDS as usize];
        for _ in 0..3_200 {
            counts[shard_of(&crate::domain::new_id(), FEED_SHARDS) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (120..=280).contains(&c)),
            "{counts:?}"
        );
        let id = "01J00000000000000000000000";
        assert_eq!(shard_of(id, 16), shard_of(id, 16));
        assert_eq!(shard_of("01J0000000000000000000000Z", 16), 31 % 16);
        assert_eq!(shard_of("01J0000000000000000000000G", 16), 0);
    }

    #[test]
    fn comment_keys_name_their_post_in_either_layout() {
        let (post, comment) = ("01J00000000000000000000000", "01J00000000000000000000001");
        let pk = comment_pk(post, comment);
        assert_eq!(
            comment_of_key(&pk, &comment_sk(comment)),
            Some((post, comment, false))
        );
        assert_eq!(
            comment_of_key(&post_pk(post), &comment_sk(comment)),
            Some((post, comment, true))
        );
        assert_eq!(comment_of_key(&post_pk(post), POST_SK), None);
        assert_eq!(post_of_key(&post_pk(post), POST_SK), Some(post));
        assert_eq!(post_of_key(&pk, POST_SK), None);
        assert_eq!(post_of_key("USER#a@x.io", PROFILE), None);
    }
}
