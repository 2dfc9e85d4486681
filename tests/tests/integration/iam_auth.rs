//! ElastiCache IAM authentication on the wire, against a real `redis-server` (and a real
//! cluster): the cache's ACL user has no password but the token the code will present, and the
//! `default` user is off, so a command answered proves `AUTH <user-id> <token>` went out. The
//! user's rights are the access string `template.yaml` gives it in ElastiCache.
//!
//! The token itself (its shape and signature, checked against an independent SigV4
//! computation with fixed credentials and time) is tested in `shared/src/cache/iam.rs`.

use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use integration_tests::{test_config, unique_email, RedisNode, TestRedis};
use shared::cache::{CacheAuth, Entry, IamTokens, Lookup, RedisCache, WriteOutcome};
use shared::config::{CacheConfig, CacheMode, IamAuthConfig};
use shared::domain::{Email, User};

const USER_ID: &str = "app-user";
const ADMIN_PASSWORD: &str = "test-admin-password";

fn iam() -> IamAuthConfig {
    IamAuthConfig {
        user_id: USER_ID.into(),
        cache_name: "social-cache".into(),
        serverless: false,
    }
}

fn credentials(secret: &str) -> Credentials {
    Credentials::new(
        "AKIDTEST",
        secret,
        Some("session-token".into()),
        None,
        "test",
    )
}

/// A connection to `node` as the test's admin user (the `default` user is off).
async fn admin(node: &RedisNode) -> redis::aio::MultiplexedConnection {
    let url = format!("redis://admin:{ADMIN_PASSWORD}@127.0.0.1:{}", node.port);
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

async fn acl(conn: &mut redis::aio::MultiplexedConnection, args: &[&str]) {
    let () = redis::cmd("ACL")
        .arg(args)
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("ACL {args:?}: {e}"));
}

/// The access string `template.yaml` gives the cache's IAM user in ElastiCache: the tests hold
/// the cache to it, so every command it sends is one the deployed user may send.
fn deployed_access_string() -> String {
    let template: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../../template.yaml")).expect("template.yaml parses");
    let access = &template["Resources"]["CacheIamUser"]["Properties"]["AccessString"];
    access
        .as_str()
        .expect("the IAM user's access string")
        .to_owned()
}

/// On every node: an admin user for the test, the cache's user with the deployed access string
/// and `token` as its only password, and the `default` user off.
async fn lock_down(redis: &TestRedis, token: &str) {
    let access = deployed_access_string();
    for node in redis.nodes() {
        let mut conn = node.connection().await.expect("connection");
        acl(
            &mut conn,
            &[
                "SETUSER",
                "admin",
                "on",
                &format!(">{ADMIN_PASSWORD}"),
                "~*",
                "&*",
                "+@all",
            ],
        )
        .await;
        let mut admin = admin(node).await;
        let password = format!(">{token}");
        let rules: Vec<&str> = ["SETUSER", USER_ID, "reset", password.as_str()]
            .into_iter()
            .chain(access.split_whitespace())
            .collect();
        acl(&mut admin, &rules).await;
        acl(&mut admin, &["SETUSER", "default", "off"]).await;
        // The setup's own connections were the default user's: gone, and none can come back.
        let _: i64 = redis::cmd("CLIENT")
            .arg(&["KILL", "USER", "default"][..])
            .query_async(&mut admin)
            .await
            .expect("KILL");
    }
}

/// Makes `token` the cache user's only password on every node.
async fn set_password(redis: &TestRedis, token: &str) {
    for node in redis.nodes() {
        acl(
            &mut admin(node).await,
            &["SETUSER", USER_ID, "resetpass", &format!(">{token}")],
        )
        .await;
    }
}

/// `AUTH` commands every node has run so far (`INFO commandstats`), asked on `admins` (one open
/// admin connection per node, so asking adds no `AUTH`).
async fn auth_calls(admins: &mut [redis::aio::MultiplexedConnection]) -> u64 {
    let mut sum = 0;
    for admin in admins {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(admin)
            .await
            .expect("INFO");
        let calls = info
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_auth:calls="))
            .and_then(|r| r.split(',').next());
        sum += calls.and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
    }
    sum
}

/// The ids of the cache user's connections on every node (`CLIENT LIST`), and any connection
/// of a user other than the cache's and the test's admin.
async fn cache_clients(redis: &TestRedis) -> (Vec<String>, Vec<String>) {
    let (mut ours, mut others) = (Vec::new(), Vec::new());
    for node in redis.nodes() {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut admin(node).await)
            .await
            .expect("LIST");
        for line in list.lines() {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(name))
                    .unwrap_or_default()
                    .to_owned()
            };
            match field("user=").as_str() {
                USER_ID => ours.push(format!("{}:{}", node.port, field("id="))),
                "admin" => {}
                _ => others.push(line.to_owned()),
            }
        }
    }
    ours.sort();
    (ours, others)
}

