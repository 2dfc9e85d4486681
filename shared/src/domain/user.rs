//! A user as the rest of the system sees it: no password hash, ever.

use serde::{Deserialize, Serialize};

use super::values::Email;

/// The user that authentication yields and the cache holds. The password hash lives only in
/// the store's item, so it can never leak through the cache or a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: Email,
    pub name: String,
    /// Bumped by logout; a token is valid only while its `jwtVersion` equals this.
    pub jwt_version: u64,
    /// Bumped by every change of the user, in the same write as the change, so that of two
    /// copies of one user the cache can always keep the newer ([`Version`]). Items written
    /// before revisions existed read as 0.
    #[serde(default)]
    pub revision: u64,
    /// Which registration of its email this user is: 1 for the first, and one more than the
    /// deleted user's for each registration after a delete (the delete leaves a tombstone
    /// holding it). It orders the users of an email without any clock ([`Version`]). Users
    /// registered before it existed read as 0 (unknown). Read from the table; never written
    /// into JSON (the cache's entry carries it in its version, `cache::entry::Revision`, and
    /// the store writes it beside the item's other attributes).
    #[serde(default, skip_serializing)]
    pub registration: u64,
    pub created_at: String,
}

impl User {
    /// The public representation of the contract.
    pub fn view(&self) -> UserView<'_> {
        UserView {
            id: &self.id,
            email: self.email.as_str(),
            name: &self.name,
            created_at: &self.created_at,
        }
    }

    /// Where this state of the user stands among all states of its email.
    pub fn version(&self) -> Version {
        Version {
            registration: self.registration,
            revision: self.revision,
            id: self.id.clone(),
        }
    }

    /// The version of "this user was deleted": newer than the user's last state, older than
    /// any later user of the email.
    pub fn deleted(&self) -> Version {
        Version {
            registration: self.registration,
            revision: self.revision + 1,
            id: self.id.clone(),
        }
    }
}

/// `User` in `API.md`: `{id, email, name, createdAt}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub created_at: &'a str,
}

/// The order of the states an email goes through: every user of an email is newer than every
/// state of an earlier one (its `registration` is the earlier one's plus one: a registration
/// continues from the tombstone the delete left in the table), and within one user a higher
/// revision is newer. Compared field by field, registration first, then revision, as the
/// derived `Ord` does; the cache's compare-and-set script orders the same way. No clock is in
/// it: ids are ULIDs, which order by the clock of the instance that made them, and a
/// re-registration on an instance whose clock is behind must still be the newer user. The id
/// comes last, only to name the user.
///
/// `Version::NONE` is older than everything: the version of "DynamoDB has no user here" when
/// there is no deleted user to name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub registration: u64,
    pub revision: u64,
    pub id: String,
}

impl Version {
    pub const NONE: Version = Version {
        registration: 0,
        revision: 0,
        id: String::new(),
    };

    /// The version of "user `id`, registration `registration` of its email, is gone", for one
    /// who knows which user was deleted but not at which revision (`cache-sync`, from the
    /// email's tombstone item): past every state that user ever had, whatever its last
    /// revision (no revision reaches `u64::MAX`), so never older than [`User::deleted`]; and,
    /// registration first, older than every later user of the email.
    pub fn gone_for_good(registration: u64, id: impl Into<String>) -> Version {
        Version {
            registration,
            revision: u64::MAX,
            id: id.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, registration: u64, revision: u64) -> Version {
        Version {
            registration,
            revision,
            id: id.into(),
        }
    }

    #[test]
    fn a_later_user_is_newer_than_any_state_of_an_earlier_one() {
        // The later user's id sorts first (made on a clock behind): the registration decides.
        let (old, new) = ("01J00000000000000000000000", "01H00000000000000000000000");
        assert!(v(old, 1, 2) > v(old, 1, 1));
        assert!(v(new, 2, 1) > v(old, 1, 99));
        assert!(v(old, 1, 1) > Version::NONE);
        assert!(v(old, 0, 0) > Version::NONE, "any id beats no id");
        let user = User {
            id: old.into(),
            email: Email::parse("a@x.io").expect("email"),
            name: "A".into(),
            jwt_version: 1,
            revision: 3,
            registration: 1,
            created_at: "t".into(),
        };
        assert!(user.deleted() > user.version());
        assert!(v(new, 2, 1) > user.deleted());
        let gone = Version::gone_for_good(1, old);
        assert!(gone >= user.deleted(), "never older than the delete's own");
        assert!(
            gone > v(old, 1, u64::MAX - 1),
            "past any revision of the user"
        );
        assert!(v(new, 2, 0) > gone, "a later registration is newer");
    }
}
