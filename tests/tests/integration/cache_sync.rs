//! The `cache-sync` function and the stream that feeds it: every user change in DynamoDB
//! reaches the cache by itself, whatever became of the change's own cache write; records
//! delivered twice, late, out of order, or replayed after the cache lost its data leave the
//! current state, never an older one; a bad record is reported alone; a Redis that cannot take
//! writes, or a table that cannot be read, fails the batch so it is retried.
//!
//! Records are real: the table's stream in dynoxide (keys only, as `template.yaml` declares
//! it), read by the local event source mapping (`stream_poller`), as the Lambda event
//! `aws_lambda_events` describes.

use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use cache_sync_fn::{BatchFailed, CacheSync};
use integration_tests::sync::{stream_records, user_records, InProcess};
use integration_tests::{
    cache_key, closed_port, unique_email, ApiRequest, StreamSync, TestEnv, TestRedis,
};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use redis::AsyncCommands;
use serde_json::{json, Value};
use shared::cache::{Entry, WriteOutcome};
use shared::config::CacheMode;
use shared::domain::Email;
use shared::store::Store;
use stream_poller::Invoke;

const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");

/// How long a change may take to reach the cache through the stream (the contract: 5 s).
const SYNC_BOUND: Duration = Duration::from_secs(5);

/// Waits until `email`'s entry satisfies `check`, at most `SYNC_BOUND`; returns how long.
async fn wait_for_entry(
    redis: &TestRedis,
    email: &str,
    check: impl Fn(&Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let entry = redis.entry(email).await;
        if entry.as_ref().is_some_and(&check) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < SYNC_BOUND,
            "{email}: entry {entry:?} after {SYNC_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The configuration of `cache-sync` on `redis_url` (in the world's mode: a cluster with
/// `TEST_REDIS_MODE=cluster`) and the table behind `dynamo_endpoint`.
fn sync_config(redis_url: &str, dynamo_endpoint: &str) -> shared::config::Config {
    let mut config = integration_tests::test_config(redis_url, dynamo_endpoint);
    config.cache.mode = integration_tests::test_redis_mode();
    config
}

/// `cache-sync` on `redis` and `env`'s table, reading the table through `env`'s counted client.
fn sync_for(env: &TestEnv, redis: &TestRedis) -> CacheSync {
    let config = sync_config(&redis.url(), &env.dynamo.endpoint);
    let cache = shared::cache::RedisCache::new(&config.cache, None).expect("cache builds");
    CacheSync::new(cache, Store::new(env.dynamo.client.clone(), "social"))
}

/// A world whose functions cannot reach Redis at all (a closed port), so every change's own
/// cache write fails, and the sync on the real Redis (a server, or a cluster in the cluster
/// pass).
async fn env_whose_writes_never_land() -> (TestEnv, TestRedis) {
    let closed = format!("redis://127.0.0.1:{}", closed_port());
    // The world's own Redis goes unused: a single server, so a cluster pass starts one cluster
    // per test, the sync's.
    let env = TestEnv::builder()
        .mode(CacheMode::Standalone)
        .config(move |c| c.cache.redis_url = shared::config::RedisUrl::parse(&closed).expect("url"))
        .build()
        .await;
    let redis = TestRedis::start().await;
    (env, redis)
}

/// `email`'s entry, as stored, holds neither the password hash nor any field named for it
/// (the sync reads users without it). Returns the entry.
async fn assert_no_hash(redis: &TestRedis, email: &str, what: &str) -> Value {
    let raw = redis.entry_bytes(email).await.expect("an entry");
    let text = String::from_utf8_lossy(&raw);
    assert!(
        !text.contains("argon2") && !text.to_lowercase().contains("hash"),
        "{what}: {text}"
    );
    integration_tests::test_redis::user_entry_view(&raw, email).expect("a user entry")
}

#[tokio::test]
async fn every_user_change_reaches_the_cache_through_the_stream_when_its_own_write_never_lands() {
    let (env, redis) = env_whose_writes_never_land().await;
    let _sync = StreamSync::start(&sync_config(&redis.url(), &env.dynamo.endpoint)).await;

    let (token, user) = env.new_user("Synced").await;
    let email = user["email"].as_str().expect("email").to_owned();
    let took = wait_for_entry(&redis, &email, |e| e["kind"] == "user" && e["rev"] == 1).await;
    println!("registration reached the cache through the stream in {took:?}");
    // Each user entry the sync writes is checked, not only the tombstone, which has no field
    // that could hold the hash.
    let entry = assert_no_hash(&redis, &email, "the registration's entry").await;
    assert_eq!(entry["user"]["id"], user["id"], "{entry}");

    let res = env
        .send(
            ApiRequest::patch("/users/me")
                .bearer(&token)
                .json(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    wait_for_entry(&redis, &email, |e| {
        e["user"]["name"] == "Renamed" && e["rev"] == 2
    })
    .await;
    assert_no_hash(&redis, &email, "the rename's entry").await;

    let res = env
        .send(ApiRequest::post("/auth/logout").bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    wait_for_entry(&redis, &email, |e| {
        e["user"]["jwtVersion"] == 2 && e["rev"] == 3
    })
    .await;
    assert_no_hash(&redis, &email, "the logout's entry").await;

    let fresh = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let res = env
        .send(ApiRequest::delete("/users/me").bearer(&fresh))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    // The tombstone of the user the email's tombstone item names, past every revision it had
    // (cache-sync's module doc says why).
    wait_for_entry(&redis, &email, |e| {
        *e == json!({"id": user["id"], "rev": u64::MAX, "kind": "absent"})
    })
    .await;

    // The tombstone holds no hash either.
    let text = redis
        .entry(&email)
        .await
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        !text.contains("argon2") && !text.to_lowercase().contains("hash"),
        "{text}"
    );
    let ttl = redis.entry_pttl(&email).await;
    assert!(ttl > 0, "the tombstone has a TTL");
}

#[tokio::test]
async fn duplicated_reordered_and_stale_records_leave_the_current_state() {
    let (env, redis) = env_whose_writes_never_land().await;
    let (token, user) = env.new_user("Shuffled").await;
    let email = user["email"].as_str().expect("email").to_owned();
    for name in ["Two", "Three", "Four"] {
        let res = env
            .send(
                ApiRequest::patch("/users/me")
                    .bearer(&token)
                    .json(json!({"name": name})),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.raw_body);
    }
    let records = user_records(&stream_records(&env.dynamo.endpoint).await, &email);
    assert_eq!(
        records.len(),
        4,
        "one record per change: register and three renames"
    );
    let sync = sync_for(&env, &redis);
    let current = |entry: &Value| entry["rev"] == 4 && entry["user"]["name"] == "Four";

    // Newest first: one user named, read once, written once.
    let mut reversed = records.clone();
    reversed.reverse();
    env.dynamo.calls.reset();
    let (response, report) = sync.apply(reversed).await.expect("applied");
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((report.users, report.written), (1, 1), "{report:?}");
    assert_eq!(
        env.dynamo.calls.get("GetItem"),
        1,
        "one consistent read per user, not per record"
    );
    assert!(current(&redis.entry(&email).await.expect("entry")));

    // Every record twice, in a scrambled order; then the oldest alone, late: still the current.
    let order = [2, 0, 3, 1, 1, 3, 0, 2];
    sync.apply(order.iter().map(|&i| records[i].clone()).collect())
        .await
        .expect("applied");
    assert!(current(&redis.entry(&email).await.expect("entry")));
    sync.apply(vec![records[0].clone()]).await.expect("applied");
    assert!(current(&redis.entry(&email).await.expect("entry")));
}

/// Found by the interleavings test: after a Redis restart emptied the cache, the stream's retry
/// of a batch wrote the records' old images back one by one, so a user deleted before the
/// restart was served again (its revoked token accepted) until the batch reached the remove.
/// The sync writes what the table holds now, so a replay never shows an older state.
#[tokio::test]
async fn a_replay_after_the_cache_lost_its_data_writes_the_current_state_not_the_old_images() {
    let (env, redis) = env_whose_writes_never_land().await;
    let (token, user) = env.new_user("Replayed").await;
    let email = user["email"].as_str().expect("email").to_owned();
    assert_eq!(
        env.send(ApiRequest::post("/auth/logout").bearer(&token))
            .await
            .status,
        204
    );
    let records = user_records(&stream_records(&env.dynamo.endpoint).await, &email);
    let sync = sync_for(&env, &redis);

    // The cache lost everything; the oldest record (the registration, jwtVersion 1) comes again.
    sync.apply(vec![records[0].clone()]).await.expect("applied");
    let entry = redis.entry(&email).await.expect("entry");
    assert_eq!(
        entry["user"]["jwtVersion"], 2,
        "the logout's state, not the registration's: {entry}"
    );

    // Deleted since: the same old record leaves a tombstone, not the user.
    let fresh = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        env.send(ApiRequest::delete("/users/me").bearer(&fresh))
            .await
            .status,
        204
    );
    let mut conn = redis.connection().await.expect("conn");
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("FLUSHALL");
    sync.apply(vec![records[0].clone()]).await.expect("applied");
    let entry = redis.entry(&email).await.expect("entry");
    assert_eq!(
        entry["kind"], "absent",
        "a user deleted since is absent: {entry}"
    );
    assert_eq!(entry["id"], user["id"]);
}

#[tokio::test]
async fn a_delete_and_a_new_user_of_the_email_end_at_the_new_user_in_any_order() {
    let (env, redis) = env_whose_writes_never_land().await;
    let email = unique_email("Reborn");
    let parsed = Email::parse(&email).expect("email");
    assert_eq!(env.register(&email, "First").await.status, 201);
    let first_user = env
        .app
        .store
        .get_user(&parsed)
        .await
        .expect("DynamoDB")
        .expect("the first user");
    let first = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        env.send(ApiRequest::delete("/users/me").bearer(&first))
            .await
            .status,
        204
    );
    let second = env.register(&email, "Second").await;
    assert_eq!(second.status, 201);

    let records = user_records(&stream_records(&env.dynamo.endpoint).await, &email);
    assert_eq!(records.len(), 3, "insert, remove, insert");
    let sync = sync_for(&env, &redis);
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1], [1, 1, 0]] {
        redis.evict(&email).await;
        let batch = order.iter().map(|&i| records[i].clone()).collect();
        sync.apply(batch).await.expect("applied");
        let entry = redis.entry(&email).await.expect("entry");
        assert_eq!(
            entry["user"]["id"], second.body["id"],
            "order {order:?}: {entry}"
        );
    }

    // A batch reads the table once per user and writes once, whatever its records' order, so
    // the loop above writes the second user every time. What keeps the order is the write:
    // the states of the email (the first user, its tombstone as the delete writes it and as
    // the sync writes it, the second user) written directly, in every order, each from an
    // empty entry: the first as a miss (or the sync) writes it back into the entry it leased,
    // the others as changes. Every write of a state older than the stored one must be
    // refused, and the entry must end at the second user.
    let second_user = env
        .app
        .store
        .get_user(&parsed)
        .await
        .expect("DynamoDB")
        .expect("the second user");
    let states = [
        ("the first user", Entry::User(first_user.clone())),
        ("its tombstone", Entry::Absent(first_user.deleted())),
        (
            "its tombstone from the stream",
            Entry::Absent(shared::domain::Version::gone_for_good(
                first_user.registration,
                first_user.id.clone(),
            )),
        ),
        ("the second user", Entry::User(second_user.clone())),
    ];
    for order in permutations(states.len()) {
        redis.evict(&email).await;
        let lease = sync.cache.lease(&parsed).await.expect("a lease");
        let mut newest: Option<usize> = None;
        for &i in &order {
            let (what, state) = &states[i];
            let outcome = match newest {
                None => sync.cache.fill(&parsed, state, Some(&lease)).await,
                Some(_) => sync.cache.put(&parsed, state).await,
            };
            let expected = if newest.is_some_and(|n| n > i) {
                WriteOutcome::Stale
            } else {
                newest = Some(i);
                WriteOutcome::Written
            };
            assert_eq!(outcome, expected, "order {order:?}: {what}");
        }
        let entry = redis.entry(&email).await.expect("entry");
        assert_eq!(
            (entry["kind"].as_str(), &entry["user"]["id"]),
            (Some("user"), &second.body["id"]),
            "order {order:?}: {entry}"
        );
    }
}

