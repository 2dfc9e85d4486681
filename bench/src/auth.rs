//! Figures 1 to 3, in this process: the auth hot path against a bare Redis `GET` of the same
//! key on the same connection, the miss and no-cache paths, and DynamoDB user reads per
//! 1,000 authenticated requests with a warm cache. Then the cached reads of issue 22
//! ([`cached_reads`]): DynamoDB reads per 1,000 warm hits of a post, the feed's first page and
//! a post's first comments, and a post hit's latency against the auth hit's.

use std::time::{Duration, Instant};

use integration_tests::{ApiRequest, CallCounter, TestEnv, TestRedis, TEST_SECRET};
use lambda_http::http::{header::AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::json;
use shared::auth::TokenKeys;
use shared::cache::near::NEAR_AGE;
use shared::cache::posts::PostLookup;
use shared::config::{CacheMode, Secret};
use shared::domain::Email;

use crate::charts::AuthSamples;
use crate::report::{median, percentile, Goal, Report};

/// Counts `GetItem` calls for a user item (`pk` = `USER#...`), whatever else is read.
fn user_reads() -> CallCounter {
    CallCounter::only(|operation, body| {
        operation == "GetItem" && body.windows(6).any(|w| w == b"\"USER#")
    })
}

/// A fresh Redis and DynamoDB, an app over both, configured as the functions are, whose
/// DynamoDB client also counts what `reads` counts.
async fn env_counting(reads: &CallCounter) -> TestEnv {
    TestEnv::builder()
        .mode(CacheMode::Standalone)
        .as_deployed()
        .interceptor(reads.clone())
        .build()
        .await
}

/// [`TestEnv::new`], configured as the functions are (in a release build too).
pub async fn new_env() -> TestEnv {
    TestEnv::builder()
        .mode(CacheMode::Standalone)
        .as_deployed()
        .build()
        .await
}

/// A fresh DynamoDB and an app over it and `redis` (a server or a cluster), configured as the
/// functions are.
pub async fn env_on(redis: TestRedis) -> TestEnv {
    TestEnv::builder().redis(redis).as_deployed().build().await
}

pub struct Counts {
    /// Interleaved pairs of (auth hit, bare GET).
    pub pairs: usize,
    /// Interleaved triples of (hit, miss, no cache).
    pub misses: usize,
    /// Authenticated requests for the DynamoDB read count.
    pub requests: usize,
}

/// Figures 1 to 3; the raw latency samples, for the charts.
pub async fn run(report: &mut Report, counts: &Counts) -> AuthSamples {
    let reads = user_reads();
    let env = env_counting(&reads).await;
    let (token, user) = env.new_user("Bench").await;
    let email = Email::parse(user["email"].as_str().expect("email")).expect("valid email");
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let key = shared::cache::kinds::user_key(&email);
    let auth = &env.app.auth;
    let conn = env.app.users.cache().connection().current();

    let hit = || async {
        let started = Instant::now();
        let user = auth.authenticate(&headers).await.expect("authenticated");
        let took = started.elapsed();
        std::hint::black_box(user);
        took.as_nanos() as f64 / 1000.0
    };
    let bare_get = || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let started = Instant::now();
            let raw: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("GET");
            let took = started.elapsed();
            assert!(raw.is_some(), "the user is cached");
            took.as_nanos() as f64 / 1000.0
        }
    };

    // The cache read alone (`Users::find`: GET within the timeout, decode, checks), no token.
    let users = &env.app.users;
    let find = || async {
        let started = Instant::now();
        let (user, _) = users.find(&email, None).await.expect("found");
        let took = started.elapsed();
        assert!(user.is_some());
        took.as_nanos() as f64 / 1000.0
    };

    // The bare GET inside the cache's timeout, as the cache sends it.
    let timeout = env.app.config.cache.redis_timeout;
    let timed_get = || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let started = Instant::now();
            let mut get = redis::cmd("GET");
            get.arg(&key);
            let raw = tokio::time::timeout(timeout, get.query_async::<Option<Vec<u8>>>(&mut conn))
                .await
                .expect("in time")
                .expect("GET");
            let took = started.elapsed();
            assert!(raw.is_some(), "the user is cached");
            took.as_nanos() as f64 / 1000.0
        }
    };

    // Warm every path (connection, allocator, caches) before measuring.
    for _ in 0..counts.pairs.clamp(50, 2_000) {
        hit().await;
        bare_get().await;
        find().await;
        timed_get().await;
    }

    // 1. Interleaved, rotating which goes first, so drift and noise hit all alike.
    let (mut hits, mut gets, mut finds) = (
        Vec::with_capacity(counts.pairs),
        Vec::with_capacity(counts.pairs),
        Vec::with_capacity(counts.pairs),
    );
    let mut timed_gets = Vec::with_capacity(counts.pairs);
    for i in 0..counts.pairs {
        timed_gets.push(timed_get().await);
        match i % 3 {
            0 => {
                hits.push(hit().await);
                gets.push(bare_get().await);
                finds.push(find().await);
            }
            1 => {
                gets.push(bare_get().await);
                finds.push(find().await);
                hits.push(hit().await);
            }
            _ => {
                finds.push(find().await);
                hits.push(hit().await);
                gets.push(bare_get().await);
            }
        }
    }
    // Where the difference goes: the token check alone (no I/O), timed in a burst, for the
    // token as every request after the first sends it (remembered), and for a token the keys
    // have not seen (the whole HS256 check).
    let time_verify = |keys: &TokenKeys| {
        let started = Instant::now();
        std::hint::black_box(keys.verify(&token).expect("valid token"));
        started.elapsed().as_nanos() as f64 / 1000.0
    };
    let bursts = counts.pairs.min(10_000);
    let mut remembered: Vec<f64> = (0..bursts).map(|_| time_verify(auth.keys())).collect();
    let fresh: Vec<TokenKeys> = (0..bursts.min(2_000))
        .map(|_| TokenKeys::new(&Secret::new(TEST_SECRET), env.app.config.token_ttl))
        .collect();
    let mut first_checks: Vec<f64> = fresh.iter().map(time_verify).collect();
    let mut samples = AuthSamples {
        hit: hits.clone(),
        bare_get: gets.clone(),
        ..AuthSamples::default()
    };
    let (hit_median, get_median) = (median(&mut hits), median(&mut gets));
    report.add("auth.hit_us", hit_median, "us", None);
    report.add("auth.hit_p99_us", percentile(&mut hits, 99.0), "us", None);
    report.add("auth.redis_get_us", get_median, "us", None);
    report.add(
        "auth.redis_get_p99_us",
        percentile(&mut gets, 99.0),
        "us",
        None,
    );
    report.add(
        "auth.hit_minus_redis_get_us",
        hit_median - get_median,
        "us",
        None,
    );
    report.add("auth.cache_find_us", median(&mut finds), "us", None);
    report.add(
        "auth.redis_get_in_timeout_us",
        median(&mut timed_gets),
        "us",
        None,
    );
    report.add("auth.token_check_us", median(&mut remembered), "us", None);
    report.add(
        "auth.token_check_first_us",
        median(&mut first_checks),
        "us",
        None,
    );
    report.add(
        "auth.hit_over_redis_get",
        hit_median / get_median,
        "ratio",
        Some(Goal::AtMost(1.05)),
    );

    // 2. The miss path (GET, GetItem, the compare-and-set script) and the no-cache path (GetItem
    // only), beside hits.
    let keys = auth.keys();
    let store = &env.app.store;
    let no_cache = || async {
        let started = Instant::now();
        let verified = keys.verify(&token).expect("valid token");
        let claims = &verified.claims;
        let user = store
            .get_user(&verified.email)
            .await
            .expect("read")
            .expect("user exists");
        assert!(user.id == claims.sub && user.jwt_version == claims.jwt_version);
        started.elapsed().as_nanos() as f64 / 1000.0
    };
    let mut del = conn.clone();
    let (mut hits2, mut misses, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..counts.misses {
        hits2.push(hit().await);
        let _: i64 = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut del)
            .await
            .expect("DEL");
        misses.push(hit().await); // a miss now: GET, GetItem, compare-and-set
        direct.push(no_cache().await);
    }
    (samples.miss, samples.no_cache) = (misses.clone(), direct.clone());
    let (hit2, miss, none) = (median(&mut hits2), median(&mut misses), median(&mut direct));
    report.add("auth.miss_us", miss, "us", None);
    report.add("auth.no_cache_us", none, "us", None);
    report.add("auth.miss_over_hit", miss / hit2, "ratio", None);
    report.add("auth.no_cache_over_hit", none / hit2, "ratio", None);

    // 3. Authenticated requests through the three functions' handlers, cache warm.
    let post = env.new_post(&token, "bench").await;
    let post_id = post["id"].as_str().expect("post id").to_owned();
    let requests = [
        ApiRequest::get("/users/me").bearer(&token),
        ApiRequest::get(&format!("/posts/{post_id}")).bearer(&token),
        ApiRequest::get("/posts?limit=10").bearer(&token),
        ApiRequest::post(&format!("/posts/{post_id}/comments"))
            .bearer(&token)
            .json(json!({"text": "hi"})),
        ApiRequest::get(&format!("/posts/{post_id}/comments?limit=10")).bearer(&token),
    ];
    let _ = env.send(requests[0].clone()).await; // the entry is warm (register wrote it; this checks)
    let before = reads.total();
    for i in 0..counts.requests {
        let res = env.send(requests[i % requests.len()].clone()).await;
        assert!(
            res.status < 300,
            "request {i}: {} {}",
            res.status,
            res.raw_body
        );
    }
    let per_1000 = (reads.total() - before) as f64 * 1000.0 / counts.requests as f64;
    report.add(
        "auth.dynamodb_user_reads_per_1000",
        per_1000,
        "reads",
        Some(Goal::Exactly(0.0)),
    );
    samples
}

