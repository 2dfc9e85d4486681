//! A slot moved between masters while requests run: the resharding a Redis Cluster (and
//! ElastiCache when it scales a cluster in or out) does live, and the `ASK` and `MOVED`
//! redirections the client must follow through it. Always on a three-master cluster, whatever
//! `TEST_REDIS_MODE` says.
//!
//! The slot of a cached user's entry goes from its master (the source) to another (the target)
//! the way `redis-cli --cluster reshard` moves it: `CLUSTER SETSLOT <slot> IMPORTING` on the
//! target, `MIGRATING` on the source, the keys moved with `MIGRATE ... KEYS` (from then on the
//! source answers `ASK` for them), then `CLUSTER SETSLOT <slot> NODE <target>` on every master
//! (from then on the source answers `MOVED`). Meanwhile:
//!
//! - a user's authenticated requests, eight at a time, are all answered `200` with the user,
//!   from the cache (no DynamoDB read), each within the bound the fault tests use;
//! - a second user whose entry lives in the same slot logs out once in the `ASK` phase and once
//!   in the `MOVED` phase, on one instance, and the revoked token is refused on both instances
//!   from the moment the logout answered (the logout's compare-and-set followed the redirect);
//! - afterwards the entries are on the target alone, and the app's reads go there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::join_all;
use integration_tests::bounds::{assert_bounded, Sample};
use integration_tests::{send_to, unique_email, ApiRequest, RedisNode, TestEnv, TestRedis};
use serde_json::Value;
use shared::config::CacheMode;
use shared::domain::Email;
use shared::App;

/// Requests in flight at once during the run.
const LANES: usize = 8;

/// The run: the user's requests, and when each step of the migration happens (after how many
/// of them have answered).
const TOTAL: usize = 800;
const MARK_SLOT_AT: usize = 100;
const MIGRATE_KEYS_AT: usize = 200;
const HAND_OVER_AT: usize = 450;

fn me(token: &str) -> ApiRequest {
    ApiRequest::get("/users/me").bearer(token)
}

fn key(email: &str) -> String {
    integration_tests::cache_key(email)
}

/// CRC16/XMODEM, the checksum Redis Cluster maps keys to slots with.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, byte| {
        (0..8).fold(crc ^ (u16::from(*byte) << 8), |crc, _| {
            if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            }
        })
    })
}

