//! Random, seeded interleavings of every user, post and comment operation on several instances,
//! under random cache faults, with the stream's consumers running; the invariants checked
//! throughout.
//!
//! The world: one `redis-server`, one table, `INSTANCES` instances of the functions (each its
//! own `App`: own Redis connection, own DynamoDB client) and the `cache-sync` function fed by
//! the table's stream. Every one of them reaches Redis through its own [`RedisProxy`] ("link"),
//! so a fault can hit one instance's writes and not another's.
//!
//! Each instance runs random operations on a small pool of emails: register, login, logout,
//! rename, delete (and so re-register), authenticate (`GET /users/me`). Meanwhile a scheduler
//! injects random faults: writes delayed past the client's timeout (they land late), dropped
//! with their connection, refused `READONLY`, connections killed, Redis restarted (everything
//! lost), Redis refusing every write (`min-replicas-to-write`), writes paused (`CLIENT PAUSE
//! WRITE`: they queue, then land late). Every few rounds it pauses the operations, heals
//! everything, and checks convergence.
//!
//! Invariants:
//! 1. A request that starts after a revoking call (logout, delete) returned never accepts the
//!    revoked token, when that call ran with a healthy cache (no fault on its link or on Redis
//!    while it ran, and no Redis call of it could have timed out), or once a convergence
//!    check has passed since it returned. Every request that presents a token is checked:
//!    `GET /users/me`, and the rename, logout and delete too (their success is an acceptance).
//! 2. Within 5 s of healing (the stream draining meanwhile), every cache entry equals
//!    DynamoDB's item, with no request to help it: users, posts, and what the feed's and each
//!    post's comments' windows serve.
//! 3. Posts and comment pages are as fresh as the table for whoever saw a write answered
//!    (`API.md`, "Freshness of cached reads"): a read of a post that starts after a create,
//!    edit or delete of it returned shows it (a deleted post is `404`, an edited one at least
//!    that `version`), and a first page of a post's comments shows every comment created and
//!    none deleted, each at least at its last edit, by writes that returned before it started;
//!    the feed's first page does so for posts created or deleted more than a second before it.
//!    Under the same condition as 1: the write ran with a healthy cache, or a convergence
//!    check has passed since.
//!
//! A run must reach what it checks: at least `MIN_COVERED` requests with a revoked token and
//! `MIN_CLEAN` revocations that bind at once, or it fails.
//!
//! `COHERENCE_SEED` replays a run: the seed fixes every choice (operations, emails, tokens,
//! faults, their targets and lengths); only the OS's scheduling is not seeded.
//! `COHERENCE_SECONDS` sets the length (default 25 s).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::{
    cache_key, send_to, ApiRequest, RedisProxy, StreamSync, TestEnv, WriteFault,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::AsyncCommands;
use serde_json::json;
use shared::cache::{decode_entry, Cached};
use shared::domain::{new_id, now_rfc3339, Email, User};
use shared::store::NewUser;
use shared::App;
use tokio::sync::RwLock;

const INSTANCES: usize = 4;
/// Few emails, so that operations on one user often race each other (with six, a run with the
/// compare-and-set always writing could pass on a loaded machine).
const EMAILS: usize = 3;
/// How many of the newest tokens half the token picks choose from.
const RECENT: usize = 8;
/// Redis calls of the instances are bounded by this; generous, so that on a loaded machine a
/// healthy link never times out (a timeout would be a fault of its own).
const REDIS_TIMEOUT: Duration = Duration::from_millis(200);
/// Held writes are held longer than the timeout, so they land after their request answered.
const HOLD: std::ops::Range<u64> = 250..500;
const CONVERGENCE_BOUND: Duration = Duration::from_secs(5);
const DEFAULT_SECONDS: u64 = 25;
const DEFAULT_SEED: u64 = 0x5eed_c0de;
/// The least a run must check to mean anything: requests with a revoked token, and revocations
/// that bind at once (the run sees thousands and hundreds; these floors hold on a loaded
/// machine and in a short `COHERENCE_SECONDS` run).
const MIN_COVERED: usize = 50;
const MIN_CLEAN: usize = 10;
/// Live posts at most, so that the feed's first page (`FEED_LIMIT`) shows them all.
const POSTS: usize = 10;
/// Comments per post at most, so that a first page of comments (`FEED_LIMIT`) shows them all.
const COMMENTS: usize = 15;
const FEED_LIMIT: usize = 50;
/// The feed may lag a write by this (`API.md`).
const FEED_LAG: Duration = Duration::from_secs(1);
/// Reads of posts and pages a run must check against writes that bind them.
const MIN_CONTENT_CHECKED: usize = 100;

/// A fault's time span, on one link or (`link: None`) on Redis itself.
#[derive(Debug, Clone)]
struct Span {
    link: Option<usize>,
    start: Instant,
    end: Instant,
    what: String,
}

#[derive(Debug, Clone)]
struct Token {
    token: String,
    sub: String,
    jwt_version: u64,
}

/// A logout or delete that answered success: tokens of `sub` with a `jwtVersion` below
/// `below` are revoked from `end` on.
#[derive(Debug, Clone)]
struct Revocation {
    sub: String,
    below: u64,
    link: usize,
    start: Instant,
    end: Instant,
    what: &'static str,
}

/// A request that presented a token (every authenticated route the run uses: `GET /users/me`,
/// rename, logout, delete), and whether its answer accepted the token.
#[derive(Debug, Clone)]
struct Auth {
    token: Token,
    link: usize,
    start: Instant,
    status: u16,
    what: &'static str,
    /// The answer is the route's success (`200`, or `204` for a logout or delete): the token
    /// was taken as valid.
    accepted: bool,
}

