//! The user cache-aside, proven by counting DynamoDB calls and by reading Redis directly.
//!
//! Every request goes through the real handlers as an API Gateway event; every assertion
//! about the cache reads the raw value under its key in the test's own `redis-server`.

use std::time::{Duration, Instant};

use integration_tests::{
    cache_key, closed_port, email_of, unique_email, ApiRequest, TestEnv, TestRedis, TEST_SECRET,
};
use redis::AsyncCommands;
use serde_json::{json, Value};
use shared::config::RedisUrl;
use shared::config::Secret;
use shared::App;

/// What a request may take while Redis is down or hanging: generous, since the point is
/// that there is a bound (the Redis timeout is 50 ms in tests), not that it is fast.
const BOUND: Duration = Duration::from_secs(1);

/// The entry as JSON; panics when there is none or it is not JSON.
async fn entry(env: &TestEnv, email: &str) -> Value {
    env.redis
        .entry(email)
        .await
        .unwrap_or_else(|| panic!("no cache entry for {email}"))
}

async fn pttl(env: &TestEnv, key: &str) -> i64 {
    let mut conn = env.redis.connection().await.expect("redis connection");
    conn.pttl::<_, i64>(key).await.expect("PTTL")
}

async fn all_keys(env: &TestEnv) -> Vec<String> {
    let mut conn = env.redis.connection().await.expect("redis connection");
    let mut keys: Vec<String> = conn.keys("*").await.expect("KEYS");
    keys.sort();
    keys
}

/// Asserts the PTTL of `email`'s entry is within ±10% of `base`, allowing for the time since
/// it was set.
async fn assert_jittered_ttl(env: &TestEnv, email: &str, base: Duration) -> i64 {
    let ttl = env.redis.entry_pttl(email).await;
    let (low, high) = (pttl_floor(base), pttl_ceiling(base));
    assert!(ttl > 0, "{email}'s entry has no TTL (PTTL {ttl})");
    assert!(
        (low - 1_000..=high).contains(&ttl),
        "{email}'s entry: PTTL {ttl} ms is outside {low}..={high} ms"
    );
    ttl
}

/// The lowest PTTL an entry with TTL `base` can start with.
fn pttl_floor(base: Duration) -> i64 {
    let base = base.as_millis() as i64;
    base - base / 10
}

/// The highest PTTL an entry with TTL `base` can start with.
fn pttl_ceiling(base: Duration) -> i64 {
    let base = base.as_millis() as i64;
    base + base / 10
}

#[tokio::test]
async fn a_cache_hit_makes_no_dynamodb_call() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Hit").await;
    assert_eq!(
        entry(&env, &email_of(&user)).await["kind"],
        "user",
        "registration fills the cache"
    );

    env.dynamo.calls.reset();
    for _ in 0..3 {
        let res = env.me(&token).await;
        assert_eq!(res.status, 200, "{}", res.raw_body);
        assert_eq!(res.body, user);
    }
    assert_eq!(env.dynamo.calls.total(), 0, "hits must not touch DynamoDB");
}

#[tokio::test]
async fn a_miss_makes_exactly_one_dynamodb_call_and_populates_the_cache() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Miss").await;
    let email = email_of(&user);
    env.redis.evict(&email).await;

    env.dynamo.calls.reset();
    let res = env.me(&token).await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(res.body, user);
    assert_eq!(env.dynamo.calls.get("GetItem"), 1);
    assert_eq!(
        env.dynamo.calls.total(),
        1,
        "a miss is one GetItem and nothing else"
    );

    let cached = entry(&env, &email).await;
    assert_eq!(cached["kind"], "user");
    assert_eq!(cached["user"]["id"], user["id"]);
    assert_eq!(cached["user"]["email"], user["email"]);
    assert_eq!(cached["user"]["name"], user["name"]);
    assert_eq!(cached["user"]["jwtVersion"], 1);
    assert_jittered_ttl(&env, &email, env.app.config.cache.cache_ttl).await;

    let res = env.me(&token).await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(
        env.dynamo.calls.total(),
        1,
        "the request after a miss is a hit"
    );
}

