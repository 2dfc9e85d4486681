//! Many invocations at once in one execution environment (Lambda Managed Instances): one `App`
//! shared by every invocation, on a multi-threaded runtime as `shared::runtime` builds it for
//! an environment with several vCPUs, against the real Redis and dynoxide.
//!
//! - Every response is its own request's: no crossed users, posts or bodies.
//! - Concurrent misses of one user share one DynamoDB read and one cache write.
//! - A read already in flight when a request starts is never shared with it: a request that
//!   starts after a logout answered never gets the state from before it.
//! - Log lines of interleaved invocations carry their own request id, route and user.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use integration_tests::logs::{Anchor, Captured};
use integration_tests::{
    cache_key, send_as, send_to, trace_id_of, ApiRequest, ApiResponse, TestEnv, TestRedis,
    WriteFault,
};
use serde_json::json;
use shared::domain::Email;
use shared::App;

/// How many times Redis ran the compare-and-set script since the last reset (every cache
/// write is one), on every node (a cluster's masters each answer for their own).
async fn cache_writes(env: &TestEnv) -> u64 {
    let mut writes = 0;
    for node in env.redis.nodes() {
        writes += node.scripts_run().await;
    }
    writes
}

async fn reset_redis_stats(env: &TestEnv) {
    let mut conn = env.redis.connection().await.expect("redis");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .expect("RESETSTAT");
}

/// A user of the test: token, id, email, and a post of theirs.
struct Person {
    token: String,
    id: String,
    email: String,
    post_id: String,
    caption: String,
}

async fn people(env: &TestEnv, n: usize) -> Vec<Person> {
    let mut people = Vec::new();
    for i in 0..n {
        let (token, user) = env.new_user(&format!("Person {i}")).await;
        let caption = format!("post of person {i}");
        let post = env.new_post(&token, &caption).await;
        people.push(Person {
            token,
            id: user["id"].as_str().expect("id").to_owned(),
            email: user["email"].as_str().expect("email").to_owned(),
            post_id: post["id"].as_str().expect("post id").to_owned(),
            caption,
        });
    }
    people
}

/// What one invocation asks, and what its answer must say.
enum Ask {
    Me,
    Post,
    Create(String),
}

fn check(ask: &Ask, person: &Person, res: &ApiResponse) {
    match ask {
        Ask::Me => {
            assert_eq!(res.status, 200, "{}", res.raw_body);
            assert_eq!(
                res.body["id"],
                person.id.as_str(),
                "crossed user: {}",
                res.raw_body
            );
            assert_eq!(res.body["email"], person.email.as_str());
        }
        Ask::Post => {
            assert_eq!(res.status, 200, "{}", res.raw_body);
            assert_eq!(
                res.body["id"],
                person.post_id.as_str(),
                "crossed post: {}",
                res.raw_body
            );
            assert_eq!(res.body["caption"], person.caption.as_str());
        }
        Ask::Create(caption) => {
            assert_eq!(res.status, 201, "{}", res.raw_body);
            assert_eq!(
                res.body["caption"],
                caption.as_str(),
                "crossed body: {}",
                res.raw_body
            );
            assert_eq!(
                res.body["authorId"],
                person.id.as_str(),
                "crossed author: {}",
                res.raw_body
            );
        }
    }
}