fn cache_config(redis: &TestRedis) -> CacheConfig {
    let mut config = test_config(&redis.url(), "http://127.0.0.1:1").cache;
    redis.configure(&mut config);
    config.redis_timeout = Duration::from_millis(500); // correctness here, not latency
    config
}

fn a_user() -> (Email, Entry) {
    let email = unique_email("iam");
    let user = User {
        id: "01J00000000000000000000000".into(),
        email: shared::domain::Email::parse(&email).expect("email"),
        name: "Iam".into(),
        jwt_version: 1,
        revision: 1,
        registration: 0,
        created_at: "2026-01-01T00:00:00Z".into(),
    };
    (Email::parse(&email).expect("email"), Entry::User(user))
}

/// Writes (as a miss: a lease, then the write-back) and reads back an entry through `cache`:
/// each only works once `AUTH` succeeded.
async fn round_trip(cache: &RedisCache) -> bool {
    let (email, entry) = a_user();
    let Some(lease) = cache.lease(&email).await else {
        return false;
    };
    cache.fill(&email, &entry, Some(&lease)).await == WriteOutcome::Written
        && matches!(cache.lookup(&email).await, Lookup::Found(_))
}

async fn eventually(what: &str, check: impl AsyncFn() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: not within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

async fn iam_tokens_authenticate_refresh_and_reauthenticate(mode: CacheMode) {
    let redis = TestRedis::start_in(mode).await;
    // Tokens reused for 1 s (not 10 min), live connections re-authenticated every 300 ms (not
    // every hour), so both show within the test.
    let tokens = IamTokens::new(&iam(), credentials("the-function-role-secret"), "us-east-1")
        .with_timing(Duration::from_secs(1), Duration::from_millis(300));
    let first = tokens.token().await.expect("a token");
    lock_down(&redis, first.expose()).await;
    let cache = RedisCache::with_auth(&cache_config(&redis), &CacheAuth::Iam(tokens.clone()))
        .expect("cache");

    // 1. The token goes out as `AUTH app-user <token>`: nothing else gets in.
    eventually("a write and a read as the IAM user", || round_trip(&cache)).await;
    let (ours, others) = cache_clients(&redis).await;
    assert!(
        !ours.is_empty(),
        "the cache's connections are the IAM user's"
    );
    assert!(others.is_empty(), "connections as another user: {others:?}");
    let forged = IamTokens::new(&iam(), credentials("another-secret"), "us-east-1");
    let intruder =
        RedisCache::with_auth(&cache_config(&redis), &CacheAuth::Iam(forged)).expect("cache");
    assert!(
        !round_trip(&intruder).await,
        "a token signed with other credentials must be refused"
    );

    // 2. Live connections send `AUTH` again, periodically, with a current token: the 12-hour
    // limit never comes, and no new connection is needed for it.
    let mut admins = Vec::new();
    for node in redis.nodes() {
        admins.push(admin(node).await);
    }
    let auths = auth_calls(&mut admins).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let more = auth_calls(&mut admins).await - auths;
    let n = ours.len() as u64;
    assert!(
        more >= 2 * n,
        "{more} AUTHs in 1 s on {n} connections re-authenticating every 300 ms"
    );
    assert!(round_trip(&cache).await, "still authenticated");
    assert_eq!(
        cache_clients(&redis).await.0,
        ours,
        "on the same connections"
    );

    // 3. After its refresh age a new token is signed; a connection opened from then on presents
    // it. The old one is no longer accepted, every cache connection is killed, and the cache
    // reconnects by itself with the new token.
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past the refresh age, and a new X-Amz-Date
    let second = tokens.token().await.expect("a new token");
    assert_ne!(
        second.expose(),
        first.expose(),
        "a new token after the refresh age"
    );
    set_password(&redis, second.expose()).await;
    let mut killed = 0;
    for node in redis.nodes() {
        let n: i64 = redis::cmd("CLIENT")
            .arg(&["KILL", "USER", USER_ID][..])
            .query_async(&mut admin(node).await)
            .await
            .expect("KILL");
        killed += n;
    }
    assert!(
        killed as u64 >= n,
        "every connection authenticated with the old token was killed ({killed} of {n})"
    );
    let took = eventually("the cache reconnecting with the new token", || {
        round_trip(&cache)
    })
    .await;
    println!("{mode:?}: IAM re-authentication every 300 ms seen ({more} AUTHs in 1 s); reconnected with a refreshed token in {took:?}");
    let now = cache_clients(&redis).await.0;
    assert!(!now.is_empty());
    assert!(
        now.iter().all(|c| !ours.contains(c)),
        "the round trip went over new connections: {now:?}, before {ours:?}"
    );
}

#[tokio::test]
async fn standalone_connections_authenticate_with_iam_tokens_refresh_them_and_reauthenticate() {
    iam_tokens_authenticate_refresh_and_reauthenticate(CacheMode::Standalone).await;
}

#[tokio::test]
async fn cluster_connections_authenticate_with_iam_tokens_refresh_them_and_reauthenticate() {
    iam_tokens_authenticate_refresh_and_reauthenticate(CacheMode::Cluster).await;
}