/// Issue 23: the stream the local stack delivers is keys only, as `template.yaml` declares it,
/// so no record carries a password hash; and a deleted user still reaches the cache through
/// cache-sync alone, as the tombstone of the user its email's tombstone item names: never
/// older than the delete's own (a late write-back of the deleted user is refused, so a token it
/// revoked keeps failing), never hiding a later registration of the email.
#[tokio::test]
async fn the_stream_carries_no_image_and_a_delete_reaches_the_cache_through_cache_sync_alone() {
    use shared::cache::{decode_entry, Cached};
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("KeysOnly").await;
    let email = user["email"].as_str().expect("email").to_owned();
    let parsed = Email::parse(&email).expect("email");
    let me = || ApiRequest::get("/users/me");
    assert_eq!(
        env.send(ApiRequest::post("/auth/logout").bearer(&token))
            .await
            .status,
        204
    );
    let fresh = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let last = env
        .app
        .store
        .get_user(&parsed)
        .await
        .expect("DynamoDB")
        .expect("the user as the delete will find it");
    assert_eq!(
        env.send(ApiRequest::delete("/users/me").bearer(&fresh))
            .await
            .status,
        204
    );

    let records = stream_records(&env.dynamo.endpoint).await;
    let mine = user_records(&records, &email);
    assert_eq!(mine.len(), 3, "register, logout, delete");
    for record in &records {
        assert!(
            record.change.new_image.is_empty() && record.change.old_image.is_empty(),
            "a record with an image: {record:?}"
        );
        assert_eq!(
            record.change.stream_view_type,
            Some(aws_lambda_events::event::dynamodb::StreamViewType::KeysOnly)
        );
        let text = serde_json::to_string(record).expect("JSON");
        assert!(
            !text.contains("argon2") && !text.contains("passwordHash"),
            "{text}"
        );
    }

    // The delete's own cache write lost (the cache lost its data since): cache-sync alone.
    env.redis.evict(&email).await;
    let sync = sync_for(&env, &env.redis);
    let (response, report) = sync.apply(mine.clone()).await.expect("applied");
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((report.users, report.written), (1, 1), "{report:?}");
    let raw = env.redis.entry_bytes(&email).await.expect("an entry");
    assert_eq!(
        decode_entry(&raw, &parsed),
        Some(Cached::Absent {
            id: last.id.clone(),
            registration: Some(last.registration),
        }),
        "the deleted user's tombstone"
    );
    // Never older than the delete's own tombstone, nor than any state of the deleted user: a
    // late write-back of it (a read from before the delete) is refused.
    assert_eq!(
        sync.cache
            .put(&parsed, &Entry::Absent(last.deleted()))
            .await,
        WriteOutcome::Stale,
        "the delete's own tombstone is not newer"
    );
    assert_eq!(
        sync.cache.put(&parsed, &Entry::User(last.clone())).await,
        WriteOutcome::Stale,
        "the deleted user's last state is older"
    );
    for revoked in [&token, &fresh] {
        let res = env.send(me().bearer(revoked)).await;
        assert_eq!(res.status, 401, "{}", res.raw_body);
    }
    let raw = env.redis.entry_bytes(&email).await.expect("an entry");
    assert!(
        matches!(decode_entry(&raw, &parsed), Some(Cached::Absent { .. })),
        "still the tombstone"
    );

    // A new registration of the email is newer than that tombstone: its own write lands over
    // it, and so does cache-sync's.
    assert_eq!(env.register(&email, "Again").await.status, 201);
    let again = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let res = env.send(me().bearer(&again)).await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_ne!(res.body["id"], user["id"]);
    let second = env
        .app
        .store
        .get_user(&parsed)
        .await
        .expect("DynamoDB")
        .expect("the second user");
    assert_eq!(second.registration, last.registration + 1);
    // From the sync's tombstone, the new user through cache-sync alone.
    env.redis.evict(&email).await;
    sync.apply(mine.clone()).await.expect("applied");
    let raw = env.redis.entry_bytes(&email).await.expect("an entry");
    assert!(
        matches!(decode_entry(&raw, &parsed), Some(Cached::User(ref u)) if u.id == second.id),
        "the second user, read by the sync"
    );
    env.redis.evict(&email).await;
    let lease = sync.cache.lease(&parsed).await.expect("a lease");
    assert_eq!(
        sync.cache
            .fill(
                &parsed,
                &Entry::Absent(shared::domain::Version::gone_for_good(
                    last.registration,
                    last.id.clone()
                )),
                Some(&lease)
            )
            .await,
        WriteOutcome::Written
    );
    let records = user_records(&stream_records(&env.dynamo.endpoint).await, &email);
    let (_, report) = sync.apply(records).await.expect("applied");
    assert_eq!(
        report.written, 1,
        "the second user over the tombstone: {report:?}"
    );
    let res = env.send(me().bearer(&again)).await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
}

