//! The cache of the table: Redis in front of DynamoDB, never the truth, never staler than the
//! table for anyone who saw a write answered.
//!
//! One machinery, used by every kind of entry ([`kinds`]): users by email, posts by id, the
//! feed's first posts, a post's first comments.
//!
//! - [`entry`]: the one entry format, its records and their [`Revision`]s.
//! - `cas.lua`: the one write. Every write (a miss's lease and its write-back, a change written
//!   through, a stream record applied by `cache-sync`) keeps, per item, the state with the
//!   greater revision, and a window's coverage honest, so writes may land in any order, late
//!   or twice, and the cache still ends at the table's newest state. Only a miss's lease makes
//!   an entry, and its write-back lands only in that entry: if Redis loses it meanwhile
//!   (flushed, evicted, restarted), a change that landed in it is gone too, and the reader's
//!   older read must not come back in its place. No plain `SET`, `SET NX` or `DEL` writes an
//!   entry.
//! - [`users`]: the user cache-aside (what authentication reads, what a user's change writes).
//! - [`posts`]: posts, the feed's first page and a post's first comments, cache-aside, and
//!   what a post's or comment's change writes.
//! - [`flights`]: concurrent misses of one key in one instance share one read, under the rule
//!   that keeps the freshness of `API.md`.
//! - [`near`]: the feed's first page kept in the instance itself for a moment, as `API.md`
//!   lets the feed lag, so the hottest keys are read from Redis a few times a second per
//!   instance.
//! - [`connection`]: the Redis connection: every call bounded, moved off a server that can no
//!   longer take writes. [`client`]: standalone or cluster, AUTH token or [`iam`], TLS.
//! - [`RedisCache`] (`redis_cache.rs`): the operations on entries. Reads are `GET` (or `MGET`).
//!
//! A change whose own write never lands (Redis down, refusing writes, failing over) is not
//! lost: the table's stream carries every change to `cache-sync`, which reads the item as it
//! is now and writes it through the same script.

pub mod client;
pub mod connection;
pub mod entry;
pub mod flights;
pub mod iam;
pub mod kinds;
pub mod near;
pub mod posts;
mod redis_cache;
pub mod users;

pub use client::{CacheAuth, CacheConnection};
pub use connection::{CallError, RedisConnection};
pub use entry::{Record, Revision, COMPARE_AND_SET};
pub use iam::IamTokens;
pub use kinds::{Kind, WindowKind};
pub use posts::Posts;
pub use redis_cache::{Lease, RedisCache, WindowWrite, WriteOutcome};
pub use users::{decode_entry, CacheOutcome, Cached, Entry, Lookup, Users};