/// A change of a post or a comment that answered success, and on which link and when.
#[derive(Debug, Clone)]
struct Write {
    post: String,
    /// The comment, for a comment's change.
    comment: Option<String>,
    what: Change,
    link: usize,
    start: Instant,
    end: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Created (a post at `version` 1; a comment at its text's mark 0).
    Created,
    /// Edited to this `version` (a post) or this text mark (a comment).
    Edited(u64),
    Deleted,
}

/// A read of a post, a first page of comments, or the feed's first page, and what it showed.
#[derive(Debug, Clone)]
enum Read {
    Post {
        post: String,
        status: u16,
        version: u64,
    },
    Comments {
        post: String,
        status: u16,
        /// `(comment, text mark)`.
        items: Vec<(String, u64)>,
    },
    Feed {
        ids: Vec<String>,
    },
}

/// Everything the run records, checked at the end.
#[derive(Default)]
struct Log {
    writes: Vec<Write>,
    /// `(link, start, end, read)`.
    reads: Vec<(usize, Instant, Instant, Read)>,
    spans: Vec<Span>,
    revocations: Vec<Revocation>,
    auths: Vec<Auth>,
    /// (start, end) of every convergence check that passed.
    checkpoints: Vec<(Instant, Instant)>,
    convergence: Vec<Duration>,
    errors: Vec<String>,
}

/// A live post and its live comments, each with the mark of its text.
type LivePost = (String, Vec<(String, u64)>);

struct World {
    /// The table (and the env's own Redis, which the world does not use).
    env: TestEnv,
    /// The world's Redis, read directly by the convergence checks.
    redis_url: String,
    /// One link per instance, then the sync's.
    links: Vec<RedisProxy>,
    instances: Vec<App>,
    emails: Vec<String>,
    /// The author of every post and comment (not in the email pool, so never revoked).
    author: String,
    /// The live posts, and each one's live comments with their text marks.
    posts: Mutex<Vec<LivePost>>,
    tokens: Mutex<Vec<Token>>,
    /// The `RECENT` tokens issued last, oldest first.
    recent: Mutex<VecDeque<Token>>,
    log: Mutex<Log>,
    /// Operations hold it shared; a convergence check holds it alone.
    barrier: RwLock<()>,
    done: AtomicBool,
    ops: AtomicU64,
}

impl World {
    fn pick_token(&self, rng: &mut StdRng) -> Option<Token> {
        // Half the time one of the newest tokens, most of them still valid: without that, most
        // picks are long revoked, and few changes or revocations are accepted to race.
        if rng.gen_bool(0.5) {
            let recent = self.recent.lock().expect("lock");
            if !recent.is_empty() {
                return Some(recent[rng.gen_range(0..recent.len())].clone());
            }
        }
        let tokens = self.tokens.lock().expect("lock");
        (!tokens.is_empty()).then(|| tokens[rng.gen_range(0..tokens.len())].clone())
    }

    fn keep_token(&self, token: Token, rng: &mut StdRng) {
        {
            let mut recent = self.recent.lock().expect("lock");
            recent.push_back(token.clone());
            if recent.len() > RECENT {
                recent.pop_front();
            }
        }
        let mut tokens = self.tokens.lock().expect("lock");
        if tokens.len() < 64 {
            tokens.push(token);
        } else {
            let at = rng.gen_range(0..tokens.len());
            tokens[at] = token;
        }
    }

    fn error(&self, message: String) {
        self.log.lock().expect("lock").errors.push(message);
    }

    /// One random operation on instance `i`: on users or, half the time, on posts and
    /// comments.
    async fn operate(&self, i: usize, rng: &mut StdRng) {
        if rng.gen_bool(0.5) {
            return self.operate_on_content(i, rng).await;
        }
        let app = &self.instances[i];
        let email = self.emails[rng.gen_range(0..self.emails.len())].clone();
        match rng.gen_range(0..100) {
            // Registration as POST /users does it, without the Argon2 hash (the cache never
            // sees it; hashing would only slow the run down).
            0..=11 => {
                let user = User {
                    id: new_id(),
                    email: shared::domain::Email::parse(&email).expect("email"),
                    name: "Fresh".into(),
                    jwt_version: 1,
                    revision: 1,
                    registration: 0,
                    created_at: now_rfc3339(),
                };
                match app
                    .users
                    .register(NewUser {
                        user,
                        password_hash: "not-a-hash".into(),
                    })
                    .await
                {
                    Ok(_) | Err(shared::AppError::EmailTaken) => {}
                    Err(e) => self.error(format!("register: {e}")),
                }
            }
            // Login as POST /auth/login does it (the user read from DynamoDB, a token issued
            // for it), without the password check.
            12..=23 => match app
                .store
                .get_user(&Email::parse(&email).expect("email"))
                .await
            {
                Ok(Some(user)) => {
                    let token = app.auth.keys().issue(&user).expect("token").token;
                    self.keep_token(
                        Token {
                            token,
                            sub: user.id,
                            jwt_version: user.jwt_version,
                        },
                        rng,
                    );
                }
                Ok(None) => {}
                Err(e) => self.error(format!("login read: {e}")),
            },
            24..=33 => self.revoke(i, rng, "logout").await,
            34..=39 => self.revoke(i, rng, "delete").await,
            40..=49 => {
                let Some(token) = self.pick_token(rng) else {
                    return;
                };
                let name = format!("Name{}", rng.gen_range(0..1000));
                let start = Instant::now();
                let res = send_to(
                    app,
                    ApiRequest::patch("/users/me")
                        .bearer(&token.token)
                        .json(json!({"name": name})),
                )
                .await;
                if res.status != 200 && res.status != 401 {
                    self.error(format!("rename: {} {}", res.status, res.raw_body));
                }
                self.authenticated(token, i, start, res.status, "rename");
            }
            _ => {
                let Some(token) = self.pick_token(rng) else {
                    return;
                };
                let start = Instant::now();
                let res = send_to(app, ApiRequest::me().bearer(&token.token)).await;
                if res.status == 200 && res.body["id"] != token.sub.as_str() {
                    self.error(format!(
                        "token of {} answered as {}",
                        token.sub, res.body["id"]
                    ));
                }
                if res.status != 200 && res.status != 401 {
                    self.error(format!("GET /users/me: {} {}", res.status, res.raw_body));
                }
                self.authenticated(token, i, start, res.status, "GET /users/me");
            }
        }
    }

