//! The user cache-aside: Redis first, DynamoDB on a miss, then Redis again.
//!
//! - **Read** ([`Users::find`]): `GET user:v4:<email>`. A hit returns with no DynamoDB call. A
//!   miss leases the entry, reads DynamoDB (strongly consistent) and writes the answer back
//!   into the entry it leased: the user, or "none" for a short while. Concurrent misses of one email in one instance (Lambda Managed
//!   Instances) share that read and write when the read was sent after they started
//!   ([`super::flights`]).
//! - **Change** (register, logout, rename, delete): DynamoDB first, in one conditional write
//!   that bumps the user's revision and returns the new state; then that state is written over
//!   the entry, so the very next request sees it. A delete leaves a tombstone naming the
//!   deleted user and its next revision.
//! - **Order cannot matter**: every write is the compare-and-set of [`RedisCache::put`], which
//!   keeps the newer state ([`Version`]). A write-back holding a read from before a change, a
//!   slow change landing after a later one, a stream record delivered twice or late: none can
//!   put an older state over a newer one, nor, once Redis lost the entry (and the newer state
//!   with it), make a new entry of it: only a miss's lease makes one.
//! - **Loss cannot matter**: a change whose write never lands (Redis down, refusing writes,
//!   failing over) reaches the cache anyway: DynamoDB's stream carries every change to the
//!   `cache-sync` function, which applies it through the same compare-and-set.
//! - **Never the truth**: every Redis call is bounded by `REDIS_TIMEOUT_MS`. On timeout or error
//!   the request is served from DynamoDB (and does not spend a second timeout writing back).
//!   A corrupt entry, one of another format, or one for another email is a miss and is
//!   overwritten. The cached value never holds the password hash.

use std::sync::Arc;
use std::time::Instant;

use super::entry::{parse, Coverage, Record, Revision};
use super::flights::Flights;
use super::kinds::user_key;
use super::redis_cache::{Lease, RedisCache, WriteOutcome};
use crate::domain::{Email, User, Version};
use crate::error::AppError;
pub use crate::metrics::CacheOutcome;
use crate::store::{NewUser, Store};

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

    /// The record the script stores: the user's id and version, and the user as JSON (never
    /// its password hash, which `User` does not hold).
    pub fn record(&self) -> Result<Record, serde_json::Error> {
        Ok(match self {
            Entry::User(user) => Record::live(
                user.id.clone(),
                Revision::of_user(&user.version()),
                "",
                serde_json::to_string(user)?,
            ),
            Entry::Absent(version) => Record::gone(version.id.clone(), Revision::of_user(version)),
        })
    }
}

/// What an entry says, as the read path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    User(User),
    /// No such user; `id` names the deleted user of a tombstone, and is empty for "DynamoDB had
    /// none"; `registration` is the deleted user's, when the entry says it.
    Absent {
        id: String,
        registration: Option<u64>,
    },
}

/// What a `GET` of an email's entry found.
#[derive(Debug)]
pub enum Lookup {
    Found(User),
    /// No such user: a tombstone (naming the deleted user's id and, when known, its
    /// registration), or a recent "DynamoDB has none" (an empty id).
    Absent {
        id: String,
        registration: Option<u64>,
    },
    /// Nothing usable: no entry, or one unreadable or for another email.
    Empty,
    /// Redis failed or was too slow.
    Failed,
}

/// What the raw value of `email`'s key says, or `None` for nothing usable (unreadable, another
/// format, another email's), which the caller treats as a miss. Never panics, whatever the
/// bytes.
pub fn decode_entry(raw: &[u8], email: &Email) -> Option<Cached> {
    let parsed = parse(raw);
    let Some(record) = parsed.as_ref().and_then(|entry| entry.item(email.as_str())) else {
        if !parsed.is_some_and(|entry| entry.coverage == Coverage::Placeholder) {
            tracing::warn!("cache entry unreadable; ignoring it");
        }
        return None;
    };
    if !record.live {
        return Some(Cached::Absent {
            id: record.id.to_owned(),
            registration: Revision::registration_of_user(record.version),
        });
    }
    match serde_json::from_str::<User>(record.body) {
        Ok(mut user) if user.email == *email && user.id == record.id => {
            // The entry's version carries it (`r<registration>.<revision>`), not its JSON.
            user.registration = Revision::registration_of_user(record.version).unwrap_or(0);
            Some(Cached::User(user))
        }
        Ok(_) => {
            tracing::warn!("cache entry holds another user; ignoring it");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cache entry unreadable; ignoring it");
            None
        }
    }
}

impl RedisCache {
    /// One `GET` of `email`'s entry; a failure is logged and reported, never raised.
    pub async fn lookup(&self, email: &Email) -> Lookup {
        match self.get(&user_key(email)).await {
            Ok(Some(raw)) => match decode_entry(&raw, email) {
                Some(Cached::User(user)) => Lookup::Found(user),
                Some(Cached::Absent { id, registration }) => Lookup::Absent { id, registration },
                None => Lookup::Empty,
            },
            Ok(None) => Lookup::Empty,
            Err(_) => Lookup::Failed,
        }
    }