/// Every order of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut all = Vec::new();
    for shorter in permutations(n - 1) {
        for at in 0..=shorter.len() {
            let mut order = shorter.clone();
            order.insert(at, n - 1);
            all.push(order);
        }
    }
    all
}

#[tokio::test]
async fn one_bad_record_is_reported_alone_and_the_rest_is_applied() {
    let (env, redis) = env_whose_writes_never_land().await;
    let (_, a) = env.new_user("Alpha").await;
    let (_, b) = env.new_user("Beta").await;
    let records = stream_records(&env.dynamo.endpoint).await;
    let good_a = user_records(&records, a["email"].as_str().expect("email"));
    let good_b = user_records(&records, b["email"].as_str().expect("email"));
    // A user's keys whose email is not one the users function writes: the record names no
    // user the sync can read.
    let mut bad = good_a[0].clone();
    bad.change.keys.insert(
        "pk".into(),
        serde_dynamo::AttributeValue::S("USER#not an email".into()),
    );
    bad.change.sequence_number = Some("100000000000000009999".into());

    let batch = vec![good_a[0].clone(), bad, good_b[0].clone()];
    let (response, report) = sync_for(&env, &redis)
        .apply(batch)
        .await
        .expect("the batch as a whole");
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failed,
        [Some("100000000000000009999".to_owned())],
        "only the bad record is reported"
    );
    assert_eq!((report.written, report.failed), (2, 1));
    for user in [&a, &b] {
        let entry = redis
            .entry(user["email"].as_str().expect("email"))
            .await
            .expect("applied");
        assert_eq!(entry["user"]["id"], user["id"]);
    }
}

