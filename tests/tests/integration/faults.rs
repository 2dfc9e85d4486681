//! Faults, for real: a `redis-server` killed with SIGKILL or frozen with SIGSTOP in the middle
//! of a run (with `TEST_REDIS_MODE=cluster`, the master holding the user's key, while the other
//! masters stay up), a DynamoDB endpoint that refuses connections or accepts them and never
//! answers, cache entries that lie, and a post delete that died half-way.
//!
//! Latency bounds are never absolute: each run measures its own DynamoDB-only baseline on the
//! same machine, with the same concurrency, in the same test, and every request of the fault
//! run must stay within `REDIS_TIMEOUT_MS + baseline p99 + SLACK`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::join_all;
use integration_tests::bounds::{assert_bounded, Sample};
use integration_tests::dynamo_proxy::Mode;
use integration_tests::{cache_key, email_of, id_of, unique_email, ApiRequest, TestEnv, PASSWORD};
use serde_json::{json, Value};
use shared::domain::{new_id, Email};
use shared::store::keys::post_key;

/// What a request may take while DynamoDB is unreachable: the SDK is set to 2 attempts of at
/// most 1.5 s each (connect 0.5 s), 3 s in all; the rest is slack.
const DYNAMO_BOUND: Duration = Duration::from_secs(5);

/// Requests in flight at once during a run.
const LANES: usize = 8;

/// The value at `q` (0..=1) of `samples`, sorted in place.
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    assert!(!samples.is_empty(), "no samples");
    samples.sort_unstable();
    let index = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[index]
}

// ---------------------------------------------------------------------------------------
// Runs of many requests, some lanes at a time, with a fault injected mid-run.
// ---------------------------------------------------------------------------------------

/// Sends `total` requests made by `request`, `LANES` at a time, while `during` runs beside
/// them (it may watch `done` to act mid-run).
async fn run<F, D>(
    env: &TestEnv,
    total: usize,
    request: F,
    done: &AtomicUsize,
    during: D,
) -> Vec<Sample>
where
    F: Fn() -> ApiRequest,
    D: std::future::Future<Output = ()>,
{
    let next = AtomicUsize::new(0);
    let samples = Mutex::new(Vec::with_capacity(total));
    let lane = || async {
        while next.fetch_add(1, Ordering::SeqCst) < total {
            let started = Instant::now();
            let response = env.send(request()).await;
            let took = started.elapsed();
            samples.lock().expect("lock").push(Sample {
                started,
                took,
                response,
            });
            done.fetch_add(1, Ordering::SeqCst);
        }
    };
    tokio::join!(join_all((0..LANES).map(|_| lane())), during);
    samples.into_inner().expect("lock")
}

