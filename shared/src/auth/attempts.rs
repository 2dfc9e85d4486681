//! Abuse limits (API.md, "Abuse limits"): failed logins are counted per pair of email and
//! source IP and per source IP, in Redis, and past a limit the pair (or the IP) gets `429`
//! until its window ends, even with the right password. Registrations refused because the
//! email is taken are counted per source IP the same way, so nobody can test which emails
//! exist faster than the limit.
//!
//! - **Counted before the password is checked.** A login *reserves* its attempt on both
//!   counters first (one script per counter, `attempts.lua`, which counts only while under the
//!   limit), and the check runs only if both took it. A failure turns the reservations into
//!   failures; a success clears the pair and gives the IP its attempt back; a login that ended
//!   otherwise (a database error) gives both back. So a burst of parallel guesses cannot all
//!   pass a check made before any of them failed: the limit holds at any concurrency. A
//!   registration reserves on its IP's counter the same way, and only an `email_taken` keeps it.
//! - **Fixed windows, from the first failure.** A counter's window starts with its first
//!   failure and ends `window` later (the key's TTL); `Retry-After` is the time left in it. A
//!   reservation starts no window (a success before any failure must not shorten the window of
//!   the failures that follow it); it only gives the key a TTL, so that a reservation whose
//!   function died is not kept for ever.
//! - **Redis down: fail open.** Redis is a cache, never the truth, and logins must not stop
//!   with it: a counter that cannot be read or written within `REDIS_TIMEOUT_MS` admits the
//!   attempt, with a warning in the log. The password check itself (Argon2id, tens of
//!   milliseconds of CPU) and the API's throttling bound guessing meanwhile.
//! - **Keys.** `login:v2:pair:<sha256 of ip and email>`, `login:v2:ip:<ip>` and
//!   `register:v1:ip:<ip>`, each a hash of failures and reservations: single keys
//!   (cluster-safe), and no email in a key name. Only an attempt's own IP counter is touched,
//!   so nobody can lock a user out from another IP. (`v2`: `v1` keys were plain counters.)

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cache::RedisConnection;
use crate::config::{LoginLimits, RegistrationLimits};

/// The counters of failed logins and refused registrations, over the cache's Redis
/// connection. Built once per instance.
#[derive(Clone)]
pub struct LoginAttempts {
    conn: RedisConnection,
    script: Arc<redis::Script>,
    limits: LoginLimits,
    registration: RegistrationLimits,
}

/// Whether a login (or a registration) may go on.
#[derive(Debug)]
pub enum Admission {
    /// It may; what it reserved must be settled ([`LoginAttempts::settle`],
    /// [`LoginAttempts::settle_registration`]).
    Allowed(Reservation),
    /// Its pair or its IP is over the limit for `retry_after` more seconds.
    Refused { retry_after: u64 },
}

/// The attempts a login or registration reserved, by counter (`None` where Redis could not
/// count it, or where the kind has no such counter).
#[derive(Debug)]
pub struct Reservation {
    pair: Option<Counter>,
    ip: Option<Counter>,
}

/// One counter's key and its window, which a failure needs to start the window.
#[derive(Debug)]
struct Counter {
    key: String,
    window: Duration,
}

/// How a login ended, for its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Right email and password: the pair starts over, the IP gets its attempt back.
    Succeeded,
    /// Unknown email or wrong password: both attempts are counted as failures.
    Failed,
    /// Neither (the database could not answer): both attempts are given back.
    Undecided,
}

enum Counted {
    Yes,
    /// At the limit, for this many more milliseconds.
    Full(u64),
    /// Redis could not say.
    Unknown,
}

impl LoginAttempts {
    pub fn new(
        conn: RedisConnection,
        limits: LoginLimits,
        registration: RegistrationLimits,
    ) -> Self {
        LoginAttempts {
            conn,
            script: Arc::new(redis::Script::new(include_str!("attempts.lua"))),
            limits,
            registration,
        }
    }

    /// Reserves an attempt of `email` (as typed, normalized if it is an email at all) from
    /// `ip`, or refuses it.
    pub async fn admit(&self, email: &str, ip: &str) -> Admission {
        let window = self.limits.window;
        let pair = Counter {
            key: pair_key(email, ip),
            window,
        };
        let ip = Counter {
            key: ip_key(ip),
            window,
        };
        let pair = match self.reserve(&pair, self.limits.per_pair).await {
            Counted::Full(left) => return refused(left),
            Counted::Yes => Some(pair),
            Counted::Unknown => None,
        };
        let ip = match self.reserve(&ip, self.limits.per_ip).await {
            Counted::Full(left) => {
                if let Some(pair) = &pair {
                    self.release(pair).await;
                }
                return refused(left);
            }
            Counted::Yes => Some(ip),
            Counted::Unknown => None,
        };
        Admission::Allowed(Reservation { pair, ip })
    }