#[tokio::test]
async fn a_redis_that_cannot_take_writes_or_a_table_that_cannot_be_read_fails_the_batch() {
    let env = TestEnv::new().await;
    let (_, user) = env.new_user("Retried").await;
    let email = user["email"].as_str().expect("email").to_owned();
    let records = stream_records(&env.dynamo.endpoint).await;
    assert!(!records.is_empty());
    // The registration wrote its entry; the batches below must write it again.
    env.redis.evict(&email).await;

    // Redis down: a closed port.
    let down = InProcess::with_config(&sync_config(
        &format!("redis://127.0.0.1:{}", closed_port()),
        &env.dynamo.endpoint,
    ));
    let error = down
        .sync
        .apply(records.clone())
        .await
        .expect_err("Redis down must fail the batch");
    assert!(matches!(error, BatchFailed::Cache), "{error}");
    let mut event = Event::default();
    event.records = records.clone();
    assert!(
        down.invoke(event.clone()).await.is_err(),
        "the handler fails the invocation, so Lambda retries it"
    );
    let error = cache_sync_fn::handle(&down.sync, LambdaEvent::new(event, Context::default()))
        .await
        .expect_err("the handler fails the invocation");
    assert!(matches!(error, BatchFailed::Cache), "{error}");
    assert_eq!(
        Diagnostic::from(error).error_type,
        "CacheUnavailable",
        "what the event source mapping records of the failure"
    );

    // The table unreachable: nothing is written, the batch fails.
    let blind = InProcess::with_config(&sync_config(
        &env.redis.url(),
        &format!("http://127.0.0.1:{}", closed_port()),
    ));
    let error = blind
        .sync
        .apply(records.clone())
        .await
        .expect_err("the table unreachable must fail the batch");
    assert!(matches!(error, BatchFailed::Table(_)), "{error}");
    assert_eq!(Diagnostic::from(error).error_type, "TableUnavailable");

    // Up, but refusing writes (a replica that lost its primary: `min-replicas-to-write`).
    let mut conn = env.redis.connection().await.expect("conn");
    let set = |n: u32| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("min-replicas-to-write")
            .arg(n)
            .to_owned()
    };
    let node = env.redis.node_of(&cache_key(&email)).await;
    let refused_before = node.errors_answered("NOREPLICAS").await;
    let () = set(1).query_async(&mut conn).await.expect("CONFIG");
    let refusing = InProcess::with_config(&sync_config(&env.redis.url(), &env.dynamo.endpoint));
    let error = refusing
        .sync
        .apply(records.clone())
        .await
        .expect_err("refused writes fail the batch");
    assert!(matches!(error, BatchFailed::Cache), "{error}");
    assert!(
        node.errors_answered("NOREPLICAS").await > refused_before,
        "Redis itself refused the write (NOREPLICAS), not a lost connection"
    );
    assert!(
        env.redis.entry(&email).await.is_none(),
        "nothing was written while Redis refused writes"
    );
    let () = set(0).query_async(&mut conn).await.expect("CONFIG");
    assert!(
        refusing.sync.apply(records).await.is_ok(),
        "the retry lands once Redis takes writes"
    );
    let entry = env.redis.entry(&email).await.expect("the retry's entry");
    assert_eq!(entry["user"]["id"], user["id"], "{entry}");
}

