//! The domain: users, posts and comments, their rules and limits.
//!
//! Nothing here knows about HTTP or DynamoDB. Values are validated when they are built
//! (`Email::parse`, `Caption::parse`, ...), so a value of these types is always within the
//! contract's limits.

pub mod comment;
pub mod post;
pub mod user;
pub mod values;

pub use comment::Comment;
pub use post::{ExpectedVersion, Post, PostPatch};
pub use user::{User, UserView, Version};

pub use values::{Caption, CommentText, Email, ImageUrl, Invalid, Name, Password};

/// The current instant as an RFC 3339 UTC string with millisecond precision
/// (`2026-11-26T20:08:42.123Z`), the contract's timestamp format.
pub fn now_rfc3339() -> String {
    use time::macros::format_description;
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

/// A new, time-ordered, opaque id: ULIDs sort by creation time, which the feed and comment
/// lists rely on, and are safe in keys and URLs.
pub fn new_id() -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut guard = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let generator = guard.get_or_insert_with(ulid::Generator::new);
    // Monotonic within this process; falls back to a fresh ULID on the (2^80 per ms) overflow.
    generator
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

/// Where an instance reads the time for the ids it makes: the system clock, or (for tests of
/// clock skew between instances) one running a fixed amount behind it. Nothing that orders a
/// user's states may depend on it (`Version`): instances' clocks disagree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    behind: std::time::Duration,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// A clock running `behind` the system's, as an instance's whose clock is skewed.
    pub fn behind(behind: std::time::Duration) -> Self {
        Clock { behind }
    }

    /// A new id ([`new_id`]) at this clock's time.
    pub fn new_id(&self) -> String {
        if self.behind.is_zero() {
            return new_id();
        }
        let at = std::time::SystemTime::now()
            .checked_sub(self.behind)
            .unwrap_or(std::time::UNIX_EPOCH);
        ulid::Ulid::from_datetime(at).to_string()
    }
}

/// Whether `id` could be one of ours: ids from clients are checked before they reach a key.
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 26 && ulid::Ulid::from_string(id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ordered_and_valid() {
        let a = new_id();
        let b = new_id();
        assert!(a < b);
        assert!(is_valid_id(&a));
        assert!(!is_valid_id("../../etc/passwd"));
        assert!(!is_valid_id(""));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let now = now_rfc3339();
        assert!(now.ends_with('Z'));
        assert!(
            time::OffsetDateTime::parse(&now, &time::format_description::well_known::Rfc3339)
                .is_ok()
        );
    }
}