    /// One random operation on posts and comments on instance `i`, recorded for invariant 3.
    async fn operate_on_content(&self, i: usize, rng: &mut StdRng) {
        let app = &self.instances[i];
        let author = self.author.as_str();
        let pick = |rng: &mut StdRng| {
            let posts = self.posts.lock().expect("lock");
            (!posts.is_empty()).then(|| posts[rng.gen_range(0..posts.len())].clone())
        };
        let start = Instant::now();
        match rng.gen_range(0..100) {
            0..=7 => {
                if self.posts.lock().expect("lock").len() >= POSTS {
                    return self.delete_post(i, rng).await;
                }
                let res = send_to(
                    app,
                    ApiRequest::post("/posts")
                        .bearer(author)
                        .json(json!({"caption": "c"})),
                )
                .await;
                if res.status != 201 {
                    return self.error(format!("create post: {} {}", res.status, res.raw_body));
                }
                let post = res.body["id"].as_str().unwrap_or_default().to_owned();
                self.posts
                    .lock()
                    .expect("lock")
                    .push((post.clone(), Vec::new()));
                self.wrote(post, None, Change::Created, i, start);
            }
            8..=11 => self.delete_post(i, rng).await,
            12..=19 => {
                let Some((post, _)) = pick(rng) else { return };
                let res = send_to(
                    app,
                    ApiRequest::patch(&format!("/posts/{post}"))
                        .bearer(author)
                        .json(json!({"caption": format!("e{}", rng.gen_range(0..1000))})),
                )
                .await;
                match res.status {
                    200 => {
                        let version = res.body["version"].as_u64().unwrap_or_default();
                        self.wrote(post, None, Change::Edited(version), i, start);
                    }
                    404 => {}
                    other => self.error(format!("edit post: {other} {}", res.raw_body)),
                }
            }
            20..=33 => {
                let Some((post, comments)) = pick(rng) else {
                    return;
                };
                if comments.len() >= COMMENTS {
                    return;
                }
                let res = send_to(
                    app,
                    ApiRequest::post(&format!("/posts/{post}/comments"))
                        .bearer(author)
                        .json(json!({"text": "0"})),
                )
                .await;
                match res.status {
                    201 => {
                        let comment = res.body["id"].as_str().unwrap_or_default().to_owned();
                        if let Some((_, comments)) = self
                            .posts
                            .lock()
                            .expect("lock")
                            .iter_mut()
                            .find(|(p, _)| *p == post)
                        {
                            comments.push((comment.clone(), 0));
                        }
                        self.wrote(post, Some(comment), Change::Created, i, start);
                    }
                    404 => {}
                    other => self.error(format!("comment: {other} {}", res.raw_body)),
                }
            }
            34..=41 => {
                let Some((post, comments)) = pick(rng) else {
                    return;
                };
                let Some((comment, mark)) = comments
                    .get(rng.gen_range(0..comments.len().max(1)))
                    .cloned()
                else {
                    return;
                };
                let mark = mark + 1 + rng.gen_range(0..3);
                let res = send_to(
                    app,
                    ApiRequest::patch(&format!("/posts/{post}/comments/{comment}"))
                        .bearer(author)
                        .json(json!({"text": mark.to_string()})),
                )
                .await;
                match res.status {
                    200 => {
                        self.set_mark(&post, &comment, mark);
                        self.wrote(post, Some(comment), Change::Edited(mark), i, start);
                    }
                    404 => {}
                    other => self.error(format!("edit comment: {other} {}", res.raw_body)),
                }
            }
            42..=47 => {
                let Some((post, comments)) = pick(rng) else {
                    return;
                };
                let Some((comment, _)) = comments
                    .get(rng.gen_range(0..comments.len().max(1)))
                    .cloned()
                else {
                    return;
                };
                let res = send_to(
                    app,
                    ApiRequest::delete(&format!("/posts/{post}/comments/{comment}")).bearer(author),
                )
                .await;
                match res.status {
                    204 => {
                        if let Some((_, comments)) = self
                            .posts
                            .lock()
                            .expect("lock")
                            .iter_mut()
                            .find(|(p, _)| *p == post)
                        {
                            comments.retain(|(c, _)| *c != comment);
                        }
                        self.wrote(post, Some(comment), Change::Deleted, i, start);
                    }
                    404 => {}
                    other => self.error(format!("delete comment: {other} {}", res.raw_body)),
                }
            }
            48..=69 => {
                let Some((post, _)) = pick(rng) else { return };
                let res = send_to(
                    app,
                    ApiRequest::get(&format!("/posts/{post}")).bearer(author),
                )
                .await;
                if res.status != 200 && res.status != 404 {
                    return self.error(format!("read post: {} {}", res.status, res.raw_body));
                }
                let version = res.body["version"].as_u64().unwrap_or_default();
                self.read(
                    i,
                    start,
                    Read::Post {
                        post,
                        status: res.status,
                        version,
                    },
                );
            }
            70..=89 => {
                let Some((post, _)) = pick(rng) else { return };
                let res = send_to(
                    app,
                    ApiRequest::get(&format!("/posts/{post}/comments?limit={FEED_LIMIT}"))
                        .bearer(author),
                )
                .await;
                if res.status != 200 && res.status != 404 {
                    return self.error(format!("read comments: {} {}", res.status, res.raw_body));
                }
                let items = res.body["items"]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .map(|c| {
                                (
                                    c["id"].as_str().unwrap_or_default().to_owned(),
                                    c["text"]
                                        .as_str()
                                        .and_then(|t| t.parse().ok())
                                        .unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.read(
                    i,
                    start,
                    Read::Comments {
                        post,
                        status: res.status,
                        items,
                    },
                );
            }
            _ => {
                let res = send_to(
                    app,
                    ApiRequest::get(&format!("/posts?limit={FEED_LIMIT}")).bearer(author),
                )
                .await;
                if res.status != 200 {
                    return self.error(format!("read feed: {} {}", res.status, res.raw_body));
                }
                let ids = res.body["items"]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                self.read(i, start, Read::Feed { ids });
            }
        }
    }

    async fn delete_post(&self, i: usize, rng: &mut StdRng) {
        let post = {
            let posts = self.posts.lock().expect("lock");
            if posts.is_empty() {
                return;
            }
            posts[rng.gen_range(0..posts.len())].0.clone()
        };
        let start = Instant::now();
        let res = send_to(
            &self.instances[i],
            ApiRequest::delete(&format!("/posts/{post}")).bearer(&self.author),
        )
        .await;
        match res.status {
            204 => {
                self.posts.lock().expect("lock").retain(|(p, _)| *p != post);
                self.wrote(post, None, Change::Deleted, i, start);
            }
            404 => {}
            other => self.error(format!("delete post: {other} {}", res.raw_body)),
        }
    }

    fn set_mark(&self, post: &str, comment: &str, mark: u64) {
        let mut posts = self.posts.lock().expect("lock");
        if let Some((_, comments)) = posts.iter_mut().find(|(p, _)| p == post) {
            if let Some((_, m)) = comments.iter_mut().find(|(c, _)| c == comment) {
                *m = (*m).max(mark);
            }
        }
    }

    fn wrote(
        &self,
        post: String,
        comment: Option<String>,
        what: Change,
        link: usize,
        start: Instant,
    ) {
        self.log.lock().expect("lock").writes.push(Write {
            post,
            comment,
            what,
            link,
            start,
            end: Instant::now(),
        });
    }

    fn read(&self, link: usize, start: Instant, read: Read) {
        self.log
            .lock()
            .expect("lock")
            .reads
            .push((link, start, Instant::now(), read));
    }

    /// Records an answer to a request that presented `token`, for the check of invariant 1.
    fn authenticated(
        &self,
        token: Token,
        link: usize,
        start: Instant,
        status: u16,
        what: &'static str,
    ) {
        self.log.lock().expect("lock").auths.push(Auth {
            token,
            link,
            start,
            status,
            what,
            accepted: status == 200 || status == 204,
        });
    }

    async fn revoke(&self, i: usize, rng: &mut StdRng, what: &'static str) {
        let Some(token) = self.pick_token(rng) else {
            return;
        };
        let request = match what {
            "logout" => ApiRequest::post("/auth/logout"),
            _ => ApiRequest::delete("/users/me"),
        };
        let start = Instant::now();
        let res = send_to(&self.instances[i], request.bearer(&token.token)).await;
        let end = Instant::now();
        // The logout or delete presented a token too: checked like any request.
        self.authenticated(token.clone(), i, start, res.status, what);
        match res.status {
            204 => {
                let below = if what == "logout" {
                    token.jwt_version + 1
                } else {
                    u64::MAX
                };
                let revocation = Revocation {
                    sub: token.sub,
                    below,
                    link: i,
                    start,
                    end,
                    what,
                };
                self.log.lock().expect("lock").revocations.push(revocation);
            }
            401 => {}
            other => self.error(format!("{what}: {other} {}", res.raw_body)),
        }
    }

    /// Every email's entry equals DynamoDB's item (or there is none), read directly.
    async fn converged(&self) -> Result<(), String> {
        let client = redis::Client::open(self.redis_url.as_str()).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        for email in &self.emails {
            let parsed = Email::parse(email).expect("email");
            let truth = self
                .env
                .app
                .store
                .get_user(&parsed)
                .await
                .map_err(|e| e.to_string())?;
            let raw: Option<Vec<u8>> = conn
                .get(cache_key(email))
                .await
                .map_err(|e| e.to_string())?;
            let cached = raw.as_deref().and_then(|raw| decode_entry(raw, &parsed));
            let agrees = match (&truth, &cached) {
                (Some(user), Some(Cached::User(cached))) => cached == user,
                (Some(_), None) | (None, None | Some(Cached::Absent { .. })) => true,
                _ => false,
            };
            if !agrees {
                return Err(format!("{email}: cache {cached:?}, DynamoDB {truth:?}"));
            }
        }
        self.content_converged(&mut conn).await
    }

    /// Every post's entry equals DynamoDB's item (or there is none), and the feed's and each
    /// live post's comments' windows serve a prefix of the table's list (all of it when they
    /// say the list ends), each item as the table holds it.
    async fn content_converged(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> Result<(), String> {
        use shared::cache::entry::{parse, Order, Revision};
        use shared::cache::kinds::{comments_key, post_key, FEED_KEY, FEED_SUBJECT};
        let store = &self.env.app.store;
        let posts: Vec<String> = {
            let log = self.log.lock().expect("lock");
            let mut ids: Vec<String> = log
                .writes
                .iter()
                .filter(|w| w.comment.is_none() && w.what == Change::Created)
                .map(|w| w.post.clone())
                .collect();
            ids.dedup();
            ids
        };
        for post in &posts {
            let truth = store.get_post(post).await.map_err(|e| e.to_string())?;
            let raw: Option<Vec<u8>> = conn.get(post_key(post)).await.map_err(|e| e.to_string())?;
            let cached = raw.as_deref().and_then(parse);
            let record = cached.as_ref().and_then(|e| e.item(post));
            let agrees = match (&truth, record) {
                (_, None)
                | (None, Some(shared::cache::entry::StoredRecord { live: false, .. })) => true,
                (Some(truth), Some(r)) => {
                    r.live
                        && r.version == Revision::at(truth.rev).as_str()
                        && serde_json::from_str::<serde_json::Value>(r.body).ok()
                            == serde_json::to_value(&truth.item).ok()
                }
                (None, Some(_)) => false,
            };
            if !agrees {
                return Err(format!("post {post}: cache {record:?}, DynamoDB {truth:?}"));
            }
            if truth.is_none() {
                continue;
            }
            let listed = store
                .list_comments(post, FEED_LIMIT, None)
                .await
                .map_err(|e| e.to_string())?;
            let listed: Vec<(String, String)> = listed
                .items
                .iter()
                .map(|c| {
                    (
                        c.item.id.clone(),
                        serde_json::to_string(&c.item).unwrap_or_default(),
                    )
                })
                .collect();
            let raw: Option<Vec<u8>> = conn
                .get(comments_key(post))
                .await
                .map_err(|e| e.to_string())?;
            if let Some((live, complete)) = raw.as_deref().and_then(parse).and_then(|e| {
                e.inside(post, Order::Ascending).map(|(l, c)| {
                    (
                        l.iter()
                            .map(|r| (r.id.to_owned(), r.body.to_owned()))
                            .collect::<Vec<_>>(),
                        c,
                    )
                })
            }) {
                let prefix = live.len() <= listed.len() && live[..] == listed[..live.len()];
                if !prefix || (complete && live.len() != listed.len()) {
                    return Err(format!(
                        "comments of {post}: cache {live:?} (complete: {complete}), DynamoDB {listed:?}"
                    ));
                }
            }
        }
        let feed = store
            .feed_ids(FEED_LIMIT, None)
            .await
            .map_err(|e| e.to_string())?
            .items;
        let raw: Option<Vec<u8>> = conn.get(FEED_KEY).await.map_err(|e| e.to_string())?;
        if let Some((live, complete)) = raw.as_deref().and_then(parse).and_then(|e| {
            e.inside(FEED_SUBJECT, Order::Descending)
                .map(|(l, c)| (l.iter().map(|r| r.id.to_owned()).collect::<Vec<_>>(), c))
        }) {
            let prefix = live.len() <= feed.len() && live[..] == feed[..live.len()];
            if !prefix || (complete && live.len() != feed.len()) {
                return Err(format!(
                    "the feed: cache {live:?} (complete: {complete}), DynamoDB {feed:?}"
                ));
            }
        }
        Ok(())
    }
}

/// Heals every fault now.
async fn heal(world: &World, admin: &mut redis::aio::MultiplexedConnection) {
    for link in &world.links {
        link.set_write_fault(WriteFault::None);
    }
    let _: redis::RedisResult<()> = redis::cmd("CONFIG")
        .arg("SET")
        .arg("min-replicas-to-write")
        .arg(0)
        .query_async(admin)
        .await;
    let _: redis::RedisResult<()> = redis::cmd("CLIENT").arg("UNPAUSE").query_async(admin).await;
}

/// A fault the scheduler can start and end.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Hold(usize, Duration),
    Drop(usize),
    Refuse(usize),
    Kill(usize),
    Restart,
    RefuseAll,
    PauseWrites(Duration),
}

impl Fault {
    fn random(rng: &mut StdRng, links: usize, length: Duration) -> Fault {
        let link = rng.gen_range(0..links);
        match rng.gen_range(0..8) {
            0 | 1 => Fault::Hold(link, Duration::from_millis(rng.gen_range(HOLD))),
            2 => Fault::Drop(link),
            3 => Fault::Refuse(link),
            4 => Fault::Kill(link),
            5 => Fault::Restart,
            6 => Fault::RefuseAll,
            _ => Fault::PauseWrites(length),
        }
    }

    fn link(self) -> Option<usize> {
        match self {
            Fault::Hold(link, _) | Fault::Drop(link) | Fault::Refuse(link) | Fault::Kill(link) => {
                Some(link)
            }
            Fault::Restart | Fault::RefuseAll | Fault::PauseWrites(_) => None,
        }
    }

    /// How long after it ends its effects may still land (held or queued writes).
    fn tail(self) -> Duration {
        match self {
            Fault::Hold(_, hold) => hold,
            Fault::Kill(_) | Fault::PauseWrites(_) => Duration::from_millis(50),
            _ => Duration::ZERO,
        }
    }

    async fn start(
        self,
        world: &World,
        redis: &mut integration_tests::RedisServer,
        admin: &mut redis::aio::MultiplexedConnection,
    ) {
        match self {
            Fault::Hold(link, hold) => world.links[link].set_write_fault(WriteFault::Delay(hold)),
            Fault::Drop(link) => world.links[link].set_write_fault(WriteFault::Drop),
            Fault::Refuse(link) => world.links[link].set_write_fault(WriteFault::Refuse),
            Fault::Kill(link) => world.links[link].kill_connections(),
            Fault::Restart => {
                redis.stop();
                tokio::time::sleep(Duration::from_millis(30)).await;
                redis.restart().await;
                *admin = redis.connection().await.expect("admin connection");
            }
            Fault::RefuseAll => {
                let _: redis::RedisResult<()> = redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("min-replicas-to-write")
                    .arg(1)
                    .query_async(admin)
                    .await;
            }
            Fault::PauseWrites(length) => {
                let _: redis::RedisResult<()> = redis::cmd("CLIENT")
                    .arg("PAUSE")
                    .arg(length.as_millis() as u64)
                    .arg("WRITE")
                    .query_async(admin)
                    .await;
            }
        }
    }
}

/// Injects random faults until the run ends. Every few rounds the operations are paused while
/// the fault is still on, and the fault is healed with nothing else running: then only the
/// stream sync can bring the cache to DynamoDB's state, and the check says whether it did.
async fn schedule_faults(
    world: Arc<World>,
    mut redis: integration_tests::RedisServer,
    seed: u64,
    until: Instant,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfa17);
    let mut admin = redis.connection().await.expect("admin connection");
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(30..200))).await;
        let length = Duration::from_millis(rng.gen_range(50..400));
        let fault = Fault::random(&mut rng, world.links.len(), length);
        let start = Instant::now();
        fault.start(&world, &mut redis, &mut admin).await;
        tokio::time::sleep(length).await;
        let alone = if round.is_multiple_of(4) {
            Some(world.barrier.write().await)
        } else {
            None
        };
        heal(&world, &mut admin).await;
        let end = Instant::now() + fault.tail();
        let what = format!("{fault:?}");
        world.log.lock().expect("lock").spans.push(Span {
            link: fault.link(),
            start,
            end,
            what,
        });
        if alone.is_some() {
            check_convergence(&world).await;
        }
    }
    world.done.store(true, Ordering::SeqCst);
    let _alone = world.barrier.write().await;
    heal(&world, &mut admin).await;
    check_convergence(&world).await;
    drop(redis);
}