    /// Settles what a login reserved, once it knows how it ended.
    pub async fn settle(&self, reservation: Reservation, outcome: Outcome) {
        let Reservation { pair, ip } = reservation;
        match outcome {
            Outcome::Failed => {
                tokio::join!(self.fail_if(pair.as_ref()), self.fail_if(ip.as_ref()));
            }
            Outcome::Succeeded => {
                let clear_pair = async {
                    if let Some(pair) = &pair {
                        let key = pair.key.as_str();
                        let cleared = self.conn.call(|mut conn| async move {
                            redis::cmd("DEL")
                                .arg(key)
                                .query_async::<i64>(&mut conn)
                                .await
                        });
                        if let Err(e) = cleared.await {
                            tracing::warn!(error = %e, "could not clear a login pair's failures");
                        }
                    }
                };
                tokio::join!(clear_pair, self.release_if(ip.as_ref()));
            }
            Outcome::Undecided => {
                tokio::join!(self.release_if(pair.as_ref()), self.release_if(ip.as_ref()));
            }
        }
    }

    /// Reserves a registration from `ip` on its IP's counter of refused registrations, or
    /// refuses it while that IP is over the limit.
    pub async fn admit_registration(&self, ip: &str) -> Admission {
        let counter = Counter {
            key: registration_key(ip),
            window: self.registration.window,
        };
        match self.reserve(&counter, self.registration.per_ip).await {
            Counted::Full(left) => refused(left),
            Counted::Yes => Admission::Allowed(Reservation {
                pair: None,
                ip: Some(counter),
            }),
            Counted::Unknown => Admission::Allowed(Reservation {
                pair: None,
                ip: None,
            }),
        }
    }

    /// Settles a registration's reservation: counted when it was refused because the email is
    /// taken (what tells that an email exists), given back otherwise.
    pub async fn settle_registration(&self, reservation: Reservation, email_taken: bool) {
        let Reservation { ip, .. } = reservation;
        if email_taken {
            self.fail_if(ip.as_ref()).await;
        } else {
            self.release_if(ip.as_ref()).await;
        }
    }

    async fn reserve(&self, counter: &Counter, limit: u32) -> Counted {
        let window_ms = counter.window.as_millis() as u64;
        let answer = self.conn.call(|mut conn| {
            let mut invocation = self.script.key(&counter.key);
            invocation.arg("reserve").arg(limit).arg(window_ms);
            async move { invocation.invoke_async::<(i64, i64)>(&mut conn).await }
        });
        match answer.await {
            Ok((1, _)) => Counted::Yes,
            Ok((_, left)) => Counted::Full(left.max(0) as u64),
            Err(e) => {
                tracing::warn!(error = %e, "attempts cannot be counted; admitting the attempt");
                Counted::Unknown
            }
        }
    }

    async fn fail_if(&self, counter: Option<&Counter>) {
        if let Some(counter) = counter {
            self.settle_one(counter, "fail").await;
        }
    }

    async fn release_if(&self, counter: Option<&Counter>) {
        if let Some(counter) = counter {
            self.release(counter).await;
        }
    }

    async fn release(&self, counter: &Counter) {
        self.settle_one(counter, "release").await;
    }

    async fn settle_one(&self, counter: &Counter, how: &'static str) {
        let window_ms = counter.window.as_millis() as u64;
        let answer = self.conn.call(|mut conn| {
            let mut invocation = self.script.key(&counter.key);
            invocation.arg(how).arg(0).arg(window_ms);
            async move { invocation.invoke_async::<(i64, i64)>(&mut conn).await }
        });
        if let Err(e) = answer.await {
            tracing::warn!(error = %e, how, "could not settle a reserved attempt");
        }
    }
}

fn refused(left_ms: u64) -> Admission {
    Admission::Refused {
        retry_after: retry_after_seconds(Duration::from_millis(left_ms)),
    }
}

/// Whole seconds until `left` has passed, at least one (`Retry-After: 0` would invite an
/// immediate retry that is still refused).
fn retry_after_seconds(left: Duration) -> u64 {
    left.as_millis().div_ceil(1000).max(1) as u64
}

fn pair_key(email: &str, ip: &str) -> String {
    let digest = Sha256::new()
        .chain_update(ip.as_bytes())
        .chain_update([0])
        .chain_update(email.as_bytes())
        .finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("login:v2:pair:{hex}")
}

fn ip_key(ip: &str) -> String {
    format!("login:v2:ip:{ip}")
}

fn registration_key(ip: &str) -> String {
    format!("register:v1:ip:{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(0)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(900)), 900);
    }

    #[test]
    fn keys_name_no_email_and_keep_pairs_apart() {
        let key = pair_key("ada@x.io", "203.0.113.9");
        assert!(!key.contains("ada"));
        assert_ne!(key, pair_key("ada@x.io", "203.0.113.10"));
        assert_ne!(
            pair_key("a", "b\0c"),
            pair_key("a\0b", "c"),
            "the separator cannot be forged by an IP"
        );
        assert_eq!(ip_key("2001:db8::1"), "login:v2:ip:2001:db8::1");
        assert_eq!(
            registration_key("2001:db8::1"),
            "register:v1:ip:2001:db8::1"
        );
    }
}