#[tokio::test]
async fn every_key_has_a_ttl_jittered_within_ten_percent() {
    let env = TestEnv::new().await;
    let ttl = env.app.config.cache.cache_ttl;
    let negative_ttl = env.app.config.cache.negative_cache_ttl;
    let (token, user) = env.new_user("Ttl").await;
    let email = email_of(&user);

    // Written through by registration.
    assert_jittered_ttl(&env, &email, ttl).await;

    // Written back by misses: each gets its own jittered TTL.
    let mut ttls = Vec::new();
    for _ in 0..10 {
        env.redis.evict(&email).await;
        let res = env.me(&token).await;
        assert_eq!(res.status, 200, "{}", res.raw_body);
        ttls.push(assert_jittered_ttl(&env, &email, ttl).await);
    }
    let spread = ttls.iter().max().copied().unwrap_or(0) - ttls.iter().min().copied().unwrap_or(0);
    // Ten draws from a 60 s window all landing within 1 s of each other: about 1e-15.
    assert!(spread > 1_000, "TTLs are not jittered: {ttls:?}");

    // Written through by a rename and a logout.
    let res = env
        .send(
            ApiRequest::patch("/users/me")
                .bearer(&token)
                .json(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_jittered_ttl(&env, &email, ttl).await;
    let res = env
        .send(ApiRequest::post("/auth/logout").bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_jittered_ttl(&env, &email, ttl).await;

    // A negative entry, written back by a miss for an unknown user.
    let ghost = unique_email("ghost");
    let res = env
        .send(ApiRequest::me().bearer(&integration_tests::tokens::token_for("01GHOST", &ghost, 1)))
        .await;
    res.assert_error(401, "unauthorized");
    assert_jittered_ttl(&env, &ghost, negative_ttl).await;

    // And no key anywhere lives forever.
    for k in all_keys(&env).await {
        assert!(pttl(&env, &k).await > 0, "{k} has no TTL");
    }
}

#[tokio::test]
async fn deleting_a_user_refuses_its_token_at_once_from_a_tombstone() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Gone").await;
    let email = email_of(&user);

    let res = env
        .send(ApiRequest::delete("/users/me").bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    // The tombstone names the deleted user and the revision after its last (registration: 1),
    // and lives as long as the user's entry would have, so no late write of the user's old
    // state can land over it.
    assert_eq!(
        entry(&env, &email).await,
        json!({"id": user["id"], "rev": 2, "kind": "absent"})
    );
    assert_jittered_ttl(&env, &email, env.app.config.cache.cache_ttl).await;

    env.dynamo.calls.reset();
    env.me(&token).await.assert_error(401, "unauthorized");
    assert_eq!(
        env.dynamo.calls.total(),
        0,
        "the tombstone answers without DynamoDB"
    );
}

#[tokio::test]
async fn a_miss_for_a_deleted_user_caches_its_absence_briefly() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Absent").await;
    let email = email_of(&user);
    let res = env
        .send(ApiRequest::delete("/users/me").bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    env.redis.evict(&email).await; // as if the negative entry had expired

    env.dynamo.calls.reset();
    env.me(&token).await.assert_error(401, "unauthorized");
    assert_eq!(env.dynamo.calls.get("GetItem"), 1);
    assert_eq!(env.dynamo.calls.total(), 1);
    assert_eq!(
        entry(&env, &email).await,
        json!({"id": "", "rev": 0, "kind": "absent"})
    );
    assert_jittered_ttl(&env, &email, env.app.config.cache.negative_cache_ttl).await;

    env.me(&token).await.assert_error(401, "unauthorized");
    assert_eq!(
        env.dynamo.calls.total(),
        1,
        "the next request makes no DynamoDB call"
    );
}

#[tokio::test]
async fn registration_replaces_a_negative_entry_so_the_new_user_works_at_once() {
    let env = TestEnv::new().await;
    let email = unique_email("Late");

    // A request for the not-yet-registered email leaves a negative entry.
    env.send(ApiRequest::me().bearer(&integration_tests::tokens::token_for("01NOBODY", &email, 1)))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(
        entry(&env, &email).await,
        json!({"id": "", "rev": 0, "kind": "absent"})
    );

    let registered = env.register(&email, "Late").await;
    assert_eq!(registered.status, 201, "{}", registered.raw_body);
    let cached = entry(&env, &email).await;
    assert_eq!(
        cached["kind"], "user",
        "registration overwrites the negative entry: {cached}"
    );
    assert_eq!(cached["user"]["id"], registered.body["id"]);
    assert_jittered_ttl(&env, &email, env.app.config.cache.cache_ttl).await;

    let login = env.login(&email).await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    let token = login.body["token"].as_str().expect("token");
    env.dynamo.calls.reset();
    let res = env.me(token).await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(res.body, registered.body);
    assert_eq!(
        env.dynamo.calls.total(),
        0,
        "served from the entry registration wrote"
    );
}

#[tokio::test]
async fn logout_revokes_the_old_token_on_the_very_next_request() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Leaver").await;
    let email = email_of(&user);
    assert_eq!(env.me(&token).await.status, 200);
    assert_eq!(entry(&env, &email).await["user"]["jwtVersion"], 1);

    let res = env
        .send(ApiRequest::post("/auth/logout").bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_eq!(
        entry(&env, &email).await["user"]["jwtVersion"],
        2,
        "the cache holds the bumped jwtVersion"
    );

    env.dynamo.calls.reset();
    env.me(&token).await.assert_error(401, "unauthorized");
    assert_eq!(
        env.dynamo.calls.total(),
        0,
        "refused from the cache, which already knows"
    );

    let login = env.login(&email).await;
    let fresh = login.body["token"].as_str().expect("token");
    assert_eq!(
        env.me(fresh).await.status,
        200,
        "a token issued after logout works"
    );
}

#[tokio::test]
async fn a_rename_is_served_from_the_cache_on_the_next_request() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Before").await;
    let res = env
        .send(
            ApiRequest::patch("/users/me")
                .bearer(&token)
                .json(json!({"name": "After"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(res.body["name"], "After");
    assert_eq!(entry(&env, &email_of(&user)).await["user"]["name"], "After");

    env.dynamo.calls.reset();
    let res = env.me(&token).await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(res.body["name"], "After");
    assert_eq!(res.body["id"], user["id"]);
    assert_eq!(
        env.dynamo.calls.total(),
        0,
        "the new name comes from the cache"
    );
}

/// Puts `value` under the user's key, then shows the request is served from DynamoDB and
/// the value replaced by a good entry for this user.
async fn assert_bad_entry_is_replaced(env: &TestEnv, token: &str, user: &Value, value: &[u8]) {
    let email = email_of(user);
    env.redis.set_entry(&email, value).await;
    env.dynamo.calls.reset();
    let res = env.me(token).await;
    let shown = String::from_utf8_lossy(value);
    assert_eq!(res.status, 200, "with entry {shown}: {}", res.raw_body);
    assert_eq!(&res.body, user, "with entry {shown}");
    assert_eq!(env.dynamo.calls.get("GetItem"), 1, "with entry {shown}");
    let cached = entry(env, &email).await;
    assert_eq!(cached["kind"], "user", "not overwritten: {cached}");
    assert_eq!(cached["user"]["id"], user["id"]);
    assert_eq!(cached["user"]["email"], user["email"]);
    assert_eq!(cached["user"]["name"], user["name"]);
    assert_jittered_ttl(env, &email, env.app.config.cache.cache_ttl).await;

    let res = env.me(token).await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(env.dynamo.calls.total(), 1, "the replacement is a hit");
}

#[tokio::test]
async fn a_garbage_entry_is_a_miss_and_is_overwritten() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Garbage").await;
    assert_bad_entry_is_replaced(&env, &token, &user, b"\xff\xfe\x00garbage{\"kind\"").await;
    assert_bad_entry_is_replaced(&env, &token, &user, b"").await;
}

#[tokio::test]
async fn an_entry_in_an_old_format_is_a_miss_and_is_overwritten() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Format").await;
    let (id, email) = (user["id"].clone(), user["email"].clone());
    let old_formats = [
        // A bare user, untagged.
        json!({"id": id, "email": email, "name": "Stale", "jwtVersion": 1, "createdAt": user["createdAt"]}),
        // Tagged, but with snake_case fields.
        json!({"kind": "user", "user": {"id": id, "email": email, "name": "Stale", "jwt_version": 1, "created_at": "x"}}),
        // Tagged, with fields missing.
        json!({"kind": "user", "user": {"id": id, "email": email}}),
        // An unknown kind, and the old "null" negative entry.
        json!({"kind": "person", "user": user}),
        Value::Null,
    ];
    for old in old_formats {
        assert_bad_entry_is_replaced(&env, &token, &user, old.to_string().as_bytes()).await;
    }
}

#[tokio::test]
async fn an_entry_for_another_email_is_never_served_and_is_overwritten() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Owner").await;
    let (_, other) = env.new_user("Intruder").await;
    let others_entry = env
        .redis
        .entry_bytes(&email_of(&other))
        .await
        .expect("the other user's entry");
    assert!(String::from_utf8_lossy(&others_entry).contains(other["id"].as_str().expect("id")));
    assert_bad_entry_is_replaced(&env, &token, &user, &others_entry).await;
}

#[tokio::test]
async fn the_cached_value_never_holds_the_password_hash() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Secretive").await;
    let email = email_of(&user);
    let assert_clean = |raw: Vec<u8>| {
        let text = String::from_utf8_lossy(&raw).to_lowercase();
        for needle in [
            "argon2",
            "passwordhash",
            "password_hash",
            "password",
            "hash",
        ] {
            assert!(
                !text.contains(needle),
                "cache value contains {needle:?}: {text}"
            );
        }
        // Other keys (the login counters) hold no user: only the text is checked.
        let value =
            integration_tests::test_redis::user_entry_view(&raw, &email).unwrap_or(Value::Null);
        if value["kind"] == "user" {
            let mut fields: Vec<&str> = value["user"]
                .as_object()
                .expect("user object")
                .keys()
                .map(String::as_str)
                .collect();
            fields.sort_unstable();
            assert_eq!(
                fields,
                ["createdAt", "email", "id", "jwtVersion", "name", "revision"]
            );
        }
    };

    let registered = env
        .redis
        .entry_bytes(&email)
        .await
        .expect("written by registration");
    assert_eq!(
        integration_tests::test_redis::user_entry_view(&registered, &email)
            .map(|v| v["kind"].clone()),
        Some(json!("user"))
    );
    assert_clean(registered);
    env.redis.evict(&email).await;
    assert_eq!(env.me(&token).await.status, 200);
    assert_clean(
        env.redis
            .entry_bytes(&email)
            .await
            .expect("written back by a miss"),
    );
    let res = env
        .send(
            ApiRequest::patch("/users/me")
                .bearer(&token)
                .json(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_clean(
        env.redis
            .entry_bytes(&email)
            .await
            .expect("written through by a rename"),
    );
    let res = env
        .send(ApiRequest::post("/auth/logout").bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_clean(
        env.redis
            .entry_bytes(&email)
            .await
            .expect("written through by a logout"),
    );

    let mut conn = env.redis.connection().await.expect("redis connection");
    for k in all_keys(&env).await {
        let raw: Vec<u8> = conn.get(&k).await.expect("GET");
        assert_clean(raw);
    }
}

#[tokio::test]
async fn keys_are_namespaced_user_v4_by_normalized_email() {
    let env = TestEnv::new().await;
    let email = unique_email("Spaced");
    let registered = env
        .register(&format!("  {}  ", email.to_uppercase()), "Spaced")
        .await;
    assert_eq!(registered.status, 201, "{}", registered.raw_body);
    env.send(
        ApiRequest::me().bearer(&integration_tests::tokens::token_for(
            "01NOBODY",
            &unique_email("nobody"),
            1,
        )),
    )
    .await
    .assert_error(401, "unauthorized");

    // The namespace spelled out, so the key format itself is under test.
    assert_eq!(cache_key(&email), format!("user:v4:{email}"));
    let keys = all_keys(&env).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&cache_key(&email)), "{keys:?}");
    for k in &keys {
        assert!(k.starts_with("user:v4:"), "key outside the namespace: {k}");
    }
}

#[tokio::test]
async fn requests_stay_bounded_while_redis_is_down_and_hits_resume_after_it_restarts() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Outage").await;
    assert_eq!(env.me(&token).await.status, 200);
    // The stream sync runs, as in production: it is what brings a change made while Redis was
    // down to the entry Redis still holds when it comes back.
    let _sync = env.stream_sync().await;

    // Redis goes down keeping its data (a snapshot): the entry with the old name comes back.
    env.redis.snapshot().await;
    env.redis.stop();
    for i in 0..5 {
        let before = env.dynamo.calls.get("GetItem");
        let (res, took) = env.timed(ApiRequest::me().bearer(&token)).await;
        assert_eq!(
            res.status, 200,
            "request {i} with Redis down: {}",
            res.raw_body
        );
        assert_eq!(res.body, user);
        assert!(took < BOUND, "request {i} with Redis down took {took:?}");
        assert_eq!(
            env.dynamo.calls.get("GetItem"),
            before + 1,
            "served from DynamoDB"
        );
    }
    // A change while Redis is down still succeeds.
    let (res, took) = env
        .timed(
            ApiRequest::patch("/users/me")
                .bearer(&token)
                .json(json!({"name": "Outage Two"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert!(took < BOUND, "rename with Redis down took {took:?}");

    // Redis comes back with the entry of the old name (the snapshot's).
    env.redis.restart().await;
    // No help from the test: the stream sync heals the entry, the app reconnects by itself,
    // and hits resume with the new name.
    let mut requests = 0;
    let mut stable = 0;
    while stable < 5 {
        requests += 1;
        assert!(
            requests <= 100,
            "hits with the new name did not resume after {requests} requests"
        );
        let before = env.dynamo.calls.get("GetItem");
        let (res, took) = env.timed(ApiRequest::me().bearer(&token)).await;
        assert_eq!(res.status, 200, "{}", res.raw_body);
        assert!(took < BOUND, "request after restart took {took:?}");
        let hit = env.dynamo.calls.get("GetItem") == before;
        stable = if hit && res.body["name"] == "Outage Two" {
            stable + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        entry(&env, &email_of(&user)).await["user"]["name"],
        "Outage Two"
    );
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_at_most_its_timeout() {
    // The app's link stalls from its first byte: connections are accepted and not even the
    // handshake is answered.
    let redis = TestRedis::start().await;
    let silent = redis.link().await;
    silent.stall(true);
    let env = TestEnv::builder()
        .redis(redis)
        .config(|c| silent.configure(&mut c.cache))
        .build()
        .await;

    let register = json!({"email": unique_email("Hang"), "name": "Hang", "password": integration_tests::PASSWORD});
    let (registered, took) = env.timed(ApiRequest::post("/users").json(register)).await;
    assert_eq!(registered.status, 201, "{}", registered.raw_body);
    assert!(
        took < BOUND,
        "registration with a hanging Redis took {took:?}"
    );
    let login = env
        .login(registered.body["email"].as_str().expect("email"))
        .await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    let token = login.body["token"].as_str().expect("token");

    for i in 0..5 {
        let before = env.dynamo.calls.get("GetItem");
        let (res, took) = env.timed(ApiRequest::me().bearer(token)).await;
        assert_eq!(res.status, 200, "request {i}: {}", res.raw_body);
        assert_eq!(res.body, registered.body);
        assert!(
            took < BOUND,
            "request {i} with a hanging Redis took {took:?}"
        );
        assert_eq!(
            env.dynamo.calls.get("GetItem"),
            before + 1,
            "served from DynamoDB"
        );
    }
}

#[tokio::test]
async fn a_redis_that_stalls_mid_connection_costs_at_most_its_timeout_and_hits_resume() {
    let world = TestEnv::new().await;
    // A link that can stall in front of every node, and an instance that reaches Redis only
    // through it, DynamoDB through the world's counted client.
    let link = world.redis.link().await;
    let mut config = world.config_for(&link.url());
    link.configure(&mut config.cache);
    let app = App::build(
        config,
        world.dynamo.client.clone(),
        Secret::new(TEST_SECRET),
        None,
    )
    .expect("app builds");
    let env = TestEnv { app, ..world };
    let freeze = |stalled: bool| link.stall(stalled);

    let (token, user) = env.new_user("Stall").await;
    env.dynamo.calls.reset();
    assert_eq!(env.me(&token).await.status, 200);
    assert_eq!(
        env.dynamo.calls.total(),
        0,
        "a hit through the proxy: the connection is up"
    );

    freeze(true);
    for i in 0..5 {
        let before = env.dynamo.calls.get("GetItem");
        let (res, took) = env.timed(ApiRequest::me().bearer(&token)).await;
        assert_eq!(
            res.status, 200,
            "request {i} with Redis stalled: {}",
            res.raw_body
        );
        assert_eq!(res.body, user);
        assert!(took < BOUND, "request {i} with Redis stalled took {took:?}");
        assert_eq!(
            env.dynamo.calls.get("GetItem"),
            before + 1,
            "served from DynamoDB"
        );
    }

    freeze(false);
    let mut requests = 0;
    let mut stable = 0;
    while stable < 5 {
        requests += 1;
        assert!(
            requests <= 30,
            "hits did not resume after {requests} requests"
        );
        let before = env.dynamo.calls.get("GetItem");
        let (res, took) = env.timed(ApiRequest::me().bearer(&token)).await;
        assert_eq!(res.status, 200, "{}", res.raw_body);
        assert_eq!(res.body, user);
        assert!(took < BOUND, "request after the stall took {took:?}");
        stable = if env.dynamo.calls.get("GetItem") == before {
            stable + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_dead_redis_at_cold_start_does_not_fail_init() {
    let closed_url = format!("redis://127.0.0.1:{}", closed_port());

    let env =
        TestEnv::with_config(|c| c.cache.redis_url = RedisUrl::parse(&closed_url).expect("url"))
            .await;
    let config = integration_tests::test_config(&closed_url, &env.dynamo.endpoint);
    let app = App::build(
        config,
        env.dynamo.client.clone(),
        Secret::new(TEST_SECRET),
        None,
    );
    assert!(app.is_ok(), "App::build must not need Redis");

    let started = Instant::now();
    env.app.prewarm(Duration::from_millis(100)).await;
    assert!(
        started.elapsed() < BOUND,
        "prewarm against a dead Redis took {:?}",
        started.elapsed()
    );

    let (token, user) = env.new_user("Cold").await;
    for i in 0..3 {
        let (res, took) = env.timed(ApiRequest::me().bearer(&token)).await;
        assert_eq!(res.status, 200, "request {i}: {}", res.raw_body);
        assert_eq!(res.body, user);
        assert!(took < BOUND, "request {i} with a dead Redis took {took:?}");
    }
}

#[tokio::test]
async fn the_write_script_is_loaded_again_when_redis_has_forgotten_it() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Script").await;
    let email = email_of(&user);
    let sha = redis::Script::new(shared::cache::entry::COMPARE_AND_SET)
        .get_hash()
        .to_owned();
    let mut conn = env.redis.connection().await.expect("redis connection");
    let loaded: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert_eq!(loaded, [true], "registration's write loaded the script");

    // As after a restart or a failover to a server that never saw it: EVALSHA gets NOSCRIPT.
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("SCRIPT FLUSH");
    let res = env
        .send(ApiRequest::post("/auth/logout").bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_eq!(
        entry(&env, &email).await["user"]["jwtVersion"],
        2,
        "the logout's write landed all the same"
    );
    let loaded: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert_eq!(loaded, [true], "loaded again");
}