    /// Writes a change, `entry`, for `email` through the compare-and-set script (into the
    /// entry there is, if any).
    pub async fn put(&self, email: &Email, entry: &Entry) -> WriteOutcome {
        let Ok(record) = entry.record() else {
            return WriteOutcome::Failed;
        };
        self.put_item(&user_key(email), email.as_str(), &record)
            .await
    }

    /// Leases `email`'s entry before a read of DynamoDB (`None`: Redis failed).
    pub async fn lease(&self, email: &Email) -> Option<Lease> {
        self.lease_item(&user_key(email), email.as_str()).await
    }

    /// Writes back what a miss read under `lease`: `entry`, into the entry it leased only (no
    /// lease: a failed write).
    pub async fn fill(&self, email: &Email, entry: &Entry, lease: Option<&Lease>) -> WriteOutcome {
        let Ok(record) = entry.record() else {
            return WriteOutcome::Failed;
        };
        self.fill_item(&user_key(email), email.as_str(), &record, lease)
            .await
    }
}

/// What a caller knows of the truth without asking: a token proves that its user existed with at
/// least its `jwtVersion` when it was issued (tokens are issued from DynamoDB). An entry older
/// than that missed a change, and only DynamoDB can say what the change was.
#[derive(Debug, Clone, Copy)]
pub struct AtLeast<'a> {
    pub id: &'a str,
    pub jwt_version: u64,
    /// Which registration of the email the token's user is (its `reg` claim; `None` in tokens
    /// issued before the claim existed).
    pub registration: Option<u64>,
}

/// The users as the functions see them: the store, fronted by the cache. Clones share the
/// reads in flight.
#[derive(Clone)]
pub struct Users {
    store: Store,
    cache: RedisCache,
    reads: Arc<Flights<Result<Option<User>, AppError>>>,
}

impl Users {
    pub fn new(store: Store, cache: RedisCache) -> Self {
        Users {
            store,
            cache,
            reads: Arc::default(),
        }
    }

    /// Requests waiting on a DynamoDB read of `email` in this instance (joined or queued).
    pub fn reads_waiting(&self, email: &Email) -> usize {
        self.reads.waiting(email.as_str())
    }

    pub fn cache(&self) -> &RedisCache {
        &self.cache
    }

    /// The user with this email, cache-aside, and where the answer came from. An entry
    /// provably older than `at_least` is not trusted: DynamoDB is read and the entry rewritten.
    /// A token *older* than the entry is refused from the cache, so a revoked token costs no
    /// DynamoDB call.
    pub async fn find(
        &self,
        email: &Email,
        at_least: Option<AtLeast<'_>>,
    ) -> Result<(Option<User>, CacheOutcome), AppError> {
        let started = Instant::now();
        match self.cache.lookup(email).await {
            Lookup::Found(user)
                if at_least.is_some_and(|t| {
                    t.outdates(&user.id, Some(user.jwt_version), known(user.registration))
                }) =>
            {
                tracing::warn!("cache entry older than the token; reading DynamoDB");
            }
            Lookup::Found(user) => return Ok((Some(user), CacheOutcome::Hit)),
            Lookup::Absent { id, registration }
                if at_least.is_some_and(|t| t.outdates(&id, None, registration)) =>
            {
                tracing::warn!(
                    "cache entry names a user deleted before the token's; reading DynamoDB"
                );
            }
            Lookup::Absent { .. } => return Ok((None, CacheOutcome::Negative)),
            // Redis just failed: do not spend a second timeout writing back to it.
            Lookup::Failed => return Ok((self.store.get_user(email).await?, CacheOutcome::Error)),
            Lookup::Empty => {}
        }
        let user = self
            .reads
            .run(email.as_str(), started, || self.read_through(email))
            .await?;
        Ok((user, CacheOutcome::Miss))
    }

    /// A miss: the entry leased, DynamoDB's answer, written back into the leased entry (none
    /// when the lease failed: Redis is failing, and the request does not wait on it again).
    async fn read_through(&self, email: &Email) -> Result<Option<User>, AppError> {
        let lease = self.cache.lease(email).await;
        let user = self.store.get_user(email).await?;
        let entry = match &user {
            Some(user) => Entry::User(user.clone()),
            None => Entry::Absent(Version::NONE),
        };
        self.cache.fill(email, &entry, lease.as_ref()).await;
        Ok(user)
    }

    /// The user and its password hash, straight from DynamoDB: the hash is never cached.
    pub async fn credentials(&self, email: &Email) -> Result<Option<(User, String)>, AppError> {
        Ok(self.store.get_user_with_hash(email).await?)
    }

