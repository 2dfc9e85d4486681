//! A user as the rest of the system sees it: no password hash, ever.

use serde::{Deserialize, Serialize};

use super::Email;

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
            id: self.id.clone(),
            revision: self.revision,
        }
    }

    /// The version of "this user was deleted": newer than the user's last state, older than
    /// any later user of the email.
    pub fn deleted(&self) -> Version {
        Version {
            id: self.id.clone(),
            revision: self.revision + 1,
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
/// state of an earlier one (ids are ULIDs, which order by creation time, and an email has one
/// user at a time), and within one user a higher revision is newer. Compared field by field,
/// id first, as the derived `Ord` does; the cache's compare-and-set script orders the same way.
///
/// `Version::NONE` is older than everything: the version of "DynamoDB has no user here" when
/// there is no deleted user to name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub id: String,
    pub revision: u64,
}

impl Version {
    pub const NONE: Version = Version {
        id: String::new(),
        revision: 0,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, revision: u64) -> Version {
        Version {
            id: id.into(),
            revision,
        }
    }

    #[test]
    fn a_later_user_is_newer_than_any_state_of_an_earlier_one() {
        let (old, new) = ("01H00000000000000000000000", "01J00000000000000000000000");
        assert!(v(old, 2) > v(old, 1));
        assert!(v(new, 1) > v(old, 99));
        assert!(v(old, 1) > Version::NONE);
        assert!(v(old, 0) > Version::NONE, "any id beats no id");
        let user = User {
            id: old.into(),
            email: Email::parse("a@x.io").expect("email"),
            name: "A".into(),
            jwt_version: 1,
            revision: 3,
            created_at: "t".into(),
        };
        assert!(user.deleted() > user.version());
        assert!(v(new, 1) > user.deleted());
    }
}
