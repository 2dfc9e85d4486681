//! Single-flight for cache misses: concurrent misses of one key in one instance share one read
//! of the truth, and so one DynamoDB read and one cache write instead of one each.
//!
//! On Lambda Managed Instances an environment serves many invocations at once, and the first
//! requests after an entry expires all miss together. Sharing the read is safe only under one
//! rule, the contract's "Revocation": a request must never get a state older than a change that
//! completed before the request started. A read sent *after* the request started sees every
//! such change (the read is strongly consistent). A read already in flight when the request
//! started may have been answered before the change, so it is not shared with that request.
//!
//! So a request (started at `started`) that finds a flight for its key:
//! - joins it if the flight's read was sent at or after `started`;
//! - otherwise waits for that flight to land, then joins the next flight, or starts it. The
//!   next flight's read is sent after the current one lands, so after every request that
//!   waited for it started: all of them share it. A key has at most one read in flight, and
//!   a crowd of misses costs at most two reads.
//!
//! "Sent at" is taken before the read is handed to the client, and `started` when the request
//! began its lookup, after it arrived: both err on the side of not sharing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

/// The reads in flight, by key. Built once per instance, shared by every invocation.
pub struct Flights<T> {
    in_flight: Mutex<HashMap<String, Arc<Flight<T>>>>,
}

/// One read: when it was sent, and its result once it has landed.
struct Flight<T> {
    sent_at: Instant,
    landed: watch::Sender<Option<T>>,
}

/// What a request does with the flight it found.
enum Turn<T> {
    /// Share this flight's result.
    Join(watch::Receiver<Option<T>>),
    /// Wait for this flight to land, then look again.
    Wait(watch::Receiver<Option<T>>),
    /// Send the read.
    Lead(Arc<Flight<T>>),
}

impl<T: Clone> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            in_flight: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Flights<T> {
    /// `read`'s result for `key`: from a flight sent at or after `started` if there is one,
    /// otherwise from running `read` (which then is that flight).
    pub async fn run<F, Fut>(&self, key: &str, started: Instant, read: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        loop {
            let mut seen = match self.turn(key, started) {
                Turn::Lead(flight) => return self.lead(key, flight, read).await,
                Turn::Join(seen) => seen,
                Turn::Wait(mut seen) => {
                    // Landed, or its leader was cancelled (the flight is gone): look again.
                    let _ = seen.wait_for(Option::is_some).await;
                    continue;
                }
            };
            let landed = seen
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|landed| landed.clone());
            if let Some(value) = landed {
                return value;
            }
            // The leader was cancelled before its read landed: look again (and maybe lead).
        }
    }

    /// How many requests wait on `key`'s flight (joined or queued behind it): for tests and
    /// diagnostics.
    pub fn waiting(&self, key: &str) -> usize {
        self.lock()
            .get(key)
            .map_or(0, |f| f.landed.receiver_count())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Flight<T>>>> {
        // A panic elsewhere while holding the lock leaves the map consistent (every change to
        // it is one insert or remove), so a poisoned lock is still good to use.
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn turn(&self, key: &str, started: Instant) -> Turn<T> {
        let mut in_flight = self.lock();
        match in_flight.get(key) {
            Some(flight) if flight.sent_at >= started => Turn::Join(flight.landed.subscribe()),
            Some(flight) => Turn::Wait(flight.landed.subscribe()),
            None => {
                let flight = Arc::new(Flight {
                    sent_at: Instant::now(),
                    landed: watch::channel(None).0,
                });
                in_flight.insert(key.to_owned(), Arc::clone(&flight));
                Turn::Lead(flight)
            }
        }
    }

    async fn lead<F, Fut>(&self, key: &str, flight: Arc<Flight<T>>, read: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        // Cancelled mid-read, the flight still leaves the map, and its waiters look again.
        let mut grounded = Grounded {
            flights: self,
            key,
            flight: Some(&flight),
        };
        let value = read().await;
        // Off the map before the result is out: a request that starts from here on must not
        // find this flight (its read was sent before that request started).
        grounded.land();
        flight.landed.send_replace(Some(value.clone()));
        value
    }
}

/// Takes a flight off the map when its leader is done with it, or dropped.
struct Grounded<'a, T> {
    flights: &'a Flights<T>,
    key: &'a str,
    flight: Option<&'a Arc<Flight<T>>>,
}

impl<T> Grounded<'_, T> {
    fn land(&mut self) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        let mut in_flight = self
            .flights
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if in_flight
            .get(self.key)
            .is_some_and(|current| Arc::ptr_eq(current, flight))
        {
            in_flight.remove(self.key);
        }
    }
}

impl<T> Drop for Grounded<'_, T> {
    fn drop(&mut self) {
        self.land();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn requests_that_started_before_the_read_was_sent_share_it() {
        let flights = Flights::<usize>::default();
        let reads = AtomicUsize::new(0);
        let started = Instant::now();
        let read = || async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            reads.fetch_add(1, Ordering::SeqCst) + 1
        };
        let all = futures_join(&flights, started, read, 10).await;
        assert_eq!(all, vec![1; 10]);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert_eq!(flights.waiting("k"), 0, "landed flights leave the map");
    }

    #[tokio::test]
    async fn a_request_that_started_after_the_read_was_sent_waits_for_the_next_one() {
        let flights = Flights::<usize>::default();
        let reads = AtomicUsize::new(0);
        let read = || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            reads.fetch_add(1, Ordering::SeqCst) + 1
        };
        let first = flights.run("k", Instant::now(), read);
        let later = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            // Three requests start while the first read is in flight: they share the next.
            let started = Instant::now();
            futures_join(&flights, started, read, 3).await
        };
        let (first, later) = tokio::join!(first, later);
        assert_eq!(first, 1);
        assert_eq!(later, vec![2; 3], "not the read sent before they started");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_the_read_to_a_waiter() {
        let flights = Flights::<usize>::default();
        let started = Instant::now();
        let stuck = flights.run("k", started, std::future::pending::<usize>);
        let joined = flights.run("k", started, || async { 9 });
        let cancelled = tokio::time::timeout(Duration::from_millis(20), stuck);
        let (cancelled, joined) = tokio::join!(cancelled, async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            joined.await
        });
        assert!(cancelled.is_err());
        assert_eq!(joined, 9, "the waiter read for itself");
        assert_eq!(flights.waiting("k"), 0);
    }

    #[tokio::test]
    async fn keys_do_not_share() {
        let flights = Flights::<String>::default();
        let started = Instant::now();
        let (a, b) = tokio::join!(
            flights.run("a", started, || async { "a".to_owned() }),
            flights.run("b", started, || async { "b".to_owned() })
        );
        assert_eq!((a.as_str(), b.as_str()), ("a", "b"));
    }

    /// `n` requests for key `k`, all started at `started`, polled together (a join, not one
    /// after another), as concurrent invocations are.
    async fn futures_join<F, Fut>(
        flights: &Flights<usize>,
        started: Instant,
        read: F,
        n: usize,
    ) -> Vec<usize>
    where
        F: Fn() -> Fut + Copy,
        Fut: Future<Output = usize>,
    {
        futures::future::join_all((0..n).map(|_| flights.run("k", started, read))).await
    }
}
