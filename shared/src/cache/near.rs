//! A copy of one hot entry in the instance's own memory, for reads `API.md` lets be a little
//! stale: the feed's first page may lag a write by up to 1 s ("Freshness of cached reads").
//!
//! Every feed read on every instance wants the same entry, so in Redis it is one key on one
//! node: at 100,000 feed reads a second, that key alone would be the cache's limit
//! (BENCHMARKS.md, "Scale"). Kept here for [`NEAR_AGE`], it is read from Redis a few times a
//! second per instance instead, and a warm feed read waits on Redis only for the posts it
//! shows. This instance's own writes to the feed drop its copy, so it reads them at once.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a copy serves: with the time a write takes to reach Redis and a read to leave it,
/// well inside the feed's 1 s.
pub const NEAR_AGE: Duration = Duration::from_millis(250);

/// A copy: when it was read, and its bytes.
type Copy = Option<(Instant, Arc<[u8]>)>;

/// One entry's raw bytes and when they were read. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Near {
    slot: Arc<RwLock<Copy>>,
}

impl Near {
    /// The copy, if one was read within [`NEAR_AGE`].
    pub fn get(&self) -> Option<Arc<[u8]>> {
        let slot = self.slot.read().unwrap_or_else(|e| e.into_inner());
        slot.as_ref()
            .filter(|(read, _)| read.elapsed() < NEAR_AGE)
            .map(|(_, raw)| Arc::clone(raw))
    }

    /// Keeps `raw`, read from Redis at `read` (taken before the read was sent, so the copy
    /// never looks younger than it is).
    pub fn set(&self, read: Instant, raw: Arc<[u8]>) {
        let mut slot = self.slot.write().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(|(held, _)| *held <= read) {
            *slot = Some((read, raw));
        }
    }

    /// Drops the copy: this instance changed the entry.
    pub fn clear(&self) {
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_serves_for_its_age_and_never_goes_back_in_time() {
        let near = Near::default();
        assert!(near.get().is_none());
        let first = Instant::now();
        near.set(first, Arc::from(&b"new"[..]));
        near.set(
            first - Duration::from_millis(10),
            Arc::from(&b"older read"[..]),
        );
        assert_eq!(near.get().as_deref(), Some(&b"new"[..]));
        near.clear();
        assert!(near.get().is_none());
        near.set(Instant::now() - NEAR_AGE, Arc::from(&b"old"[..]));
        assert!(near.get().is_none(), "past its age");
    }
}