    /// Creates the user and caches it (over any "no such user" entry), so its first requests
    /// are hits. Its entry is leased before the user is written, as a miss's is before its
    /// read: the new user lands in it, and never in an entry made after a loss of it.
    pub async fn register(&self, new: NewUser) -> Result<User, AppError> {
        let email = new.user.email.clone();
        let lease = self.cache.lease(&email).await;
        let user = self.store.create_user(new).await?;
        self.cache
            .fill(&email, &Entry::User(user.clone()), lease.as_ref())
            .await
            .warn_if_failed("a registration");
        Ok(user)
    }

    /// Revokes every token `user` was issued so far by bumping `jwtVersion`.
    pub async fn logout(&self, user: &User) -> Result<User, AppError> {
        let user = self.store.bump_jwt_version(user).await?;
        self.publish(&user.email, Entry::User(user.clone())).await;
        Ok(user)
    }

    pub async fn rename(&self, user: &User, name: String) -> Result<User, AppError> {
        let user = self.store.rename_user(user, name).await?;
        self.publish(&user.email, Entry::User(user.clone())).await;
        Ok(user)
    }

    pub async fn delete(&self, user: &User) -> Result<(), AppError> {
        let deleted = self.store.delete_user(user).await?;
        self.publish(&deleted.email, Entry::Absent(deleted.deleted()))
            .await;
        Ok(())
    }

    /// Writes a change through to the cache after DynamoDB took it. If Redis cannot take it
    /// now, the change is not lost: the table's stream brings it to `cache-sync`, which
    /// writes it as soon as Redis takes writes again.
    async fn publish(&self, email: &Email, entry: Entry) {
        self.cache
            .put(email, &entry)
            .await
            .warn_if_failed("a user's change");
    }
}

/// A user's registration as the cache can use it: 0 is a user registered before registrations
/// were counted, whose place is unknown.
fn known(registration: u64) -> Option<u64> {
    (registration > 0).then_some(registration)
}

impl AtLeast<'_> {
    /// Whether an entry of user `id` (at `jwt_version`; `None` for that user's tombstone; of
    /// registration `registration`, when known) is provably older than what the token proves.
    /// `jwtVersion`s only grow, and so do an email's registrations (each continues from the
    /// tombstone of the one before), so a token newer than the entry means the entry missed a
    /// change: a logout whose write never landed, or a delete and a new registration of the
    /// email. A tombstone of the token's own user is newer than any of its tokens; "DynamoDB had
    /// none" (an empty id) proves nothing. Users are compared by registration, never by their
    /// ids' time, which is only the clock of the instance that made them; only where either
    /// side does not know its registration (a token or an entry from before registrations were
    /// counted) do the ids (ULIDs) decide, as before.
    fn outdates(&self, id: &str, jwt_version: Option<u64>, registration: Option<u64>) -> bool {
        if id == self.id {
            return jwt_version.is_some_and(|cached| cached < self.jwt_version);
        }
        if id.is_empty() {
            return false;
        }
        match (self.registration, registration) {
            (Some(token), Some(entry)) => token > entry,
            _ => id < self.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, jwt_version: u64) -> AtLeast<'_> {
        AtLeast {
            id,
            jwt_version,
            registration: None,
        }
    }

    #[test]
    fn only_a_token_newer_than_the_entry_sends_the_lookup_to_dynamodb() {
        let (old, new) = ("01H00000000000000000000000", "01J00000000000000000000000");
        assert!(!token(old, 2).outdates(old, Some(2), None), "current");
        assert!(!token(old, 1).outdates(old, Some(2), None), "revoked token");
        assert!(
            token(old, 2).outdates(old, Some(1), None),
            "entry missed a logout"
        );
        assert!(
            !token(old, 1).outdates(new, Some(1), None),
            "token of an earlier user"
        );
        assert!(
            !token(old, 5).outdates(new, Some(1), None),
            "an earlier user's version says nothing"
        );
        assert!(
            token(new, 1).outdates(old, Some(1), None),
            "entry missed a delete and re-registration"
        );
        assert!(
            !token(old, 9).outdates(old, None, None),
            "the token's own user's tombstone"
        );
        assert!(
            token(new, 1).outdates(old, None, None),
            "the tombstone of an earlier user of the email"
        );
        assert!(
            !token(new, 1).outdates("", None, None),
            "DynamoDB had none: proves nothing"
        );
    }

    #[test]
    fn registrations_decide_between_users_whatever_their_ids() {
        // The later user's id sorts first: it was made on an instance whose clock is behind.
        let (earlier, later) = ("01J00000000000000000000000", "01H00000000000000000000000");
        let registered = |id, registration| AtLeast {
            id,
            jwt_version: 1,
            registration: Some(registration),
        };
        assert!(
            registered(later, 2).outdates(earlier, Some(1), Some(1)),
            "entry missed a delete and re-registration"
        );
        assert!(
            registered(later, 2).outdates(earlier, None, Some(1)),
            "the tombstone of the earlier user"
        );
        assert!(
            !registered(earlier, 1).outdates(later, Some(1), Some(2)),
            "token of the earlier user: refused from the cache"
        );
        assert!(
            !registered(earlier, 1).outdates(earlier, None, Some(1)),
            "its own tombstone"
        );
    }
}