fn request(ask: &Ask, person: &Person) -> ApiRequest {
    match ask {
        Ask::Me => ApiRequest::me().bearer(&person.token),
        Ask::Post => ApiRequest::get(&format!("/posts/{}", person.post_id)).bearer(&person.token),
        Ask::Create(caption) => ApiRequest::post("/posts")
            .bearer(&person.token)
            .json(json!({"caption": caption})),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_concurrent_invocation_gets_its_own_answer() {
    let env = TestEnv::patient().await;
    let people = Arc::new(people(&env, 8).await);
    // Half the users start from a miss, so hits, misses and shared reads interleave.
    for person in people.iter().step_by(2) {
        env.redis.evict(&person.email).await;
    }
    let TestEnv {
        app,
        redis: _redis,
        dynamo: _dynamo,
        ..
    } = env;
    let app = Arc::new(app);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..384usize {
        let (app, people) = (app.clone(), people.clone());
        tasks.spawn(async move {
            let who = (n * 5) % people.len();
            let ask = match n % 3 {
                0 => Ask::Me,
                1 => Ask::Post,
                _ => Ask::Create(format!("request {n} by {who}")),
            };
            let res = send_as(&app, request(&ask, &people[who]), &format!("req-{n}")).await;
            check(&ask, &people[who], &res);
        });
    }
    let mut done = 0;
    while let Some(result) = tasks.join_next().await {
        result.expect("invocation");
        done += 1;
    }
    assert_eq!(done, 384);
}

#[tokio::test]
async fn concurrent_misses_for_one_user_cost_one_dynamodb_read_and_one_lease_and_write() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Crowd").await;
    let email = user["email"].as_str().expect("email").to_owned();
    assert_eq!(env.me(&token).await.status, 200, "connections open");
    env.redis.evict(&email).await;
    env.dynamo.calls.reset();
    reset_redis_stats(&env).await;

    // 32 invocations polled together, as the runtime's 32 loops run them: each has looked in
    // the cache before the first read is sent.
    let answers =
        futures::future::join_all((0..32).map(|_| env.send(ApiRequest::me().bearer(&token)))).await;
    for res in &answers {
        assert_eq!(res.status, 200, "{}", res.raw_body);
        assert_eq!(res.body["email"], email.as_str());
    }
    assert_eq!(
        env.dynamo.calls.get("GetItem"),
        1,
        "one DynamoDB read for 32 misses"
    );
    assert_eq!(env.dynamo.calls.total(), 1);
    assert_eq!(
        cache_writes(&env).await,
        2,
        "one cache write, after its lease"
    );

    // The entry is back: the next requests are hits.
    let again =
        futures::future::join_all((0..8).map(|_| env.send(ApiRequest::me().bearer(&token)))).await;
    assert!(again.iter().all(|r| r.status == 200));
    assert_eq!(env.dynamo.calls.total(), 1);
}

/// The coherence rule of the shared read. A's read of the user is answered by DynamoDB and
/// held in flight; meanwhile a logout completes on instance B and the entry is evicted. A
/// request that starts on A after that must not share the held read (which saw the user
/// before the logout): it waits for it, then reads again, and refuses the revoked token.
///
/// And the held read's late write-back cannot put the revoked state back: A reaches Redis
/// through a proxy that holds that write until a newer state (B's miss, after the logout) is in
/// the cache, and drops A's later writes, so the held write lands last and only the
/// compare-and-set keeps the newer state.
#[tokio::test]
async fn a_request_never_shares_a_read_sent_before_it_started() {
    let redis = TestRedis::start().await;
    let link = redis.link().await;
    let (env, proxy) = TestEnv::builder()
        .redis(redis)
        .config(|c| link.configure(&mut c.cache))
        .behind_dynamo_proxy()
        .await;
    let b = env.instance(&env.redis.url());
    let (token, user) = env.new_user("Inflight").await;
    let email = user["email"].as_str().expect("email").to_owned();
    assert_eq!(env.me(&token).await.status, 200, "A's connections open");
    let node = env.redis.node_of(&cache_key(&email)).await;
    env.redis.evict(&email).await;
    env.dynamo.calls.reset();
    proxy.hold_answers("GetItem", 1);

    let before = env.send(ApiRequest::me().bearer(&token)); // starts before the logout: its read is held
    let after = async {
        proxy.answers_held(1).await;
        let logout = send_to(&b, ApiRequest::post("/auth/logout").bearer(&token)).await;
        assert_eq!(logout.status, 204, "{}", logout.raw_body);
        env.redis.evict(&email).await; // as if the entry had expired since: A must miss
                                       // Started after the logout answered, while A's first read is still held.
        let after = env.send(ApiRequest::me().bearer(&token));
        let release = async {
            wait_until(|| waiting_reads(&env.app, &email) >= 1).await;
            // The held read's write-back (jwtVersion 1) is held by A's link until a newer state
            // is in the cache.
            link.set_write_fault(WriteFault::Hold);
            proxy.release_answers();
            wait_until_async(|| async { link.held() >= 1 }).await;
            // A's writes behind it (the write-back of A's own second read) are dropped: what
            // ends in the cache must not depend on one of them landing after the held one.
            link.set_write_fault(WriteFault::Drop);
            // A newer state lands: B misses and writes back what DynamoDB holds now.
            let on_b = send_to(&b, ApiRequest::me().bearer(&token)).await;
            on_b.assert_error(401, "unauthorized");
            let entry = env.redis.entry(&email).await.expect("B's entry");
            assert_eq!(entry["user"]["jwtVersion"], 2, "{entry}");
            assert!(link.held() >= 1, "the held read's write-back is still held");
            // The held write-back lands last: wait until Redis has run it.
            let ran = node.scripts_run().await;
            link.release_held();
            wait_until_async(|| async { node.scripts_run().await > ran }).await;
        };
        tokio::join!(after, release).0
    };
    let (before, after) = tokio::join!(before, after);
    link.set_write_fault(WriteFault::None);
    assert_eq!(
        before.status, 200,
        "the request that started before the logout: {}",
        before.raw_body
    );
    after.assert_error(401, "unauthorized");
    assert_eq!(
        env.dynamo.calls.get("GetItem"),
        2,
        "a read of its own, sent after it started"
    );
    // And the cache ends at DynamoDB's state: the held read's write-back landed last, and it
    // is older.
    let entry = env.redis.entry(&email).await.expect("an entry");
    assert_eq!(entry["user"]["jwtVersion"], 2, "{entry}");
}

fn waiting_reads(app: &App, email: &str) -> usize {
    app.users
        .reads_waiting(&Email::parse(email).expect("email"))
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("condition not met in 1 s");
}

/// [`wait_until`] for a condition that must ask a server, with a bound for a loaded machine.
async fn wait_until_async<F, Fut>(done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "condition not met in 5 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// JSON lines as the functions write them in Lambda ([`shared::telemetry::json_lines`]), the
/// functions' own at TRACE, to a buffer: each event is formatted whole, then written in one
/// call, as to stdout.
fn json_logs(captured: &Captured) -> tracing::Dispatch {
    let subscriber = shared::telemetry::json_lines()
        .with_env_filter("info,shared=trace,users_fn=trace,posts_fn=trace")
        .with_writer(captured.clone())
        .finish();
    tracing::Dispatch::new(subscriber)
}

/// Interleaved invocations on four threads: every log line written inside an invocation names
/// that invocation's request id, its X-Ray trace id, its route and, once authenticated, its own
/// user; every invocation's "request done" line is there with its user.
#[test]
fn log_lines_of_interleaved_invocations_name_their_own_request_and_user() {
    let captured = Captured::default();
    let dispatch = json_logs(&captured);
    let for_threads = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .on_thread_start(move || {
            // Every worker logs to the capture for its whole life.
            std::mem::forget(tracing::dispatcher::set_default(&for_threads));
        })
        .build()
        .expect("runtime");
    let _main = tracing::dispatcher::set_default(&dispatch);
    let _anchor = tracing::Dispatch::new(Anchor);
    tracing::callsite::rebuild_interest_cache();
    let expected: HashMap<String, (String, &'static str)> = runtime.block_on(async {
        let env = TestEnv::patient().await;
        let people = Arc::new(people(&env, 6).await);
        for person in people.iter().step_by(2) {
            env.redis.evict(&person.email).await;
        }
        captured.clear();
        let TestEnv {
            app, redis, dynamo, ..
        } = env;
        let app = Arc::new(app);
        let mut tasks = tokio::task::JoinSet::new();
        let mut expected = HashMap::new();
        for n in 0..120usize {
            let who = (n * 5) % people.len();
            let (ask, route) = if n % 2 == 0 {
                (Ask::Me, "/users/")
            } else {
                (Ask::Post, "/posts/")
            };
            let request_id = format!("invocation-{n:03}");
            expected.insert(request_id.clone(), (people[who].id.clone(), route));
            let (app, people) = (app.clone(), people.clone());
            tasks.spawn(async move {
                let res = send_as(&app, request(&ask, &people[who]), &request_id).await;
                check(&ask, &people[who], &res);
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.expect("invocation");
        }
        drop((redis, dynamo));
        expected
    });
    drop(runtime);

    let mut done: HashMap<String, String> = HashMap::new();
    let mut checked = 0;
    for line in captured.json_lines() {
        let Some(span) = line.get("span").filter(|s| s["name"] == "request") else {
            continue;
        };
        let request_id = span["request_id"].as_str().expect("request_id");
        let (user, route) = expected
            .get(request_id)
            .unwrap_or_else(|| panic!("unknown request id: {line}"));
        assert_eq!(
            span["trace_id"],
            trace_id_of(request_id).as_str(),
            "a line of {request_id} names another trace: {line}"
        );
        let logged_route = span["route"].as_str().unwrap_or_default();
        assert!(
            logged_route.starts_with(route),
            "a line of {request_id} names another route: {line}"
        );
        if let Some(logged_user) = span.get("user_id") {
            assert_eq!(
                logged_user,
                user.as_str(),
                "a line of {request_id} names another user: {line}"
            );
            checked += 1;
        }
        if line["message"] == "request done" {
            assert_eq!(line["status"], 200, "{line}");
            done.insert(
                request_id.to_owned(),
                span["user_id"].as_str().unwrap_or_default().to_owned(),
            );
        }
    }
    assert_eq!(
        done.len(),
        expected.len(),
        "every invocation logged its end"
    );
    for (request_id, (user, _)) in &expected {
        assert_eq!(&done[request_id], user, "{request_id}");
    }
    assert!(checked >= expected.len(), "lines checked: {checked}");
}

/// cache-sync's batches, interleaved on four threads as Managed Instances run them: every line
/// the function logs names its own invocation's request id and X-Ray trace id (the `batch`
/// span, as the HTTP functions' `request` span), and every batch's "batch applied" line is
/// there inside it.
#[test]
fn log_lines_of_interleaved_cache_sync_batches_name_their_own_invocation() {
    use aws_lambda_events::event::dynamodb::Event;
    use integration_tests::sync::{stream_records, user_records, InProcess};

    let captured = Captured::default();
    let dispatch = json_logs(&captured);
    let for_threads = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .on_thread_start(move || {
            std::mem::forget(tracing::dispatcher::set_default(&for_threads));
        })
        .build()
        .expect("runtime");
    let _main = tracing::dispatcher::set_default(&dispatch);
    let _anchor = tracing::Dispatch::new(Anchor);
    tracing::callsite::rebuild_interest_cache();
    let invocations: Vec<String> = runtime.block_on(async {
        let env = TestEnv::patient().await;
        let people = people(&env, 6).await;
        let records = stream_records(&env.dynamo.endpoint).await;
        let batches: Vec<Event> = people
            .iter()
            .map(|person| {
                let mut event = Event::default();
                event.records = user_records(&records, &person.email);
                assert!(!event.records.is_empty(), "{}'s records", person.email);
                event
            })
            .collect();
        let mut config = env.config_for(&env.redis.url());
        config.cache.redis_timeout = Duration::from_secs(10);
        let sync = Arc::new(InProcess::with_config(&config));
        captured.clear();
        let mut tasks = tokio::task::JoinSet::new();
        let mut invocations = Vec::new();
        for n in 0..60usize {
            let request_id = format!("batch-{n:03}");
            invocations.push(request_id.clone());
            let mut context = lambda_runtime::Context::default();
            context.request_id = request_id.clone();
            context.xray_trace_id = Some(trace_id_of(&request_id));
            let (sync, event) = (sync.clone(), batches[n % batches.len()].clone());
            tasks.spawn(async move {
                let answer = cache_sync_fn::handle(
                    &sync.sync,
                    lambda_runtime::LambdaEvent::new(event, context),
                )
                .await;
                assert!(
                    answer.expect("applied").batch_item_failures.is_empty(),
                    "{request_id}"
                );
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.expect("invocation");
        }
        drop(env);
        invocations
    });
    drop(runtime);

    let mut applied = std::collections::HashSet::new();
    let mut checked = 0;
    for line in captured.json_lines() {
        if !line["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("cache_sync_fn"))
        {
            continue;
        }
        let span = line
            .get("span")
            .filter(|s| s["name"] == "batch")
            .unwrap_or_else(|| panic!("outside a batch: {line}"));
        let request_id = span["request_id"].as_str().expect("request_id");
        assert!(
            invocations.iter().any(|i| i == request_id),
            "unknown request id: {line}"
        );
        assert_eq!(
            span["trace_id"],
            trace_id_of(request_id).as_str(),
            "a line of {request_id} names another trace: {line}"
        );
        assert_eq!(span["function"], "cache-sync", "{line}");
        if line["message"] == "batch applied" {
            assert!(
                applied.insert(request_id.to_owned()),
                "{request_id} applied twice: {line}"
            );
        }
        checked += 1;
    }
    assert_eq!(
        applied.len(),
        invocations.len(),
        "every batch logged its end, in its own span"
    );
    assert!(checked >= invocations.len(), "lines checked: {checked}");
}