/// Posts and comments whose own cache writes never landed reach the cache through the stream,
/// as the table holds them: the post's entry (its count too), its place in the feed, and a
/// comment in its post's first comments.
#[tokio::test]
async fn posts_and_comments_in_the_stream_reach_the_cache_as_the_table_holds_them() {
    use shared::cache::entry::{parse, Order};
    use shared::cache::kinds::{comments_key, post_key, FEED_KEY};
    let (env, redis) = env_whose_writes_never_land().await;
    let (token, _) = env.new_user("Author").await;
    let sync = sync_for(&env, &redis);
    let empty = shared::cache::posts::WindowLookup::Empty;
    let now = std::time::Instant::now;
    // The windows are filled (empty) first, so the new post and comment land in them.
    sync.posts.feed_page(20).await.expect("the feed");
    let post = env.new_post(&token, "not a user").await;
    let post_id = post["id"].as_str().expect("id");
    sync.posts
        .comments_page(post_id, 20, empty, now())
        .await
        .expect("a page");
    let res = env
        .send(
            ApiRequest::post(&format!("/posts/{post_id}/comments"))
                .bearer(&token)
                .json(json!({"text": "hi"})),
        )
        .await;
    assert_eq!(res.status, 201);
    let comment_id = res.body["id"].as_str().expect("id");
    let records: Vec<EventRecord> = stream_records(&env.dynamo.endpoint)
        .await
        .into_iter()
        .filter(
            |r| matches!(r.change.keys.get("pk"), Some(serde_dynamo::AttributeValue::S(s)) if s.starts_with("POST#")),
        )
        .collect();
    assert_eq!(records.len(), 2, "the post and the comment");

    let (response, report) = sync.apply(records.clone()).await.expect("applied");
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((report.users, report.items, report.ignored), (0, 2, 0));

    let mut conn = redis.connection().await.expect("conn");
    let raw: Vec<u8> = conn.get(post_key(post_id)).await.expect("GET");
    let cached = parse(&raw)
        .and_then(|e| e.item(post_id))
        .expect("the post's entry");
    assert!(cached.live);
    let cached: serde_json::Value = serde_json::from_str(cached.body).expect("JSON");
    assert_eq!(cached, post, "the post as the table holds it");
    let raw: Vec<u8> = conn.get(FEED_KEY).await.expect("GET");
    let feed = parse(&raw).expect("the feed's window");
    assert!(
        feed.records.iter().any(|r| r.id == post_id && r.live),
        "the post's place in the feed: {feed:?}"
    );
    let raw: Vec<u8> = conn.get(comments_key(post_id)).await.expect("GET");
    let page = parse(&raw)
        .and_then(|e| e.page(post_id, Order::Ascending, 20))
        .expect("the first comments answer a page");
    let ids: Vec<&str> = page.records.iter().map(|r| r.id).collect();
    assert_eq!(ids, [comment_id]);
}

