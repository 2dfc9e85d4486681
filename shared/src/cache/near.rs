//! A copy of one hot read in the instance's own memory, for reads `API.md` lets be a little
//! stale: the feed's first page may lag a write by up to 1 s ("Freshness of cached reads").
//!
//! Every feed read on every instance wants the same entries (the feed's window, and the posts
//! on its first page), so in Redis they are a few keys on a few nodes: at 100,000 feed reads a
//! second, those keys alone would be the cache's limit (BENCHMARKS.md, "Scale"). Kept here for
//! [`NEAR_AGE`], they are read from Redis a few times a second per instance instead, however
//! many requests the instance serves. This instance's own writes to the feed drop its copy, so
//! it reads them at once.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a copy serves: with the time a write takes to reach Redis and a read to leave it,
/// well inside the feed's 1 s.
pub const NEAR_AGE: Duration = Duration::from_millis(250);

/// A copy: when it was read, and what.
type Copy<T> = Option<(Instant, Arc<T>)>;

/// One read's result and when it was read. Cheap to clone (shared).
pub struct Near<T: ?Sized> {
    slot: Arc<RwLock<Copy<T>>>,
}

impl<T: ?Sized> Clone for Near<T> {
    fn clone(&self) -> Self {
        Near {
            slot: Arc::clone(&self.slot),
        }
    }
}

impl<T: ?Sized> Default for Near<T> {
    fn default() -> Self {
        Near {
            slot: Arc::new(RwLock::new(None)),
        }
    }
}

impl<T: ?Sized> Near<T> {
    /// The copy, if one was read within [`NEAR_AGE`].
    pub fn get(&self) -> Option<Arc<T>> {
        let slot = self.slot.read().unwrap_or_else(|e| e.into_inner());
        slot.as_ref()
            .filter(|(read, _)| read.elapsed() < NEAR_AGE)
            .map(|(_, raw)| Arc::clone(raw))
    }

    /// Keeps `raw`, read at `read` (taken before the read was sent, so the copy never looks
    /// younger than it is).
    pub fn set(&self, read: Instant, raw: Arc<T>) {
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
        let near = Near::<[u8]>::default();
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
