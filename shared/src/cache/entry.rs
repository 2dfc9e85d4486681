//! What the cache holds for an email, and in what format.
//!
//! An entry is one JSON string under `user:v2:<email>`, read with one `GET`:
//!
//! - a user: `{"id":"01J…","rev":3,"kind":"user","user":{…}}`
//! - a deleted user's tombstone: `{"id":"01J…","rev":4,"kind":"absent"}`
//! - "DynamoDB has no user here": `{"id":"","rev":0,"kind":"absent"}`
//!
//! `id` and `rev` are the entry's [`Version`], which the compare-and-set script reads to keep
//! the newer of two states; the reader needs only `kind` and `user`. The password hash is never
//! in an entry.

use serde::{Deserialize, Serialize};

use crate::domain::{Email, User, Version};

/// Prefix of every key this cache writes. The `v2` is the entry format: a new format takes a
/// new prefix, so it never reads an old entry as new (`v1` entries had no version).
pub const KEY_PREFIX: &str = "user:v2:";

/// The key of `email`'s entry.
pub fn key(email: &Email) -> String {
    format!("{KEY_PREFIX}{}", email.as_str())
}

/// One state of an email's user, as the cache holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    User(User),
    /// No user: a deleted user's tombstone (its id, the revision after its last), or
    /// [`Version::NONE`] when DynamoDB had no item.
    Absent(Version),
}

impl Entry {
    /// Where this state stands among the states of its email.
    pub fn version(&self) -> Version {
        match self {
            Entry::User(user) => user.version(),
            Entry::Absent(version) => version.clone(),
        }
    }

    /// The entry as it is stored.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        #[derive(Serialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        enum Kind<'a> {
            User { user: &'a User },
            Absent,
        }
        #[derive(Serialize)]
        struct Stored<'a> {
            id: &'a str,
            rev: u64,
            #[serde(flatten)]
            kind: Kind<'a>,
        }
        let (id, rev, kind) = match self {
            Entry::User(user) => (user.id.as_str(), user.revision, Kind::User { user }),
            Entry::Absent(version) => (version.id.as_str(), version.revision, Kind::Absent),
        };
        serde_json::to_vec(&Stored { id, rev, kind })
    }
}

/// What an entry says, as the read path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    User(User),
    /// No such user; `id` names the deleted user of a tombstone, and is empty for "DynamoDB had
    /// none".
    Absent {
        id: String,
    },
}

/// An entry as the read path decodes it: straight into a struct, revision unread.
/// (Deriving `Deserialize` on an internally tagged enum would copy every field into a buffer
/// first to find the tag: a measurable part of a cache hit.)
#[derive(Deserialize)]
struct StoredEntry {
    kind: EntryKind,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    id: String,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum EntryKind {
    User,
    Absent,
}

/// What the raw value of `email`'s key says, or `None` for nothing usable (unreadable, another
/// format, another email's), which the caller treats as a miss. Never panics, whatever the
/// bytes.
pub fn decode_entry(raw: &[u8], email: &Email) -> Option<Cached> {
    match serde_json::from_slice::<StoredEntry>(raw) {
        Ok(StoredEntry {
            kind: EntryKind::User,
            user: Some(user),
            ..
        }) if user.email == *email => Some(Cached::User(user)),
        Ok(StoredEntry {
            kind: EntryKind::Absent,
            id,
            ..
        }) => Some(Cached::Absent { id }),
        Ok(StoredEntry {
            kind: EntryKind::User,
            user: Some(_),
            ..
        }) => {
            tracing::warn!("cache entry holds another user; ignoring it");
            None
        }
        Ok(StoredEntry {
            kind: EntryKind::User,
            user: None,
            ..
        }) => {
            tracing::warn!("cache entry unreadable (a user entry without its user); ignoring it");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cache entry unreadable; ignoring it");
            None
        }
    }
}

/// The compare-and-set script every cache write runs (`cas.lua`).
pub const COMPARE_AND_SET: &str = include_str!("cas.lua");

#[cfg(test)]
mod tests {
    use super::*;

    fn user(jwt_version: u64, revision: u64) -> User {
        User {
            id: "01J00000000000000000000000".into(),
            email: Email::parse("a@x.io").expect("email"),
            name: "A".into(),
            jwt_version,
            revision,
            created_at: "t".into(),
        }
    }

    #[test]
    fn entries_are_tagged_json_with_their_version_and_without_hash() {
        let json =
            String::from_utf8(Entry::User(user(1, 3)).encode().expect("json")).expect("utf-8");
        assert!(
            json.starts_with(
                r#"{"id":"01J00000000000000000000000","rev":3,"kind":"user","user":{"#
            ),
            "{json}"
        );
        assert!(!json.to_lowercase().contains("hash"));
        let tombstone = Entry::Absent(user(1, 3).deleted()).encode().expect("json");
        assert_eq!(
            tombstone,
            br#"{"id":"01J00000000000000000000000","rev":4,"kind":"absent"}"#
        );
        assert_eq!(
            Entry::Absent(Version::NONE).encode().expect("json"),
            br#"{"id":"","rev":0,"kind":"absent"}"#
        );
    }

    #[test]
    fn entries_read_back_as_written_and_nothing_else_reads() {
        let email = Email::parse("a@x.io").expect("email");
        let user = user(2, 5);
        let written = Entry::User(user.clone()).encode().expect("json");
        assert_eq!(
            decode_entry(&written, &email),
            Some(Cached::User(user.clone()))
        );
        let tombstone = Entry::Absent(user.deleted()).encode().expect("json");
        assert_eq!(
            decode_entry(&tombstone, &email),
            Some(Cached::Absent {
                id: user.id.clone()
            })
        );
        assert_eq!(
            decode_entry(br#"{"kind":"absent"}"#, &email),
            Some(Cached::Absent { id: String::new() })
        );
        let user_json = serde_json::to_string(&user).expect("json");
        let tag_last = format!(r#"{{"user":{user_json},"kind":"user"}}"#);
        assert_eq!(
            decode_entry(tag_last.as_bytes(), &email),
            Some(Cached::User(user))
        );
        let other = Email::parse("b@x.io").expect("email");
        assert_eq!(decode_entry(&written, &other), None, "another user's entry");
        for corrupt in [
            &b"{"[..],
            b"null",
            br#"{"kind":"user"}"#,
            br#"{"kind":"user","user":null}"#,
            br#"{"kind":"ghost"}"#,
            br#"{"user":{}}"#,
            br#"{"kind":"user","user":{"id":"1"}}"#,
            b"\xff\xfe",
        ] {
            assert_eq!(
                decode_entry(corrupt, &email),
                None,
                "{}",
                String::from_utf8_lossy(corrupt)
            );
        }
    }
}
