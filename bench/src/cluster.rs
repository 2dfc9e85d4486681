//! The auth hot path on a Redis Cluster beside the same path on a single `redis-server`, in
//! the same run, interleaved: what choosing cluster mode (ElastiCache Serverless) costs a cache
//! hit. Both are local processes on this machine, so the figure is the client's cost (slot
//! routing, the cluster connection's extra task hop), not a network's.

use std::time::Instant;

use integration_tests::{RedisCluster, RedisServer, TestEnv, TestRedis};
use lambda_http::http::{header::AUTHORIZATION, HeaderMap, HeaderValue};

use crate::auth::env_on;
use crate::report::{median, percentile, Goal, Report};

/// An app on `redis` with a cached user, the headers of its requests, and the user's key.
struct Side {
    env: TestEnv,
    headers: HeaderMap,
    key: String,
}

impl Side {
    async fn new(redis: TestRedis) -> Self {
        let env = env_on(redis).await;
        let (token, user) = env.new_user("Bench").await;
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        let email = shared::domain::Email::parse(user["email"].as_str().expect("email"))
            .expect("a valid email");
        let key = shared::cache::kinds::user_key(&email);
        Side { env, headers, key }
    }

    /// A bare `GET` of the user's key on the app's own connection, in µs: what the client alone
    /// costs, without the auth path around it.
    async fn get(&self) -> f64 {
        let mut conn = self.env.app.users.cache().connection().current();
        let started = Instant::now();
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut conn)
            .await
            .expect("GET");
        let took = started.elapsed();
        assert!(raw.is_some(), "the user is cached");
        took.as_nanos() as f64 / 1000.0
    }

    /// One authenticated cache hit, in µs.
    async fn hit(&self) -> f64 {
        let started = Instant::now();
        let user = self
            .env
            .app
            .auth
            .authenticate(&self.headers)
            .await
            .expect("authenticated");
        let took = started.elapsed();
        std::hint::black_box(user);
        took.as_nanos() as f64 / 1000.0
    }
}

pub async fn run(report: &mut Report, pairs: usize) {
    let standalone = Side::new(TestRedis::Standalone(RedisServer::start().await)).await;
    let cluster = Side::new(TestRedis::Cluster(RedisCluster::start().await)).await;
    for _ in 0..pairs.clamp(50, 2_000) {
        standalone.hit().await;
        cluster.hit().await;
    }
    let (mut on_standalone, mut on_cluster) =
        (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    let (mut get_standalone, mut get_cluster) =
        (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    for i in 0..pairs {
        if i % 2 == 0 {
            on_standalone.push(standalone.hit().await);
            on_cluster.push(cluster.hit().await);
            get_standalone.push(standalone.get().await);
            get_cluster.push(cluster.get().await);
        } else {
            on_cluster.push(cluster.hit().await);
            on_standalone.push(standalone.hit().await);
            get_cluster.push(cluster.get().await);
            get_standalone.push(standalone.get().await);
        }
    }
    let (standalone_median, cluster_median) = (median(&mut on_standalone), median(&mut on_cluster));
    report.add("auth.standalone_hit_us", standalone_median, "us", None);
    report.add("auth.cluster_hit_us", cluster_median, "us", None);
    report.add(
        "auth.cluster_hit_p99_us",
        percentile(&mut on_cluster, 99.0),
        "us",
        None,
    );
    let (standalone_get, cluster_get) = (median(&mut get_standalone), median(&mut get_cluster));
    report.add("auth.standalone_redis_get_us", standalone_get, "us", None);
    report.add("auth.cluster_redis_get_us", cluster_get, "us", None);
    report.add(
        "auth.cluster_minus_standalone_hit_us",
        cluster_median - standalone_median,
        "us",
        None,
    );
    report.add(
        "auth.cluster_hit_over_standalone_hit",
        cluster_median / standalone_median,
        "ratio",
        Some(Goal::AtMost(1.05)),
    );
}