async fn wait_until(done: &AtomicUsize, count: usize) {
    while done.load(Ordering::SeqCst) < count {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// p99 of the DynamoDB read a request falls back to, `LANES` at a time, on this machine now.
async fn dynamodb_only_p99(env: &TestEnv, email: &str) -> Duration {
    let email = Email::parse(email).expect("email");
    let next = AtomicUsize::new(0);
    let took = Mutex::new(Vec::new());
    let lane = || async {
        while next.fetch_add(1, Ordering::SeqCst) < 200 {
            let started = Instant::now();
            env.app
                .store
                .get_user(&email)
                .await
                .expect("GetItem")
                .expect("the user");
            took.lock().expect("lock").push(started.elapsed());
        }
    };
    join_all((0..LANES).map(|_| lane())).await;
    quantile(&mut took.into_inner().expect("lock"), 0.99)
}

/// No help from the test: the app reconnects by itself, misses once, then hits. Returns how
/// many requests that took.
async fn assert_hits_resume(env: &TestEnv, token: &str, user: &Value) -> usize {
    let (mut requests, mut stable) = (0, 0);
    while stable < 5 {
        requests += 1;
        assert!(
            requests <= 50,
            "hits did not resume after {requests} requests"
        );
        let before = env.dynamo.calls.get("GetItem");
        let res = env.me(token).await;
        assert_eq!((res.status, &res.body), (200, user), "{}", res.raw_body);
        stable = if env.dynamo.calls.get("GetItem") == before {
            stable + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And they stay hits: a burst makes no DynamoDB call at all.
    let before = env.dynamo.calls.get("GetItem");
    for _ in 0..50 {
        assert_eq!(env.me(token).await.status, 200);
    }
    assert_eq!(
        env.dynamo.calls.get("GetItem"),
        before,
        "the GetItem count stopped growing"
    );
    requests
}

#[derive(Clone, Copy, Debug)]
enum RedisFault {
    /// SIGKILL, then a new process on the same port (empty: nothing was persisted; a cluster
    /// master rejoins with its slots).
    Killed,
    /// SIGSTOP, then SIGCONT: accepts connections, answers nothing, then comes back.
    Frozen,
}

/// 600 authenticated requests; Redis fails after the 150th and returns after the 400th.
///
/// Beside the requests, a probe makes the DynamoDB read alone, over and over, so each request
/// is held to a bound measured at the same moment, under the same load (a sibling test or a
/// build on this 2-core machine delays the probe as much as the request):
/// `REDIS_TIMEOUT_MS + max(baseline p99, slowest probe overlapping it) + SLACK`.
async fn redis_fault_mid_run(fault: RedisFault) {
    const TOTAL: usize = 600;
    const FAIL_AT: usize = 150;
    const BACK_AT: usize = 400;

    let env = TestEnv::new().await;
    let timeout = env.app.config.cache.redis_timeout;
    let (token, user) = env.new_user("Outage").await;
    let email = Email::parse(&email_of(&user)).expect("email");
    assert_eq!(env.me(&token).await.status, 200);
    // The server, or the master that holds the user's entry.
    let redis = env.redis.node_of(&cache_key(email.as_str())).await;

    let baseline = dynamodb_only_p99(&env, &email_of(&user)).await;

    env.dynamo.calls.reset();
    let done = AtomicUsize::new(0);
    let window = Mutex::new(None);
    let probes = Mutex::new(Vec::new());
    let fault_injection = async {
        wait_until(&done, FAIL_AT).await;
        match fault {
            RedisFault::Killed => redis.kill(),
            RedisFault::Frozen => redis.freeze(),
        }
        let failed = Instant::now();
        // Bounded, so requests that hung (no timeout) fail the test instead of stalling it.
        let _ = tokio::time::timeout(Duration::from_secs(15), wait_until(&done, BACK_AT)).await;
        let back = Instant::now();
        match fault {
            RedisFault::Killed => redis.start().await,
            RedisFault::Frozen => redis.thaw(),
        }
        *window.lock().expect("lock") = Some((failed, back));
    };
    let probe = async {
        while done.load(Ordering::SeqCst) < TOTAL {
            let started = Instant::now();
            env.app
                .store
                .get_user(&email)
                .await
                .expect("GetItem")
                .expect("the user");
            probes
                .lock()
                .expect("lock")
                .push((started, started.elapsed()));
        }
    };
    let during = async {
        tokio::join!(fault_injection, probe);
    };
    let samples = run(
        &env,
        TOTAL,
        || ApiRequest::me().bearer(&token),
        &done,
        during,
    )
    .await;
    let probes = probes.into_inner().expect("lock");
    let get_items = env.dynamo.calls.get("GetItem") - probes.len() as u64;
    let (failed, back) = window
        .into_inner()
        .expect("lock")
        .expect("the fault happened");

    assert_eq!(samples.len(), TOTAL);
    let (worst_margin, _) = assert_bounded(
        &samples,
        &probes,
        timeout,
        baseline,
        &user,
        &format!("{fault:?}"),
    );
    // Every request made while Redis was down was answered from DynamoDB. (One still waiting
    // for its GET when Redis comes back may get its answer from Redis after all.)
    let in_outage: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started >= failed && s.started + s.took <= back)
        .collect();
    assert!(
        in_outage.len() >= 100,
        "the fault covered only {} requests",
        in_outage.len()
    );
    assert!(
        get_items >= in_outage.len() as u64,
        "{get_items} GetItems for {} requests in the outage",
        in_outage.len()
    );

    let mut outage: Vec<Duration> = in_outage.iter().map(|s| s.took).collect();
    let mut all: Vec<Duration> = samples.iter().map(|s| s.took).collect();
    let mut probed: Vec<Duration> = probes.iter().map(|(_, t)| *t).collect();
    let misses_to_resume = assert_hits_resume(&env, &token, &user).await;
    println!(
        "redis {fault:?} mid-run ({:?}): {TOTAL} requests ({LANES} at a time), {} in the outage, {get_items} GetItem; \
         DynamoDB-only p99 {baseline:?} before, {:?} during ({} probes); outage p50 {:?} p99 {:?} max {:?}; \
         all max {:?}; smallest margin under the bound {worst_margin:?}; hits resumed after {misses_to_resume} requests",
        env.redis.mode(),
        in_outage.len(),
        quantile(&mut probed, 0.99),
        probes.len(),
        quantile(&mut outage, 0.5),
        quantile(&mut outage, 0.99),
        quantile(&mut outage, 1.0),
        quantile(&mut all, 1.0),
    );
}

#[tokio::test]
async fn redis_killed_mid_run_every_request_succeeds_within_its_timeout_and_hits_resume() {
    redis_fault_mid_run(RedisFault::Killed).await;
}

#[tokio::test]
async fn redis_frozen_mid_run_every_request_succeeds_within_its_timeout_and_hits_resume() {
    redis_fault_mid_run(RedisFault::Frozen).await;
}

// ---------------------------------------------------------------------------------------
// DynamoDB down: a proxy in front of dynoxide that can refuse or swallow connections.
// (`Dynamo::stop` closes dynoxide's listener, but its keep-alive connections are detached
// tasks that keep serving, so the SDK's pooled connections would still work.)
// ---------------------------------------------------------------------------------------

/// The world of a DynamoDB outage: `hit` has a cached user, `miss` has none; a post that is
/// cached, and one that is not.
struct OutageWorld {
    hit: String,
    hit_user: Value,
    miss: String,
    miss_user: Value,
    post_id: String,
    uncached_post_id: String,
}

async fn outage_world(env: &TestEnv) -> OutageWorld {
    let (hit, hit_user) = env.new_user("Cached").await;
    let (miss, miss_user) = env.new_user("Uncached").await;
    let uncached_post_id = id_of(&env.new_post(&hit, "not in the cache").await);
    let post_id = id_of(&env.new_post(&hit, "before the outage").await);
    env.redis.evict(&email_of(&miss_user)).await;
    env.redis
        .evict_key(&shared::cache::kinds::post_key(&uncached_post_id))
        .await;
    assert_eq!(env.me(&hit).await.status, 200);
    OutageWorld {
        hit,
        hit_user,
        miss,
        miss_user,
        post_id,
        uncached_post_id,
    }
}

/// The DynamoDB calls a request makes at once: one, but a feed page read from the table, which
/// queries every shard of the feed index and the legacy partition together.
fn calls_of(what: &str) -> u64 {
    if what.starts_with("GET /posts ") {
        u64::from(shared::store::keys::FEED_SHARDS) + 1
    } else {
        1
    }
}

/// Every kind of request that needs DynamoDB, and whether its user is a cache hit.
fn needs_dynamodb(w: &OutageWorld) -> Vec<(&'static str, ApiRequest)> {
    let post = format!("/posts/{}", w.post_id);
    let uncached = format!("/posts/{}", w.uncached_post_id);
    vec![
        (
            "GET /users/me (cache miss)",
            ApiRequest::me().bearer(&w.miss),
        ),
        (
            "POST /posts (cache hit)",
            ApiRequest::post("/posts")
                .bearer(&w.hit)
                .json(json!({"caption": "during"})),
        ),
        (
            "GET /posts/{id} (not cached)",
            ApiRequest::get(&uncached).bearer(&w.hit),
        ),
        (
            "GET /posts (the feed, not cached)",
            ApiRequest::get("/posts").bearer(&w.hit),
        ),
        (
            "PATCH /posts/{id}",
            ApiRequest::patch(&post)
                .bearer(&w.hit)
                .json(json!({"caption": "edited"})),
        ),
        (
            "POST /posts/{id}/comments",
            ApiRequest::post(&format!("{post}/comments"))
                .bearer(&w.hit)
                .json(json!({"text": "during"})),
        ),
        (
            "PATCH /users/me",
            ApiRequest::patch("/users/me")
                .bearer(&w.hit)
                .json(json!({"name": "Renamed"})),
        ),
        (
            "POST /auth/login",
            ApiRequest::post("/auth/login")
                .json(json!({"email": email_of(&w.hit_user), "password": PASSWORD})),
        ),
        (
            "POST /users",
            ApiRequest::post("/users").json(
                json!({"email": unique_email("during"), "name": "New", "password": PASSWORD}),
            ),
        ),
    ]
}

/// A cached post is served during the outage, with no DynamoDB call.
async fn assert_cached_post_served(env: &TestEnv, w: &OutageWorld) {
    let before = env.dynamo.calls.total();
    let res = env
        .send(ApiRequest::get(&format!("/posts/{}", w.post_id)).bearer(&w.hit))
        .await;
    assert_eq!(
        res.status, 200,
        "a cached post needs no DynamoDB: {}",
        res.raw_body
    );
    assert_eq!(res.body["caption"], "before the outage");
    assert_eq!(env.dynamo.calls.total(), before);
}

/// What the outage must not have changed, and that everything works again once it is over.
async fn assert_recovered(env: &TestEnv, w: &OutageWorld) {
    // The failed miss wrote no answer: no negative entry that would lock the user out (its
    // lease's placeholder, if still there, serves nothing).
    assert_eq!(
        env.redis.entry(&email_of(&w.miss_user)).await,
        None,
        "a DynamoDB failure must not be cached"
    );

    let res = env.me(&w.miss).await;
    assert_eq!(
        (res.status, &res.body),
        (200, &w.miss_user),
        "{}",
        res.raw_body
    );
    let post = env
        .send(ApiRequest::get(&format!("/posts/{}", w.post_id)).bearer(&w.hit))
        .await;
    assert_eq!(post.status, 200, "{}", post.raw_body);
    assert_eq!(
        (post.body["caption"].as_str(), &post.body["version"]),
        (Some("before the outage"), &json!(1))
    );
    assert_eq!(
        post.body["commentCount"], 0,
        "no comment was counted during the outage"
    );
    let created = env
        .send(
            ApiRequest::post("/posts")
                .bearer(&w.hit)
                .json(json!({"caption": "after"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    let login = env.login(&email_of(&w.hit_user)).await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    let feed = env.send(ApiRequest::get("/posts").bearer(&w.hit)).await;
    let captions: Vec<&str> = feed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["caption"].as_str())
        .collect();
    assert_eq!(
        captions,
        ["after", "before the outage", "not in the cache"],
        "nothing written during the outage"
    );
}

#[tokio::test]
async fn dynamodb_refusing_connections_is_a_fast_503_and_requests_recover_when_it_returns() {
    let (env, proxy) = TestEnv::behind_dynamo_proxy().await;
    let w = outage_world(&env).await;

    proxy.set(Mode::Refuse);
    // A cached user still authenticates, and reads that need nothing else still work.
    let before = env.dynamo.calls.total();
    let res = env.me(&w.hit).await;
    assert_eq!(
        (res.status, &res.body),
        (200, &w.hit_user),
        "a cache hit needs no DynamoDB: {}",
        res.raw_body
    );
    assert_eq!(env.dynamo.calls.total(), before);
    assert_cached_post_served(&env, &w).await;

    let mut slowest = Duration::ZERO;
    for (what, request) in needs_dynamodb(&w) {
        let before = env.dynamo.calls.total();
        let (res, took) = env.timed(request).await;
        res.assert_error(503, "service_unavailable");
        assert!(
            !res.raw_body.contains("dispatch") && !res.raw_body.contains("127.0.0.1"),
            "{what}: {}",
            res.raw_body
        );
        assert!(
            took < DYNAMO_BOUND,
            "{what} took {took:?} with DynamoDB refusing connections"
        );
        let attempts = env.dynamo.calls.total() - before;
        assert!(
            (1..=2 * calls_of(what)).contains(&attempts),
            "{what}: {attempts} attempts; the SDK is set to 2 at most per call"
        );
        slowest = slowest.max(took);
    }

    proxy.set(Mode::Open);
    let started = Instant::now();
    assert_recovered(&env, &w).await;
    println!(
        "DynamoDB refusing: slowest 503 {slowest:?}; recovered in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dynamodb_that_never_answers_is_a_503_within_the_sdk_budget_and_requests_recover() {
    let (env, proxy) = TestEnv::behind_dynamo_proxy().await;
    let w = outage_world(&env).await;

    proxy.set(Mode::Blackhole);
    let res = env.me(&w.hit).await;
    assert_eq!(
        (res.status, &res.body),
        (200, &w.hit_user),
        "a cache hit needs no DynamoDB: {}",
        res.raw_body
    );
    assert_cached_post_served(&env, &w).await;

    // Each of these waits out the SDK's timeouts, so they run at once.
    let requests = needs_dynamodb(&w);
    env.dynamo.calls.reset();
    let results = join_all(requests.iter().map(|(_, r)| env.timed(r.clone()))).await;
    let mut slowest = Duration::ZERO;
    for ((what, _), (res, took)) in requests.iter().zip(&results) {
        res.assert_error(503, "service_unavailable");
        assert!(
            *took < DYNAMO_BOUND,
            "{what} took {took:?} with DynamoDB not answering"
        );
        slowest = slowest.max(*took);
    }
    let calls: u64 = requests.iter().map(|(what, _)| calls_of(what)).sum();
    assert!(
        env.dynamo.calls.total() <= 2 * calls,
        "{} attempts for {calls} calls; the SDK is set to 2 at most",
        env.dynamo.calls.total(),
    );

    proxy.set(Mode::Open);
    let started = Instant::now();
    assert_recovered(&env, &w).await;
    println!(
        "DynamoDB silent: slowest 503 {slowest:?}; recovered in {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// Cache entries that lie.
// ---------------------------------------------------------------------------------------

/// A well-formed entry for `email` holding a user with this `id` and `jwtVersion`.
fn entry(id: &str, email: &str, name: &str, jwt_version: u64) -> Value {
    json!({"kind": "user", "user": {
        "id": id, "email": email, "name": name, "jwtVersion": jwt_version, "createdAt": "2020-01-01T00:00:00Z",
    }})
}

async fn cached_user(env: &TestEnv, email: &str) -> Value {
    env.redis.entry(email).await.expect("an entry")["user"].clone()
}

#[tokio::test]
async fn a_forged_entry_for_the_right_email_never_authenticates_another_sub() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Victim").await;
    let (email, real_id) = (email_of(&user), id_of(&user));
    let older_id = "00000000000000000000000000"; // a ULID from 1970: older than any real user
    let newer_id = new_id(); // made after the user registered

    for (forged_id, dynamo_decides) in [(older_id.to_owned(), true), (newer_id, false)] {
        env.redis
            .set_user_entry(&email, &entry(&forged_id, &email, "Forged", 1))
            .await;
        env.dynamo.calls.reset();
        let res = env.me(&token).await;
        assert_ne!(
            res.body["id"],
            forged_id.as_str(),
            "the forged identity was served: {}",
            res.raw_body
        );
        assert_ne!(res.body["name"], "Forged", "{}", res.raw_body);
        if dynamo_decides {
            // The entry is older than the token (ids only grow), so it may be stale: DynamoDB
            // decides, and its answer replaces the entry.
            assert_eq!((res.status, &res.body), (200, &user), "{}", res.raw_body);
            assert_eq!(env.dynamo.calls.get("GetItem"), 1);
            assert_eq!(
                cached_user(&env, &email).await["id"],
                real_id.as_str(),
                "the forged entry was replaced"
            );
        } else {
            // The entry is newer than the token: the token is the stale one, refused from the
            // cache without a DynamoDB call (as a token of an earlier user with this email is).
            res.assert_error(401, "unauthorized");
            assert_eq!(env.dynamo.calls.total(), 0);
        }
    }
}

#[tokio::test]
async fn a_forged_entry_with_another_jwt_version_never_accepts_a_revoked_token_dynamodb_does_not() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Versions").await;
    let (email, id) = (email_of(&user), id_of(&user));

    // An entry with a higher version than the token: the token looks revoked; refused, and
    // no DynamoDB call (a revoked token costs nothing).
    env.redis
        .set_user_entry(&email, &entry(&id, &email, "Versions", 7))
        .await;
    env.dynamo.calls.reset();
    env.me(&token).await.assert_error(401, "unauthorized");
    assert_eq!(env.dynamo.calls.total(), 0);

    // An entry with a lower version than the token cannot be current (versions only grow):
    // DynamoDB decides, and the token, current there, is accepted.
    env.redis
        .set_user_entry(&email, &entry(&id, &email, "Versions", 0))
        .await;
    env.dynamo.calls.reset();
    let res = env.me(&token).await;
    assert_eq!((res.status, &res.body), (200, &user), "{}", res.raw_body);
    assert_eq!(env.dynamo.calls.get("GetItem"), 1);
    assert_eq!(cached_user(&env, &email).await["jwtVersion"], 1);
    // A token from the future (version 2, never issued) is refused by DynamoDB, and stays so.
    env.send(ApiRequest::me().bearer(&integration_tests::tokens::token_for(&id, &email, 2)))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(env.me(&token).await.status, 200);
}

#[tokio::test]
async fn a_stale_entry_left_by_a_failed_logout_is_healed_by_the_next_login() {
    let env = TestEnv::new().await;
    let (old, user) = env.new_user("Stale").await;
    let email = email_of(&user);
    let before_logout = env.redis.entry_bytes(&email).await.expect("entry");

    let res = env
        .send(ApiRequest::post("/auth/logout").bearer(&old))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    // As if Redis had not taken the logout's write-through and no stream sync ran (this world
    // has none): the entry still says jwtVersion 1.
    env.redis.set_entry(&email, &before_logout).await;

    let login = env.login(&email).await;
    let new = login.body["token"].as_str().expect("token");
    let res = env.me(new).await;
    assert_eq!(
        res.status, 200,
        "the new token works at once, not after the TTL: {}",
        res.raw_body
    );
    assert_eq!(
        cached_user(&env, &email).await["jwtVersion"],
        2,
        "and the entry is healed"
    );
    env.dynamo.calls.reset();
    env.me(&old).await.assert_error(401, "unauthorized");
    assert_eq!(
        env.dynamo.calls.total(),
        0,
        "so the old token is refused from the cache again"
    );
}

#[tokio::test]
async fn a_stale_entry_of_a_deleted_user_is_healed_by_the_new_user_of_that_email() {
    let env = TestEnv::new().await;
    let email = unique_email("Reused");
    assert_eq!(env.register(&email, "First").await.status, 201);
    let first = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let first_entry = env.redis.entry_bytes(&email).await.expect("entry");
    let res = env
        .send(ApiRequest::delete("/users/me").bearer(&first))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    let second_user = env.register(&email, "Second").await;
    assert_eq!(second_user.status, 201, "{}", second_user.raw_body);
    env.redis.set_entry(&email, &first_entry).await; // the delete and the registration never reached Redis

    let second = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let res = env.me(&second).await;
    assert_eq!(
        (res.status, &res.body),
        (200, &second_user.body),
        "{}",
        res.raw_body
    );
    assert_eq!(
        cached_user(&env, &email).await["id"],
        second_user.body["id"]
    );
    env.me(&first).await.assert_error(401, "unauthorized");
}

// ---------------------------------------------------------------------------------------
// A delete that died half-way.
// ---------------------------------------------------------------------------------------

/// However a post item goes (here removed straight from the table, as an operator might, with
/// no request at all), its comments are swept: the sweep hangs on the post's own stream
/// record, not on a request finishing.
#[tokio::test]
async fn a_post_removed_any_way_has_its_comments_swept() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Crashy").await;
    let (other, _) = env.new_user("Talker").await;
    let post_id = id_of(&env.new_post(&token, "doomed").await);
    let keep_id = id_of(&env.new_post(&token, "keeps its comments").await);
    for i in 0..30 {
        let (who, post) = if i % 3 == 0 {
            (&token, &keep_id)
        } else {
            (&other, &post_id)
        };
        let res = env
            .send(
                ApiRequest::post(&format!("/posts/{post}/comments"))
                    .bearer(who)
                    .json(json!({"text": format!("c{i}")})),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.raw_body);
    }
    assert_eq!(
        env.post_partition(&post_id).await.len(),
        21,
        "the post and its 20 comments"
    );

    env.dynamo.delete_item(post_key(&post_id)).await;
    assert_eq!(
        env.post_partition(&post_id).await.len(),
        20,
        "20 comments of a gone post"
    );
    env.settle().await;
    assert_eq!(
        env.post_partition(&post_id).await,
        Vec::<String>::new(),
        "the upkeep swept them"
    );
    assert_eq!(
        env.post_partition(&keep_id).await.len(),
        11,
        "another post keeps its own"
    );
    assert_eq!(env.comment_count(&token, &keep_id).await, 10);

    // A delete of it now, by anyone, is a plain 404.
    env.send(ApiRequest::delete(&format!("/posts/{post_id}")).bearer(&other))
        .await
        .assert_error(404, "not_found");
    env.send(ApiRequest::get(&format!("/posts/{post_id}/comments")).bearer(&token))
        .await
        .assert_error(404, "not_found");
}