/// The slot of `key`, hash tags included, as the cluster computes it.
fn slot_of(key: &str) -> u16 {
    let hashed = match key.find('{') {
        Some(open) => match key[open + 1..].find('}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed.as_bytes()) % 16_384
}

async fn command<T: redis::FromRedisValue>(node: &RedisNode, args: &[&str]) -> T {
    let mut conn = node.connection().await.expect("a connection to the node");
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{args:?} on port {}: {e}", node.port))
}

async fn node_id(node: &RedisNode) -> String {
    command(node, &["CLUSTER", "MYID"]).await
}

async fn wait_until(done: &AtomicUsize, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::SeqCst) < count {
        assert!(
            Instant::now() < deadline,
            "the run stalled at {} requests",
            done.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// p99 of the DynamoDB read a request would fall back to, `LANES` at a time, on this machine now.
async fn dynamodb_only_p99(env: &TestEnv, email: &Email) -> Duration {
    let next = AtomicUsize::new(0);
    let took = Mutex::new(Vec::new());
    let lane = || async {
        while next.fetch_add(1, Ordering::SeqCst) < 200 {
            let started = Instant::now();
            env.app
                .store
                .get_user(email)
                .await
                .expect("GetItem")
                .expect("the user");
            took.lock().expect("lock").push(started.elapsed());
        }
    };
    join_all((0..LANES).map(|_| lane())).await;
    let mut took = took.into_inner().expect("lock");
    took.sort_unstable();
    took[(took.len() - 1) * 99 / 100]
}

/// A user registered on `app` whose entry's key is in `slot`: `(email, token, user)`.
async fn user_in_slot(env: &TestEnv, slot: u16) -> (String, String, Value) {
    let email = std::iter::repeat_with(|| unique_email("Revoked"))
        .find(|e| slot_of(&key(e)) == slot)
        .expect("an email");
    let registered = env.register(&email, "Revoked").await;
    assert_eq!(registered.status, 201, "{}", registered.raw_body);
    let login = env.login(&email).await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    (
        email,
        login.body["token"].as_str().expect("token").to_owned(),
        registered.body,
    )
}

async fn login(app: &App, email: &str) -> String {
    let body = serde_json::json!({"email": email, "password": integration_tests::PASSWORD});
    let login = send_to(app, ApiRequest::post("/auth/login").json(body)).await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    login.body["token"].as_str().expect("token").to_owned()
}

async fn logout(app: &App, token: &str) {
    let res = send_to(app, ApiRequest::post("/auth/logout").bearer(token)).await;
    assert_eq!(res.status, 204, "logout: {}", res.raw_body);
}

#[tokio::test]
async fn a_slot_migrated_mid_run_keeps_serving_hits_and_refusing_revoked_tokens() {
    // A redirect followed is a hit; one not followed is an error at once, not a timeout. So the
    // bound on each call is long here: on a loaded machine a slow hit must not pass for a
    // redirect turned into a fallback (the test checks that none falls back).
    let patient = |c: &mut shared::config::Config| {
        c.cache.redis_timeout = std::time::Duration::from_secs(2);
    };
    let env = TestEnv::in_mode(CacheMode::Cluster, patient).await;
    let TestRedis::Cluster(cluster) = &env.redis else {
        panic!("a cluster")
    };
    let timeout = env.app.config.cache.redis_timeout;
    // Instance B: its own cluster connection, also redirected mid-run.
    let b = env.instance_with(&env.redis.url(), patient);

    let (token, user) = env.new_user("Resharded").await;
    let email = user["email"].as_str().expect("email").to_owned();
    let user_key = key(&email);
    let slot = slot_of(&user_key);
    let mut conn = cluster.nodes[0].connection().await.expect("connection");
    let keyslot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&user_key)
        .query_async(&mut conn)
        .await
        .expect("KEYSLOT");
    assert_eq!(
        i64::from(slot),
        keyslot,
        "the slot as the cluster computes it"
    );
    let (revoked_email, first_token, revoked_user) = user_in_slot(&env, slot).await;

    let source = cluster.node_of(&user_key).await;
    let target = cluster
        .nodes
        .iter()
        .find(|n| n.port != source.port)
        .expect("another master");
    let (source_id, target_id) = (node_id(source).await, node_id(target).await);
    let slot_arg = slot.to_string();
    // Both instances have the entries cached and their connections open.
    assert_eq!(env.send(me(&token)).await.status, 200);
    assert_eq!(send_to(&b, me(&token)).await.status, 200);
    assert_eq!(send_to(&b, me(&first_token)).await.body, revoked_user);

    let user_email = Email::parse(&email).expect("email");
    let baseline = dynamodb_only_p99(&env, &user_email).await;
    env.dynamo.calls.reset();
    let () = command(source, &["CONFIG", "RESETSTAT"]).await;

    // Every cache call that failed is logged with its error: a redirect not followed is an
    // error at once; a timeout is this machine too loaded to answer within the bound.
    let (captured, capture) = integration_tests::logs::capture_logs("warn");
    let done = AtomicUsize::new(0);
    let finished = AtomicBool::new(false);
    // The tokens revoked so far, each from the moment its logout answered.
    let revoked: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let refusals = AtomicUsize::new(0);
    // Per revoked token, how many times each instance (A, B) refused it during the run.
    let refused_by: Mutex<HashMap<String, [usize; 2]>> = Mutex::new(HashMap::new());
    let probes = Mutex::new(Vec::new());
    let second_token = Mutex::new(None::<String>);

    let migrate = async {
        wait_until(&done, MARK_SLOT_AT).await;
        let () = command(
            target,
            &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &source_id],
        )
        .await;
        let () = command(
            source,
            &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &target_id],
        )
        .await;

        wait_until(&done, MIGRATE_KEYS_AT).await;
        let port = target.port.to_string();
        let keys = [user_key.clone(), key(&revoked_email)];
        let args = [
            "MIGRATE",
            "127.0.0.1",
            &port,
            "",
            "0",
            "5000",
            "KEYS",
            &keys[0],
            &keys[1],
        ];
        let _: String = command(source, &args).await;
        // The ASK phase: the source no longer holds the entries and sends every command on them
        // to the target. A logout on B: its write must follow the redirect.
        logout(&b, &first_token).await;
        revoked.lock().expect("lock").push(first_token.clone());
        let again = login(&b, &revoked_email).await;
        assert_eq!(
            env.send(me(&again)).await.body,
            revoked_user,
            "the new token works on A"
        );
        *second_token.lock().expect("lock") = Some(again);

        wait_until(&done, HAND_OVER_AT).await;
        // Whatever else the slot held on the source moves too (nothing, unless a key was
        // written there before the slot was marked).
        loop {
            let left: Vec<String> =
                command(source, &["CLUSTER", "GETKEYSINSLOT", &slot_arg, "100"]).await;
            if left.is_empty() {
                break;
            }
            let args: Vec<&str> = ["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"]
                .into_iter()
                .chain(left.iter().map(String::as_str))
                .collect();
            let _: String = command(source, &args).await;
        }
        // The hand-over, target first, as redis-cli does it: from now on, MOVED.
        for node in std::iter::once(target)
            .chain(std::iter::once(source))
            .chain(
                cluster
                    .nodes
                    .iter()
                    .filter(|n| n.port != source.port && n.port != target.port),
            )
        {
            let () = command(node, &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &target_id]).await;
        }
        // The MOVED phase: a logout on A, whose slot map still names the source.
        let again = second_token
            .lock()
            .expect("lock")
            .clone()
            .expect("the second token");
        logout(&env.app, &again).await;
        revoked.lock().expect("lock").push(again);
    };
    // Beside the run, the revoked tokens on both instances: never accepted. The loop goes on
    // past the run's end until every revoked token was checked on both instances, so the
    // token revoked last (in the MOVED phase, near the end) is checked too.
    let every_token_checked = || {
        let tokens = revoked.lock().expect("lock").clone();
        let counts = refused_by.lock().expect("lock");
        tokens.len() == 2
            && tokens
                .iter()
                .all(|t| counts.get(t).is_some_and(|c| c.iter().all(|n| *n > 0)))
    };
    let check_revoked = async {
        while !finished.load(Ordering::SeqCst) || !every_token_checked() {
            let tokens = revoked.lock().expect("lock").clone();
            for token in &tokens {
                for (i, (instance, app)) in [("A", &env.app), ("B", &b)].into_iter().enumerate() {
                    let res = send_to(app, me(token)).await;
                    assert_eq!(
                        res.status, 401,
                        "a revoked token was accepted on {instance}: {}",
                        res.raw_body
                    );
                    refusals.fetch_add(1, Ordering::SeqCst);
                    refused_by
                        .lock()
                        .expect("lock")
                        .entry(token.clone())
                        .or_default()[i] += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let probe = async {
        while !finished.load(Ordering::SeqCst) {
            let started = Instant::now();
            env.app
                .store
                .get_user(&user_email)
                .await
                .expect("GetItem")
                .expect("the user");
            probes
                .lock()
                .expect("lock")
                .push((started, started.elapsed()));
        }
    };
    let next = AtomicUsize::new(0);
    let samples = Mutex::new(Vec::with_capacity(TOTAL));
    let lane = || async {
        while next.fetch_add(1, Ordering::SeqCst) < TOTAL {
            let started = Instant::now();
            let response = env.send(me(&token)).await;
            samples.lock().expect("lock").push(Sample {
                started,
                took: started.elapsed(),
                response,
            });
            done.fetch_add(1, Ordering::SeqCst);
        }
    };
    let requests = async {
        join_all((0..LANES).map(|_| lane())).await;
    };
    let run = async {
        tokio::join!(requests, migrate);
        finished.store(true, Ordering::SeqCst);
    };
    tokio::join!(run, check_revoked, probe);

    let samples = samples.into_inner().expect("lock");
    let probes = probes.into_inner().expect("lock");
    let fallbacks = env.dynamo.calls.get("GetItem") - probes.len() as u64;
    assert_eq!(samples.len(), TOTAL);
    let (worst_margin, slowest) = assert_bounded(
        &samples,
        &probes,
        timeout,
        baseline,
        &user,
        "slot migration",
    );
    // Every request was a hit, the redirects followed, not turned into cache errors. A call
    // that timed out is no redirect (it was sent, and its answer came late): on a machine busy
    // enough to hold a loopback answer past the 2 s bound, a few may fall back, each logged as
    // a timeout; any other failure is a redirect not followed.
    drop(capture);
    let failed: Vec<String> = captured
        .json_lines()
        .iter()
        .filter(|l| l["fields"]["message"] == "redis call failed; using DynamoDB")
        .map(|l| l["fields"]["error"].as_str().unwrap_or_default().to_owned())
        .collect();
    let timed_out = |e: &&String| e.contains("no answer within") || e.contains("timed out");
    let not_redirected: Vec<&String> = failed.iter().filter(|e| !timed_out(e)).collect();
    assert!(
        not_redirected.is_empty(),
        "cache calls failed during the migration: {not_redirected:?}"
    );
    let late = failed.len() as u64;
    assert!(
        fallbacks <= late && late <= TOTAL as u64 / 100,
        "{fallbacks} of {TOTAL} requests fell back to DynamoDB during the migration, {late} \
         cache calls timed out: {failed:?}"
    );
    if late > 0 {
        println!("slot migration: {late} cache calls timed out on this loaded machine");
    }
    let revoked = revoked.into_inner().expect("lock");
    assert_eq!(revoked.len(), 2, "both logouts ran");
    assert!(
        refusals.load(Ordering::SeqCst) >= 4,
        "the revoked tokens were checked"
    );
    let refused_by = refused_by.into_inner().expect("lock");
    for (phase, token) in ["ASK", "MOVED"].iter().zip(&revoked) {
        let [on_a, on_b] = refused_by.get(token).copied().unwrap_or_default();
        assert!(
            on_a > 0 && on_b > 0,
            "the token revoked in the {phase} phase was refused {on_a} times on A and {on_b} on B"
        );
    }
    // And every revoked token, once more, on both instances now that the slot has moved.
    for (phase, token) in ["ASK", "MOVED"].iter().zip(&revoked) {
        for (instance, app) in [("A", &env.app), ("B", &b)] {
            let res = send_to(app, me(token)).await;
            assert_eq!(
                res.status, 401,
                "the token revoked in the {phase} phase was accepted on {instance} after the run: {}",
                res.raw_body
            );
        }
    }

    // The run went through both redirects: the source answered ASK, then MOVED.
    let (asks, moves) = (
        source.errors_answered("ASK").await,
        source.errors_answered("MOVED").await,
    );
    assert!(
        asks > 0 && moves > 0,
        "the source answered {asks} ASK and {moves} MOVED"
    );

    // Afterwards: the slot's entries are on the target alone, and the app reads them there.
    let on_source: i64 = command(source, &["CLUSTER", "COUNTKEYSINSLOT", &slot_arg]).await;
    let on_target: i64 = command(target, &["CLUSTER", "COUNTKEYSINSLOT", &slot_arg]).await;
    assert_eq!(
        (on_source, on_target >= 2),
        (0, true),
        "source {on_source} keys, target {on_target}"
    );
    for node in &cluster.nodes {
        let () = command(node, &["CONFIG", "RESETSTAT"]).await;
    }
    env.dynamo.calls.reset();
    for _ in 0..50 {
        let res = env.send(me(&token)).await;
        assert_eq!((res.status, &res.body), (200, &user), "{}", res.raw_body);
    }
    assert_eq!(
        env.dynamo.calls.get("GetItem"),
        0,
        "hits, after the migration"
    );
    let mut served = Vec::new();
    for node in &cluster.nodes {
        served.push((node.port, node.calls("get").await));
    }
    for (port, gets) in &served {
        let expected = if *port == target.port { 50 } else { 0 };
        assert_eq!(
            *gets, expected,
            "GETs served by port {port} (target {}): {served:?}",
            target.port
        );
    }
    println!(
        "slot {slot} moved from port {} to {} mid-run: {TOTAL} requests ({LANES} at a time), all hits through {asks} ASK and {moves} MOVED \
         redirects; slowest {slowest:?}, smallest margin under the bound {worst_margin:?} (DynamoDB-only p99 {baseline:?}); revoked tokens refused {} times \
         (per token, on A and B: {:?})",
        source.port,
        target.port,
        refusals.load(Ordering::SeqCst),
        revoked.iter().map(|t| refused_by.get(t).copied().unwrap_or_default()).collect::<Vec<_>>()
    );
}
