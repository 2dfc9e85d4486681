//! Cache coherence across instances and cache failures: a revoked token never passes.
//!
//! Two Lambda instances are two [`App`]s with their own Redis connections and DynamoDB
//! clients, on one Redis and one table, as in production. Instance A reaches Redis through a
//! [`RedisLink`] (a `RedisProxy` in front of every node) that can hold, drop or refuse its
//! writes; B's link is clean. With `TEST_REDIS_MODE=cluster` the same races run on a
//! three-master cluster, A's proxies in front of each master. Each
//! race starts A's change, waits until the proxy holds A's cache write, makes B's conflicting
//! change, lets A's write land late (after B's change answered, and the test waits until Redis
//! has run it), and then checks, through both instances, that the revoked token is refused on
//! every request and that the entry equals DynamoDB's item. No stream sync runs in the races:
//! the compare-and-set alone must keep the order.
//!
//! Each fault test shows its fault took effect before it checks anything: the proxy counts the
//! writes it held, refused (`READONLY` written to the client) and dropped, and Redis counts
//! what it refused itself (`INFO errorstats`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::{
    cache_key, send_to, unique_email, ApiRequest, ApiResponse, RedisLink, RedisProxy, RedisServer,
    StreamSync, TestEnv, WriteFault, PASSWORD,
};
use redis::AsyncCommands;
use serde_json::{json, Value};
use shared::cache::{decode_entry, Cached};
use shared::config::CacheMode;
use shared::domain::Email;
use shared::App;

/// How long a fault's effect is waited for (a write to land, a refusal to be counted): a bound
/// for a loaded machine, never a figure the test checks.
const PATIENCE: Duration = Duration::from_secs(5);

/// Requests checked after each race, alternating between the instances.
const CHECKS: usize = 20;

/// A and B on one Redis and one table; A behind the faulty link.
struct TwoInstances {
    env: TestEnv,
    link: RedisLink,
    a: Arc<App>,
    b: Arc<App>,
}

impl TwoInstances {
    async fn new() -> Self {
        let env = TestEnv::new().await;
        let link = env.redis.link().await;
        // The races here are of write-backs and changes: a miss's lease, before its read of
        // DynamoDB, passes (holding it would hold the read, and the race would not happen).
        link.spare_leases(true);
        let a = Arc::new(env.instance_through(&link));
        let b = Arc::new(env.instance(&env.redis.url()));
        TwoInstances { env, link, a, b }
    }

    /// Registers a user through B, logs in, and warms A's connection with a request:
    /// `(email, token, user)`.
    async fn user(&self, name: &str) -> (String, String, Value) {
        let email = unique_email(name);
        let registered = self.register(&email, name).await;
        assert_eq!(registered.status, 201, "{}", registered.raw_body);
        let token = self.login(&email).await;
        assert_eq!(
            send_to(&self.a, ApiRequest::me().bearer(&token))
                .await
                .status,
            200,
            "A serves the user"
        );
        (email, token, registered.body)
    }

    async fn register(&self, email: &str, name: &str) -> ApiResponse {
        let body = json!({"email": email, "name": name, "password": PASSWORD});
        send_to(&self.b, ApiRequest::post("/users").json(body)).await
    }

    async fn login(&self, email: &str) -> String {
        let body = json!({"email": email, "password": PASSWORD});
        let login = send_to(&self.b, ApiRequest::post("/auth/login").json(body)).await;
        assert_eq!(login.status, 200, "{}", login.raw_body);
        login.body["token"].as_str().expect("token").to_owned()
    }

    /// The race: `on_a` runs on A with its cache write held; once the proxy has that write in
    /// hand (so A's DynamoDB write is done), `on_b` runs on B; A's write lands after B's change
    /// answered. Then, before any request that could heal it, the entry must be DynamoDB's.
    /// Returns both answers.
    async fn race(
        &self,
        email: &str,
        on_a: ApiRequest,
        on_b: ApiRequest,
    ) -> (ApiResponse, ApiResponse) {
        let a = self.on_a_with_its_write_held(on_a).await;
        let b = send_to(&self.b, on_b).await;
        let a = a.await.expect("A's request");
        self.release(email).await;
        self.assert_entry_matches_dynamodb(email).await;
        (a, b)
    }