/// Counts every DynamoDB read, whatever it reads.
fn all_reads() -> CallCounter {
    CallCounter::only(|operation, _| {
        matches!(
            operation,
            "GetItem" | "Query" | "BatchGetItem" | "TransactGetItems" | "Scan"
        )
    })
}

/// The cached reads of issue 22, in this process: DynamoDB reads (of any item) per 1,000 warm
/// hits of a post, the feed's first page and a post's first comment page through the handlers;
/// and what the posts handler does for a post hit (the user's lookup and the post's together,
/// then the post from what was found) against the auth hit alone, interleaved.
pub async fn cached_reads(report: &mut Report, counts: &Counts) {
    let reads = all_reads();
    let env = env_counting(&reads).await;
    let (token, _) = env.new_user("Cached").await;
    for i in 0..4 {
        env.new_post(&token, &format!("earlier {i}")).await;
    }
    let post = env.new_post(&token, "cached").await;
    let post_id = post["id"].as_str().expect("post id").to_owned();
    for i in 0..20 {
        let res = env
            .send(
                ApiRequest::post(&format!("/posts/{post_id}/comments"))
                    .bearer(&token)
                    .json(json!({"text": format!("comment {i}")})),
            )
            .await;
        assert_eq!(res.status, 201, "comment {i}: {}", res.raw_body);
    }
    // The upkeep and the cache sync caught up (the post's `commentCount`), as in production
    // a moment after the writes.
    env.settle().await;

    let kinds = [
        ("post", format!("/posts/{post_id}")),
        ("feed_first_page", "/posts?limit=20".to_owned()),
        (
            "comments_first_page",
            format!("/posts/{post_id}/comments?limit=20"),
        ),
    ];
    // Warm: the first read of each may miss and fill its entry.
    for (kind, path) in &kinds {
        let res = env.send(ApiRequest::get(path).bearer(&token)).await;
        assert_eq!(res.status, 200, "{kind}: {}", res.raw_body);
    }
    for (kind, path) in &kinds {
        reads.reset();
        for i in 0..counts.requests {
            // Now and then past the feed's copy in the instance, so its hits come from Redis
            // too, not only from that copy.
            if i % 100 == 99 {
                tokio::time::sleep(NEAR_AGE + Duration::from_millis(10)).await;
            }
            let res = env.send(ApiRequest::get(path).bearer(&token)).await;
            assert_eq!(res.status, 200, "{kind} {i}: {}", res.raw_body);
        }
        let per_1000 = reads.total() as f64 * 1000.0 / counts.requests as f64;
        report.add(
            format!("cached.{kind}.dynamodb_reads_per_1000"),
            per_1000,
            "reads",
            Some(Goal::Exactly(0.0)),
        );
    }

    // In-process latency: the post hit as `GET /posts/{id}` runs it, against the auth hit.
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let app = &env.app;
    let auth_hit = || async {
        let started = Instant::now();
        let user = app
            .auth
            .authenticate(&headers)
            .await
            .expect("authenticated");
        let took = started.elapsed();
        std::hint::black_box(user);
        took.as_nanos() as f64 / 1000.0
    };
    let post_hit = || async {
        let started = Instant::now();
        let (user, looked) =
            tokio::join!(app.auth.authenticate(&headers), app.posts.lookup(&post_id));
        user.expect("authenticated");
        assert!(matches!(looked, PostLookup::Found(_)), "a post hit");
        let post = app
            .posts
            .resolve(&post_id, looked, started)
            .await
            .expect("read")
            .expect("the post");
        let took = started.elapsed();
        std::hint::black_box(post);
        took.as_nanos() as f64 / 1000.0
    };
    for _ in 0..counts.pairs.clamp(50, 2_000) {
        auth_hit().await;
        post_hit().await;
    }
    reads.reset();
    let (mut auths, mut posts) = (
        Vec::with_capacity(counts.pairs),
        Vec::with_capacity(counts.pairs),
    );
    for i in 0..counts.pairs {
        if i % 2 == 0 {
            auths.push(auth_hit().await);
            posts.push(post_hit().await);
        } else {
            posts.push(post_hit().await);
            auths.push(auth_hit().await);
        }
    }
    assert_eq!(reads.total(), 0, "hits read nothing from DynamoDB");
    let (auth_median, post_median) = (median(&mut auths), median(&mut posts));
    report.add("cached.post_hit_us", post_median, "us", None);
    report.add("cached.auth_hit_us", auth_median, "us", None);
    report.add(
        "cached.post_hit_over_auth_hit",
        post_median / auth_median,
        "ratio",
        Some(Goal::AtMost(1.1)),
    );
}