#[tokio::test]
async fn the_sample_stream_event_applies_as_lambda_would_deliver_it() {
    let (env, redis) = env_whose_writes_never_land().await;
    // The table as the sample's records leave it: the logged-out user is there, the removed one
    // is not, and its delete left its email's tombstone.
    let gone = shared::domain::User {
        id: "01KBFZ7M1N2P3Q4R5S6T7V8W9X".into(),
        email: shared::domain::Email::parse("sample.gone@example.com").expect("email"),
        name: "Charles Babbage".into(),
        jwt_version: 1,
        revision: 0,
        registration: 0,
        created_at: "2026-12-01T12:00:00.000Z".into(),
    };
    let gone = env
        .app
        .store
        .create_user(shared::store::NewUser {
            user: gone,
            password_hash: "sample".into(),
        })
        .await
        .expect("put");
    env.app.store.delete_user(&gone).await.expect("delete");
    let user = shared::domain::User {
        id: "01KBFZ8W3Q5R6S7T8V9W0X1Y2Z".into(),
        email: shared::domain::Email::parse("sample.stream@example.com").expect("email"),
        name: "Ada Lovelace".into(),
        jwt_version: 2,
        revision: 2,
        registration: 0,
        created_at: "2026-12-02T00:00:00.000Z".into(),
    };
    env.app
        .store
        .create_user(shared::store::NewUser {
            user,
            password_hash: "sample".into(),
        })
        .await
        .expect("put");

    let raw = std::fs::read_to_string(format!("{EVENTS_DIR}/cache-sync/stream.json"))
        .expect("events/cache-sync/stream.json");
    // What lambda_runtime does with the payload before the handler sees it.
    let event: Event = serde_json::from_str(&raw).expect("a DynamoDB stream event");
    let function = InProcess {
        sync: sync_for(&env, &redis),
    };
    let response = function.invoke(event).await.expect("applied");
    assert!(response.batch_item_failures.is_empty());

    let modified = redis
        .entry("sample.stream@example.com")
        .await
        .expect("the MODIFY");
    assert_eq!(modified["user"]["jwtVersion"], 2);
    assert_eq!(modified["rev"], 2);
    let removed = redis
        .entry("sample.gone@example.com")
        .await
        .expect("the REMOVE");
    assert_eq!(
        removed,
        json!({"id": "01KBFZ7M1N2P3Q4R5S6T7V8W9X", "rev": u64::MAX, "kind": "absent"}),
        "the tombstone of the user the email's tombstone item names"
    );
    // The post of the sample is not in the table: gone, in its entry (leased by the sync, as
    // the users' are). The feed has no entry to take it: a window is only ever made by a read.
    let mut conn = redis.connection().await.expect("conn");
    let mut keys: Vec<String> = conn.keys("*").await.expect("KEYS");
    keys.sort();
    assert_eq!(
        keys,
        [
            "post:v4:01KBFZ9A1B2C3D4E5F6G7H8J9K",
            "user:v4:sample.gone@example.com",
            "user:v4:sample.stream@example.com"
        ]
    );
    let raw: Vec<u8> = conn
        .get("post:v4:01KBFZ9A1B2C3D4E5F6G7H8J9K")
        .await
        .expect("GET");
    let record = shared::cache::entry::parse(&raw)
        .and_then(|e| e.item("01KBFZ9A1B2C3D4E5F6G7H8J9K"))
        .expect("the post's entry");
    assert_eq!((record.live, record.version), (false, "~"));
}