    /// Starts `request` on A with A's writes held, and returns once the proxy holds A's cache
    /// write: it stays held until [`TwoInstances::release`], whatever runs meanwhile.
    async fn on_a_with_its_write_held(
        &self,
        request: ApiRequest,
    ) -> tokio::task::JoinHandle<ApiResponse> {
        self.link.set_write_fault(WriteFault::Hold);
        let a = self.a.clone();
        let task = tokio::spawn(async move { send_to(&a, request).await });
        let started = Instant::now();
        while self.link.held() == 0 {
            assert!(
                started.elapsed() < PATIENCE,
                "A's cache write never reached its proxy"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        task
    }

    /// Lets A's held writes land now, and waits until Redis has run them (the node holding
    /// `email`'s entry counts one more script call each), so a check that follows sees the
    /// state they left; A's writes pass again from now on.
    async fn release(&self, email: &str) {
        let held = self.link.held();
        assert!(held >= 1, "A's write is still held, so it lands last");
        let node = self.env.redis.node_of(&cache_key(email)).await;
        let ran = node.scripts_run().await;
        self.link.set_write_fault(WriteFault::None);
        self.link.release_held();
        let started = Instant::now();
        while node.scripts_run().await < ran + held {
            assert!(
                started.elapsed() < PATIENCE,
                "A's held write never ran on Redis after its release"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// `token` is refused on `CHECKS` requests, through both instances.
    async fn assert_refused(&self, token: &str, what: &str) {
        for i in 0..CHECKS {
            let app = if i % 2 == 0 { &self.a } else { &self.b };
            let res = send_to(app, ApiRequest::me().bearer(token)).await;
            assert_eq!(
                res.status,
                401,
                "{what}: request {i} through {} accepted it: {}",
                ["A", "B"][i % 2],
                res.raw_body
            );
        }
    }

    /// `token` is accepted as `name` on `CHECKS` requests, through both instances.
    async fn assert_accepted(&self, token: &str, name: &str, what: &str) {
        for i in 0..CHECKS {
            let app = if i % 2 == 0 { &self.a } else { &self.b };
            let res = send_to(app, ApiRequest::me().bearer(token)).await;
            assert_eq!(res.status, 200, "{what}: request {i}: {}", res.raw_body);
            assert_eq!(res.body["name"], name, "{what}: request {i}");
        }
    }

    /// The cache entry equals DynamoDB's item for `email` (a tombstone or nothing when there
    /// is none).
    async fn assert_entry_matches_dynamodb(&self, email: &str) {
        assert_entry_matches_dynamodb(&self.env, email).await;
    }
}

/// `email`'s entry as a user, read directly (no request that could heal it), if it is one.
async fn cached_user(env: &TestEnv, email: &str) -> Option<shared::domain::User> {
    let parsed = Email::parse(email).expect("email");
    match env
        .redis
        .entry_bytes(email)
        .await
        .as_deref()
        .and_then(|raw| decode_entry(raw, &parsed))
    {
        Some(Cached::User(user)) => Some(user),
        _ => None,
    }
}

/// Waits, at most [`PATIENCE`], until `count` says a fault has taken effect.
async fn wait_for_count<F, Fut>(what: &str, count: F, at_least: u64) -> u64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let started = Instant::now();
    loop {
        let now = count().await;
        if now >= at_least {
            return now;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{what}: {now} after {PATIENCE:?}, expected at least {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The cache entry for `email` agrees with DynamoDB's item: the same user, field for field, or
/// no user on both sides.
async fn assert_entry_matches_dynamodb(env: &TestEnv, email: &str) {
    let parsed = Email::parse(email).expect("email");
    let truth = env
        .app
        .store
        .get_user(&parsed)
        .await
        .expect("DynamoDB answers");
    let raw = env.redis.entry_bytes(email).await;
    let cached = raw.as_deref().and_then(|raw| decode_entry(raw, &parsed));
    match (&truth, &cached) {
        (Some(user), Some(Cached::User(cached))) => {
            assert_eq!(cached, user, "the entry is DynamoDB's item")
        }
        (None, None | Some(Cached::Absent { .. })) => {}
        _ => panic!("cache {cached:?} disagrees with DynamoDB {truth:?}"),
    }
}

fn rename(token: &str, name: &str) -> ApiRequest {
    ApiRequest::patch("/users/me")
        .bearer(token)
        .json(json!({"name": name}))
}

#[tokio::test]
async fn a_rename_whose_cache_write_lands_after_a_logout_cannot_revive_the_revoked_token() {
    let w = TwoInstances::new().await;
    let (email, token, _) = w.user("RenameLogout").await;

    let (renamed, logout) = w
        .race(
            &email,
            rename(&token, "Renamed"),
            ApiRequest::post("/auth/logout").bearer(&token),
        )
        .await;
    assert_eq!(
        (renamed.status, logout.status),
        (200, 204),
        "both changes succeed"
    );

    w.assert_refused(&token, "the token revoked by the logout")
        .await;
    let fresh = w.login(&email).await;
    w.assert_accepted(&fresh, "Renamed", "a token issued after the logout")
        .await;
}

#[tokio::test]
async fn a_rename_whose_cache_write_lands_after_a_delete_cannot_revive_the_deleted_user() {
    let w = TwoInstances::new().await;
    let (email, token, _) = w.user("RenameDelete").await;

    let (renamed, deleted) = w
        .race(
            &email,
            rename(&token, "Renamed"),
            ApiRequest::delete("/users/me").bearer(&token),
        )
        .await;
    assert_eq!(
        (renamed.status, deleted.status),
        (200, 204),
        "both changes succeed"
    );

    w.assert_refused(&token, "the deleted user's token").await;
}

#[tokio::test]
async fn a_delete_whose_tombstone_lands_after_a_new_registration_does_not_lock_the_new_user_out() {
    let w = TwoInstances::new().await;
    let (email, token, _) = w.user("Reborn").await;

    let register = ApiRequest::post("/users")
        .json(json!({"email": email, "name": "Second", "password": PASSWORD}));
    let (deleted, registered) = w
        .race(
            &email,
            ApiRequest::delete("/users/me").bearer(&token),
            register,
        )
        .await;
    assert_eq!(
        (deleted.status, registered.status),
        (204, 201),
        "{}",
        registered.raw_body
    );

    let second = w.login(&email).await;
    w.assert_accepted(&second, "Second", "the new user of the email")
        .await;
    w.assert_refused(&token, "the deleted user's token").await;
}

#[tokio::test]
async fn of_two_renames_the_cache_keeps_the_later_one_whichever_write_lands_last() {
    let w = TwoInstances::new().await;

    // The earlier rename's write lands last: it must be refused.
    let (email, token, _) = w.user("TwoNames").await;
    let (first, second) = w
        .race(&email, rename(&token, "First"), rename(&token, "Second"))
        .await;
    assert_eq!((first.status, second.status), (200, 200));
    w.assert_accepted(&token, "Second", "after both renames")
        .await;

    // The later rename's write lands last: it must be taken.
    let (email, token, _) = w.user("TwoNamesAgain").await;
    let first = send_to(&w.b, rename(&token, "First")).await;
    assert_eq!(first.status, 200, "{}", first.raw_body);
    let second = w
        .on_a_with_its_write_held(rename(&token, "Second"))
        .await
        .await
        .expect("A's request");
    assert_eq!(second.status, 200, "{}", second.raw_body);
    let held_back = cached_user(&w.env, &email).await.expect("a user entry");
    assert_eq!(
        held_back.name.as_str(),
        "First",
        "the later rename's write is held, so the entry is still the earlier one's"
    );
    w.release(&email).await;
    w.assert_entry_matches_dynamodb(&email).await;
    w.assert_accepted(
        &token,
        "Second",
        "after both renames, the later landing last",
    )
    .await;
}

#[tokio::test]
async fn a_miss_write_back_holding_a_read_from_before_a_logout_cannot_revive_the_revoked_token() {
    let w = TwoInstances::new().await;
    let (email, token, _) = w.user("MissLogout").await;
    w.env.redis.evict(&email).await; // as if it had expired

    // A misses, reads the user from DynamoDB (jwtVersion 1), and its write-back is held.
    let (miss, logout) = w
        .race(
            &email,
            ApiRequest::me().bearer(&token),
            ApiRequest::post("/auth/logout").bearer(&token),
        )
        .await;
    assert_eq!(
        (miss.status, logout.status),
        (200, 204),
        "the token was good when A read it"
    );

    w.assert_refused(
        &token,
        "the token revoked while A's write-back was in flight",
    )
    .await;
}

#[tokio::test]
async fn a_change_whose_write_is_dropped_with_its_connection_still_reaches_the_cache() {
    let w = TwoInstances::new().await;
    let _sync = w.env.stream_sync().await;
    let (email, token, _) = w.user("Dropped").await;

    w.link.set_write_fault(WriteFault::Drop);
    let before = w.link.writes_seen();
    let drops = w.link.drops();
    let logout = send_to(&w.a, ApiRequest::post("/auth/logout").bearer(&token)).await;
    assert_eq!(logout.status, 204, "{}", logout.raw_body);
    assert!(
        w.link.writes_seen() > before,
        "A's write went through its link"
    );
    assert!(
        w.link.drops() > drops,
        "A's write was dropped with its connection"
    );
    w.link.set_write_fault(WriteFault::None);

    let took = wait_until_refused(&w.b, &token).await;
    println!("the logout reached the cache through the stream {took:?} after it answered");
    w.assert_refused(&token, "after the stream sync").await;
    w.assert_entry_matches_dynamodb(&email).await;
}

/// Waits (at most the contract's 5 s) until `token` is refused, and says how long it took.
async fn wait_until_refused(app: &App, token: &str) -> Duration {
    let started = Instant::now();
    while send_to(app, ApiRequest::me().bearer(token)).await.status != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the revoked token still passes after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// Polls Redis directly on `conn` (no request that could heal it) until `email`'s entry holds
/// `jwt_version`, at most 5 s.
async fn wait_for_jwt_version(
    mut conn: impl redis::aio::ConnectionLike + Send + Sync,
    email: &str,
    jwt_version: u64,
) -> Duration {
    let started = Instant::now();
    let parsed = Email::parse(email).expect("email");
    loop {
        let raw: Option<Vec<u8>> = conn.get(cache_key(email)).await.expect("GET");
        if let Some(Cached::User(user)) = raw.as_deref().and_then(|raw| decode_entry(raw, &parsed))
        {
            if user.jwt_version == jwt_version {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the change did not reach the cache within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `CONFIG SET min-replicas-to-write` on every node (redis-rs sends `CONFIG` to each).
async fn set_min_replicas_to_write(env: &TestEnv, n: u32) {
    let mut conn = env.redis.connection().await.expect("redis connection");
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("min-replicas-to-write")
        .arg(n)
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET");
}

/// The second scenario: Redis refuses writes for a moment while reads go on. The logout
/// answers `204`; once Redis takes writes again, the change reaches the cache by itself, with
/// no request to heal it, and from then on every request refuses the revoked token.
#[tokio::test]
async fn a_logout_while_redis_refuses_writes_reaches_the_cache_by_itself_once_it_takes_them() {
    let env = TestEnv::new().await;
    let _sync = env.stream_sync().await;
    let (token, user) = env.new_user("Refused").await;
    let email = user["email"].as_str().expect("email").to_owned();
    assert_eq!(env.me(&token).await.status, 200);
    let node = env.redis.node_of(&cache_key(&email)).await;
    let refused = node.errors_answered("NOREPLICAS").await;

    set_min_replicas_to_write(&env, 1).await; // every write: NOREPLICAS
    let logout = env
        .send(ApiRequest::post("/auth/logout").bearer(&token))
        .await;
    assert_eq!(logout.status, 204, "{}", logout.raw_body);
    // The fault took effect: Redis refused the logout's write and then the sync's (it keeps
    // retrying meanwhile), and the entry is still the one from before the logout.
    wait_for_count(
        "writes Redis refused (NOREPLICAS)",
        || node.errors_answered("NOREPLICAS"),
        refused + 2,
    )
    .await;
    let stale = cached_user(&env, &email).await.expect("a user entry");
    assert_eq!(
        stale.jwt_version, 1,
        "while Redis refuses writes, the entry is still the one from before the logout"
    );
    set_min_replicas_to_write(&env, 0).await;

    let took = wait_for_jwt_version(env.redis.connection().await.expect("redis"), &email, 2).await;
    println!("the logout reached the cache {took:?} after Redis took writes again");
    for _ in 0..CHECKS {
        env.me(&token).await.assert_error(401, "unauthorized");
    }
    assert_entry_matches_dynamodb(&env, &email).await;
}

/// A failover: the primary is demoted to a replica under a live connection and a replica is
/// promoted; new connections reach the new primary (as ElastiCache's endpoint does). The
/// demoted server answers the logout's write `READONLY`: the connection moves on and the change
/// lands on the new primary, at once, with no stream sync running.
///
/// Standalone in either run: an endpoint that moves to another server is the standalone
/// client's failover. A cluster client is told of a failover by the cluster itself (`MOVED`, or
/// `READONLY` from a demoted master), and redis-rs then refreshes its slot map and retries;
/// the test cluster has no replicas to promote.
#[tokio::test]
async fn a_readonly_reply_after_a_failover_moves_the_connection_and_the_change_lands() {
    let primary = RedisServer::start().await;
    let replica = RedisServer::start().await;
    let mut conn = replica.connection().await.expect("replica connection");
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port)
        .query_async(&mut conn)
        .await
        .expect("REPLICAOF");
    let proxy = RedisProxy::start(primary.port).await;
    let env = TestEnv::in_mode(CacheMode::Standalone, |c| {
        c.cache.redis_url = shared::config::RedisUrl::parse(&proxy.url()).expect("url")
    })
    .await;
    let (token, user) = env.new_user("Failover").await;
    let email = user["email"].as_str().expect("email").to_owned();
    assert_eq!(env.me(&token).await.status, 200, "connected to the primary");
    wait_for_jwt_version(replica.connection().await.expect("replica"), &email, 1).await; // replicated

    // Fail over: promote the replica, demote the primary, point new connections at the new one.
    let () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut conn)
        .await
        .expect("promote");
    let mut old = primary.connection().await.expect("old primary connection");
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(replica.port)
        .query_async(&mut old)
        .await
        .expect("demote");
    proxy.set_upstream(replica.port);

    let readonly = primary.node().errors_answered("READONLY").await;
    let logout = env
        .send(ApiRequest::post("/auth/logout").bearer(&token))
        .await;
    assert_eq!(logout.status, 204, "{}", logout.raw_body);
    assert!(
        primary.node().errors_answered("READONLY").await > readonly,
        "the demoted primary answered the logout's write READONLY (a reply, not a dropped connection)"
    );
    let took = wait_for_jwt_version(replica.connection().await.expect("replica"), &email, 2).await;
    assert!(
        took < Duration::from_millis(100),
        "the logout's own write landed on the new primary ({took:?})"
    );
    for _ in 0..CHECKS {
        env.me(&token).await.assert_error(401, "unauthorized");
    }
}

/// A link answering `READONLY` to every write (no primary anywhere for a moment): the change
/// cannot land when it is made, and reaches the cache through the stream once writes pass.
#[tokio::test]
async fn a_change_refused_readonly_on_every_connection_lands_through_the_stream() {
    let w = TwoInstances::new().await;
    let mut through_link = w.env.config_for(&w.link.url());
    w.link.configure(&mut through_link.cache);
    let _sync = StreamSync::start(&through_link).await;
    let (email, token, _) = w.user("ReadOnly").await;

    w.link.set_write_fault(WriteFault::Refuse);
    let before = w.link.writes_seen();
    let refusals = w.link.refusals_sent();
    let logout = send_to(&w.a, ApiRequest::post("/auth/logout").bearer(&token)).await;
    assert_eq!(logout.status, 204, "{}", logout.raw_body);
    assert!(
        w.link.writes_seen() > before,
        "A's write went through its link"
    );
    // The fault took effect: A's write got a READONLY reply (written to its connection, not a
    // connection dropped), then the sync's writes did too, and the entry is still the one from
    // before the logout.
    let after_logout = w.link.refusals_sent();
    assert!(
        after_logout > refusals,
        "A's write was answered READONLY by the link"
    );
    wait_for_count(
        "the sync's writes answered READONLY",
        || async { w.link.refusals_sent() },
        after_logout + 1,
    )
    .await;
    let stale = cached_user(&w.env, &email).await.expect("a user entry");
    assert_eq!(
        stale.jwt_version, 1,
        "while every write is refused, the entry is still the one from before the logout"
    );
    w.link.set_write_fault(WriteFault::None);

    let took =
        wait_for_jwt_version(w.env.redis.connection().await.expect("redis"), &email, 2).await;
    println!("the refused logout landed {took:?} after writes passed again");
    w.assert_refused(&token, "after the refusal ended").await;
    w.assert_entry_matches_dynamodb(&email).await;
}

/// The gap a miss's lease closes, made to happen on cue: a miss reads the table, its answer is
/// held; meanwhile the item is edited (the edit's cache write lands in the entry) and Redis
/// loses the entry (evicted, flushed, restarted); then the miss's answer arrives. Its
/// write-back must not make a new entry of the state from before the edit: the next read must
/// see the edit. Shown for a post, a post's first comments, and a post the feed's page reads.
#[tokio::test]
async fn a_miss_that_read_before_an_edit_cannot_bring_it_back_after_redis_lost_the_entry() {
    let (env, proxy) = TestEnv::behind_dynamo_proxy().await;
    let (token, _) = env.new_user("Lost").await;
    assert_eq!(env.me(&token).await.status, 200, "the user is cached");
    let post = env.new_post(&token, "v1").await;
    let post_id = post["id"].as_str().expect("id").to_owned();
    let path = format!("/posts/{post_id}");
    let comment = env
        .send(
            ApiRequest::post(&format!("{path}/comments"))
                .bearer(&token)
                .json(json!({"text": "first"})),
        )
        .await;
    assert_eq!(comment.status, 201, "{}", comment.raw_body);
    let comment_id = comment.body["id"].as_str().expect("id").to_owned();
    let get_post = || ApiRequest::get(&path).bearer(&token);
    let get_comments = || ApiRequest::get(&format!("{path}/comments")).bearer(&token);
    let get_feed = || ApiRequest::get("/posts").bearer(&token);
    let post_key = format!("post:v4:{post_id}");
    let comments_key = format!("comments:v4:{post_id}");
    let race = Race {
        env: &env,
        proxy: &proxy,
    };

    // A post: the miss's GetItem answer (version 1) waits while the edit lands and the entry
    // is lost.
    assert_eq!(env.send(get_post()).await.status, 200, "the post is cached");
    let edit = ApiRequest::patch(&path)
        .bearer(&token)
        .json(json!({"caption": "v2"}));
    let miss = race.miss("GetItem", 1, &post_key, get_post(), edit).await;
    assert_eq!(miss.body["caption"], "v1", "the miss read before the edit");
    let after = env.send(get_post()).await;
    assert_eq!(
        (
            after.body["caption"].as_str(),
            after.body["version"].as_u64()
        ),
        (Some("v2"), Some(2)),
        "a read after the edit answered"
    );

    // A post's first comments: the miss's Query of the comment's shard waits the same way.
    assert_eq!(env.send(get_comments()).await.status, 200, "cached");
    let shard = shared::store::keys::comment_pk(&post_id, &comment_id);
    let edit = ApiRequest::patch(&format!("{path}/comments/{comment_id}"))
        .bearer(&token)
        .json(json!({"text": "edited"}));
    let rule = format!("Query|{shard}\"");
    let miss = race
        .miss(&rule, 2, &comments_key, get_comments(), edit)
        .await;
    assert_eq!(
        miss.body["items"][0]["text"], "first",
        "read before the edit"
    );
    let after = env.send(get_comments()).await;
    assert_eq!(
        after.body["items"][0]["text"], "edited",
        "a read after the edit answered: {}",
        after.raw_body
    );

    // A post the feed's first page reads from the table (its entry missing) and writes back:
    // the page's BatchGetItem answer waits the same way.
    assert_eq!(env.send(get_feed()).await.status, 200, "the feed is cached");
    tokio::time::sleep(Duration::from_millis(300)).await; // past the instance's copy of it
    let edit = ApiRequest::patch(&path)
        .bearer(&token)
        .json(json!({"caption": "v3"}));
    let page = race
        .miss("BatchGetItem", 3, &post_key, get_feed(), edit)
        .await;
    assert_eq!(
        page.body["items"][0]["caption"], "v2",
        "read before the edit"
    );
    let after = env.send(get_post()).await;
    assert_eq!(
        after.body["caption"], "v3",
        "a read after the edit answered: {}",
        after.raw_body
    );
}

/// One world behind a DynamoDB proxy, for the races of a miss with an edit and a loss.
struct Race<'a> {
    env: &'a TestEnv,
    proxy: &'a integration_tests::DynamoProxy,
}

impl Race<'_> {
    /// Sends `miss` with `key`'s entry lost, so it reads the table; the proxy holds the answer
    /// of that read (`rule`, the `held_in_all`th answer the proxy holds) while `edit` is
    /// answered and the entry is lost again; then lets it go. Returns the miss's answer (200).
    async fn miss(
        &self,
        rule: &str,
        held_in_all: usize,
        key: &str,
        miss: ApiRequest,
        edit: ApiRequest,
    ) -> ApiResponse {
        self.env.redis.evict_key(key).await;
        self.proxy.hold_answers(rule, 1);
        let edit = async {
            self.proxy.answers_held(held_in_all).await;
            let res = self.env.send(edit).await;
            assert_eq!(res.status, 200, "{}", res.raw_body);
            self.env.redis.evict_key(key).await;
            self.proxy.release_answers();
        };
        let (miss, ()) = tokio::join!(self.env.send(miss), edit);
        assert_eq!(miss.status, 200, "{}", miss.raw_body);
        miss
    }
}