/// With the operations paused and every fault healed: waits for held writes to land, then for
/// the cache to equal DynamoDB (the stream sync doing the work), at most `CONVERGENCE_BOUND`
/// from the healing.
async fn check_convergence(world: &World) {
    let healed = Instant::now();
    tokio::time::sleep(Duration::from_millis(HOLD.end + 100)).await;
    loop {
        match world.converged().await {
            Ok(()) => break,
            Err(why) if healed.elapsed() > CONVERGENCE_BOUND => {
                world.error(format!(
                    "not converged {:?} after healing: {why}",
                    healed.elapsed()
                ));
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let mut log = world.log.lock().expect("lock");
    log.convergence.push(healed.elapsed());
    log.checkpoints.push((healed, Instant::now()));
}

async fn run_instance(world: Arc<World>, i: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(i as u64 + 1));
    while !world.done.load(Ordering::SeqCst) {
        let _shared = world.barrier.read().await;
        world.operate(i, &mut rng).await;
        world.ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// How long after a fault on a link its effect may still hit the link's next command.
const LINGER: Duration = Duration::from_millis(100);

/// `t - reference` in milliseconds, negative when `t` is earlier.
fn signed(t: Instant, reference: Instant) -> i128 {
    if t >= reference {
        t.duration_since(reference).as_millis() as i128
    } else {
        -(reference.duration_since(t).as_millis() as i128)
    }
}

/// Whether no fault touched `r`'s link or Redis from shortly before it started (a killed or
/// dropped connection fails the link's next command, whenever that is) to its end.
fn ran_healthy(log: &Log, r: &Revocation) -> bool {
    healthy_between(log, r.link, r.start, r.end)
}

fn healthy_between(log: &Log, link: usize, start: Instant, end: Instant) -> bool {
    !log.spans.iter().any(|s| {
        (s.link.is_none() || s.link == Some(link)) && s.start <= end && s.end + LINGER >= start
    })
}

/// Whether a call binds from its end on by itself: it ran on a healthy link and too fast for
/// any Redis call of it to have timed out.
fn clean_call(log: &Log, link: usize, start: Instant, end: Instant) -> bool {
    end.duration_since(start) < REDIS_TIMEOUT / 2 && healthy_between(log, link, start, end)
}

/// Whether a revocation binds from its end on by itself ([`clean_call`]).
fn clean(log: &Log, r: &Revocation) -> bool {
    clean_call(log, r.link, r.start, r.end)
}

/// What invariant 3 found: how many reads it checked, and the stale ones.
#[derive(Debug, Default)]
struct Stale {
    checked: usize,
    found: Vec<String>,
}

/// Invariant 3 over the whole log: the reads of posts, comment pages and the feed checked
/// against the writes that bind them.
fn stale_reads(log: &Log) -> Stale {
    let settled =
        |end: Instant, t: Instant| log.checkpoints.iter().any(|(s, e)| *s > end && *e < t);
    let binds = |w: &Write, t: Instant, lag: Duration| {
        w.end + lag < t && (clean_call(log, w.link, w.start, w.end) || settled(w.end, t))
    };
    // A write of `post` (and `comment`) that may have happened before `t`, binding or not.
    let started_before = |post: &str, comment: Option<&str>, what: Change, t: Instant| {
        log.writes.iter().any(|w| {
            w.post == post && w.comment.as_deref() == comment && w.what == what && w.start < t
        })
    };
    let (mut checked, mut found) = (0, Vec::new());
    for (link, start, end, read) in &log.reads {
        let (start, end) = (*start, *end);
        let binding = |w: &&Write, lag: Duration| binds(w, start, lag);
        match read {
            Read::Post {
                post,
                status,
                version,
            } => {
                let on_post: Vec<&Write> = log
                    .writes
                    .iter()
                    .filter(|w| w.post == *post && w.comment.is_none())
                    .filter(|w| binding(w, Duration::ZERO))
                    .collect();
                if on_post.is_empty() {
                    continue;
                }
                checked += 1;
                let deleted = on_post.iter().any(|w| w.what == Change::Deleted);
                let last = on_post
                    .iter()
                    .filter(|w| matches!(w.what, Change::Edited(_)))
                    .max_by_key(|w| match w.what {
                        Change::Edited(v) => v,
                        _ => 0,
                    });
                let edited = last.and_then(|w| match w.what {
                    Change::Edited(v) => Some(v),
                    _ => None,
                });
                let why = match *status {
                    200 if deleted => Some("served after its delete".to_owned()),
                    200 => edited
                        .filter(|v| version < v)
                        .map(|v| format!("version {version} after an edit to {v}")),
                    _ if !deleted && !started_before(post, None, Change::Deleted, end) => {
                        Some("404 for a post that was never deleted".to_owned())
                    }
                    _ => None,
                };
                if let Some(why) = why {
                    found.push(format!("post {post} through instance {link}: {why}"));
                }
            }
            Read::Comments {
                post,
                status,
                items,
            } => {
                if *status != 200 {
                    continue;
                }
                let on_comments: Vec<&Write> = log
                    .writes
                    .iter()
                    .filter(|w| w.post == *post && w.comment.is_some())
                    .filter(|w| binding(w, Duration::ZERO))
                    .collect();
                if on_comments.is_empty() {
                    continue;
                }
                checked += 1;
                let post_going = started_before(post, None, Change::Deleted, end);
                for w in on_comments {
                    let comment = w.comment.as_deref().unwrap_or_default();
                    let shown = items.iter().find(|(c, _)| c == comment);
                    let why = match (w.what, shown) {
                        (Change::Deleted, Some(_)) => Some("served after its delete".to_owned()),
                        (Change::Created, None)
                            if !post_going
                                && !started_before(post, Some(comment), Change::Deleted, end) =>
                        {
                            Some("missing after its create".to_owned())
                        }
                        // The edit shown must be this one, or one that may have landed after it
                        // (it ended after this one started) and began before the read ended.
                        (Change::Edited(mark), Some((_, shown)))
                            if *shown != mark
                                && !log.writes.iter().any(|f| {
                                    f.post == *post
                                        && f.comment.as_deref() == Some(comment)
                                        && f.what == Change::Edited(*shown)
                                        && f.end > w.start
                                        && f.start < end
                                }) =>
                        {
                            Some(format!("text {shown} after an edit to {mark}"))
                        }
                        _ => None,
                    };
                    if let Some(why) = why {
                        found.push(format!(
                            "comment {comment} of {post} through instance {link}: {why}"
                        ));
                    }
                }
            }
            Read::Feed { ids } => {
                let on_feed: Vec<&Write> = log
                    .writes
                    .iter()
                    .filter(|w| w.comment.is_none() && w.what != Change::Edited(0))
                    .filter(|w| matches!(w.what, Change::Created | Change::Deleted))
                    .filter(|w| binding(w, FEED_LAG))
                    .collect();
                if on_feed.is_empty() {
                    continue;
                }
                checked += 1;
                for w in on_feed {
                    let shown = ids.contains(&w.post);
                    let why = match w.what {
                        Change::Deleted if shown => {
                            Some("in the feed over a second after its delete")
                        }
                        Change::Created
                            if !shown && !started_before(&w.post, None, Change::Deleted, end) =>
                        {
                            Some("missing from the feed over a second after its create")
                        }
                        _ => None,
                    };
                    if let Some(why) = why {
                        found.push(format!("post {} through instance {link}: {why}", w.post));
                    }
                }
            }
        }
    }
    Stale { checked, found }
}

/// What invariant 1 covered in a run: the requests with a revoked token it checked (each kind
/// of request on its own), and the violations found.
#[derive(Debug, Default)]
struct Coverage {
    covered: usize,
    by_kind: std::collections::BTreeMap<&'static str, usize>,
    found: Vec<String>,
}

/// Invariant 1 over the whole log: every answer that accepted a token (`GET /users/me`, a
/// rename, a logout, a delete) is checked against the revocations that had returned when it
/// was sent.
fn violations(log: &Log) -> Coverage {
    let settled_before =
        |r: &Revocation, t: Instant| log.checkpoints.iter().any(|(s, e)| *s > r.end && *e < t);
    let mut coverage = Coverage::default();
    for auth in &log.auths {
        let binding = log.revocations.iter().find(|r| {
            r.sub == auth.token.sub
                && auth.token.jwt_version < r.below
                && r.end < auth.start
                && (clean(log, r) || settled_before(r, auth.start))
        });
        if binding.is_some() {
            coverage.covered += 1;
            *coverage.by_kind.entry(auth.what).or_default() += 1;
        }
        if !auth.accepted {
            continue;
        }
        if let Some(r) = binding {
            {
                let around: Vec<String> = log
                    .spans
                    .iter()
                    .filter(|s| s.end + Duration::from_secs(1) >= r.start && s.start <= auth.start)
                    .map(|s| {
                        format!(
                            "{} on {:?} from {:?} after the call",
                            s.what,
                            s.link,
                            signed(s.start, r.end)
                        )
                    })
                    .collect();
                coverage.found.push(format!(
                    "a token of {} (jwtVersion {}) was accepted ({} answered {}) through instance {} {:?} after a {} on instance {} \
                     returned (clean: {}); faults around it: {around:?}",
                    auth.token.sub,
                    auth.token.jwt_version,
                    auth.what,
                    auth.status,
                    auth.link,
                    auth.start.duration_since(r.end),
                    r.what,
                    r.link,
                    clean(log, r)
                ));
            }
        }
    }
    coverage
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleavings_under_random_faults_never_accept_a_revoked_token_and_converge() {
    let seed = std::env::var("COHERENCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let seconds = std::env::var("COHERENCE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    println!("interleavings: seed {seed} ({seconds} s); replay with COHERENCE_SEED={seed}");

    let env = TestEnv::new().await;
    let redis = integration_tests::RedisServer::start().await;
    let mut links = Vec::new();
    for _ in 0..=INSTANCES {
        links.push(RedisProxy::start(redis.port).await);
    }
    let patient = |c: &mut shared::config::Config| {
        c.cache.redis_timeout = REDIS_TIMEOUT;
        c.cache.redis_connect_timeout = REDIS_TIMEOUT;
    };
    let instances = links[..INSTANCES]
        .iter()
        .map(|link| env.instance_with(&link.url(), patient))
        .collect();
    let mut sync_config =
        integration_tests::test_config(&links[INSTANCES].url(), &env.dynamo.endpoint);
    sync_config.cache.redis_timeout = REDIS_TIMEOUT;
    let _sync = StreamSync::start(&sync_config).await;
    let prefix = ulid::Ulid::new().to_string().to_lowercase();
    let emails = (0..EMAILS)
        .map(|n| format!("u{n}.{prefix}@example.com"))
        .collect();
    let (author, _) = env.new_user("Author").await;
    let world = Arc::new(World {
        env,
        redis_url: redis.url(),
        links,
        instances,
        emails,
        author,
        posts: Mutex::new(Vec::new()),
        tokens: Mutex::new(Vec::new()),
        recent: Mutex::new(VecDeque::new()),
        log: Mutex::new(Log::default()),
        barrier: RwLock::new(()),
        done: AtomicBool::new(false),
        ops: AtomicU64::new(0),
    });

    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let scheduler = tokio::spawn(schedule_faults(world.clone(), redis, seed, until));
    let workers: Vec<_> = (0..INSTANCES)
        .map(|i| tokio::spawn(run_instance(world.clone(), i, seed)))
        .collect();
    scheduler.await.expect("fault scheduler");
    for worker in workers {
        worker.await.expect("instance");
    }

    let log = world.log.lock().expect("lock");
    let ops = world.ops.load(Ordering::Relaxed);
    let checked: HashSet<&str> = log.revocations.iter().map(|r| r.sub.as_str()).collect();
    let max_convergence = log.convergence.iter().max().copied().unwrap_or_default();
    println!(
        "interleavings: {ops} operations on {INSTANCES} instances in {:?}; {} faults; {} revocations of {} users; \
         {} authentications ({} accepted); {} convergence checks, slowest {max_convergence:?}",
        started.elapsed(),
        log.spans.len(),
        log.revocations.len(),
        checked.len(),
        log.auths.len(),
        log.auths.iter().filter(|a| a.status == 200).count(),
        log.checkpoints.len(),
    );
    let Coverage {
        covered,
        by_kind,
        found,
    } = violations(&log);
    let healthy = log
        .revocations
        .iter()
        .filter(|r| ran_healthy(&log, r))
        .count();
    let clean = log.revocations.iter().filter(|r| clean(&log, r)).count();
    println!("interleavings: {covered} requests with a revoked token checked ({by_kind:?}); {healthy} revocations ran on a healthy link, {clean} of them clean (bind at once); {} refused as they must be", covered - found.len());
    for span in log.spans.iter().take(3) {
        println!(
            "  e.g. fault {} on {:?} for {:?}",
            span.what,
            span.link,
            span.end.duration_since(span.start)
        );
    }
    // Both invariants' findings are reported, whichever fails first.
    assert!(
        log.errors.is_empty(),
        "seed {seed}: {:#?} (and {} revoked tokens accepted)",
        log.errors,
        found.len()
    );
    assert!(
        found.is_empty(),
        "seed {seed}: {} revoked tokens accepted: {:#?}",
        found.len(),
        &found[..found.len().min(10)]
    );
    let Stale {
        checked: content_checked,
        found: stale,
    } = stale_reads(&log);
    println!(
        "interleavings: {} writes of posts and comments, {} reads, {content_checked} checked against writes that bind them",
        log.writes.len(),
        log.reads.len(),
    );
    assert!(
        stale.is_empty(),
        "seed {seed}: {} stale reads of posts, comments or the feed: {:#?}",
        stale.len(),
        &stale[..stale.len().min(10)]
    );
    assert!(
        content_checked >= MIN_CONTENT_CHECKED,
        "seed {seed}: only {content_checked} reads of posts and pages were checked"
    );
    assert!(ops > 1_000, "seed {seed}: only {ops} operations ran");
    // The run reached what it checks: a run in which no revocation is followed by a checked
    // request would otherwise pass.
    assert!(
        covered >= MIN_COVERED,
        "seed {seed}: only {covered} requests with a revoked token were checked"
    );
    assert!(
        clean >= MIN_CLEAN,
        "seed {seed}: only {clean} revocations ran clean (binding at once)"
    );
    assert!(
        log.checkpoints.len() >= 3,
        "seed {seed}: only {} convergence checks",
        log.checkpoints.len()
    );
}
