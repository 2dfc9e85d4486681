//! The state of the cache a test world's requests meet: `TEST_CACHE_STATE`.
//!
//! The contract holds whatever the cache holds (API.md, "Freshness of cached reads"): the API
//! suites run unchanged with the cache warm (the default: entries written by earlier requests
//! are there to hit), empty (every entry gone before each request, so every read is a miss and
//! its write-back lands in an empty cache) and down (the app's Redis a closed port, so every
//! read is a fallback to the table). `scripts/test` runs them all three ways.

use redis::AsyncCommands;

use crate::TestRedis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// Entries stay between requests.
    Warm,
    /// Every node flushed before each request a world sends.
    Empty,
    /// The world's apps and instances reach no Redis; the stream's consumers still write to
    /// the world's own (it is their cache being down, not the stream's).
    Down,
}

/// This run's state: `TEST_CACHE_STATE` (`warm`, `empty` or `down`; unset is `warm`).
pub fn test_cache_state() -> CacheState {
    match std::env::var("TEST_CACHE_STATE").as_deref() {
        Err(_) | Ok("") | Ok("warm") => CacheState::Warm,
        Ok("empty") => CacheState::Empty,
        Ok("down") => CacheState::Down,
        Ok(other) => panic!("TEST_CACHE_STATE must be `warm`, `empty` or `down`, not {other:?}"),
    }
}

/// Where an app's Redis is in state `state`: `url`, or a closed port when the cache is down.
pub fn app_redis_url(state: CacheState, url: &str) -> String {
    match state {
        CacheState::Down => format!("redis://127.0.0.1:{}", crate::closed_port()),
        CacheState::Warm | CacheState::Empty => url.to_owned(),
    }
}

/// Before a request: in state `Empty`, every node of `redis` flushed.
pub async fn before_request(state: CacheState, redis: &TestRedis) {
    if state != CacheState::Empty {
        return;
    }
    for node in redis.nodes() {
        let mut connection = node.connection().await.expect("a connection to a node");
        let _: () = connection.flushall().await.expect("FLUSHALL");
    }
}
